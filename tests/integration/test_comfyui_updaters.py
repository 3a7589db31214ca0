"""ComfyUI's own updaters work on a provisioned pod, pinned or not, and lose nothing.

A pod is provisioned the way site.yml does it (comfyui, workspace, custom_nodes and launcher
roles through ansible-playbook) from a stand-in ComfyUI upstream. Then upstream moves on, one
commit per updater, each touching models/: a placeholder added in a new folder, one moved and
one deleted, one rewritten (with a requirements bump). After each, the pod is updated with
``git pull``, with ComfyUI's own updater (update.py's pygit2 calls) and with ComfyUI-Manager's
"Update ComfyUI" (its GitPython calls), see tests/harness/comfyui_updaters.py; real git,
pygit2 and GitPython. Each must succeed and leave no stash, no change git sees and no user
file lost; the next start provisions cleanly, and the stand-in ComfyUI, started from the launch
file, lists every model, workflow and node.
"""

import json
import shutil
from pathlib import Path

import pytest

from harness import comfyui_updaters
from harness.ansible_run import run_playbook
from harness.comfyui_fixtures import running_standin
from harness.git_repos import git, make_node_repo
from harness.old_layout import file_contents, git_is_pristine
from harness.python_env import installed_versions, make_wheel

PLAY = """\
- name: Pod start (the roles of site.yml that touch ComfyUI)
  hosts: localhost
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.comfyui
    - role: aiclipse.comfyui.workspace
    - role: aiclipse.comfyui.custom_nodes
    - role: aiclipse.comfyui.launcher
"""
NODE_INIT = "class Hello:\n    pass\n\nNODE_CLASS_MAPPINGS = {'HelloNode': Hello}\n"

# Upstream commits, one per updater: (files to write, paths to remove, message).
UPSTREAM_MOVES = [
    ({"models/new_type/put_new_type_files_here": "", "comfy/feature_a.py": "A = 1\n"}, (), "a new model folder"),
    (
        {"models/approx_vae/put_vae_approx_here": "", "comfy/feature_b.py": "B = 1\n"},
        ("models/vae_approx/put_vae_approx_here", "models/gligen/put_gligen_here"),
        "a placeholder moved, another deleted",
    ),
    (
        {"models/checkpoints/put_checkpoints_here": "see the docs\n", "requirements.txt": "fakedep==2.0\nfaketorch\n"},
        (),
        "a placeholder rewritten, a requirement bumped",
    ),
]


@pytest.fixture
def own_wheelhouse(tmp_path, wheelhouse):
    """The session's wheelhouse copied, so a test may add wheels to it."""
    return shutil.copytree(wheelhouse, tmp_path / "wheels")


@pytest.fixture
def pod(tmp_path, comfyui_upstream, pod_venv, own_wheelhouse):
    wheelhouse = own_wheelhouse
    root = tmp_path / "workspace"
    vault = root / "aiclipse"
    node = make_node_repo(tmp_path / "nodes" / "ComfyUI-Hello", extra_files={"__init__.py": NODE_INIT})
    templates = tmp_path / "opt-workflows"
    templates.mkdir()
    (templates / "template.json").write_text('{"template": 1}')
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)

    def start(version=""):
        run = run_playbook(
            playbook,
            {
                "aiclipse_root": str(root),
                "comfyui_repo_url": comfyui_upstream.url,
                "comfyui_version": version,
                "comfyui_baked_dir": "",
                "comfyui_venv": str(pod_venv),
                "comfyui_wheelhouse": str(wheelhouse),
                "comfyui_pip_offline": True,
                "comfyui_protected_packages": ["faketorch"],
                "custom_nodes_list": [f"{node.url}|main|test|a node"],
                "custom_nodes_seed_dir": "",
                "custom_nodes_protected_packages": ["faketorch"],
                "workspace_workflow_templates_dir": str(templates),
                "launcher_listen": "127.0.0.1",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            },
            inventory="localhost,",
            args=["-c", "local"],
        )
        assert run.rc == 0 and run.failed == 0, run.stdout[-4000:] + run.stderr[-2000:]
        return run

    return start, root, vault, comfyui_upstream, pod_venv


def user_work(root):
    """What a pod's user makes between updates, through the shortcuts."""
    (root / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"my checkpoint")
    (root / "models" / "loras" / "styles").mkdir(parents=True, exist_ok=True)
    (root / "models" / "loras" / "styles" / "ink.safetensors").write_bytes(b"my lora")
    (root / "models" / "vae_approx" / "taesd_decoder.pth").write_bytes(b"a file in a folder upstream moves")
    (root / "workflows" / "mine.json").write_text('{"mine": true}')
    (root / "output" / "ComfyUI_00001_.png").write_bytes(b"a render")


