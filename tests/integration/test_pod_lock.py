"""pod_lock through real ansible on real git checkouts, the real venv and a real model ledger:
the lock is complete, holds no credential, is byte-stable, and check/diff mode shows drift."""

import hashlib
import json
import os
import subprocess

import pytest

from harness.ansible_run import run_module
from harness.paths import VENV_BIN

TOKEN = "ghp_lockTestSecret0123456789"


def git(*args, cwd):
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
            "HOME": str(cwd),
            "PATH": "/usr/bin:/bin",
        },
    ).stdout.strip()


def checkout(path, remote):
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    (path / "a.py").write_text("x = 1\n")
    git("add", ".", cwd=path)
    git("commit", "-qm", "first", cwd=path)
    git("remote", "add", "origin", remote, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


@pytest.fixture
def pod(tmp_path):
    vault = tmp_path / "aiclipse"
    comfy = checkout(vault / "ComfyUI", f"https://user:{TOKEN}@github.com/comfyanonymous/ComfyUI.git")
    node = checkout(vault / "custom_nodes/ComfyUI-Foo", f"https://github.com/org/ComfyUI-Foo?access_token={TOKEN}")
    (vault / "custom_nodes/registry-node").mkdir()
    model = vault / "models/checkpoints/m.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"\x10" + bytes(100))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    state = vault / ".state/models"
    state.mkdir(parents=True)
    st = model.stat()
    (state / "ledger.json").write_text(
        json.dumps(
            {
                "version": 1,
                "entries": {
                    str(model): {
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                        "sha256": digest,
                        "sha256_from": "huggingface",
                    }
                },
            }
        )
    )
    args = {
        "path": str(vault / ".state/pod.lock.yml"),
        "comfyui_dir": str(vault / "ComfyUI"),
        "custom_nodes_dir": str(vault / "custom_nodes"),
        "python": str(VENV_BIN / "python"),
        "state_dir": str(state),
        "models": [
            {
                "name": "checkpoints/m.safetensors",
                "dest": str(model),
                "source": "huggingface",
                "url": f"https://huggingface.co/org/repo/resolve/main/m.safetensors?token={TOKEN}",
            },
            {
                "name": "loras/later.safetensors",
                "dest": str(vault / "models/loras/later.safetensors"),
                "source": "r2",
                "bucket": "models",
                "key": "loras/later.safetensors",
                "sha256": "ab" * 32,
            },
        ],
    }
    return vault, args, {"comfyui": comfy, "node": node, "model": digest}


def test_the_lock_records_commits_packages_and_models_without_secrets(pod):
    vault, args, facts = pod
    result, _proc = run_module("pod_lock", args)
    assert result["changed"] and not result.get("failed"), result
    text = (vault / ".state/pod.lock.yml").read_text()
    assert TOKEN not in text and "user:" not in text
    lock = result["lock"]
    assert lock["comfyui"]["commit"] == facts["comfyui"]
    assert lock["comfyui"]["repo"] == "https://github.com/comfyanonymous/ComfyUI.git"
    nodes = {n["name"]: n for n in lock["custom_nodes"]}
    assert nodes["ComfyUI-Foo"] == {
        "name": "ComfyUI-Foo",
        "repo": "https://github.com/org/ComfyUI-Foo",
        "commit": facts["node"],
    }
    assert nodes["registry-node"]["commit"] is None
    assert any(p.lower().startswith("ansible-core==") for p in lock["python"]["packages"])
    assert lock["python"]["packages_digest"].startswith("sha256:")
    present, later = lock["models"]
    assert present["sha256"] == facts["model"] and present["sha256_from"] == "huggingface" and present["size"] == 101
    assert present["source"] == "https://huggingface.co/org/repo/resolve/main/m.safetensors"
    assert later["missing"] is True and later["source"] == "s3://models/loras/later.safetensors"
    assert later["sha256_from"] == "manifest"
    import yaml

    assert yaml.safe_load(text) == json.loads(json.dumps(lock))  # the text is the same lock, as YAML
    again, _proc = run_module("pod_lock", args)
    assert not again["changed"] and not again["drift"]
    assert (vault / ".state/pod.lock.yml").read_text() == text


def test_check_diff_shows_a_node_drifting_from_its_locked_commit(pod):
    vault, args, facts = pod
    run_module("pod_lock", args)
    lock_text = (vault / ".state/pod.lock.yml").read_text()
    node_dir = vault / "custom_nodes/ComfyUI-Foo"
    (node_dir / "a.py").write_text("x = 2\n")
    git("commit", "-qam", "moved on", cwd=node_dir)
    moved = git("rev-parse", "HEAD", cwd=node_dir)
    result, proc = run_module("pod_lock", args, check=True, diff=True)
    assert result["changed"] and result["drift"]
    assert facts["node"] in result["diff"]["before"] and moved in result["diff"]["after"]
    assert (vault / ".state/pod.lock.yml").read_text() == lock_text  # check mode wrote nothing


def test_checkouts_owned_by_another_uid_are_locked(pod):
    """A volume made elsewhere: git refuses such a work tree ("dubious ownership") unless it is
    trusted the way every module of the collection trusts its checkouts."""
    vault, args, facts = pod
    for checkout in (vault / "ComfyUI", vault / "custom_nodes/ComfyUI-Foo"):
        for path in [checkout, *checkout.rglob("*")]:
            os.lchown(path, 4242, 4242)
    refused = subprocess.run(
        ["git", "-C", str(vault / "ComfyUI"), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "dubious ownership" in refused.stderr  # the trap is real here
    result, proc = run_module("pod_lock", args)
    assert not result.get("failed") and result["changed"], proc.stdout
    assert result["lock"]["comfyui"]["commit"] == facts["comfyui"]
    nodes = {n["name"]: n for n in result["lock"]["custom_nodes"]}
    assert nodes["ComfyUI-Foo"]["commit"] == facts["node"]
    assert facts["node"] in (vault / ".state/pod.lock.yml").read_text()
