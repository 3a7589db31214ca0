# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The merged model plan as a text file a person reads beside the download log.

The text is stable (no timestamps), so the file is rewritten only when the plan changes and a
pod restart with the same manifests changes nothing. It is mode 0640 whatever the move into
place does, and URLs show no password or secret query value (http_origin.mask_url).
"""

from __future__ import annotations

import os

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import mask_url


class PlanFileError(Exception):
    """The plan file cannot be written; the message names the path and what to do."""


def render_plan(plan, log_file=None, first=None):
    """The plan (build_plan's result) as text, one model a line, in queue order; ``first``
    (model_manifest's ``default_workflow``) names the workflow whose models lead the queue."""
    lines = [
        "# Written by aiclipse.comfyui.model_manifest; edits are overwritten.",
        "# The models this pod should have, from the merged manifests (rewritten when the plan changes).",
    ]
    if log_file:
        lines.append(f"# What happened to each download: {log_file}")
    for manifest in plan["manifests"]:
        lines.append(f"# manifest {manifest['name']}: {manifest['status']}, {manifest['entries']} entries")
    if first and first.get("path"):
        lines.append(f"# queued first: the {len(first['names'])} model(s) the default workflow {first['path']} needs")
    lines.append("")
    for entry in plan["entries"]:
        identifier = mask_url(entry["identifier"]) if entry["source"] == "url" else entry["identifier"]
        lines.append(f"{entry['name']}  <-  {entry['source']} {identifier}  ({entry['origin']})")
    for item in plan["replaced"]:
        lines.append(f"replaced: {item['name']} from {item['origin']} by {item['replaced_by']}")
    for item in plan["skipped"]:
        lines.append(f"NOT FETCHED: {item['name']} ({item['origin']}): {item['reason']}")
    lines.append("# end of plan")
    return "\n".join(lines) + "\n"


def update_plan_file(path, text, check_mode=False, mode=0o640):
    """Write `text` to `path` when it differs (creating the folder); returns (changed, before).

    `before` is the old text ('' when there was none), for the diff. Check mode writes nothing.
    A write that fails (a full disk) raises PlanFileError and leaves the old file as it was.
    """
    before = ""
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise PlanFileError(
                f"plan_file {path} exists and is not a regular file; move it aside or choose another path."
            )
        with open(path, "rb") as handle:
            before = handle.read().decode("utf-8", "replace")
    if before == text:
        if not check_mode and os.stat(path).st_mode & 0o7777 != mode:
            os.chmod(path, mode)
        return False, before
    if check_mode:
        return True, before
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise PlanFileError(f"Cannot write the plan file into {directory}: {exc.strerror or exc}") from exc
    try:
        write_file_atomic(path, text, mode=mode)
    except OSError as exc:
        raise PlanFileError(
            f"Cannot write the plan file {path}: {exc.strerror or exc}; the previous plan is left as it was"
        ) from exc
    return True, before
