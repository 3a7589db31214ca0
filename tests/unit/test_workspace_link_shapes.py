"""Layouts a pod brings that a plain merge would get wrong: every path judged by what it resolves to.

Each test builds one shape, runs the module's logic in-process and checks, file by file, that
every byte is still somewhere, what the shortcut and the vault folder resolve to, and that a
second run has nothing to do. Kill points of the adoption are in test_workspace_link_kill.py.
"""

import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import (  # noqa: E402
    MergeError,
    MergePlan,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import (  # noqa: E402
    WorkspaceLinkError,
    WorkspaceLinks,
)

SHM = Path("/dev/shm")


def contents(*tops):
    """Counter of the bytes of every regular file under the tops (links not followed)."""
    found = Counter()
    for top in tops:
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    found[Path(path).read_bytes()] += 1
    return found


def snapshot(*tops):
    state = {}
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if os.path.islink(path):
                    state[path] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    state[path] = ("dir", st.st_mode)
                else:
                    state[path] = ("file", Path(path).read_bytes(), st.st_mode, st.st_ino)
    return state


def run(root, vault, links, **kwargs):
    kwargs.setdefault("stamp", "S")
    return WorkspaceLinks(str(root), str(vault), links, **kwargs).run()


def refused(root, vault, links, *words, **kwargs):
    before = snapshot(root, vault)
    with pytest.raises(WorkspaceLinkError) as info:
        run(root, vault, links, **kwargs)
    assert snapshot(root, vault) == before, "a refused run changed the disk"
    message = str(info.value)
    assert message.startswith("nothing was changed"), message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "workspace"
    (root / "aiclipse").mkdir(parents=True)
    return root, root / "aiclipse"


def user_models(root):
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "mine.safetensors").write_bytes(b"the only copy")
    (root / "models" / "vae.bin").write_bytes(b"vae bytes")


# -- the critical case: a vault folder that is a link to the shortcut's own folder -----------


def test_vault_folder_linked_to_the_shortcut_folder_is_adopted_not_deleted(ws):
    root, vault = ws
    user_models(root)
    os.symlink(str(root / "models"), vault / "models")
    inode = os.lstat(root / "models").st_ino
    before = contents(root)

    checked = run(root, vault, {"models": "models"}, check_mode=True)
    assert checked["links"][0]["action"] == "adopted"
    assert (root / "models").is_dir() and not (root / "models").is_symlink()

    result = run(root, vault, {"models": "models"})
    record = result["links"][0]
    assert record["action"] == "adopted" and record["changed"] is True
    assert record["adopted"] == {"from": str(root / "models"), "to": str(vault / "models"), "how": "renamed"}
    # The real folder itself moved into the vault (same inode: a rename, nothing copied).
    assert not (vault / "models").is_symlink() and os.lstat(vault / "models").st_ino == inode
    assert os.readlink(root / "models") == str(vault / "models")
    assert (root / "models" / "loras" / "mine.safetensors").read_bytes() == b"the only copy"
    assert contents(root) == before
    assert run(root, vault, {"models": "models"})["changed"] is False


def test_adopted_comfyui_with_shortcuts_into_it(ws):
    """aiclipse/ComfyUI links to an existing /workspace/ComfyUI; input/output point into it."""
    root, vault = ws
    (root / "ComfyUI" / "input").mkdir(parents=True)
    (root / "ComfyUI" / "input" / "photo.png").write_bytes(b"input photo")
    (root / "ComfyUI" / "main.py").write_bytes(b"print('comfy')")
    (root / "input").mkdir()
    (root / "input" / "other.png").write_bytes(b"another input")
    os.symlink(str(root / "ComfyUI"), vault / "ComfyUI")
    before = contents(root)
    links = {"ComfyUI": "ComfyUI", "input": "ComfyUI/input", "output": "ComfyUI/output"}
    result = run(root, vault, links, directories=["ComfyUI/user/default/workflows"])
    assert [link["action"] for link in result["links"]] == ["adopted", "merged", "created"]
    assert contents(root) == before
    assert not (vault / "ComfyUI").is_symlink()
    assert (vault / "ComfyUI" / "input" / "photo.png").read_bytes() == b"input photo"
    assert (vault / "ComfyUI" / "input" / "other.png").read_bytes() == b"another input"
    assert (vault / "ComfyUI" / "user" / "default" / "workflows").is_dir()
    for name, target in links.items():
        assert os.readlink(root / name) == str(vault / target)
    assert run(root, vault, links, directories=["ComfyUI/user/default/workflows"])["changed"] is False


