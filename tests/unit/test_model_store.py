"""model_store: ledger skips without hashing, verified atomic publish, stable staging."""

import hashlib
import json
import os
import stat
import sys
import threading
import time

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import (  # noqa: E402
    ModelStore,
    StoreError,
    VerifyError,
    looks_like_error_body,
)

BODY = bytes(range(256)) * 64
BODY_SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "vault/.state/models")


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "vault/models/checkpoints"
    path.mkdir(parents=True)
    return path


def stage(store, dest, data=BODY, identity=""):
    staged = store.staging_path(str(dest), identity)
    with open(staged, "wb") as out:
        out.write(data)
    return staged


def test_state_dir_and_ledger_are_private(store, models):
    dest = models / "a.safetensors"
    store.publish(stage(store, dest), str(dest), size=len(BODY), sha256=BODY_SHA)
    assert stat.S_IMODE(os.stat(store.state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.ledger_path).st_mode) == 0o600
    entry = json.loads(open(store.ledger_path).read())["entries"][str(dest)]
    assert entry["size"] == len(BODY) and entry["sha256"] == BODY_SHA
    assert entry["mtime_ns"] == os.stat(dest).st_mtime_ns


def test_publish_moves_verified_file_and_leaves_no_staging(store, models):
    dest = models / "a.safetensors"
    staged = stage(store, dest)
    open(staged + ".aria2", "wb").close()
    assert store.publish(staged, str(dest), size=len(BODY), sha256=BODY_SHA.upper()) == BODY_SHA
    assert dest.read_bytes() == BODY
    assert os.listdir(store.staging_dir) == []


