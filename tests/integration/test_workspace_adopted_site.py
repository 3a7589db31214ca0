"""The critical case through site.yml: a pod that brings an install adopted into the vault.

The user's models are a real folder /workspace/models and the vault's models a link to it;
the vault's ComfyUI is a link to an existing clone at /workspace/ComfyUI, with the user's
inputs in it; the pod's name is not UTF-8. The old module planned every model as "identical"
to itself and deleted the only copy (rc 0, "N identical dropped"). Real ansible-playbook on
site.yml, real git, a real venv; every role of a pod start runs.
"""

import hashlib
import os
import subprocess
from collections import Counter

from harness.ansible_run import run_playbook
from harness.git_repos import make_comfyui_repo
from harness.paths import REPO
from harness.python_env import make_venv
from harness.site_pod import site_vars

SITE = REPO / "site.yml"
POD_NAME = os.fsdecode(b"caf\xe9-pod")  # Latin-1 bytes, not UTF-8


def contents(top):
    """Counter of the bytes of every regular file under top, outside .git (git rewrites its index)."""
    found = Counter()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[handle.read()] += 1
    return found


def build_adopted_pod(root):
    upstream = make_comfyui_repo(root / "upstream/ComfyUI")
    make_venv(root / "venv")
    (root / "workflows").mkdir()
    (root / "workflows/txt2img.json").write_text('{"nodes": []}\n')
    (root / "manifests").mkdir()
    (root / "manifests/t_models.txt").write_text("# no models: this pod is about the layout\n")
    (root / "manifests/t_nodes.txt").write_text("# no nodes\n")
    workspace = root / "workspace"
    workspace.mkdir()
    subprocess.run(["git", "clone", "-q", upstream.url, str(workspace / "ComfyUI")], check=True, capture_output=True)
    (workspace / "ComfyUI/input").mkdir(exist_ok=True)
    (workspace / "ComfyUI/input/photo.png").write_bytes(b"the user's input photo")
    (workspace / "models/loras").mkdir(parents=True)
    (workspace / "models/checkpoints").mkdir()
    (workspace / "models/loras/mine.safetensors").write_bytes(os.urandom(300_000))
    (workspace / "models/checkpoints/big.safetensors").write_bytes(os.urandom(1_000_000))
    (workspace / "models/.aiclipse-partial-notes").write_bytes(b"a user's file with an internal-looking name")
    vault = workspace / "aiclipse"
    vault.mkdir()
    os.symlink(workspace / "models", vault / "models")
    os.symlink(workspace / "ComfyUI", vault / "ComfyUI")
    return workspace, vault


def test_an_adopted_install_keeps_every_byte_through_site_yml(tmp_path):
    workspace, vault = build_adopted_pod(tmp_path)
    models_before = contents(workspace / "models")
    user_models = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (workspace / "models").rglob("*.safetensors")
    }
    extra_vars = site_vars(tmp_path, "t")
    env = {"RUNPOD_POD_NAME": POD_NAME, "COMFY_ARGS": "--preview-method auto"}

    run = run_playbook(SITE, extra_vars, env=env)
    assert run.rc == 0 and run.failed == 0, run.stdout[-4000:] + run.stderr[-3000:]

    # The folders moved into the vault; the shortcuts link to them.
    for name in ("models", "ComfyUI"):
        assert not (vault / name).is_symlink() and (vault / name).is_dir(), name
        assert os.readlink(workspace / name) == str(vault / name), name
    # Every byte of the user's models is there (ComfyUI's placeholders were added beside them).
    after = contents(vault / "models")
    assert all(after[content] >= count for content, count in models_before.items()), "a model was lost"
    for path in (vault / "models").rglob("*.safetensors"):
        if path.name in user_models:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == user_models.pop(path.name)
    assert not user_models, f"models missing from the vault: {user_models}"
    assert (workspace / "models/.aiclipse-partial-notes").read_bytes() == b"a user's file with an internal-looking name"
    # The checkout stays code only: the user's input moved to the vault, where ComfyUI reads it.
    assert (workspace / "input/photo.png").read_bytes() == b"the user's input photo"
    assert not (vault / "ComfyUI/input/photo.png").exists()
    assert (vault / "ComfyUI/main.py").is_file()
    git = subprocess.run(
        ["git", "-C", str(vault / "ComfyUI"), "status", "--porcelain"], capture_output=True, text=True, check=False
    )
    assert git.returncode == 0 and "beyond a symbolic link" not in git.stderr, git.stderr
    scratch = vault / ".state/workspace/scratch"
    assert not scratch.exists() or not os.listdir(scratch)

    # The pod's name went to the env file byte for byte, and the start went on.
    assert b"export RUNPOD_POD_NAME='caf\xe9-pod'\n" in (tmp_path / "etc/rp_environment").read_bytes()

    again = run_playbook(SITE, {**extra_vars, "aiclipse_skip_unchanged_start": False}, env=env)
    assert again.rc == 0 and again.changed == 0, again.stdout[-4000:]