def test_adoption_through_a_chain_of_links(ws, tmp_path):
    root, vault = ws
    user_models(root)
    os.symlink(str(root / "models"), tmp_path / "hop")
    os.symlink(str(tmp_path / "hop"), vault / "models")
    before = contents(root)
    assert run(root, vault, {"models": "models"})["links"][0]["action"] == "adopted"
    assert contents(root) == before and os.readlink(root / "models") == str(vault / "models")
    assert os.path.islink(tmp_path / "hop"), "a user's link outside the layout is left alone"


@pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm as a second filesystem")
def test_adoption_across_filesystems_is_a_verified_copy(tmp_path):
    root = Path(tempfile.mkdtemp(dir=SHM)) / "workspace"
    try:
        user_models(root)
        vault = tmp_path / "aiclipse"
        vault.mkdir()
        assert os.stat(root).st_dev != os.stat(vault).st_dev
        os.symlink(str(root / "models"), vault / "models")
        before = contents(root)
        record = run(root, vault, {"models": "models"})["links"][0]
        assert record["action"] == "adopted" and record["adopted"]["how"] == "copied"
        assert contents(vault) == before
        assert os.readlink(root / "models") == str(vault / "models")
        assert not os.listdir(vault / ".state" / "workspace" / "scratch")
    finally:
        shutil.rmtree(root.parent)


def test_adoption_is_refused_with_on_conflict_fail(ws):
    root, vault = ws
    user_models(root)
    os.symlink(str(root / "models"), vault / "models")
    refused(root, vault, {"models": "models"}, "on_conflict=fail", str(root / "models"), on_conflict="fail")


def test_adoption_with_backup_moves_the_folder_into_the_vault_too(ws):
    root, vault = ws
    user_models(root)
    os.symlink(str(root / "models"), vault / "models")
    before = contents(root)
    assert run(root, vault, {"models": "models"}, on_conflict="backup")["links"][0]["action"] == "adopted"
    assert contents(root) == before and not (vault / "models").is_symlink()


# -- containment that cannot be adopted: refused, with what to do --------------------------


def test_vault_folder_linked_inside_the_shortcut_folder_is_refused(ws):
    root, vault = ws
    user_models(root)
    os.symlink(str(root / "models" / "loras"), vault / "models")
    refused(root, vault, {"models": "models"}, str(root / "models" / "loras"), "inside", "mv")


def test_vault_folder_linked_to_a_parent_of_the_shortcut_is_refused(ws):
    root, vault = ws
    user_models(root)
    os.symlink(str(root), vault / "models")
    refused(root, vault, {"models": "models"}, "contains")


def test_vault_folder_linked_to_the_vault_is_refused(ws):
    root, vault = ws
    user_models(root)
    os.symlink(".", vault / "models")
    refused(root, vault, {"models": "models"}, "the vault")


def test_a_target_reaching_the_shortcut_folder_through_a_parent_link_is_refused(ws):
    """aiclipse/up/models is /workspace/models itself, but through aiclipse/up -> /workspace."""
    root, vault = ws
    user_models(root)
    os.symlink(str(root), vault / "up")
    refused(root, vault, {"models": "up/models"}, str(vault / "up"))


