"""workspace_link through real ansible: check mode, diff, idempotence, and refusals."""

import os
from pathlib import Path

from harness.ansible_run import run_module
from harness.git_repos import git, make_comfyui_repo

SPEC_LINKS = {
    "ComfyUI": "ComfyUI",
    "models": "models",
    "workflows": "workflows",
    "input": "ComfyUI/input",
    "output": "ComfyUI/output",
    "logs": "logs",
    "custom_nodes": "ComfyUI/custom_nodes",
}


def tree(top):
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            out[str(path)] = os.readlink(path) if path.is_symlink() else None if path.is_dir() else path.read_bytes()
    return out


def old_layout(tmp_path):
    """A volume from an older layout: real folders with data, a dangling link, a stray file."""
    root = tmp_path / "workspace"
    (root / "models" / "checkpoints").mkdir(parents=True)
    (root / "models" / "checkpoints" / "sdxl.safetensors").write_bytes(b"weights")
    (root / "output").mkdir()
    (root / "output" / "img.png").write_bytes(b"png")
    os.symlink("/old/place/input", root / "input")
    (root / "logs").write_text("old log\n")
    (root / "aiclipse" / "models" / "checkpoints").mkdir(parents=True)
    (root / "aiclipse" / "models" / "checkpoints" / "sdxl.safetensors").write_bytes(b"other weights")
    return root


def test_check_diff_apply_then_nothing_to_do(tmp_path):
    root = old_layout(tmp_path)
    args = {"root": str(root), "vault": str(root / "aiclipse"), "links": SPEC_LINKS}
    before = tree(root)

    checked, proc = run_module("workspace_link", args, check=True, diff=True)
    assert checked["changed"] is True and not checked.get("failed"), proc.stdout
    assert tree(root) == before, "check mode changed the disk"
    actions = {link["name"]: link["action"] for link in checked["links"]}
    assert actions == {
        "ComfyUI": "created",
        "models": "merged",
        "workflows": "created",
        "input": "relinked",
        "output": "merged",
        "logs": "backed_up",
        "custom_nodes": "created",
    }
    assert f"{root}/models: directory with 1 entries" in checked["diff"]["before"]
    assert f"{root}/input -> /old/place/input (dangling)" in checked["diff"]["before"]
    assert "kept both" in checked["diff"]["after"]

    applied, proc = run_module("workspace_link", args, diff=True)
    assert applied["changed"] is True, proc.stdout
    assert {link["name"]: link["action"] for link in applied["links"]} == actions
    vault = root / "aiclipse"
    assert (vault / "models/checkpoints/sdxl.safetensors").read_bytes() == b"other weights"
    renamed = applied["links"][1]["merged"]["renamed"][0]["to"]
    assert Path(renamed).read_bytes() == b"weights" and renamed.endswith(".safetensors")
    assert (vault / "ComfyUI/output/img.png").read_bytes() == b"png"
    assert Path(applied["links"][5]["backup"]).read_text() == "old log\n"
    for name, target in SPEC_LINKS.items():
        assert os.readlink(root / name) == str(vault / target)

    again, proc = run_module("workspace_link", args, check=True, diff=True)
    assert again["changed"] is False and {link["action"] for link in again["links"]} == {"ok"}, proc.stdout
    again, proc = run_module("workspace_link", args)
    assert again["changed"] is False, proc.stdout


def test_bad_input_fails_clearly_through_ansible_and_touches_nothing(tmp_path):
    root = old_layout(tmp_path)
    before = tree(root)
    result, proc = run_module(
        "workspace_link",
        {"root": str(root), "vault": str(root / "aiclipse"), "links": {"models": "models", "logs": "/etc"}},
    )
    assert result.get("failed") is True
    assert "nothing was changed" in result["msg"] and "outside the vault" in result["msg"], result["msg"]
    assert tree(root) == before

    result, proc = run_module(
        "workspace_link", {"root": "workspace", "vault": str(root / "aiclipse"), "links": {"models": "models"}}
    )
    assert result.get("failed") is True and "root must be an absolute path" in result["msg"]

    result, proc = run_module(
        "workspace_link",
        {"root": str(root), "vault": str(root / "aiclipse"), "links": SPEC_LINKS, "on_conflict": "fail"},
    )
    assert result.get("failed") is True and f"{root}/models is a real directory" in result["msg"]
    assert tree(root) == before


def test_an_old_clone_merged_into_the_vaults_clone_keeps_both_histories(tmp_path):
    """Older layout: /workspace/ComfyUI was a real clone, and the vault already has one."""
    upstream = make_comfyui_repo(tmp_path / "upstream")
    root = tmp_path / "workspace"
    vault = root / "aiclipse"
    vault.mkdir(parents=True)
    vault_clone = vault / "ComfyUI"
    git(tmp_path, "clone", "-q", upstream.url, str(vault_clone))
    git(tmp_path, "clone", "-q", upstream.url, str(root / "ComfyUI"))
    old = root / "ComfyUI"
    upstream_main = (vault_clone / "main.py").read_text()
    (old / "main.py").write_text("print('my local patch')\n")
    git(old, "commit", "-q", "-am", "my patch")
    old_head = git(old, "rev-parse", "HEAD")
    (old / "output" / "img.png").write_bytes(b"png")

    result, proc = run_module(
        "workspace_link", {"root": str(root), "vault": str(vault), "links": {"ComfyUI": "ComfyUI"}}
    )
    assert result["links"][0]["action"] == "merged", proc.stdout
    # The vault's clone is intact and clean apart from what the old one brought.
    assert git(vault_clone, "rev-parse", "HEAD")
    assert (vault_clone / "output" / "img.png").read_bytes() == b"png"
    # The old repository database is kept whole, history and local commit included.
    kept = [p for p in vault_clone.iterdir() if p.name.startswith(".git.merged-")]
    assert len(kept) == 1
    assert git(vault_clone, "--git-dir", str(kept[0]), "log", "-1", "--format=%H %s") == f"{old_head} my patch"
    patched = [p for p in vault_clone.iterdir() if p.name.startswith("main.merged-")]
    assert len(patched) == 1 and patched[0].read_text() == "print('my local patch')\n"
    assert (vault_clone / "main.py").read_text() == upstream_main
