"""Property: whatever was at the shortcut paths and in the vault, no byte is lost.

Hypothesis builds random pre-existing trees at the shortcut paths and in the vault, then runs
the module's logic with on_conflict merge, backup or fail. The shapes: files with unique and
with shared bytes, read-only files and folders, hard links (inside a tree, and between the
shortcut's tree and the vault's), user links (relative, absolute, dangling, to their parent),
names a run uses itself (``.aiclipse-partial-*``, ``<name>.merged-<stamp>``, ``.backup-``) and
names that are not UTF-8; and links in both directions between shortcut and vault: a shortcut
that links to its target, elsewhere, nowhere, to its own parent or through a chain; a vault
folder that links to the shortcut's own folder (directly or through a chain: an adopted
install), inside it, to the root above it, to a folder on another disk. Sometimes the vault or
the root is on another filesystem (/dev/shm, a tmpfs), so moves are verified copies; sometimes
a merge was killed half-way before the run, sometimes the root itself is a link. Then it checks:

* a refused run (bad shape, or on_conflict=fail meeting a real folder) changes nothing at all;
* check mode changes nothing and predicts the actions the real run takes;
* the bytes of every regular file that existed before exist afterwards, and no other bytes
  appear (so nothing is lost, and no copy is cut short or changed); a file still at its path
  holds the same bytes (nothing changed in place); user links are kept;
* every shortcut is a link to its target and resolves to a folder;
* no scratch entry is left behind, and a second run changes nothing.

The module's logic runs in-process (module_utils) to keep 150 examples fast; the ansible runs
are in tests/integration/test_workspace_link_module.py, SIGKILLs in test_workspace_link_kill.py.
"""

