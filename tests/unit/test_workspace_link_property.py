"""Property: whatever was at the shortcut paths and in the vault, no byte is lost.

Hypothesis builds random pre-existing trees (files, nested folders, user links, dangling links,
files where folders belong, name clashes with equal and different bytes) at the shortcut
paths and in the vault, sometimes with the vault on another filesystem (/dev/shm, so moves are
verified copies), sometimes after a merge that was killed half-way. Then it checks:

* check mode changes nothing and predicts the actions the real run takes;
* every regular file's bytes that existed before exist afterwards (each file holds a unique
  token, so a lost file cannot hide behind a duplicate), and every user link still exists;
* every shortcut is a link to its target and resolves to it;
* no temporary file is left behind, and a second run changes nothing.

The module's logic runs in-process (module_utils) to keep 80 examples fast; the ansible runs
are in tests/integration/test_workspace_link_module.py.
"""
import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils.safe_merge import (  # noqa: E402
    MergeError, MergePlan, Scratch, apply_plan,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils.workspace_links import (  # noqa: E402
    WorkspaceLinks,
)

SHORTCUTS = {"models": "models", "input": "ComfyUI/input", "ComfyUI": "ComfyUI",
             "logs": "logs", "workflows": "workflows"}
NAMES = ["a", "b.json", "put_here", "input", "sub", "c.safetensors", ".git"]
SHARED_CONTENT = [b"", b"same bytes", b"placeholder\n"]
SHM = Path("/dev/shm")

_tokens = itertools.count()


def file_node():
    # Either unique bytes (a loss is then detectable) or bytes shared with other files (to make
    # identical-content clashes, which the merge resolves by dropping the duplicate).
    return st.one_of(st.just(("file", None)), st.sampled_from(SHARED_CONTENT).map(lambda c: ("file", c)))


LEAF = st.one_of(file_node(), file_node(),
                 st.sampled_from(["../elsewhere", "/nonexistent/dangling", "b.json"]).map(lambda t: ("link", t)))
TREE = st.recursive(LEAF, lambda children: st.dictionaries(st.sampled_from(NAMES), children, max_size=4)
                    .map(lambda d: ("dir", d)), max_leaves=12)
SHORTCUT_STATE = st.one_of(st.just(("absent",)), st.just(("right_link",)), st.just(("wrong_link",)),
                           st.just(("dangling_link",)), TREE)
VAULT_STATE = st.one_of(st.just(("absent",)), TREE)


def build(path, node):
    kind = node[0]
    if kind == "absent":
        return
    if kind == "file":
        content = node[1] if node[1] is not None else b"unique-%d" % next(_tokens)
        path.write_bytes(content)
    elif kind == "link":
        os.symlink(node[1], path)
    elif kind == "dir":
        path.mkdir()
        for name, child in node[1].items():
            build(path / name, child)


def snapshot(*tops):
    """Every entry under the tops, without following links: path -> (kind, bytes or link text)."""
    state = {}
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    state[path] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    state[path] = ("dir", None)
                else:
                    state[path] = ("file", Path(path).read_bytes())
    return state


def scenario(tmp, shortcut_states, vault_states, vault_elsewhere):
    root = tmp / "root"
    root.mkdir()
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "keep.bin").write_bytes(b"outside %d" % next(_tokens))
    vault = (Path(tempfile.mkdtemp(dir=SHM)) / "aiclipse") if vault_elsewhere else root / "aiclipse"
    vault.mkdir()
    for (name, target), state in zip(SHORTCUTS.items(), vault_states):
        if "/" not in target:
            build(vault / target, state)
    for (name, target), state in zip(SHORTCUTS.items(), shortcut_states):
        path = root / name
        if state[0] == "right_link":
            os.symlink(str(vault / target), path)
        elif state[0] == "wrong_link":
            os.symlink(str(tmp / "elsewhere"), path)
        elif state[0] == "dangling_link":
            os.symlink(str(tmp / "gone"), path)
        else:
            build(path, state)
    return root, vault