# -- link chains: the shortcut is a link, the vault folder links through it -------------------


def test_vault_folder_linked_through_a_shortcut_link_keeps_its_folder(ws, tmp_path):
    """aiclipse/models -> /workspace/models -> /data/models: relinking the shortcut would loop."""
    root, vault = ws
    data = tmp_path / "data" / "models"
    data.mkdir(parents=True)
    (data / "big.safetensors").write_bytes(b"on the data disk")
    os.symlink(str(data), root / "models")
    os.symlink(str(root / "models"), vault / "models")
    result = run(root, vault, {"models": "models"})
    record = result["links"][0]
    assert record["action"] == "relinked"
    assert record["target_relinked"] == {"was": str(root / "models"), "now": str(data)}
    assert os.readlink(vault / "models") == str(data)
    assert os.readlink(root / "models") == str(vault / "models")
    assert (root / "models" / "big.safetensors").read_bytes() == b"on the data disk"
    assert run(root, vault, {"models": "models"})["changed"] is False


def test_links_that_would_only_loop_are_refused(ws):
    root, vault = ws
    os.symlink(str(vault / "models"), root / "models")
    os.symlink(str(root / "models"), vault / "models")  # a loop with no folder at its end
    result = run(root, vault, {"models": "models"})
    # A loop holds no data: the vault-side link is moved aside and a real folder made.
    assert (vault / "models").is_dir() and not (vault / "models").is_symlink()
    assert os.readlink(vault / "models.backup-S") == str(root / "models")
    assert result["links"][0]["target_backup"] == str(vault / "models.backup-S")


# -- same inode, hard links -----------------------------------------------------------------


