"""ComfyUI's `git pull` keeps working after workspace_link makes ComfyUI/models a link.

A local git repository stands in for ComfyUI upstream: it tracks placeholder files under
models/ the way ComfyUI does. The pod's clone gets its models folder migrated into the vault by
the module (through real ansible), then upstream commits a change to a tracked placeholder, a
new model folder and a code change, and the clone pulls.
"""
import os
import subprocess

import pytest

from harness.ansible_run import run_module

PLACEHOLDERS = {
    "models/checkpoints/put_checkpoints_here": "",
    "models/loras/put_loras_here": "",
    "models/vae/put_vae_here": "",
    "models/diffusion_models/put_diffusion_model_files_here": "",
    "models/text_encoders/put_text_encoder_files_here": "",
}


def git(cwd, *args, check=True):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C"}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def comfy(tmp_path):
    """(upstream repo, pod clone inside the vault, vault) with ComfyUI's models/ layout."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "master")
    for rel, content in PLACEHOLDERS.items():
        (upstream / rel).parent.mkdir(parents=True, exist_ok=True)
        (upstream / rel).write_text(content)
    (upstream / "main.py").write_text("print('v1')\n")
    # As in ComfyUI: models/ is ignored, its placeholders were force-added.
    (upstream / ".gitignore").write_text("/models/\n/input/\n/output/\n")
    git(upstream, "add", "-f", ".")
    git(upstream, "commit", "-q", "-m", "v1")
    vault = tmp_path / "workspace" / "aiclipse"
    vault.mkdir(parents=True)
    git(tmp_path, "clone", "-q", str(upstream), str(vault / "ComfyUI"))
    # A user's model already in ComfyUI's own folder, and one already in the vault.
    (vault / "ComfyUI" / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"user model")
    (vault / "models" / "loras").mkdir(parents=True)
    (vault / "models" / "loras" / "vault.safetensors").write_bytes(b"vault model")
    return upstream, vault / "ComfyUI", vault


def upstream_commit(upstream):
    (upstream / "models/checkpoints/put_checkpoints_here").write_text("now with instructions\n")
    (upstream / "models/audio_encoders").mkdir()
    (upstream / "models/audio_encoders/put_audio_encoder_files_here").write_text("")
    (upstream / "main.py").write_text("print('v2')\n")
    git(upstream, "add", "-f", ".")
    git(upstream, "commit", "-q", "-m", "v2")


def migrate(clone, vault, **extra):
    return run_module("workspace_link", {"root": str(clone), "vault": str(vault),
                                         "links": {"models": "models"}, **extra})


def test_git_pull_works_with_models_as_a_link(comfy):
    upstream, clone, vault = comfy
    result, proc = migrate(clone, vault)
    assert not result.get("failed"), proc.stdout
    record = result["links"][0]
    assert record["action"] == "merged" and record["git"], record
    models = clone / "models"
    assert models.is_symlink() and os.readlink(models) == str(vault / "models")
    # The default folders and placeholders are in the vault; no user file was lost.
    for rel in PLACEHOLDERS:
        assert (vault / rel).is_file(), rel
    assert (vault / "models/checkpoints/mine.safetensors").read_bytes() == b"user model"
    assert (vault / "models/loras/vault.safetensors").read_bytes() == b"vault model"
    assert git(clone, "status", "--porcelain").stdout == ""

    upstream_commit(upstream)
    pull = git(clone, "pull", "--ff-only", check=False)
    assert pull.returncode == 0, pull.stderr
    assert (clone / "main.py").read_text() == "print('v2')\n"
    assert models.is_symlink(), "git replaced the models link by a directory"
    assert git(clone, "status", "--porcelain").stdout == ""

    # The next pod start seeds the folder upstream added; the one after changes nothing.
    result, proc = migrate(clone, vault)
    assert result["changed"] and result["links"][0]["seeded"] == [
        str(vault / "models/audio_encoders/put_audio_encoder_files_here")], proc.stdout
    assert (vault / "models/audio_encoders/put_audio_encoder_files_here").is_file()
    result, proc = migrate(clone, vault)
    assert result["changed"] is False, proc.stdout


def test_without_protection_the_trap_is_real(comfy):
    """The control: the same steps with protect_git=false make git pull fail (so the test above can)."""
    upstream, clone, vault = comfy
    result, proc = migrate(clone, vault, protect_git=False)
    assert not result.get("failed"), proc.stdout
    upstream_commit(upstream)
    pull = git(clone, "pull", "--ff-only", check=False)
    assert pull.returncode != 0
    assert "would be overwritten" in pull.stderr


def test_check_mode_reports_the_git_changes_and_makes_none(comfy):
    dummy, clone, vault = comfy
    config_before = (clone / ".git" / "config").read_text()
    result, proc = run_module("workspace_link", {"root": str(clone), "vault": str(vault),
                                                 "links": {"models": "models"}}, check=True, diff=True)
    assert result["changed"] is True, proc.stdout
    assert any("skip-worktree" in note for note in result["links"][0]["git"])
    # The placeholders arrive by the merge, so none is predicted as seeded.
    assert result["links"][0]["action"] == "merged" and result["links"][0]["seeded"] == []
    assert "skip-worktree" in result["diff"]["after"]
    assert (clone / ".git" / "config").read_text() == config_before
    assert not (clone / "models").is_symlink()
    assert git(clone, "ls-files", "-v").stdout.count("S ") == 0


def test_an_old_clone_merged_into_the_vaults_clone_keeps_both_histories(comfy, tmp_path):
    """Older layout: /workspace/ComfyUI was a real clone, and the vault already has one."""
    upstream, vault_clone, vault = comfy
    root = vault.parent
    git(tmp_path, "clone", "-q", str(upstream), str(root / "ComfyUI"))
    old = root / "ComfyUI"
    (old / "main.py").write_text("print('my local patch')\n")
    git(old, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "my patch")
    old_head = git(old, "rev-parse", "HEAD").stdout.strip()
    (old / "output").mkdir()
    (old / "output" / "img.png").write_bytes(b"png")

    result, proc = run_module("workspace_link", {"root": str(root), "vault": str(vault),
                                                 "links": {"ComfyUI": "ComfyUI"}})
    assert result["links"][0]["action"] == "merged", proc.stdout
    # The vault's clone is intact and clean apart from what the old one brought.
    assert git(vault_clone, "rev-parse", "HEAD").returncode == 0
    assert (vault_clone / "output" / "img.png").read_bytes() == b"png"
    # The old repository database is kept whole, history and local commit included.
    kept = [p for p in vault_clone.iterdir() if p.name.startswith(".git.merged-")]
    assert len(kept) == 1
    log = git(vault_clone, "--git-dir", str(kept[0]), "log", "-1", "--format=%H %s")
    assert log.stdout.strip() == f"{old_head} my patch"
    patched = [p for p in vault_clone.iterdir() if p.name.startswith("main.merged-")]
    assert len(patched) == 1 and patched[0].read_text() == "print('my local patch')\n"
    assert (vault_clone / "main.py").read_text() == "print('v1')\n"


def test_a_checkout_owned_by_another_uid_is_handled(comfy):
    """A volume made elsewhere: git calls such a work tree "dubious ownership" and refuses it."""
    dummy, clone, vault = comfy
    for path in [clone, *clone.rglob("*")]:
        os.lchown(path, 4242, 4242)
    assert git(clone, "status", check=False).returncode != 0  # the trap is real here
    result, proc = migrate(clone, vault)
    assert not result.get("failed") and result["links"][0]["git"], proc.stdout
    ls = git(clone, "-c", f"safe.directory={clone}", "ls-files", "-v", "models").stdout.split("\n")
    assert ls[0].startswith("S ")