def run_updater(name, checkout):
    if name == "git pull":
        return {"pull": git(checkout, "pull", "-q", "--ff-only")}
    return comfyui_updaters.UPDATERS[name](checkout)


@pytest.mark.parametrize("pinned", [False, True], ids=["default-branch", "pinned"])
def test_git_pull_update_py_and_manager_update_a_provisioned_pod(pod, pinned):
    start, root, vault, upstream, venv = pod
    checkout = vault / "ComfyUI"
    start(upstream.head() if pinned else "")
    assert git(checkout, "rev-parse", "--abbrev-ref", "HEAD") == "master"
    user_work(root)
    made_branches = []

    for updater, (files, removed, message) in zip(("git pull", "pygit2", "manager"), UPSTREAM_MOVES):
        force = [path for path in files if path.startswith("models/")]
        head = upstream.commit(files, message, remove=removed, force_add=force)
        # Everything but the checkout, whose tracked files the update is meant to change.
        before = file_contents(root, skip=[checkout])
        report = run_updater(updater, checkout)
        assert git(checkout, "rev-parse", "HEAD") == head, (updater, report)
        assert git(checkout, "rev-parse", "--abbrev-ref", "HEAD") == "master", updater
        assert not report.get("stash") and git(checkout, "stash", "list") == "", (updater, report)
        assert not report.get("reset_hard"), (updater, report)
        made_branches += [report["backup_branch"]] if report.get("backup_branch") else []
        pristine, details = git_is_pristine(checkout)
        assert pristine, (updater, details)
        assert not before - file_contents(root, skip=[checkout]), f"{updater} lost files"

        # The next start provisions cleanly (seeding what upstream added into the vault) ...
        start(upstream.head() if pinned else "")
        assert git_is_pristine(checkout)[0]

    # ... and the one after has nothing left to do.
    assert start(upstream.head() if pinned else "").changed == 0
    # update.py's backup branch is its own recovery point; nothing else made or removed one.
    branches = sorted(git(checkout, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    assert branches == sorted(["master"] + made_branches)
    assert [b.startswith("backup_branch_") for b in made_branches] == [True]
    # The requirements bump was installed from the wheelhouse at the start after it.
    assert installed_versions(venv)["fakedep"] == "2.0"
    # What upstream added under models/ is in the vault, where ComfyUI looks now.
    assert (root / "models" / "new_type" / "put_new_type_files_here").is_file()
    assert (root / "models" / "approx_vae" / "put_vae_approx_here").is_file()
    assert (root / "models" / "vae_approx" / "taesd_decoder.pth").read_bytes() == b"a file in a folder upstream moves"

    launch = json.loads((vault / ".state" / "launch.json").read_text())
    assert "--base-directory" in launch["argv"]
    with running_standin(launch["argv"], launch["cwd"]) as comfy:
        assert comfy.models("checkpoints") == ["mine.safetensors"]
        assert comfy.models("loras") == ["styles/ink.safetensors"]
        assert comfy.models("vae_approx") == ["taesd_decoder.pth"]
        assert comfy.workflows() == sorted(
            str(p.relative_to(root / "workflows")) for p in Path(root / "workflows").rglob("*") if p.is_file()
        )
        assert comfy.workflows() == ["mine.json", "template.json"]
        assert comfy.custom_nodes() == ["ComfyUI-Hello"]
        assert comfy.node_classes()["HelloNode"]["python_module"] == "custom_nodes.ComfyUI-Hello"


def test_wheel_for_the_bump_missing_and_no_index_the_pod_still_starts(pod, own_wheelhouse):
    """A ComfyUI update needs a requirement the pod cannot get: a warning, ComfyUI starts, the
    next start (once the wheel is there) installs it."""
    start, root, vault, upstream, venv = pod
    checkout = vault / "ComfyUI"
    start()
    upstream.commit({"requirements.txt": "fakedep==5.0\nfaketorch\n"}, "needs a wheel nobody has")
    git(checkout, "pull", "-q", "--ff-only")
    run = start()
    assert "ComfyUI starts with what the venv has" in run.stdout
    assert (vault / ".state" / "launch.json").is_file()
    assert installed_versions(venv)["fakedep"] == "1.0"
    make_wheel(own_wheelhouse, "fakedep", "5.0")
    start()
    assert installed_versions(venv)["fakedep"] == "5.0"
