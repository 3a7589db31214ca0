"""Vaults of the older layout migrate at the next start: pristine checkout, one workflows folder,
no byte lost (the workspace role through ansible-playbook, the stand-in ComfyUI asked afterwards).

The older layout (tests/harness/old_layout.py): ComfyUI/models a link into the vault, hidden from
git by a sparse checkout, skip-worktree bits and info/exclude; custom nodes, input, output and
user data inside the checkout; template workflows in two folders; shortcuts into the checkout.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ansible_run import run_module, run_playbook
from harness.comfyui_fixtures import running_standin
from harness.git_repos import COMFYUI_MODEL_FOLDERS, git, make_comfyui_repo
from harness.layout import SHORTCUTS
from harness.old_layout import USER_FILES, apply_old_git_tricks, file_contents, git_is_pristine, make_old_vault

PLAY = """\
- name: Pod start, workspace only
  hosts: localhost
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.workspace
"""


@pytest.fixture
def old_pod(tmp_path, pod_venv):
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    root = tmp_path / "workspace"
    vault = make_old_vault(root, upstream)
    templates = tmp_path / "opt-workflows"
    templates.mkdir()
    (templates / "template.json").write_text('{"template": 1}')
    (templates / "new-template.json").write_text('{"template": "new"}')
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)

    def start(check=False, diff=False):
        run = run_playbook(
            playbook,
            {
                "aiclipse_root": str(root),
                "workspace_workflow_templates_dir": str(templates),
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            },
            inventory="localhost,",
            check=check,
            diff=diff,
            args=["-c", "local"],
        )
        assert run.rc == 0 and run.failed == 0, run.stdout[-4000:] + run.stderr[-2000:]
        return run

    return start, root, vault, upstream, pod_venv


def test_an_older_vault_migrates_at_the_next_start_and_loses_nothing(old_pod):
    start, root, vault, upstream, venv = old_pod
    checkout = vault / "ComfyUI"
    before = file_contents(root)
    assert not git_is_pristine(checkout)[0]

    # Check mode predicts and touches nothing.
    preview = start(check=True, diff=True)
    assert preview.changed > 0
    assert file_contents(root) == before and (checkout / "models").is_symlink()

    assert start().changed > 0
    pristine, details = git_is_pristine(checkout)
    assert pristine, details
    # Every byte is still somewhere (placeholders restored into the checkout are extra bytes).
    missing = before - file_contents(root)
    assert not missing, f"lost: {sorted(missing)[:5]}"
    # The checkout holds code and tracked files only: models/ is a real folder with its placeholders.
    assert (checkout / "models").is_dir() and not (checkout / "models").is_symlink()
    for folder in COMFYUI_MODEL_FOLDERS:
        assert (checkout / "models" / folder / f"put_{folder}_here").is_file()
    assert not (checkout / "custom_nodes" / "MyNode").exists()
    assert not (checkout / "output" / "ComfyUI_00001_.png").exists()
    assert sorted(p.name for p in (checkout / "user").iterdir()) == ["comfyui.db"]  # ComfyUI's own
    assert not (checkout / ".git" / "info" / "sparse-checkout").exists()
    # What the checkout held is in the vault, where ComfyUI reads it now.
    assert (vault / "custom_nodes" / "MyNode" / "__init__.py").read_bytes() == USER_FILES[
        "ComfyUI/custom_nodes/MyNode/__init__.py"
    ]
    assert git(vault / "custom_nodes" / "MyNode", "log", "-1", "--format=%s") == "node"
    assert (vault / "output" / "sub" / "ComfyUI_00002_.png").read_bytes() == b"a render in a subfolder"
    assert (vault / "user" / "default" / "comfy.settings.json").is_file()
    # Shortcuts point at the new places; the older workflows folder became a link.
    for name, target in SHORTCUTS.items():
        assert os.readlink(root / name) == str(vault / target), name
    assert os.readlink(vault / "workflows") == str(vault / "user/default/workflows")

    # One workflows folder: both copies merged, the same template kept once, a clash kept under
    # a new name, the new template seeded only there.
    workflows = vault / "user" / "default" / "workflows"
    names = sorted(str(p.relative_to(workflows)) for p in workflows.rglob("*") if p.is_file())
    clash = [n for n in names if n.startswith("edited.merged-")]
    assert len(clash) == 1, names
    assert sorted(set(names) - set(clash)) == [
        "edited.json",
        "new-template.json",
        "template.json",
        "ui-only.json",
        "video/shortcut-only.json",
    ]
    assert {(workflows / "edited.json").read_bytes(), (workflows / clash[0]).read_bytes()} == {
        USER_FILES["ComfyUI/user/default/workflows/edited.json"],
        USER_FILES["workflows/edited.json"],
    }

    # The next start finds nothing to do, and check mode agrees.
    assert start().changed == 0
    assert start(check=True).changed == 0

    # ComfyUI (the stand-in, started the way the launcher starts it) lists exactly that.
    argv = [
        str(venv / "bin" / "python"),
        "main.py",
        "--listen",
        "127.0.0.1",
        "--port",
        "8188",
        "--base-directory",
        str(vault),
    ]
    with running_standin(argv, checkout) as comfy:
        assert comfy.workflows() == sorted(
            str(p.relative_to(root / "workflows")) for p in Path(root / "workflows").rglob("*") if p.is_file()
        )
        assert "mine.safetensors" in comfy.models("checkpoints")
        assert "nested/deep.safetensors" in comfy.models("loras")
        assert comfy.custom_nodes() == ["MyNode", "single_file_node"]
        assert sorted(comfy.node_classes()) == ["MyNodeClass", "SingleFileNode"]
        info = comfy.standin()
        assert info["base_directory"] == str(vault) and info["models_dir"] == str(vault / "models")


def models_linked_the_old_way(tmp_path):
    """A vault whose ComfyUI/models the older workspace_link made a link, git told to look away
    (its git protection, as tests/harness/old_layout.py replays it)."""
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    vault = tmp_path / "workspace" / "aiclipse"
    vault.mkdir(parents=True)
    checkout = vault / "ComfyUI"
    git(vault, "clone", "-q", upstream.url, str(checkout))
    (checkout / "models" / "vae" / "ae.safetensors").write_bytes(b"a vae")
    os.rename(checkout / "models", vault / "models")
    os.symlink(str(vault / "models"), checkout / "models")
    apply_old_git_tricks(checkout)
    assert not git_is_pristine(checkout)[0]
    return vault


def test_a_vault_made_by_the_old_workspace_link_module_migrates_too(tmp_path):
    vault = models_linked_the_old_way(tmp_path)
    result, proc = run_module("comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault)})
    assert result["pristine"] is True and result["links_removed"], result
    assert git_is_pristine(vault / "ComfyUI")[0]
    assert (vault / "models" / "vae" / "ae.safetensors").read_bytes() == b"a vae"


def test_a_checkout_owned_by_another_uid_migrates_too(tmp_path):
    """A volume made elsewhere: git calls such a work tree "dubious ownership" and refuses it,
    unless it is trusted (the collection's one way of running git trusts its checkouts)."""
    vault = models_linked_the_old_way(tmp_path)
    checkout = vault / "ComfyUI"
    for path in [checkout, *checkout.rglob("*")]:
        os.lchown(path, 4242, 4242)
    refused = subprocess.run(["git", "-C", str(checkout), "status"], capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "dubious ownership" in refused.stderr  # the trap is real here
    result, proc = run_module("comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault)})
    assert not result.get("failed") and result["checkout_state"] == "git", proc.stdout
    assert result["pristine"] is True and result["git"], result
    assert git_is_pristine(checkout)[0]
    assert (vault / "models" / "vae" / "ae.safetensors").read_bytes() == b"a vae"


def test_a_link_into_somewhere_else_stops_with_what_to_do(tmp_path):
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    vault = tmp_path / "workspace" / "aiclipse"
    vault.mkdir(parents=True)
    git(vault, "clone", "-q", upstream.url, str(vault / "ComfyUI"))
    elsewhere = tmp_path / "data" / "models"
    elsewhere.mkdir(parents=True)
    (elsewhere / "big.safetensors").write_bytes(b"kept where it is")
    os.rename(vault / "ComfyUI" / "models", tmp_path / "old-models")
    os.symlink(elsewhere, vault / "ComfyUI" / "models")
    result, dummy = run_module("comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault)})
    assert result.get("failed")
    assert f"{vault}/ComfyUI/models is a link to {elsewhere}" in result["msg"]
    assert "Move what the link shows into" in result["msg"]
    assert os.readlink(vault / "ComfyUI" / "models") == str(elsewhere)
    assert (elsewhere / "big.safetensors").read_bytes() == b"kept where it is"


def test_a_users_own_extra_model_paths_yaml_is_never_replaced(tmp_path):
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    vault = tmp_path / "workspace" / "aiclipse"
    vault.mkdir(parents=True)
    git(vault, "clone", "-q", upstream.url, str(vault / "ComfyUI"))
    mine = vault / "ComfyUI" / "extra_model_paths.yaml"
    mine.write_text("a1111:\n    base_path: /data/sd\n    checkpoints: models/Stable-diffusion\n")
    result, dummy = run_module(
        "comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault), "model_folders": ["checkpoints"]}
    )
    assert result["extra_model_paths"] == "yours"
    assert mine.read_text().startswith("a1111:")
    mine.unlink()
    result, dummy = run_module(
        "comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault), "model_folders": ["checkpoints"]}
    )
    assert result["extra_model_paths"] == "written" and result["changed"]
    # A main.py started by hand, without --base-directory, sees the vault's models through it.
    (vault / "models" / "checkpoints" / "hand.safetensors").write_bytes(b"x")
    with running_standin([sys.executable, "main.py"], vault / "ComfyUI") as comfy:
        assert "hand.safetensors" in comfy.models("checkpoints")
    again, dummy = run_module(
        "comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault), "model_folders": ["checkpoints"]}
    )
    assert again["changed"] is False and again["extra_model_paths"] == "ok"
