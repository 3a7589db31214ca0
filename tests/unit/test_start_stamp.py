"""The start stamp (module_utils._workspace.start_stamp and the start_inputs_digest filter), in-process on
real files and real git checkouts."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from harness.git_repos import make_node_repo
from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.filter.start_inputs import (  # noqa: E402
    collection_code_digest,
    start_inputs_digest,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.start_stamp import (  # noqa: E402
    StartStamp,
    fingerprint,
    tree_fingerprint,
)


class Module:
    """What StartStamp and its git use of AnsibleModule, with real commands."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode

    @staticmethod
    def get_bin_path(name, required=False):
        return shutil.which(name)

    @staticmethod
    def run_command(cmd, expand_user_and_vars=False, environ_update=None):
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(environ_update or {})}, check=False
        )
        return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def pod(tmp_path):
    """A few things a start leaves behind: a file, a link, a folder, templates, a checkout."""
    (tmp_path / "vault/models/vae").mkdir(parents=True)
    (tmp_path / "env").write_text("export A=1\n")
    (tmp_path / "shortcut").symlink_to(tmp_path / "vault/models")
    (tmp_path / "templates/video").mkdir(parents=True)
    (tmp_path / "templates/a.json").write_text("{}")
    (tmp_path / "templates/video/wan.json").write_text("{}")
    (tmp_path / "environ").write_bytes(b"A=1\0B=2\0")
    node = make_node_repo(tmp_path / "node")
    model = tmp_path / "vault/models/vae/ae.safetensors"
    model.write_bytes(b"weights")
    return tmp_path, node, model


def stamp_of(tmp_path, node, model, inputs="digest-1", module=None, pending=()):
    return StartStamp(
        module or Module(),
        str(tmp_path / "state/start-stamp.json"),
        inputs=inputs,
        watch=[str(tmp_path / "env"), str(tmp_path / "shortcut"), str(tmp_path / "vault/models/vae")],
        trees=[str(tmp_path / "templates")],
        contents=[str(tmp_path / "environ")],
        git=[str(node.path)],
        expected=[str(model)] + [str(p) for p in pending],
    )


def recorded(tmp_path, node, model, **kwargs):
    stamp = stamp_of(tmp_path, node, model, **kwargs)
    changed, dummy, dummy = stamp.record()
    assert changed
    return stamp


def test_fingerprint_kinds(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("d")
    assert fingerprint(str(tmp_path / "f"))[:2] == ["file", 1]
    assert fingerprint(str(tmp_path / "d"))[0] == "dir"
    assert fingerprint(str(tmp_path / "l")) == ["link", "d", fingerprint(str(tmp_path / "d"))]
    (tmp_path / "dangling").symlink_to("nowhere")
    assert fingerprint(str(tmp_path / "dangling"))[:2] == ["link", "nowhere"]
    assert fingerprint(str(tmp_path / "nothing")) == ["missing"]
    assert fingerprint(str(tmp_path / "f" / "below-a-file")) == ["missing"]


def test_a_folder_only_has_to_stay_the_same_folder(tmp_path):
    """Outputs and logs come and go in the folders the roles make: that is not a change."""
    (tmp_path / "output").mkdir()
    before = fingerprint(str(tmp_path / "output"))
    (tmp_path / "output/image.png").write_bytes(b"png")
    assert fingerprint(str(tmp_path / "output")) == before
    os.chmod(tmp_path / "output", 0o700)
    assert fingerprint(str(tmp_path / "output")) != before


def test_tree_sees_a_new_or_edited_file_at_any_depth(pod):
    tmp_path = pod[0]
    before = tree_fingerprint(str(tmp_path / "templates"))
    assert set(before) == {".", "a.json", "video", "video/wan.json"}
    (tmp_path / "templates/video/new.json").write_text("{}")
    assert tree_fingerprint(str(tmp_path / "templates")) != before


def test_record_then_verify_is_current_and_recording_again_changes_nothing(pod):
    stamp = recorded(*pod)
    path = stamp.path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stamp.verify() == (True, [])
    changed, before, after = stamp_of(*pod).record()
    assert not changed and before == after


def test_check_mode_records_nothing(pod):
    stamp = stamp_of(*pod, module=Module(check_mode=True))
    changed, before, dummy = stamp.record()
    assert changed and before is None
    assert not os.path.exists(stamp.path)
    assert stamp.verify()[0] is False


def test_verify_with_other_inputs_is_not_current(pod):
    recorded(*pod)
    current, reasons = stamp_of(*pod, inputs="digest-2").verify()
    assert not current and "inputs changed" in reasons[0]


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda t, n, m: (t / "env").write_text("export A=2\n"), "env: modified"),
        (lambda t, n, m: (t / "env").unlink(), "env: removed"),
        (lambda t, n, m: ((t / "shortcut").unlink(), (t / "shortcut").symlink_to(t)), "shortcut: points to"),
        (lambda t, n, m: ((t / "shortcut").unlink(), (t / "shortcut").mkdir()), "shortcut: was a link, is a dir now"),
        (
            lambda t, n, m: ((t / "env").rename(t / "copy"), (t / "env").symlink_to(t / "copy")),
            "env: was a file, is a link now",
        ),
        (lambda t, n, m: os.chmod(t / "vault/models", 0o777), "shortcut: what it links to changed"),
        (lambda t, n, m: m.unlink(), "ae.safetensors: removed"),
        (lambda t, n, m: m.write_bytes(b"other weights"), "ae.safetensors: modified"),
        (lambda t, n, m: (t / "templates/a.json").write_text('{"v": 2}'), "templates: something in it changed"),
        (lambda t, n, m: (t / "environ").write_bytes(b"A=1\0B=3\0"), "environ: its content changed"),
        (lambda t, n, m: (n.path / "__init__.py").unlink(), "HEAD or tracked files changed"),
        (lambda t, n, m: n.commit({"README.md": "v2\n"}), "HEAD or tracked files changed"),
        (lambda t, n, m: shutil.rmtree(n.path / ".git"), "not a git checkout"),
    ],
)
def test_each_change_a_start_would_repair_means_not_current(pod, change, reason):
    tmp_path, node, model = pod
    stamp = recorded(*pod)
    change(tmp_path, node, model)
    current, reasons = stamp.verify()
    assert not current
    assert any(reason in line for line in reasons), reasons


