"""Template workflows -> workflow folders (module_utils._workspace.workflow_seed), in-process on real files."""

import os
import stat
import sys

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workflow_seed import (  # noqa: E402
    WorkflowSeedError,
    WorkflowSeeder,
    backup_name,
    template_files,
)


@pytest.fixture
def dirs(tmp_path):
    templates = tmp_path / "templates"
    (templates / "video").mkdir(parents=True)
    (templates / ".git").mkdir()
    (templates / "a.json").write_bytes(b'{"t": "a"}')
    (templates / "video" / "wan.json").write_bytes(b'{"t": "wan"}')
    (templates / ".hidden.json").write_bytes(b"hidden")
    (templates / ".git" / "HEAD").write_bytes(b"ref")
    return templates, [tmp_path / "vault" / "workflows", tmp_path / "vault" / "ComfyUI" / "user" / "wf"]


def snapshot(top):
    return {str(p): (None if p.is_dir() else p.read_bytes()) for p in top.rglob("*")}


def seed(templates, dests, **kwargs):
    return WorkflowSeeder(str(templates), [str(d) for d in dests], **kwargs)


def test_template_files_are_recursive_and_skip_hidden(dirs):
    templates = dirs[0]
    assert template_files(str(templates)) == ["a.json", "video/wan.json"]
    assert template_files(str(templates / "missing")) == []


def test_first_seed_creates_everything_then_nothing_to_do(dirs, tmp_path):
    templates, dests = dirs
    before = snapshot(tmp_path)
    predicted = seed(templates, dests).run(check_mode=True, want_diff=True)
    assert snapshot(tmp_path) == before, "check mode wrote something"
    assert predicted["changed"] and predicted["counts"]["created"] == 4
    assert {d["after"] for d in predicted["diff"]} == {'{"t": "a"}', '{"t": "wan"}'}

    result = seed(templates, dests).run()
    assert [s["action"] for s in result["workflows"]] == ["created"] * 4
    for dest in dests:
        assert (dest / "video" / "wan.json").read_bytes() == b'{"t": "wan"}'
        assert stat.S_IMODE((dest / "a.json").stat().st_mode) == 0o644
        assert not (dest / ".hidden.json").exists()
        # No temporary files left behind.
        assert sorted(p.name for p in dest.iterdir()) == ["a.json", "video"]

    again = seed(templates, dests).run()
    assert again["changed"] is False and again["counts"]["unchanged"] == 4


def test_user_edit_and_user_files_survive_without_force(dirs):
    templates, dests = dirs
    seed(templates, dests).run()
    (dests[0] / "a.json").write_bytes(b"mine")
    (dests[0] / "own.json").write_bytes(b"own")
    (templates / "new.json").write_bytes(b"new")
    result = seed(templates, dests).run()
    actions = {os.path.relpath(s["dest"], s["dest"].split("/vault/")[0]): s["action"] for s in result["workflows"]}
    assert actions["vault/workflows/a.json"] == "kept"
    assert actions["vault/workflows/new.json"] == "created"
    assert (dests[0] / "a.json").read_bytes() == b"mine"
    assert (dests[0] / "own.json").read_bytes() == b"own"
    assert (dests[1] / "new.json").read_bytes() == b"new"


def test_force_replaces_only_differing_files_and_keeps_a_backup(dirs):
    templates, dests = dirs
    seed(templates, dests).run()
    (dests[0] / "a.json").write_bytes(b"mine")
    (dests[0] / "own.json").write_bytes(b"own")

    predicted = seed(templates, dests, force=True).run(check_mode=True, want_diff=True)
    assert predicted["counts"]["replaced"] == 1
    assert predicted["diff"] == [
        dict(
            before_header=str(dests[0] / "a.json"),
            after_header=str(dests[0] / "a.json"),
            before="mine",
            after='{"t": "a"}',
        )
    ]
    assert (dests[0] / "a.json").read_bytes() == b"mine"
    assert not any(p.name.endswith("~") for p in dests[0].iterdir())

    result = seed(templates, dests, force=True).run()
    replaced = [s for s in result["workflows"] if s["action"] == "replaced"]
    assert len(replaced) == 1 and (dests[0] / "a.json").read_bytes() == b'{"t": "a"}'
    backup = replaced[0]["backup"]
    assert os.path.basename(backup).startswith("a.json.") and backup.endswith("~")
    assert open(backup, "rb").read() == b"mine"
    assert (dests[0] / "own.json").read_bytes() == b"own"
    assert seed(templates, dests, force=True).run()["changed"] is False


def test_backup_names_never_collide(tmp_path):
    target = tmp_path / "x.json"
    first = backup_name(str(target), now=0)
    open(first, "w").close()
    second = backup_name(str(target), now=0)
    assert second != first and second.endswith("-2~")


def test_non_files_are_left_alone(dirs):
    templates, dests = dirs
    dests[0].mkdir(parents=True)
    (dests[0] / "a.json").mkdir()
    (dests[0] / "video").mkdir()
    os.symlink("/nonexistent", dests[0] / "video" / "wan.json")
    result = seed(templates, dests, force=True).run()
    by_dest = {s["dest"]: s["action"] for s in result["workflows"]}
    assert by_dest[str(dests[0] / "a.json")] == "not_a_file"
    assert by_dest[str(dests[0] / "video" / "wan.json")] == "not_a_file"
    assert (dests[0] / "a.json").is_dir()
    assert os.readlink(dests[0] / "video" / "wan.json") == "/nonexistent"


def test_a_file_in_the_way_of_a_folder_stops_before_anything_is_written(dirs, tmp_path):
    templates, dests = dirs
    dests[1].mkdir(parents=True)
    dests[1].joinpath("video").write_bytes(b"not a folder")
    before = snapshot(tmp_path)
    with pytest.raises(WorkflowSeedError, match="video is in the way"):
        seed(templates, dests).run()
    assert snapshot(tmp_path) == before


def test_missing_templates_dir_is_nothing_to_do(tmp_path):
    result = seed(tmp_path / "none", [tmp_path / "dest"]).run()
    assert result["changed"] is False and result["workflows"] == []
    assert not (tmp_path / "dest").exists()


def test_relative_paths_are_refused(tmp_path):
    with pytest.raises(WorkflowSeedError, match="absolute"):
        WorkflowSeeder(str(tmp_path), ["workflows"])
