# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed template workflows into workflow folders without ever losing a user's edit.

Every file under the templates folder (recursively, hidden names skipped) is compared with the
file of the same relative path in each destination folder:

==================================  ==========  ================================================
found at the destination            force       action
==================================  ==========  ================================================
nothing                             any         ``created`` (parent folders too)
a file with the template's content  any         ``unchanged``
a file with other content           false       ``kept`` (the user's edit survives)
a file with other content           true        ``replaced``, the old file kept beside it as
                                                ``<name>.<YYYYmmddTHHMMSS>~``
a folder, link or other non-file    any         ``not_a_file``: left alone and reported
==================================  ==========  ================================================

Files in the destination folders that are not templates are never looked at. Writes go to a
temporary file in the target folder and are renamed into place, so a crash leaves either the
old file or the new one, never half a workflow.
"""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic

CREATED = "created"
REPLACED = "replaced"
UNCHANGED = "unchanged"
KEPT = "kept"
NOT_A_FILE = "not_a_file"
ACTIONS = (CREATED, REPLACED, UNCHANGED, KEPT, NOT_A_FILE)
CHANGES = (CREATED, REPLACED)

# Diffs carry workflow text; beyond this a diff says only the size (workflows with embedded
# images can be megabytes).
DIFF_MAX_BYTES = 256 * 1024


class WorkflowSeedError(Exception):
    """Bad input or a destination that cannot be written; the message names the path."""


def template_files(templates_dir):
    """Relative paths of every template file, sorted; none when the folder does not exist."""
    if not os.path.isdir(templates_dir):
        return []
    found = []
    for top, dirs, files in os.walk(templates_dir):
        # Hidden folders (.git, editor state) are not workflows.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = os.path.join(top, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            found.append(os.path.relpath(path, templates_dir))
    return sorted(found)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def backup_name(path, now=None):
    """A free ``<path>.<YYYYmmddTHHMMSS>~`` (with ``-N`` added when that second is taken)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    candidate = f"{path}.{stamp}~"
    counter = 1
    while os.path.lexists(candidate):
        counter += 1
        candidate = f"{path}.{stamp}-{counter}~"
    return candidate


def _as_diff_text(content):
    if content is None:
        return ""
    if len(content) > DIFF_MAX_BYTES:
        return f"({len(content)} bytes)\n"
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(content)} bytes of binary data)\n"


def _check_folders(directory):
    """The missing folders up to `directory`, innermost first; fails on a non-folder in the way.

    Called while planning, so such a problem stops the run before anything is written.
    """
    missing = []
    while directory and not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise WorkflowSeedError(
                f"{directory} is in the way of a workflow folder (it is not a folder); move it aside and run again."
            )
        missing.append(directory)
        directory = os.path.dirname(directory)
    return missing


class WorkflowSeeder:
    """Plans and applies the copy of every template into every destination folder.

    A new workflow file gets `file_mode`; a replaced one keeps the mode and owner it had.
    """

    def __init__(self, templates_dir, dest_dirs, force=False, file_mode=0o644, dir_mode=0o755):
        if not os.path.isabs(templates_dir):
            raise WorkflowSeedError(f"templates_dir {templates_dir!r} is not an absolute path.")
        for dest_dir in dest_dirs:
            if not os.path.isabs(dest_dir):
                raise WorkflowSeedError(
                    f"Destination {dest_dir!r} is not an absolute path; give the full path of the workflow folder."
                )
        self.templates_dir = templates_dir
        self.dest_dirs = list(dest_dirs)
        self.force = force
        self.file_mode = file_mode
        self.dir_mode = dir_mode

    def plan(self):
        """One dict per (destination folder, template): template, dest, action; nothing written."""
        templates = template_files(self.templates_dir)
        contents = {}
        steps = []
        for dest_dir in self.dest_dirs:
            for rel in templates:
                source = os.path.join(self.templates_dir, rel)
                if rel not in contents:
                    contents[rel] = _read(source)
                dest = os.path.join(dest_dir, rel)
                steps.append(dict(template=source, dest=dest, action=self._action(dest, contents[rel])))
        return steps, contents

    def _action(self, dest, content):
        if not os.path.lexists(dest):
            _check_folders(os.path.dirname(dest))
            return CREATED
        if os.path.islink(dest) or not os.path.isfile(dest):
            return NOT_A_FILE
        if _read(dest) == content:
            return UNCHANGED
        return REPLACED if self.force else KEPT

    def run(self, check_mode=False, want_diff=False):
        """Apply the plan (unless check_mode); returns the result fields for exit_json."""
        steps, contents = self.plan()
        diffs = []
        for step in steps:
            if step["action"] not in CHANGES:
                continue
            content = contents[os.path.relpath(step["template"], self.templates_dir)]
            if want_diff:
                before = _read(step["dest"]) if step["action"] == REPLACED else None
                diffs.append(
                    dict(
                        before_header=step["dest"] if before is not None else "(missing)",
                        after_header=step["dest"],
                        before=_as_diff_text(before),
                        after=_as_diff_text(content),
                    )
                )
            if not check_mode:
                if step["action"] == REPLACED:
                    step["backup"] = self._backup(step["dest"])
                self._write(step["dest"], content)
        counts = dict((action, 0) for action in ACTIONS)
        for step in steps:
            counts[step["action"]] += 1
        result = dict(changed=counts[CREATED] + counts[REPLACED] > 0, workflows=steps, counts=counts)
        if want_diff:
            result["diff"] = diffs
        return result

    def _backup(self, dest):
        """Keep the file about to be replaced; a hard link costs no copy and is atomic."""
        backup = backup_name(dest)
        try:
            os.link(dest, backup)
        except OSError:
            # Filesystems without hard links: a full copy, made before anything is replaced.
            shutil.copy2(dest, backup)
        return backup

    def _make_dirs(self, directory):
        missing = _check_folders(directory)
        for path in reversed(missing):
            os.mkdir(path)
            os.chmod(path, self.dir_mode)

    def _write(self, dest, content):
        directory = os.path.dirname(dest)
        try:
            self._make_dirs(directory)
            write_file_atomic(dest, content, new_file_mode=self.file_mode)
        except OSError as exc:
            raise WorkflowSeedError(f"Cannot write into {directory}: {exc}") from exc
