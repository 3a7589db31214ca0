"""The workspace role through ansible-playbook: layout, shortcuts, the one workflows folder."""

import json
import os
from pathlib import Path

import pytest

from harness.ansible_run import run_playbook
from harness.layout import SHORTCUTS

PLAY = """\
- name: Lay out the workspace
  hosts: pods
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.workspace
"""
WORKFLOWS = "user/default/workflows"


@pytest.fixture
def pod(tmp_path):
    """A playbook, template workflows (one nested) and a root holding an older real models folder."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    templates = tmp_path / "opt-workflows"
    (templates / "video").mkdir(parents=True)
    (templates / "txt2img.json").write_text(json.dumps({"template": 1}))
    (templates / "video" / "wan.json").write_text(json.dumps({"template": "wan"}))
    root = tmp_path / "workspace"
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "old.safetensors").write_bytes(b"old lora")
    extra = {"aiclipse_root": str(root), "workspace_workflow_templates_dir": str(templates)}

    def play(check=False, reset=None):
        env = {"FORCE_WORKFLOW_RESET": reset} if reset is not None else {}
        run = run_playbook(playbook, extra_vars=extra, check=check, env=env)
        assert run.rc == 0 and run.failed == 0, run.stdout[-3000:] + run.stderr[-2000:]
        return run

    return play, root, root / "aiclipse", templates


def tree(top):
    return {
        str(p): (os.readlink(p) if p.is_symlink() else None if p.is_dir() else p.read_bytes())
        for p in Path(top).rglob("*")
    }


def test_layout_from_an_older_volume_then_nothing_to_do(pod):
    play, root, vault, dummy = pod
    before = tree(root)
    play(check=True)
    assert tree(root) == before, "check mode changed the disk"

    assert play().changed > 0
    for name, target in SHORTCUTS.items():
        assert os.readlink(root / name) == str(vault / target)
    # The older layout's workflows folder is a link to the one ComfyUI reads.
    assert os.readlink(vault / "workflows") == str(vault / WORKFLOWS)
    assert (vault / "models/loras/old.safetensors").read_bytes() == b"old lora"
    for folder in ("checkpoints", "diffusion_models", "text_encoders", "unet", "vae", "loras"):
        assert (root / "models" / folder).is_dir(), folder
    assert json.loads((root / "workflows" / "video" / "wan.json").read_text()) == {"template": "wan"}
    assert sorted(p.name for p in (vault / WORKFLOWS).rglob("*.json")) == ["txt2img.json", "wan.json"]

    assert play().changed == 0
    assert play(check=True).changed == 0


def test_user_workflows_survive_restarts_and_reset_keeps_a_backup(pod):
    play, root, vault, templates = pod
    play()
    edited = root / "workflows" / "txt2img.json"
    edited.write_text(json.dumps({"mine": True}))
    (templates / "new.json").write_text(json.dumps({"template": "new"}))
    for restart in range(2):
        run = play()
        assert json.loads(edited.read_text()) == {"mine": True}, f"edit lost at restart {restart}"
    assert run.changed == 0
    assert json.loads((vault / WORKFLOWS / "new.json").read_text()) == {"template": "new"}

    assert play(reset="true").changed > 0
    assert json.loads(edited.read_text()) == {"template": 1}
    backups = [p for p in edited.parent.iterdir() if p.name.startswith("txt2img.json.") and p.name.endswith("~")]
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == {"mine": True}
    # Identical files are not rewritten, so a reset left on stays idempotent.
    assert play(reset="true").changed == 0
