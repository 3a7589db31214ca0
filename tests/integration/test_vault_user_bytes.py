"""No user byte is lost, whatever a pod brings: names like the collection's scratch names, mounts
and links at odd places, non-UTF-8 names, on_conflict=fail (the workspace role through
ansible-playbook, and the custom_nodes module)."""

import collections
import hashlib
import os
import sys
from pathlib import Path

import pytest

from harness.ansible_run import run_module, run_playbook
from harness.git_repos import git, make_comfyui_repo, make_node_repo
from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import make_staging  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import Scratch  # noqa: E402

PLAY = """\
- name: Pod start, workspace only
  hosts: localhost
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.workspace
"""


def contents(*tops):
    """The multiset of every regular file's bytes under `tops` (hard links counted once)."""
    found, seen = collections.Counter(), set()
    for top in tops:
        for current, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in names:
                path = os.path.join(current, name)
                st = os.lstat(path)
                if not os.path.isfile(path) or os.path.islink(path) or (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                with open(path, "rb") as handle:
                    found[hashlib.sha256(handle.read()).hexdigest()] += 1
    return found


def lost(before, after):
    return {digest: count - after[digest] for digest, count in before.items() if after[digest] < count}


@pytest.fixture
def workspace(tmp_path):
    """(start, root, vault, upstream): `start(**vars)` runs the workspace role, returns the run."""
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    root = tmp_path / "workspace"
    vault = root / "aiclipse"
    vault.mkdir(parents=True)
    templates = tmp_path / "opt-workflows"
    templates.mkdir()
    (templates / "template.json").write_text('{"template": 1}')
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)

    def start(check=False, **extra):
        return run_playbook(
            playbook,
            {
                "aiclipse_root": str(root),
                "workspace_workflow_templates_dir": str(templates),
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                **extra,
            },
            inventory="localhost,",
            check=check,
            args=["-c", "local"],
        )

    return start, root, vault, upstream


def test_user_files_named_like_scratch_files_survive_every_start(workspace):
    start, root, vault, upstream = workspace
    git(root, "clone", "-q", upstream.url, str(root / "ComfyUI"))
    mine = {
        root / "models" / "checkpoints" / ".aiclipse-seed-mine": b"user file named like a seed",
        root / "models" / "vae" / ".aiclipse-seed-2": b"another",
        root / "models" / "checkpoints" / ".aiclipse-partial-mine": b"named like a partial copy",
        root / "ComfyUI" / "models" / "checkpoints" / ".aiclipse-restore-mine": b"named like a restore",
        root / "ComfyUI" / ".aiclipse-tmp-notes": b"named like a temporary file",
    }
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink(root / "models", vault / "models")
    os.symlink(root / "ComfyUI", vault / "ComfyUI")
    before = contents(root)
    for attempt in range(2):
        run = start()
        assert run.rc == 0 and run.failed == 0, run.stdout[-3000:]
        assert not lost(before, contents(root)), attempt
    # Where each one is now: the vault's models, and the checkout's root.
    assert (vault / "models" / "checkpoints" / ".aiclipse-seed-mine").read_bytes() == b"user file named like a seed"
    assert (vault / "models" / "vae" / ".aiclipse-seed-2").read_bytes() == b"another"
    assert (vault / "models" / "checkpoints" / ".aiclipse-restore-mine").read_bytes() == b"named like a restore"
    assert (vault / "ComfyUI" / ".aiclipse-tmp-notes").read_bytes() == b"named like a temporary file"


def test_a_recorded_scratch_file_of_a_killed_write_is_removed(workspace):
    """What the journal names goes (the other side of keeping what it does not name)."""
    start, root, vault, upstream = workspace
    git(vault, "clone", "-q", upstream.url, str(vault / "ComfyUI"))
    first = start()
    assert first.rc == 0, first.stdout[-3000:]
    fd, leftover, dummy = Scratch(str(vault / ".state" / "layout")).new_file(str(vault / "ComfyUI"))
    os.write(fd, b"half a file")
    os.close(fd)
    run = start()
    assert run.rc == 0, run.stdout[-3000:]
    assert not os.path.lexists(leftover)
    assert not list((vault / ".state" / "layout" / "scratch").iterdir())


def test_folders_named_like_staging_directories_survive_the_custom_nodes_module(tmp_path):
    vault = tmp_path / "vault"
    (vault / ".state").mkdir(parents=True)
    dest = vault / "custom_nodes"
    node = make_node_repo(tmp_path / "src" / "NodeA")
    mine = {
        dest / ".aiclipse+staging-mine" / "sub" / "f": b"a folder of the user's",
        dest / ".aiclipse-staging-old" / "checkout" / "notes.txt": b"shaped like an old staging folder",
    }
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # A staging directory a killed run left: recorded, so it goes.
    killed = Path(make_staging(str(dest)))
    (killed / "checkout").mkdir()
    (killed / "checkout" / "half").write_bytes(b"half a clone")
    for attempt in range(2):
        result, dummy = run_module("custom_nodes", {"dest": str(dest), "nodes": [node.url]})
        assert not result.get("failed"), result
        for path, data in mine.items():
            assert path.read_bytes() == data, (attempt, path)
    assert not killed.exists()
    assert (dest / "NodeA" / ".git").is_dir()
