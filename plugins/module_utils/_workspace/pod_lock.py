# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod lock: what a clean start put on this pod, as stable, diffable YAML.

ComfyUI's commit, each custom node's repository (no credentials) and commit, the venv's
installed packages and their digest, and each planned model's source (no userinfo, no secret
query parameter), destination, size and sha256 with where that sha256 came from (the model
ledger). Two pods provisioned alike give byte-identical locks: everything is sorted and the
file holds no timestamp, so ``--check --diff`` shows exactly what drifted.

The YAML is written here (double-quoted JSON strings are YAML scalars), so the module needs no
YAML library on the target. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible.module_utils.common.yaml import HAS_YAML, yaml_load

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import git_argv
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import public_url

LOCK_VERSION = 1
HEADER = (
    "# Written by aiclipse.comfyui.pod_lock at the end of a clean start; edits are overwritten.\n"
    "# ansible-playbook site.yml --check --diff shows how the pod drifted from it.\n"
)
PACKAGES_SCRIPT = (
    "import importlib.metadata as m, json\n"
    "seen = {}\n"
    "for d in m.distributions():\n"
    "    name = d.metadata['Name']\n"
    "    if name: seen[name.lower()] = '%s==%s' % (name, d.version)\n"
    "print(json.dumps(sorted(seen.values(), key=str.lower)))\n"
)


class LockError(Exception):
    """The lock cannot be built or written; the message says what to do."""


def git_facts(run, path):
    """{"repo", "commit"} of a checkout; `run(argv)` -> (rc, stdout, stderr).

    git runs as every module of the collection runs it (``git_argv``): a checkout on a volume
    owned by another uid is read, not refused as "dubious ownership"."""
    rc, commit, err = run(git_argv("git", path) + ["rev-parse", "HEAD"])
    if rc != 0:
        raise LockError(f"cannot read the commit of {path}: {(err or commit).strip()}")
    rc, remote, _err = run(git_argv("git", path) + ["config", "--get", "remote.origin.url"])
    return {"repo": public_url(remote.strip()) if rc == 0 and remote.strip() else None, "commit": commit.strip()}


def is_checkout(path):
    return os.path.exists(os.path.join(path, ".git"))


def custom_nodes(run, nodes_dir):
    """One item per custom node folder (sorted by name); a folder that is no git checkout (a
    registry install) is listed with commit null."""
    items = []
    if not nodes_dir or not os.path.isdir(nodes_dir):
        return items
    for name in sorted(os.listdir(nodes_dir)):
        path = os.path.join(nodes_dir, name)
        if name.startswith(".") or name == "__pycache__" or not os.path.isdir(path):
            continue
        item = {"name": name}
        if is_checkout(path):
            item.update(git_facts(run, path))
        else:
            item.update({"repo": None, "commit": None})
        items.append(item)
    return items


def packages(run, python):
    """(list of ``name==version`` sorted, digest) of the venv whose interpreter is `python`."""
    if not python or not os.path.exists(python):
        return [], None
    rc, out, err = run([python, "-c", PACKAGES_SCRIPT])
    if rc != 0:
        raise LockError(f"cannot list the packages of {python}: {err.strip()}")
    try:
        listed = [str(item) for item in json.loads(out)]
    except ValueError:
        raise LockError(f"cannot list the packages of {python}: unexpected output") from None
    digest = "sha256:" + hashlib.sha256("".join(p + "\n" for p in listed).encode("utf-8")).hexdigest()
    return listed, digest


def model_source(entry):
    if entry.get("source") == "r2" or entry.get("bucket"):
        return f"s3://{entry.get('bucket') or '?'}/{entry.get('key') or entry.get('identifier') or ''}"
    return public_url(entry.get("url") or entry.get("identifier") or "")


def models(entries, ledger):
    """One item per planned model (sorted by destination), with what the ledger verified."""
    items = []
    for entry in sorted(entries or [], key=lambda e: str(e.get("dest"))):
        dest = str(entry.get("dest"))
        recorded = ledger.get(os.path.abspath(dest)) or {}
        on_disk = os.path.isfile(dest)
        sha256 = recorded.get("sha256") if on_disk else None
        item = {
            "dest": dest,
            "source": model_source(entry),
            "size": recorded.get("size") if on_disk and recorded else (os.path.getsize(dest) if on_disk else None),
            "sha256": sha256 or entry.get("sha256") or None,
            "sha256_from": (recorded.get("sha256_from") or "download")
            if sha256
            else ("manifest" if entry.get("sha256") else None),
        }
        if not on_disk:
            item["missing"] = True
        items.append(item)
    return items


def planned_from_lock(path):
    """The models of the lock file at `path` as planned entries, for a drift check that has no
    plan (check mode when the start stamp skips the roles). [] when there is none to read."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return []
    if not HAS_YAML:
        return []
    try:
        lock = yaml_load(text)
    # A lock that does not parse shows as drift: its models are then none.
    except Exception:  # pylint: disable=broad-except
        return []
    entries = []
    for item in (lock or {}).get("models") or [] if isinstance(lock, dict) else []:
        if not isinstance(item, dict) or not isinstance(item.get("dest"), str):
            continue
        source = str(item.get("source") or "")
        entry = {"dest": item["dest"]}
        if source.startswith("s3://"):
            bucket, _sep, key = source[len("s3://") :].partition("/")
            entry.update(source="r2", bucket=bucket, key=key)
        else:
            entry["url"] = source
        if item.get("sha256_from") == "manifest":
            entry["sha256"] = item.get("sha256")
        entries.append(entry)
    return entries


def read_ledger(state_dir):
    path = os.path.join(state_dir, "ledger.json") if state_dir else None
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def build(run, comfyui_dir, nodes_dir, python, model_entries, state_dir):
    """The lock as a dict in its written order."""
    comfyui = {"path": comfyui_dir, "repo": None, "commit": None}
    if comfyui_dir and is_checkout(comfyui_dir):
        comfyui.update(git_facts(run, comfyui_dir))
    listed, digest = packages(run, python)
    return {
        "version": LOCK_VERSION,
        "comfyui": comfyui,
        "custom_nodes": custom_nodes(run, nodes_dir),
        "python": {"interpreter": python, "packages_digest": digest, "packages": listed},
        "models": models(model_entries, read_ledger(state_dir)),
    }


def _scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _emit(value, indent, lines):
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                _emit(item, indent + 1, lines)
            else:
                lines.append(f"{pad}{key}: {('[]' if item == [] else '{}' if item == {} else _scalar(item))}")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first = True
                for key, sub in item.items():
                    lead = f"{pad}- " if first else f"{pad}  "
                    first = False
                    if isinstance(sub, (dict, list)) and sub:
                        lines.append(f"{lead}{key}:")
                        _emit(sub, indent + 2, lines)
                    else:
                        lines.append(f"{lead}{key}: {('[]' if sub == [] else _scalar(sub))}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")


def render(lock):
    """The lock as YAML text (stable: same lock, same bytes)."""
    lines = []
    _emit(lock, 0, lines)
    return HEADER + "\n".join(lines) + "\n"


def write_atomic(path, text):
    """Write the lock all or nothing (0644: it holds no secret, and a person diffs it)."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write_file_atomic(path, text, mode=0o644, tmp_prefix=".pod.lock.")
    except OSError as exc:
        raise LockError(f"cannot write {path}: {exc.strerror or exc}") from exc