import itertools
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import (  # noqa: E402
    MergeError,
    MergePlan,
    Scratch,
    apply_plan,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import (  # noqa: E402
    WorkspaceLinkError,
    WorkspaceLinks,
    canonical,
)

STAMP = "20261128-000000"
SHORTCUTS = {
    "models": "models",
    "input": "ComfyUI/input",
    "ComfyUI": "ComfyUI",
    "logs": "logs",
    "workflows": "workflows",
}
NAMES = [
    "a",
    "b.json",
    "put_here",
    "input",
    "sub",
    "c.safetensors",
    ".git",
    ".aiclipse-partial-x",
    f"b.merged-{STAMP}.json",
    f"a.merged-{STAMP}",
    f"a.backup-{STAMP}",
    os.fsdecode(b"caf\xe9"),
]
SHARED_CONTENT = [b"", b"same bytes", b"placeholder\n"]
SHM = Path("/dev/shm")
AS_ROOT = os.geteuid() == 0

_tokens = itertools.count()
# What the module's own scratch names look like (a user's ".aiclipse-partial-x" is not one).
SCRATCH_NAME = re.compile(r"\.aiclipse-(partial|link)-[0-9a-f]{24}$")


def file_node():
    # Either unique bytes (a loss is then detectable) or bytes shared with other files (to make
    # identical-content clashes, which the merge resolves by dropping the duplicate).
    return st.one_of(
        st.just(("file", None)),
        st.sampled_from(SHARED_CONTENT).map(lambda c: ("file", c)),
        st.just(("readonly", None)),
        st.just(("hardlink", None)),
    )


LEAF = st.one_of(
    file_node(),
    file_node(),
    st.sampled_from(["../elsewhere", "/nonexistent/dangling", "b.json", ".."]).map(lambda t: ("link", t)),
)
TREE = st.recursive(
    LEAF,
    lambda children: st.tuples(
        st.just("dir"), st.dictionaries(st.sampled_from(NAMES), children, max_size=4), st.booleans()
    ),
    max_leaves=12,
)
SHORTCUT_STATE = st.one_of(
    st.sampled_from(
        [("absent",), ("right_link",), ("wrong_link",), ("dangling_link",), ("chain_link",), ("parent_link",)]
    ),
    TREE,
    TREE,
)
VAULT_STATE = st.one_of(
    st.sampled_from(
        [("absent",), ("to_shortcut",), ("chain_to_shortcut",), ("elsewhere",), ("to_root",), ("inside_shortcut",)]
    ),
    TREE,
    TREE,
)


class Builder:
    """Builds trees; hard links join a file made earlier (a copy when that is on another disk)."""

    def __init__(self):
        self.files = []
        self.readonly_dirs = []

    def build(self, path, node):
        kind = node[0]
        if kind == "absent":
            return
        if kind in ("file", "readonly") or kind == "hardlink" and not self.files:
            content = node[1] if node[1] is not None else b"unique-%d" % next(_tokens)
            path.write_bytes(content)
            if kind == "readonly":
                os.chmod(path, 0o444)
            self.files.append(path)
        elif kind == "hardlink":
            source = self.files[len(self.files) // 2]
            try:
                os.link(source, path)
            except OSError:
                shutil.copyfile(source, path)
        elif kind == "link":
            os.symlink(node[1], path)
        elif kind == "dir":
            path.mkdir()
            for name, child in node[1].items():
                self.build(path / name, child)
            if node[2] and AS_ROOT:
                self.readonly_dirs.append(path)

    def seal(self):
        for path in self.readonly_dirs:
            os.chmod(path, 0o555)


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
                    state[path] = ("dir", os.lstat(path).st_mode)
                else:
                    state[path] = ("file", Path(path).read_bytes(), os.lstat(path).st_mode)
    return state


def scenario(tmp, shortcut_states, vault_states, placement):
    """(root, vault, other tops) with the given states; placement puts the vault or root on /dev/shm."""
    shm = Path(tempfile.mkdtemp(dir=SHM)) if placement in ("root_on_shm", "vault_on_shm") else None
    root = (shm / "root") if placement == "root_on_shm" else tmp / "root"
    if placement == "root_is_a_link":  # the root itself is a link to the volume
        (tmp / "volume").mkdir()
        os.symlink(str(tmp / "volume"), root)
    else:
        root.mkdir()
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "keep.bin").write_bytes(b"outside %d" % next(_tokens))
    (tmp / "hops").mkdir()
    vault = (shm / "aiclipse") if placement == "vault_on_shm" else root / "aiclipse"
    vault.mkdir()
    builder = Builder()
    for (name, target), state in zip(SHORTCUTS.items(), shortcut_states):
        path = root / name
        if state[0] == "right_link":
            os.symlink(str(vault / target), path)
        elif state[0] == "wrong_link":
            os.symlink(str(tmp / "elsewhere"), path)
        elif state[0] == "dangling_link":
            os.symlink(str(tmp / "gone"), path)
        elif state[0] == "chain_link":
            os.symlink(str(vault / target), tmp / "hops" / ("to-vault-" + name))
            os.symlink(str(tmp / "hops" / ("to-vault-" + name)), path)
        elif state[0] == "parent_link":
            os.symlink("..", path)
        else:
            builder.build(path, state)
    for (name, target), state in zip(SHORTCUTS.items(), vault_states):
        if "/" in target:
            continue
        path = vault / target
        if state[0] == "to_shortcut":
            os.symlink(str(root / name), path)
        elif state[0] == "chain_to_shortcut":
            os.symlink(str(root / name), tmp / "hops" / ("to-shortcut-" + name))
            os.symlink(str(tmp / "hops" / ("to-shortcut-" + name)), path)
        elif state[0] == "elsewhere":
            disk = tmp / ("disk-" + name)
            disk.mkdir()
            (disk / "on-disk.bin").write_bytes(b"disk %d" % next(_tokens))
            os.symlink(str(disk), path)
        elif state[0] == "to_root":
            os.symlink(str(root), path)
        elif state[0] == "inside_shortcut":
            os.symlink(str(root / name / "sub"), path)
        else:
            builder.build(path, state)
    builder.seal()
    return root, vault, shm


def manager(root, vault, on_conflict, check_mode=False, stamp=STAMP):
    return WorkspaceLinks(
        str(root), str(vault), dict(SHORTCUTS), on_conflict=on_conflict, check_mode=check_mode, stamp=stamp
    )


def contents(state):
    return {value[1] for value in state.values() if value[0] == "file"}


# 150 examples keep the suite fast; WORKSPACE_PROPERTY_EXAMPLES=2000 explores further.
@settings(
    max_examples=int(os.environ.get("WORKSPACE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    shortcut_states=st.lists(SHORTCUT_STATE, min_size=len(SHORTCUTS), max_size=len(SHORTCUTS)),
    vault_states=st.lists(VAULT_STATE, min_size=len(SHORTCUTS), max_size=len(SHORTCUTS)),
    on_conflict=st.sampled_from(["merge", "merge", "backup", "fail"]),
    placement=st.sampled_from(
        ["same", "same", "root_is_a_link"] + (["vault_on_shm", "root_on_shm"] if SHM.is_dir() else [])
    ),
    crash_after=st.one_of(st.none(), st.integers(min_value=0, max_value=6)),
)
def test_no_byte_is_lost_and_shortcuts_resolve(shortcut_states, vault_states, on_conflict, placement, crash_after):
    tmp = Path(tempfile.mkdtemp(prefix="ws-prop-"))
    shm = None
    try:
        root, vault, shm = scenario(tmp, shortcut_states, vault_states, placement)
        tops = [tmp] + ([shm] if shm else [])
        before = snapshot(*tops)

        try:
            predicted = manager(root, vault, on_conflict, check_mode=True).run()
        except WorkspaceLinkError:
            predicted = None
        assert snapshot(*tops) == before, "check mode changed the disk"

        if crash_after is not None and predicted is not None:
            # A run killed after some moves of the first merge: the next run must finish the job.
            models = root / "models"
            if (
                models.is_dir()
                and not models.is_symlink()
                and (vault / "models").is_dir()
                and not (vault / "models").is_symlink()
            ):
                try:
                    plan = MergePlan(
                        str(models), str(vault / "models"), "20261127-000000", str(vault / ".state" / "workspace")
                    )
                except MergeError:
                    plan = None
                if plan is not None:
                    plan.operations = plan.operations[:crash_after]
                    apply_plan(plan)
        crashed = snapshot(*tops)

        try:
            result = manager(root, vault, on_conflict).run()
        except WorkspaceLinkError as exc:
            event(f"refused ({on_conflict})")
            assert predicted is None, f"check mode passed but the run refused: {exc}"
            assert snapshot(*tops) == crashed, f"a refused run changed the disk: {exc}"
            return
        assert predicted is not None, "check mode refused but the run went ahead"
        for link in result["links"]:
            event(link["action"] + (" + target relinked" if link["target_relinked"] else ""))
        if crash_after is None:
            assert [link["action"] for link in result["links"]] == [link["action"] for link in predicted["links"]], (
                "check mode predicted other actions"
            )
            assert result["changed"] == predicted["changed"]
        after = snapshot(*tops)

        assert contents(after) == contents(before), "bytes were lost, cut short or invented"
        for path, value in before.items():
            if value[0] == "file" and after.get(path, ("gone",))[0] == "file":
                assert after[path][1] == value[1], f"{path} changed in place"
        shortcut_paths = {canonical(str(root / name)) for name in SHORTCUTS}
        target_paths = {canonical(str(vault / target)) for target in SHORTCUTS.values()}
        links_after = {value[1] for value in after.values() if value[0] == "link"}
        for path, value in before.items():
            if value[0] == "link" and path not in shortcut_paths | target_paths:
                assert value[1] in links_after, f"user link {path} -> {value[1]} was lost"

        for name, target in SHORTCUTS.items():
            path = root / name
            assert path.is_symlink() and os.readlink(path) == str(vault / target)
            assert path.is_dir(), f"{path} does not resolve to a folder"

        scratch = vault / ".state" / "workspace" / "scratch"
        assert not scratch.exists() or not os.listdir(scratch)
        new_names = set(after) - set(before)
        assert not [p for p in new_names if SCRATCH_NAME.search(os.path.basename(p))], "scratch left"

        again = manager(root, vault, on_conflict, stamp="20261129-000000").run()
        assert again["changed"] is False, again
        assert snapshot(*tops) == after
    finally:
        for top in (tmp, shm):
            if top is not None:
                for dirpath, dirnames, _dummy in os.walk(top):
                    for name in dirnames:
                        if not os.path.islink(os.path.join(dirpath, name)):
                            os.chmod(os.path.join(dirpath, name), 0o755)
                shutil.rmtree(top)


def test_property_test_can_fail_on_a_lossy_merge(tmp_path, monkeypatch):
    """The byte check is real: a merge that overwrote instead of keeping both would be caught."""
    root, vault = tmp_path / "root", tmp_path / "root" / "aiclipse"
    (root / "models").mkdir(parents=True)
    (vault / "models").mkdir(parents=True)
    (root / "models" / "a").write_bytes(b"incoming")
    (vault / "models" / "a").write_bytes(b"already there")
    result = WorkspaceLinks(str(root), str(vault), {"models": "models"}, stamp="S").run()
    assert result["links"][0]["merged"]["renamed"] == [
        {"from": str(root / "models" / "a"), "to": str(vault / "models" / "a.merged-S")}
    ]
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
        result = WorkspaceLinks(str(root), str(vault), {"models": "models"}).run()
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
        result = WorkspaceLinks(str(root), str(vault), {"models": "models"}).run()
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