def test_merge_of_a_folder_into_itself_is_refused_by_the_plan(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a").write_bytes(b"only copy")
    os.symlink(str(folder), tmp_path / "alias")
    for target in (tmp_path / "alias", folder):
        with pytest.raises(MergeError, match="same folder"):
            MergePlan(str(folder), str(target), "S")
    (folder / "sub").mkdir()
    with pytest.raises(MergeError, match="inside"):
        MergePlan(str(folder), str(folder / "sub"), "S")
    with pytest.raises(MergeError, match="inside"):
        MergePlan(str(folder / "sub"), str(tmp_path), "S")
    assert (folder / "a").read_bytes() == b"only copy"


def test_hard_links_between_shortcut_and_vault_are_kept_once(ws):
    root, vault = ws
    (root / "models").mkdir()
    (vault / "models").mkdir()
    (vault / "models" / "same.bin").write_bytes(b"one inode, two names")
    os.link(vault / "models" / "same.bin", root / "models" / "same.bin")
    os.link(vault / "models" / "same.bin", root / "models" / "other-name.bin")
    result = run(root, vault, {"models": "models"})
    merged = result["links"][0]["merged"]
    assert merged["dropped_identical"] == 1 and merged["moved"] == 1
    assert (vault / "models" / "same.bin").read_bytes() == b"one inode, two names"
    assert (vault / "models" / "other-name.bin").read_bytes() == b"one inode, two names"


# -- internal names and clash names ---------------------------------------------------------


def test_a_user_file_named_like_a_scratch_file_is_never_deleted(ws):
    root, vault = ws
    (root / "models").mkdir()
    (root / "models" / ".aiclipse-partial-notes").write_bytes(b"mine, in the shortcut folder")
    (vault / "models").mkdir()
    (vault / "models" / ".aiclipse-partial-mine").write_bytes(b"mine, in the vault")
    os.symlink("somewhere", root / ".models.aiclipse-link-1-0")
    before = contents(root)
    result = run(root, vault, {"models": "models"})
    assert contents(root) == before
    assert (vault / "models" / ".aiclipse-partial-mine").read_bytes() == b"mine, in the vault"
    assert (vault / "models" / ".aiclipse-partial-notes").read_bytes() == b"mine, in the shortcut folder"
    assert os.readlink(root / ".models.aiclipse-link-1-0") == "somewhere"
    assert result["links"][0]["merged"]["discarded_partials"] == 0


def test_clash_names_never_take_a_name_a_later_move_needs(ws):
    root, vault = ws
    (root / "models").mkdir()
    (vault / "models").mkdir()
    (vault / "models" / "a.bin").write_bytes(b"vault a")
    (root / "models" / "a.bin").write_bytes(b"incoming a")
    (root / "models" / "a.merged-S.bin").write_bytes(b"incoming, named like a clash")
    (root / "models" / "a.merged-S-1.bin").write_bytes(b"incoming, named like the second clash")
    before = contents(root)
    result = run(root, vault, {"models": "models"})
    assert contents(root) == before
    assert (vault / "models" / "a.merged-S.bin").read_bytes() == b"incoming, named like a clash"
    renamed = result["links"][0]["merged"]["renamed"]
    assert len(renamed) == 1 and Path(renamed[0]["to"]).read_bytes() == b"incoming a"


# -- odd bytes ------------------------------------------------------------------------------


def test_non_utf8_names_are_merged_and_reported_as_valid_utf8(ws):
    root, vault = ws
    (root / "models").mkdir()
    (vault / "models").mkdir()
    bad = os.fsdecode(b"caf\xe9.bin")
    (root / "models" / bad).write_bytes(b"incoming")
    (vault / "models" / bad).write_bytes(b"vault's")
    result = run(root, vault, {"models": "models"})
    text = json.dumps(result, ensure_ascii=False)
    text.encode("utf-8")  # what ansible needs: no lone surrogates anywhere in the result
    renamed = result["links"][0]["merged"]["renamed"][0]
    assert renamed["from"].endswith("/models/caf\\xe9.bin") and renamed["to"].endswith("caf\\xe9.merged-S.bin")
    assert contents(vault) == Counter({b"incoming": 1, b"vault's": 1})


def test_a_root_reached_through_a_link_is_judged_the_same(tmp_path):
    """/workspace is itself a link (a volume mounted elsewhere): chains and adoptions still seen."""
    real_root = tmp_path / "volume"
    (real_root / "aiclipse").mkdir(parents=True)
    root = tmp_path / "workspace"
    os.symlink(real_root, root)
    vault = root / "aiclipse"
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.safetensors").write_bytes(b"on the data disk")
    os.symlink(str(data), real_root / "models")
    os.symlink(str(root / "models"), real_root / "aiclipse" / "models")
    user_models(real_root / "stuff")
    os.symlink(str(root / "stuff"), real_root / "aiclipse" / "stuff")
    before = contents(tmp_path)
    links = {"models": "models", "stuff": "stuff"}
    result = run(root, vault, links)
    assert [link["action"] for link in result["links"]] == ["relinked", "adopted"]
    assert os.readlink(vault / "models") == str(data)
    assert (root / "models" / "big.safetensors").read_bytes() == b"on the data disk"
    assert not (vault / "stuff").is_symlink()
    assert contents(tmp_path) == before
    assert run(root, vault, links)["changed"] is False


def test_a_target_whose_parent_links_back_to_the_root_is_refused(tmp_path):
    """aiclipse/ComfyUI -> /workspace (the vault elsewhere): aiclipse/ComfyUI/input is
    /workspace/input, the shortcut itself, which would become a link to itself."""
    root = tmp_path / "workspace"
    root.mkdir()
    vault = tmp_path / "elsewhere" / "aiclipse"
    vault.mkdir(parents=True)
    os.symlink(str(root), vault / "ComfyUI")
    (tmp_path / "other").mkdir()
    for state in ("absent", "wrong link"):
        if state == "wrong link":
            os.symlink(str(tmp_path / "other"), root / "input")
        refused(root, vault, {"ComfyUI": "ComfyUI", "input": "ComfyUI/input"}, "loop")
