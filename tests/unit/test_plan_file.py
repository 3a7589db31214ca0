"""The merged model plan as a text file (module_utils.plan_file), in-process on real files."""

import os
import stat
import sys

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.plan_file import (  # noqa: E402
    PlanFileError,
    render_plan,
    update_plan_file,
)

PLAN = {
    "manifests": [{"name": "/m.txt", "status": "read", "entries": 2}],
    "entries": [
        {"name": "vae/ae.safetensors", "source": "huggingface", "identifier": "org/repo", "origin": "/m.txt:1"}
    ],
    "replaced": [{"name": "loras/x.safetensors", "origin": "/u.txt:2", "replaced_by": "/m.txt:2"}],
    "skipped": [{"name": "loras/hk.safetensors", "origin": "/m.txt:3", "reason": "no bucket"}],
}


def test_render_lists_entries_replaced_and_skipped():
    text = render_plan(PLAN, "/logs/models.log")
    assert "vae/ae.safetensors  <-  huggingface org/repo  (/m.txt:1)\n" in text
    assert "replaced: loras/x.safetensors from /u.txt:2 by /m.txt:2\n" in text
    assert "NOT FETCHED: loras/hk.safetensors (/m.txt:3): no bucket\n" in text
    assert "# What happened to each download: /logs/models.log\n" in text
    assert render_plan(PLAN, "/logs/models.log") == text, "the text must be stable"


def test_written_once_then_unchanged_and_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "logs" / "plan.txt"
    text = render_plan(PLAN)
    assert update_plan_file(str(path), text, check_mode=True) == (True, "")
    assert not (tmp_path / "logs").exists()

    assert update_plan_file(str(path), text) == (True, "")
    assert path.read_text() == text and stat.S_IMODE(path.stat().st_mode) == 0o640
    inode = path.stat().st_ino
    assert update_plan_file(str(path), text) == (False, text)
    assert path.stat().st_ino == inode, "an unchanged plan was rewritten"

    changed, before = update_plan_file(str(path), text + "x\n", check_mode=True)
    assert changed and before == text and path.read_text() == text
    assert update_plan_file(str(path), text + "x\n")[0] and path.read_text() == text + "x\n"
    assert os.listdir(path.parent) == ["plan.txt"], "a temporary file was left behind"


def test_a_folder_at_the_plan_path_is_a_clear_error(tmp_path):
    (tmp_path / "plan.txt").mkdir()
    with pytest.raises(PlanFileError, match="not a regular file"):
        update_plan_file(str(tmp_path / "plan.txt"), "x")


def test_urls_in_the_plan_hide_passwords_and_secret_query_values():
    plan = dict(
        PLAN,
        entries=[
            {
                "name": "a/x.bin",
                "source": "url",
                "identifier": "https://bob:hunter2@host.invalid/x.bin?token=abc123&v=2",
                "origin": "/m.txt:1",
            },
            {
                "name": "a/y.bin",
                "source": "url",
                "identifier": "https://tok_ABCDEF@host.invalid/y.bin",
                "origin": "/m.txt:2",
            },
        ],
    )
    text = render_plan(plan)
    for secret in ("hunter2", "abc123", "tok_ABCDEF"):
        assert secret not in text
    assert "https://***@host.invalid/x.bin?token=***&v=2" in text
    assert "https://***@host.invalid/y.bin" in text


def test_a_full_disk_is_a_clear_error_and_leaves_the_old_plan(small_tmpfs):
    folder = small_tmpfs("64k")
    path = folder / "plan.txt"
    update_plan_file(str(path), "old plan\n")
    with open(folder / "filler", "wb") as handle:
        try:
            handle.write(b"x" * 1024 * 1024)
        except OSError:
            pass
    with pytest.raises(PlanFileError, match="No space left on device"):
        update_plan_file(str(path), "a new plan " * 5000)
    assert path.read_text() == "old plan\n"
    assert sorted(os.listdir(folder)) == ["filler", "plan.txt"]


def test_render_says_what_the_default_workflow_queued_first():
    first = {"path": "/opt/workflows/default.json", "names": ["vae/ae.safetensors"]}
    text = render_plan(PLAN, first=first)
    assert "# queued first: the 1 model(s) the default workflow /opt/workflows/default.json needs\n" in text
    # No default workflow found: nothing is said.
    assert render_plan(PLAN, first={"path": None, "names": []}) == render_plan(PLAN)