def test_a_model_still_downloading_only_has_to_be_there_by_the_next_start(pod):
    tmp_path, node, model = pod
    pending = tmp_path / "vault/models/vae/later.safetensors"
    stamp = recorded(*pod, pending=[pending])
    current, reasons = stamp.verify()
    assert not current and "later.safetensors: not there yet" in reasons[0]
    pending.write_bytes(b"downloaded")
    assert stamp.verify() == (True, [])


def test_a_stamp_that_cannot_be_read_means_a_full_start(pod):
    stamp = recorded(*pod)
    for text in ("{not json", json.dumps({"version": 99}), json.dumps([1, 2])):
        with open(stamp.path, "w", encoding="utf-8") as handle:
            handle.write(text)
        current, reasons = stamp.verify()
        assert not current and "no stamp" in reasons[0]


def test_remove(pod):
    stamp = recorded(*pod)
    assert stamp.remove()[0] is True
    assert not os.path.exists(stamp.path)
    assert stamp.remove()[0] is False


def test_reasons_are_capped(tmp_path):
    paths = [tmp_path / f"f{i}" for i in range(15)]
    for path in paths:
        path.write_text("x")
    stamp = StartStamp(Module(), str(tmp_path / "stamp.json"), inputs="d", watch=[str(p) for p in paths])
    stamp.record()
    for path in paths:
        path.unlink()
    current, reasons = stamp.verify()
    assert not current and len(reasons) == 11 and reasons[-1] == "... and 5 more"


def test_inputs_digest_covers_values_and_code(tmp_path):
    assert start_inputs_digest({"a": 1, "b": [1, 2]}) == start_inputs_digest({"b": [1, 2], "a": 1})
    assert start_inputs_digest({"token": "secret-1"}) != start_inputs_digest({"token": "secret-2"})
    assert "secret-1" not in start_inputs_digest({"token": "secret-1"})
    # A copy of the code directories digests alike; one edited role file does not.
    for top in ("plugins", "roles", "playbooks", "meta"):
        shutil.copytree(REPO / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    assert collection_code_digest(str(tmp_path)) == collection_code_digest()
    defaults = tmp_path / "roles/launcher/defaults/main.yml"
    defaults.write_text(defaults.read_text() + "\n# edited\n")
    assert collection_code_digest(str(tmp_path)) != collection_code_digest()
