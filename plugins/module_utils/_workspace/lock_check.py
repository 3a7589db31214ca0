# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Did a start reproduce the lock it was given? The pod as it is now (pod_lock.build) against
the lock (lock_source.parse, as pod_lock_read returns it), with the roles' own reasons.

Compared: ComfyUI's commit, each locked node's presence, repository and commit, each locked
model's presence, sha256 and size. Not compared: the venv's packages (a lock does not install
them; a difference is a note), nodes and models on the pod that the lock does not name (left as
they are; a note).
"""

from __future__ import annotations

import os

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic


def _repo_key(url):
    text = (url or "").strip().rstrip("/").lower()
    return text[:-4] if text.endswith(".git") else text


def _same_commit(actual, wanted):
    return (
        bool(actual)
        and bool(wanted)
        and (actual.lower().startswith(wanted.lower()) or wanted.lower().startswith(actual.lower()))
    )


def _why(reason):
    return f" ({reason})" if reason else ""


def compare(expected, actual, results=None):
    """(unreproduced, notes): lists of sentences a person reads."""
    results = results or {}
    failed, notes = [], []
    failed.extend(f"{item['what']}: {item['reason']}" for item in expected.get("unresolved") or [])
    notes.extend(expected.get("notes") or [])

    wanted = (expected.get("comfyui") or {}).get("commit")
    have = (actual.get("comfyui") or {}).get("commit")
    comfyui_result = results.get("comfyui") or {}
    if wanted and not _same_commit(have, wanted):
        failed.append(
            f"ComfyUI: at {have or 'no commit'}, the lock says {wanted}{_why(comfyui_result.get('not_at_version'))}"
        )

    node_results = {r.get("name", "").lower(): r for r in results.get("custom_nodes") or [] if isinstance(r, dict)}
    on_pod = {n["name"].lower(): n for n in actual.get("custom_nodes") or []}
    by_repo = {_repo_key(n.get("repo")): n for n in actual.get("custom_nodes") or [] if n.get("repo")}
    locked = set()
    for node in expected.get("custom_nodes") or []:
        name = node["name"]
        found = on_pod.get(name.lower())
        if found is None and node.get("repo") and node.get("cnr_id"):
            found = by_repo.get(_repo_key(node["repo"]))
        reason = (node_results.get(name.lower()) or {}).get("reason")
        if found is not None:
            locked.add(found["name"].lower())
        where = f" ({node['origin']})" if node.get("origin") else ""
        if found is None:
            if not node.get("repo"):
                failed.append(
                    f"custom node {name}: not on the pod, and the lock names no repository to install it from{where}"
                )
            else:
                failed.append(f"custom node {name}: not installed{_why(reason)}{where}")
            continue
        if node.get("repo") and found.get("repo") and _repo_key(found["repo"]) != _repo_key(node["repo"]):
            failed.append(
                f"custom node {name}: its checkout is of {found['repo']}, the lock says {node['repo']}{where}"
            )
        elif node.get("commit") and not _same_commit(found.get("commit"), node["commit"]):
            failed.append(
                f"custom node {name}: at {found.get('commit') or 'no commit'}, the lock says {node['commit']}{_why(reason)}{where}"
            )
    for key, node in sorted(on_pod.items()):
        if key not in locked:
            notes.append(f"custom node {node['name']} is on the pod but not in the lock; it was left as it is")

    if expected.get("models") is not None:
        download = {r.get("dest"): r for r in results.get("downloads") or [] if isinstance(r, dict)}
        have_models = {m["dest"]: m for m in actual.get("models") or []}
        for model in expected.get("models_locked") or []:
            dest = model["dest"]
            found = have_models.get(dest) or {}
            reason = (download.get(dest) or {}).get("reason")
            where = f" ({model['origin']})" if model.get("origin") else ""
            if not found or found.get("missing"):
                failed.append(f"model {dest}: not downloaded{_why(reason)}{where}")
            elif model.get("sha256") and found.get("sha256") != model["sha256"]:
                failed.append(
                    f"model {dest}: sha256 {found.get('sha256') or 'unknown'}, the lock says {model['sha256']}{_why(reason)}{where}"
                )
            elif model.get("size") is not None and found.get("size") != model["size"]:
                failed.append(f"model {dest}: {found.get('size')} bytes, the lock says {model['size']}{where}")
            if not model.get("sha256"):
                notes.append(
                    f"model {dest}: the lock has no sha256 for it (neither its manifest nor its source gave one); "
                    f"only its size was checked{where}"
                )

    wanted_digest = (expected.get("python") or {}).get("packages_digest")
    have_digest = (actual.get("python") or {}).get("packages_digest")
    if wanted_digest and have_digest and wanted_digest != have_digest:
        notes.append(
            f"the venv's packages differ from the lock's ({have_digest}, the lock says {wanted_digest}); a lock does not install packages"
        )
    return failed, notes


def render(source, failed, notes):
    lines = [
        f"Pod lock {source}: {('reproduced' if not failed else 'NOT reproduced, {} problem{}'.format(len(failed), 's'[: len(failed) > 1]))}"
    ]
    if failed:
        lines.append("Could not be reproduced:")
        lines.extend(f"  - {item}" for item in failed)
    if notes:
        lines.append("Notes:")
        lines.extend(f"  - {item}" for item in notes)
    return "\n".join(lines) + "\n"


def write_report(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_file_atomic(path, text, mode=0o644, tmp_prefix=".lock-report.")
