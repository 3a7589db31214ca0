"""SIGKILL at every step: a run of workspace_link killed after any filesystem change loses nothing,
and the next run finishes the job.

A child process runs the module's logic with the os functions that change the disk (rename,
link, unlink, symlink, mkdir, rmdir, open, chmod, utime, fsync) wrapped: at the Nth call the
child sends itself SIGKILL, before that call happens. N goes 1, 2, 3, ... until a run completes.
After each kill a fresh run must succeed, every file's bytes must still be there (no byte
changed or invented), the layout must be right, no scratch entry may be left, and one more run
must change nothing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import (  # noqa: E402
    WorkspaceLinks,
)

SHM = Path("/dev/shm")

CHILD = r"""
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import WorkspaceLinks
kill_at, args = int(sys.argv[2]), json.loads(sys.argv[3])
calls = [0]

def wrap(name):
    real = getattr(os, name)

    def hooked(*a, **k):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    setattr(os, name, hooked)

for name in ("rename", "replace", "link", "unlink", "symlink", "mkdir", "rmdir", "open", "chmod",
             "utime", "fsync"):
    wrap(name)
WorkspaceLinks(**args).run()
print(calls[0])
"""


def contents(*tops):
    found = Counter()
    for top in tops:
        for dirpath, _dirnames, filenames in os.walk(top):
            if "/.state/" in dirpath + "/":
                continue
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    found[Path(path).read_bytes()] += 1
    return found


def kill_run(args, kill_at):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO / "collections"), str(kill_at), json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode == -signal.SIGKILL:
        return None
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


def every_kill_point(build, args, check):
    """Build the shape afresh for each kill point; kill there; finish with a clean run; check."""
    kill_at = 1
    while True:
        tops = build()
        before = contents(*tops)
        completed = kill_run(args, kill_at)
        try:
            result = WorkspaceLinks(**args).run()
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"the run after a kill at step {kill_at} failed: {exc}") from None
        after = contents(*tops)
        assert set(after) == set(before), f"kill at step {kill_at}: bytes lost or invented"
        check(result, kill_at)
        scratch = Path(args["vault"]) / ".state" / "workspace" / "scratch"
        assert not scratch.exists() or not os.listdir(scratch), f"kill at step {kill_at}: scratch left"
        for top in tops:
            leftovers = [p for p in Path(top).rglob(".*aiclipse-*") if "mine" not in p.name]
            assert not leftovers, f"kill at step {kill_at}: {leftovers}"
        again = WorkspaceLinks(**args).run()
        assert again["changed"] is False, f"kill at step {kill_at}: a third run still changed something"
        if completed is not None:
            assert kill_at > 3, "the child never got far enough to be killed: the hooks do not work"
            return kill_at
        kill_at += 1


def fill_models(models):
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "a.safetensors").write_bytes(b"lora a")
    (models / "loras" / "b.safetensors").write_bytes(b"lora b")
    (models / "vae.bin").write_bytes(b"vae")
    (models / ".aiclipse-partial-mine").write_bytes(b"a user's file with an internal-looking name")
    os.chmod(models / "vae.bin", 0o444)


def test_adoption_on_one_filesystem_survives_a_kill_at_every_step(tmp_path):
    root = tmp_path / "workspace"
    vault = root / "aiclipse"
    args = {
        "root": str(root),
        "vault": str(vault),
        "links": {"models": "models"},
        "directories": ["models/checkpoints"],
        "stamp": "S",
    }

    def build():
        shutil.rmtree(root, ignore_errors=True)
        vault.mkdir(parents=True)
        fill_models(root / "models")
        os.symlink(str(root / "models"), vault / "models")
        return [root]

    def check(result, kill_at):
        assert os.readlink(root / "models") == str(vault / "models"), kill_at
        assert not (vault / "models").is_symlink() and (vault / "models" / "checkpoints").is_dir()
        assert (vault / "models" / "loras" / "a.safetensors").read_bytes() == b"lora a"

    steps = every_kill_point(build, args, check)
    assert steps >= 6


@pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm as a second filesystem")
def test_adoption_across_filesystems_survives_a_kill_at_every_step(tmp_path):
    shm = Path(tempfile.mkdtemp(dir=SHM))
    root = shm / "workspace"
    vault = tmp_path / "aiclipse"
    args = {"root": str(root), "vault": str(vault), "links": {"models": "models"}, "stamp": "S"}

    def build():
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(vault, ignore_errors=True)
        vault.mkdir()
        fill_models(root / "models")
        os.symlink(str(root / "models"), vault / "models")
        return [root, vault]

    def check(result, kill_at):
        assert os.readlink(root / "models") == str(vault / "models"), kill_at
        assert not (vault / "models").is_symlink()
        assert (vault / "models" / "vae.bin").stat().st_mode & 0o777 == 0o444
        assert (vault / "models" / ".aiclipse-partial-mine").exists()

    try:
        steps = every_kill_point(build, args, check)
        assert steps >= 20
    finally:
        shutil.rmtree(shm)


@pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm as a second filesystem")
def test_merge_with_clashes_across_filesystems_survives_a_kill_at_every_step(tmp_path):
    shm = Path(tempfile.mkdtemp(dir=SHM))
    root = tmp_path / "workspace"
    vault = shm / "aiclipse"
    args = {
        "root": str(root),
        "vault": str(vault),
        "links": {"models": "models", "input": "ComfyUI/input"},
        "stamp": "S",
    }

    def build():
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(vault, ignore_errors=True)
        fill_models(root / "models")
        (root / "models" / "vae.merged-S.bin").write_bytes(b"incoming named like a clash")
        (root / "input").mkdir()
        (root / "input" / "photo.png").write_bytes(b"photo")
        os.symlink("loras/a.safetensors", root / "models" / "alias")
        (vault / "models").mkdir(parents=True)
        (vault / "models" / "vae.bin").write_bytes(b"the vault's vae")
        (vault / "models" / "loras").mkdir()
        (vault / "models" / "loras" / "a.safetensors").write_bytes(b"lora a")
        return [root, vault]

    def check(result, kill_at):
        assert (vault / "models" / "vae.bin").read_bytes() == b"the vault's vae", kill_at
        assert os.readlink(vault / "models" / "alias") == "loras/a.safetensors"
        for name, target in args["links"].items():
            assert os.readlink(root / name) == str(vault / target)

    try:
        every_kill_point(build, args, check)
    finally:
        shutil.rmtree(shm)