@pytest.mark.parametrize(
    "kwargs, data, reason",
    [
        ({"sha256": "0" * 64}, BODY, "sha256"),
        ({"size": len(BODY) + 1}, BODY, "size"),
        ({}, b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        ({}, b'  {"error": "Unauthorized"}', "JSON"),
        ({}, b"", "empty"),
    ],
)
def test_publish_refuses_bad_downloads_and_keeps_old_file(store, models, kwargs, data, reason):
    dest = models / "a.safetensors"
    dest.write_bytes(b"previous good model")
    staged = stage(store, dest, data)
    with pytest.raises(VerifyError, match=reason):
        store.publish(staged, str(dest), **kwargs)
    assert dest.read_bytes() == b"previous good model"
    assert not os.path.exists(staged)
    assert store.entry(str(dest)) is None


def test_safetensors_header_is_not_mistaken_for_json(tmp_path):
    header = json.dumps({"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0")
    assert looks_like_error_body(str(path)) == ""
    path.write_bytes(b'[{"message": "not found"}]')
    assert "JSON" in looks_like_error_body(str(path))


def test_ledger_hit_skips_without_reading_bytes(store, models):
    dest = models / "a.safetensors"
    store.publish(stage(store, dest), str(dest), sha256=BODY_SHA)
    fresh = ModelStore(store.state_dir)
    os.chmod(dest, 0)  # as root this does not stop reads, so the counter is the proof
    presence = fresh.check_present(str(dest), sha256=BODY_SHA, size=len(BODY))
    assert presence.present and not presence.hashed
    assert fresh.hashed == 0


def test_known_sha_without_entry_hashes_once_then_trusts(store, models):
    dest = models / "a.safetensors"
    dest.write_bytes(BODY)
    first = store.check_present(str(dest), sha256=BODY_SHA)
    assert first.present and first.hashed and store.hashed == 1
    second = store.check_present(str(dest), sha256=BODY_SHA)
    assert second.present and not second.hashed and store.hashed == 1


def test_file_changed_after_recording_is_checked_again(store, models):
    dest = models / "a.safetensors"
    store.publish(stage(store, dest), str(dest), sha256=BODY_SHA)
    dest.write_bytes(BODY[:-1] + b"X")  # same size, new mtime
    presence = store.check_present(str(dest), sha256=BODY_SHA)
    assert not presence.present and presence.hashed and "differs" in presence.reason


def test_wanted_sha_changed_in_manifest_means_not_present(store, models):
    dest = models / "a.safetensors"
    store.publish(stage(store, dest), str(dest), sha256=BODY_SHA)
    presence = store.check_present(str(dest), sha256="f" * 64)
    assert not presence.present and not presence.hashed


def test_etag_change_means_not_present(store, models):
    dest = models / "a.safetensors"
    store.publish(stage(store, dest), str(dest), etag='"abc"')
    assert store.check_present(str(dest), etag='"abc"').present
    assert not store.check_present(str(dest), etag='"def"').present


def test_missing_and_wrong_size(store, models):
    dest = models / "a.safetensors"
    assert store.check_present(str(dest)).reason == "missing"
    dest.write_bytes(b"partial")
    presence = store.check_present(str(dest), size=len(BODY))
    assert not presence.present and "size" in presence.reason


def test_existing_file_without_checks_is_adopted_and_recorded(store, models):
    dest = models / "a.safetensors"
    dest.write_bytes(BODY)
    presence = store.check_present(str(dest), size=len(BODY))
    assert presence.present and not presence.hashed
    assert store.entry(str(dest))["size"] == len(BODY)


def test_directory_at_destination_is_a_clear_error(store, models):
    (models / "a.safetensors").mkdir()
    with pytest.raises(StoreError, match="not a regular file"):
        store.check_present(str(models / "a.safetensors"))


def test_staging_path_is_stable_and_source_specific(store, models):
    dest = str(models / "a.safetensors")
    assert store.staging_path(dest, "u1") == ModelStore(store.state_dir).staging_path(dest, "u1")
    assert store.staging_path(dest, "u1") != store.staging_path(dest, "u2")
    assert store.staging_path(dest).endswith(".a.safetensors")
    assert os.path.dirname(store.staging_path(dest)) == store.staging_dir


def test_cleanup_removes_only_old_unkept_partials(store, models):
    keep = stage(store, models / "keep.bin")
    old = stage(store, models / "old.bin")
    young = stage(store, models / "young.bin")
    past = time.time() - 8 * 24 * 3600
    for path in (keep, old, old + ".aria2"):
        open(path, "ab").close()
        os.utime(path, (past, past))
    removed = store.cleanup_stale(keep=[keep])
    assert sorted(removed) == sorted([os.path.basename(old), os.path.basename(old) + ".aria2"])
    assert os.path.exists(keep) and os.path.exists(young)


def test_same_filesystem_check(store, models):
    store.check_same_filesystem(str(models / "new/sub/a.bin"))  # parents not made yet: fine
    if os.stat("/dev/shm").st_dev == os.stat(store.staging_dir).st_dev:
        pytest.fail("test needs /dev/shm on another filesystem than the pytest tmp dir")
    with pytest.raises(StoreError, match="different filesystems"):
        store.check_same_filesystem("/dev/shm/aiclipse-model.bin")


def test_concurrent_records_from_two_stores_all_survive(store, models):
    other = ModelStore(store.state_dir)  # a second downloader (r2_fetch) on the same ledger
    dests = []
    for i in range(20):
        dest = models / (f"m{i}.bin")
        dest.write_bytes(b"x" * i)
        dests.append(str(dest))
    threads = [
        threading.Thread(target=s.record, args=(d,)) for i, d in enumerate(dests) for s in ((store, other)[i % 2],)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = json.loads(open(store.ledger_path).read())["entries"]
    assert sorted(entries) == sorted(dests)


def test_damaged_ledger_costs_only_a_rehash(store, models):
    dest = models / "a.safetensors"
    store.publish(stage(store, dest), str(dest), sha256=BODY_SHA)
    with open(store.ledger_path, "w") as out:
        out.write("{not json")
    presence = store.check_present(str(dest), sha256=BODY_SHA)
    assert presence.present and presence.hashed


def test_read_only_store_creates_and_records_nothing(tmp_path, models):
    state = tmp_path / "vault/.state/models"
    dest = models / "a.safetensors"
    dest.write_bytes(BODY)
    store = ModelStore(state, read_only=True)
    presence = store.check_present(str(dest), sha256=BODY_SHA)
    assert presence.present and presence.hashed
    store.check_same_filesystem(str(dest))
    assert store.cleanup_stale() == []
    assert not state.exists()


def test_publish_can_skip_hashing_when_no_sha256_is_wanted(store, models):
    dest = models / "a.safetensors"
    assert store.publish(stage(store, dest), str(dest), size=len(BODY), hash_unknown=False) is None
    assert store.hashed == 0 and dest.read_bytes() == BODY
    assert "sha256" not in store.entry(str(dest))
    with pytest.raises(VerifyError):  # an expected sha256 is always checked
        store.publish(stage(store, dest, BODY[:-1] + b"x"), str(dest), sha256=BODY_SHA, hash_unknown=False)


def test_full_disk_after_rename_keeps_the_verified_file_and_notes_the_ledger(small_tmpfs):
    root = small_tmpfs("1m")
    store = ModelStore(root / "vault/.state/models")
    dest = root / "vault/models/a.safetensors"
    dest.parent.mkdir(parents=True)
    staged = stage(store, dest)
    with open(root / "filler", "wb", buffering=0) as filler:  # take every remaining block
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass
    assert store.publish(staged, str(dest), sha256=BODY_SHA) == BODY_SHA
    assert dest.read_bytes() == BODY
    assert list(store.ledger_errors) == [str(dest)] and "No space left" in store.ledger_errors[str(dest)]