def manager(root, vault, on_conflict, check_mode=False, stamp="20261128-000000"):
    return WorkspaceLinks(str(root), str(vault), dict(SHORTCUTS), on_conflict=on_conflict,
                          protect_git=False, check_mode=check_mode, stamp=stamp)


# 80 examples keep the suite fast; WORKSPACE_PROPERTY_EXAMPLES=2000 explores further.
@settings(max_examples=int(os.environ.get("WORKSPACE_PROPERTY_EXAMPLES", "80")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shortcut_states=st.lists(SHORTCUT_STATE, min_size=len(SHORTCUTS), max_size=len(SHORTCUTS)),
       vault_states=st.lists(VAULT_STATE, min_size=len(SHORTCUTS), max_size=len(SHORTCUTS)),
       on_conflict=st.sampled_from(["merge", "backup"]),
       vault_elsewhere=st.booleans(),
       crash_after=st.one_of(st.none(), st.integers(min_value=0, max_value=6)))
def test_no_byte_is_lost_and_shortcuts_resolve(shortcut_states, vault_states, on_conflict, vault_elsewhere,
                                               crash_after):
    tmp = Path(tempfile.mkdtemp(prefix="ws-prop-"))
    vault = None
    try:
        root, vault = scenario(tmp, shortcut_states, vault_states, vault_elsewhere)
        tops = [tmp, vault]
        before = snapshot(*tops)

        predicted = manager(root, vault, on_conflict, check_mode=True).run()
        assert snapshot(*tops) == before, "check mode changed the disk"

        if crash_after is not None:
            # A run killed after some moves of the first merge: the next run must finish the job.
            models = root / "models"
            if models.is_dir() and not models.is_symlink() and (vault / "models").is_dir():
                plan = MergePlan(str(models), str(vault / "models"), "20261127-000000")
                plan.operations = plan.operations[:crash_after]
                apply_plan(plan)

        result = manager(root, vault, on_conflict).run()
        if crash_after is None:
            assert [link["action"] for link in result["links"]] == \
                [link["action"] for link in predicted["links"]], "check mode predicted other actions"
            assert result["changed"] == predicted["changed"]
        after = snapshot(*tops)

        contents_after = {value for kind, value in after.values() if kind == "file"}
        links_after = {value for kind, value in after.values() if kind == "link"}
        shortcut_paths = {str(root / name) for name in SHORTCUTS}
        for path, (kind, value) in before.items():
            if kind == "file":
                assert value in contents_after, "bytes of %s were lost" % path
            elif kind == "link" and path not in shortcut_paths:
                assert value in links_after, "user link %s -> %s was lost" % (path, value)

        for name, target in SHORTCUTS.items():
            path = root / name
            assert path.is_symlink() and os.readlink(path) == str(vault / target)
            assert path.is_dir() and path.resolve() == (vault / target).resolve()

        leftovers = [p for p in after if ".aiclipse-partial-" in p or ".aiclipse-link-" in p]
        assert not leftovers

        again = manager(root, vault, on_conflict, stamp="20261129-000000").run()
        assert again["changed"] is False, again
        assert snapshot(*tops) == after
    finally:
        shutil.rmtree(tmp)
        if vault is not None and str(vault).startswith(str(SHM)):
            shutil.rmtree(vault.parent)


def test_property_test_can_fail_on_a_lossy_merge(tmp_path, monkeypatch):
    """The byte check is real: a merge that overwrote instead of keeping both would be caught."""
    root, vault = tmp_path / "root", tmp_path / "root" / "aiclipse"
    (root / "models").mkdir(parents=True)
    (vault / "models").mkdir(parents=True)
    (root / "models" / "a").write_bytes(b"incoming")
    (vault / "models" / "a").write_bytes(b"already there")
    result = WorkspaceLinks(str(root), str(vault), {"models": "models"}, protect_git=False,
                            stamp="S").run()
    assert result["links"][0]["merged"]["renamed"] == [
        {"from": str(root / "models" / "a"), "to": str(vault / "models" / "a.merged-S")}]
    assert (vault / "models" / "a").read_bytes() == b"already there"
    assert (vault / "models" / "a.merged-S").read_bytes() == b"incoming"


@pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm as a second filesystem")
def test_cross_filesystem_move_is_a_verified_copy(tmp_path):
    root = tmp_path / "root"
    (root / "models" / "loras").mkdir(parents=True)
    payload = os.urandom(3 * 1024 * 1024 + 5)
    (root / "models" / "loras" / "big.safetensors").write_bytes(payload)
    os.chmod(root / "models" / "loras" / "big.safetensors", 0o600)
    os.chmod(root / "models" / "loras", 0o750)
    os.utime(root / "models" / "loras" / "big.safetensors", (1_700_000_000, 1_700_000_000))
    os.symlink("big.safetensors", root / "models" / "loras" / "alias")
    vault = Path(tempfile.mkdtemp(dir=SHM)) / "aiclipse"
    try:
        assert os.stat(root).st_dev != os.stat(vault.parent).st_dev
        result = WorkspaceLinks(str(root), str(vault), {"models": "models"}, protect_git=False).run()
        assert result["links"][0]["action"] == "merged"
        moved = vault / "models" / "loras" / "big.safetensors"
        assert moved.read_bytes() == payload
        assert (moved.stat().st_mode & 0o777, moved.stat().st_mtime) == (0o600, 1_700_000_000)
        assert (vault / "models" / "loras").stat().st_mode & 0o777 == 0o750
        assert os.readlink(vault / "models" / "loras" / "alias") == "big.safetensors"
        assert (root / "models").is_symlink()
        assert not [p for p in os.listdir(vault / "models" / "loras") if p.startswith(".aiclipse")]
    finally:
        shutil.rmtree(vault.parent)


@pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm as a second filesystem")
def test_a_run_killed_mid_copy_is_finished_by_the_next_one(tmp_path):
    """A kill during a cross-filesystem copy leaves a recorded partial copy and a recorded temp link."""
    root = tmp_path / "root"
    (root / "models" / "vae").mkdir(parents=True)
    (root / "models" / "vae" / "ae.safetensors").write_bytes(b"full model bytes")
    vault = Path(tempfile.mkdtemp(dir=SHM)) / "aiclipse"
    try:
        (vault / "models" / "vae").mkdir(parents=True)
        scratch = Scratch(str(vault / ".state" / "workspace"))
        fd, partial, dummy = scratch.new_file(str(vault / "models" / "vae"))
        os.write(fd, b"full mo")  # the copy was cut short; the original is still in place
        os.close(fd)
        link, dummy = scratch.new_link(str(root / "models"), str(vault / "models"))
        result = WorkspaceLinks(str(root), str(vault), {"models": "models"}, protect_git=False).run()
        record = result["links"][0]
        assert record["merged"]["discarded_partials"] == 1
        assert record["leftover_links_removed"] == [link]
        assert sorted(result["scratch_removed"]) == sorted([partial, link])
        assert not os.path.lexists(partial) and not os.path.lexists(link)
        assert not os.listdir(vault / ".state" / "workspace" / "scratch")
        assert (vault / "models" / "vae" / "ae.safetensors").read_bytes() == b"full model bytes"
        assert os.readlink(root / "models") == str(vault / "models")
    finally:
        shutil.rmtree(vault.parent)


def test_a_name_taken_between_plan_and_move_is_never_overwritten(tmp_path):
    """The plan is re-checked at each move: something appearing meanwhile is not replaced."""
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    target.mkdir()
    (source / "a.bin").write_bytes(b"incoming")
    plan = MergePlan(str(source), str(target), "S")
    (target / "a.bin").write_bytes(b"appeared meanwhile")
    with pytest.raises(MergeError, match="appeared while moving"):
        apply_plan(plan)
    assert (target / "a.bin").read_bytes() == b"appeared meanwhile"
    assert (source / "a.bin").read_bytes() == b"incoming"
