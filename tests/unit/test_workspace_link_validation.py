"""Bad input gets a clear error and touches nothing; unsafe situations are refused up front."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import (  # noqa: E402
    WorkspaceLinkError,
    WorkspaceLinks,
)


def snapshot(top):
    state = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                state[path] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                state[path] = ("dir",)
            else:
                state[path] = ("file", Path(path).read_bytes())
    return state


@pytest.fixture
def workspace(tmp_path):
    """A root holding a real models folder with data, a vault, and nothing else."""
    root = tmp_path / "workspace"
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "mine.safetensors").write_bytes(b"user data")
    (root / "aiclipse").mkdir()
    return root


def attempt(root, vault, links, **kwargs):
    before = snapshot(root.parent)
    with pytest.raises(WorkspaceLinkError) as info:
        WorkspaceLinks(str(root) if isinstance(root, Path) else root, vault, links, **kwargs).run()
    assert snapshot(root.parent) == before, "a refused run changed the disk"
    return str(info.value)


@pytest.mark.parametrize(
    "links, words",
    [
        ({"models": "../outside"}, ["outside the vault", "../outside"]),
        ({"models": "/etc"}, ["outside the vault", "/etc"]),
        ({"aiclipse": "models"}, ["is the vault itself"]),
        ({".": "models"}, ["below root"]),
        ({"../x": "models"}, ["below root", '".."']),
        ({"/workspace/models": "models"}, ["must be relative to root"]),
        ({"aiclipse/models": "models/sub"}, ["contain one another"]),
        ({"aiclipse/models/sub": "models"}, ["contain one another"]),
        ({"models": "models", "models/": "models"}, ["same path"]),
        ({"models": "models", "models/loras": "loras"}, ["lies inside shortcut"]),
        ({"input": "models/x", "models2": "input/y"}, []),  # valid: proves the harness is not refusing everything
    ],
)
def test_bad_shortcuts_are_refused_before_anything_changes(workspace, links, words):
    vault = str(workspace / "aiclipse")
    if not words:
        result = WorkspaceLinks(str(workspace), vault, links).run()
        assert result["changed"] is True
        return
    message = attempt(workspace, vault, links)
    assert message.startswith("nothing was changed")
    for word in words:
        assert word in message


def test_the_first_errors_do_not_hide_the_rest(workspace):
    message = attempt(workspace, str(workspace / "aiclipse"), {"models": "/etc", "aiclipse": "x"})
    assert "outside the vault" in message and "vault itself" in message


def test_shortcut_containing_the_vault_is_refused(tmp_path):
    root = tmp_path / "ws"
    (root / "data" / "vault").mkdir(parents=True)
    message = attempt(root, str(root / "data" / "vault"), {"data": "x"})
    assert "contains the vault" in message


@pytest.mark.parametrize("root, vault", [("workspace", "/tmp/v"), ("/tmp/w", "aiclipse"), ("/tmp/w", "")])
def test_relative_roots_are_refused(tmp_path, root, vault):
    with pytest.raises(WorkspaceLinkError, match="must be an absolute path"):
        WorkspaceLinks(root, vault, {"models": "models"}).run()
    assert not os.path.lexists("/tmp/w") and not os.path.lexists("/tmp/v")


def test_mount_point_at_a_shortcut_is_refused(tmp_path):
    mount = Path("/dev/shm")
    assert os.path.ismount(mount), "this test needs /dev/shm to be a mount point"
    vault = tmp_path / "vault"
    with pytest.raises(WorkspaceLinkError, match="/dev/shm is a mount point"):
        WorkspaceLinks("/dev", str(vault), {"shm": "x"}).run()
    assert os.path.ismount(mount) and not vault.exists()


def test_on_conflict_fail_touches_nothing_not_even_the_other_shortcuts(workspace):
    message = attempt(
        workspace,
        str(workspace / "aiclipse"),
        {"logs": "logs", "models": "models", "workflows": "workflows"},
        on_conflict="fail",
    )
    assert str(workspace / "models") in message and "on_conflict=fail" in message
    assert not (workspace / "logs").exists()


def test_vault_that_is_a_file_is_refused(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "aiclipse").write_bytes(b"not a directory")
    message = attempt(root, str(root / "aiclipse"), {"models": "models"})
    assert "not a directory" in message


def test_relinking_never_deletes_through_the_old_link(workspace, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_bytes(b"keep me")
    os.symlink(str(elsewhere), workspace / "output")
    result = WorkspaceLinks(str(workspace), str(workspace / "aiclipse"), {"output": "ComfyUI/output"}).run()
    assert result["links"][0]["action"] == "relinked"
    assert (elsewhere / "keep").read_bytes() == b"keep me"
    assert os.readlink(workspace / "output") == str(workspace / "aiclipse" / "ComfyUI" / "output")


def test_file_in_the_way_of_a_target_is_moved_aside_not_deleted(workspace):
    vault = workspace / "aiclipse"
    (vault / "ComfyUI").write_bytes(b"a file where a folder belongs")
    result = WorkspaceLinks(str(workspace), str(vault), {"input": "ComfyUI/input"}, stamp="S").run()
    record = result["links"][0]
    assert record["target_created"] and record["target_backup"] == str(vault / "ComfyUI.backup-S")
    assert (vault / "ComfyUI.backup-S").read_bytes() == b"a file where a folder belongs"
    assert (workspace / "input").resolve() == (vault / "ComfyUI" / "input").resolve()


@pytest.mark.parametrize(
    "directories, words",
    [
        (["../escape"], ['without ".."']),
        (["/etc/x"], ["outside the vault"]),
        ([str(Path("/")) + "tmp"], ["outside the vault"]),
    ],
)
def test_layout_directories_outside_the_vault_are_refused(workspace, directories, words):
    before = snapshot(workspace.parent)
    with pytest.raises(WorkspaceLinkError) as info:
        WorkspaceLinks(str(workspace), str(workspace / "aiclipse"), {"logs": "logs"}, directories=directories).run()
    assert snapshot(workspace.parent) == before
    for word in words:
        assert word in str(info.value)


def test_layout_directory_inside_a_shortcut_is_refused(workspace):
    vault = workspace / "aiclipse"
    with pytest.raises(WorkspaceLinkError, match="inside shortcut 'models'"):
        WorkspaceLinks(
            str(vault / "ComfyUI"), str(vault), {"models": "models"}, directories=["ComfyUI/models/checkpoints"]
        ).run()
    assert not (vault / "ComfyUI").exists()


def test_layout_directories_are_created_once_and_never_replace_a_file(workspace):
    vault = workspace / "aiclipse"
    (vault / "models").mkdir()
    (vault / "models" / "vae").write_bytes(b"a stray file named like a folder")
    args = dict(directories=["models/vae", "models/loras", "ComfyUI/user/default/workflows"], stamp="S")
    check = WorkspaceLinks(str(workspace), str(vault), {"logs": "logs"}, check_mode=True, **args).run()
    assert [d["created"] for d in check["directories"]] == [True, True, True]
    assert not (vault / "models" / "loras").exists()
    result = WorkspaceLinks(str(workspace), str(vault), {"logs": "logs"}, **args).run()
    assert result["directories"][0]["backup"] == str(vault / "models" / "vae.backup-S")
    assert (vault / "models" / "vae.backup-S").read_bytes() == b"a stray file named like a folder"
    assert all((vault / d).is_dir() for d in args["directories"])
    again = WorkspaceLinks(str(workspace), str(vault), {"logs": "logs"}, **args).run()
    assert again["changed"] is False and not any(d["created"] for d in again["directories"])
