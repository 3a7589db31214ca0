"""Hashing a file while it downloads (prefix_hash.py) and the publish step that trusts it.

The promise under attack: the streamed digest is only ever a shortcut to what a full read of
the file would say. A file written out of order, replaced, cut short or rewritten after it was
hashed must never be published on the strength of a stale digest.
"""

import hashlib
import os
import sys
import threading
import time

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import (  # noqa: E402
    early_writeback,
    prefix_hash,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import (  # noqa: E402
    ModelStore,
    VerifyError,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.prefix_hash import (  # noqa: E402
    PrefixHasher,
    complete_prefix,
    leading_pieces,
)

MiB = 1024 * 1024


def body(size, seed=1):
    return bytes((i * 131 + seed) % 251 for i in range(256)) * (size // 256) + b"x" * (size % 256)


@pytest.mark.parametrize(
    "bitfield, pieces",
    [
        ("", 0),
        ("00", 0),
        ("80", 1),
        ("c0", 2),
        ("fe", 7),
        ("ff", 8),
        ("ff00", 8),
        ("ff80", 9),
        ("ffff", 16),
        ("7f", 0),
        ("bf", 1),
        ("ff7f", 8),
        ("zz", 0),
        (b"\xff\xe0", 11),
    ],
)
def test_leading_pieces_counts_from_the_highest_bit_of_the_first_byte(bitfield, pieces):
    assert leading_pieces(bitfield) == pieces


def test_complete_prefix_stops_at_the_file_size_and_needs_a_piece_length():
    # aria2 sets no overflow bits, but a last piece is shorter than the others.
    assert complete_prefix("ffff", 1 * MiB, 15 * MiB + 7) == 15 * MiB + 7
    assert complete_prefix("f0", 1 * MiB, 10 * MiB) == 4 * MiB
    assert complete_prefix("ff", 0, 10 * MiB) == 0
    assert complete_prefix("ff", 1 * MiB, 0) == 0


def test_hashes_a_file_written_out_of_order_as_its_prefix_completes(tmp_path):
    """Pieces land back to front, like a ranged download's later connections finishing first;
    the hasher is told only what is complete from the start, and hashes it as it grows."""
    data = body(8 * MiB + 123)
    path = tmp_path / "f.bin"
    path.write_bytes(b"")
    hasher = PrefixHasher(str(path), chunk=256 * 1024)
    pieces = [(start, data[start : start + MiB]) for start in range(0, len(data), MiB)]
    with open(path, "r+b") as out:
        for start, chunk in reversed(pieces[4:]):
            out.seek(start)
            out.write(chunk)
        out.flush()
        for start, chunk in pieces[:4]:
            out.seek(start)
            out.write(chunk)
            out.flush()
            hasher.extend(start + len(chunk))
    hasher.extend(4 * MiB)  # a stale report going backwards changes nothing
    assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()
    assert hasher.read_at_finish == len(data) - 4 * MiB


def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition(), f"still not so after {seconds} s"


def test_the_thread_reads_while_the_download_goes_on(tmp_path):
    data = body(4 * MiB)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    hasher = PrefixHasher(str(path))
    hasher.extend(3 * MiB)
    wait_for(lambda: hasher.position == 3 * MiB)  # the reading thread hashed the reported prefix
    assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()
    assert hasher.read_at_finish == MiB


def test_hashed_stretches_are_handed_to_the_disk_as_they_are_read(tmp_path, monkeypatch):
    """Every hashed stretch of WRITEBACK_STEP bytes is handed to writeback once, in order, from
    the first byte on, while the download goes on: the fsync before publishing then has only the
    tail left to write."""
    monkeypatch.setattr(prefix_hash, "WRITEBACK_STEP", 2 * MiB)
    handed = []
    real = prefix_hash.start_writeback
    monkeypatch.setattr(
        prefix_hash,
        "start_writeback",
        lambda fd, offset, length: (handed.append((offset, length)), real(fd, offset, length)),
    )
    data = body(9 * MiB + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    hasher = PrefixHasher(str(path), chunk=512 * 1024)
    hasher.extend(5 * MiB)
    wait_for(lambda: hasher.position == 5 * MiB)
    assert handed == [(0, 2 * MiB), (2 * MiB, 2 * MiB)]  # before finish(): during the download
    assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()
    assert handed == [(0, 2 * MiB), (2 * MiB, 2 * MiB), (4 * MiB, 2 * MiB), (6 * MiB, 2 * MiB)]
    assert hasher.written_back == 8 * MiB


def test_early_writeback_starts_on_a_real_file_and_is_a_no_op_without_the_call(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(body(3 * MiB))
    fd = os.open(path, os.O_RDONLY)  # the hasher's handle is read-only: the call must take it
    try:
        early_writeback.start_writeback(fd, 0, 3 * MiB)
        assert early_writeback._sync_file_range() is not None, "sync_file_range did not load on Linux"
        assert early_writeback._sync_file_range()(fd, 0, 3 * MiB, early_writeback.SYNC_FILE_RANGE_WRITE) == 0
        monkeypatch.setattr(early_writeback, "_sync_file_range", lambda: None)  # a libc without it
        early_writeback.start_writeback(fd, 0, 3 * MiB)
    finally:
        os.close(fd)
    assert path.read_bytes() == body(3 * MiB)


def test_files_hashed_at_the_same_time_take_turns_on_one_core(tmp_path, monkeypatch):
    """Downloads hashed at once use one core between them (aria2c needs the other), and none
    waits for another to be done: each one's prefix keeps up with its download."""
    reading, most = [0], [0]
    guard = threading.Lock()
    real_preadv = os.preadv

    def counting_preadv(fd, buffers, offset):
        with guard:
            reading[0] += 1
            most[0] = max(most[0], reading[0])
        try:
            time.sleep(0.0005)  # widen the window in which two readers would overlap
            return real_preadv(fd, buffers, offset)
        finally:
            with guard:
                reading[0] -= 1

    monkeypatch.setattr(os, "preadv", counting_preadv)
    size = 48 * MiB
    datas = [body(size, seed=n) for n in range(3)]
    hashers = []
    for number, data in enumerate(datas):
        path = tmp_path / (f"f{number}.bin")
        path.write_bytes(data)
        hashers.append(PrefixHasher(str(path)))
    for hasher in hashers:
        hasher.extend(size)
    busy = []
    while any(hasher.position < size for hasher in hashers):
        busy.append([hasher.position for hasher in hashers])
        time.sleep(0.001)
    # When the first of them was done, the others had read a good part of theirs too.
    first_done = next(positions for positions in busy if max(positions) == size) if busy else [size] * 3
    assert min(first_done) >= size // 4, "positions when the first file was done: %s MiB" % [
        p // MiB for p in first_done
    ]
    assert most[0] == 1, f"{most[0]} files were read at the same time"
    for hasher, data in zip(hashers, datas):
        assert hasher.finish(size) == hashlib.sha256(data).hexdigest()


def test_no_digest_for_a_file_that_was_replaced_after_it_was_read(tmp_path):
    data = body(2 * MiB)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    hasher = PrefixHasher(str(path))
    hasher.extend(MiB)
    wait_for(lambda: hasher.position == MiB)  # read (and held open) before the replacement
    replacement = tmp_path / "other.bin"
    replacement.write_bytes(data)  # the same bytes even: it is not the file that was read
    os.replace(replacement, path)
    assert hasher.finish(len(data)) is None


@pytest.mark.parametrize("change", ["shorter", "longer"])
def test_no_digest_for_a_file_of_another_size_than_announced(tmp_path, change):
    data = body(2 * MiB)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    hasher = PrefixHasher(str(path))
    hasher.extend(MiB)
    if change == "shorter":
        os.truncate(path, MiB + 10)
        assert hasher.finish(len(data)) is None
    else:
        with open(path, "ab") as out:
            out.write(b"more")
        assert hasher.finish(len(data)) is None


def test_a_prefix_reported_beyond_the_end_of_the_file_is_an_error_not_a_digest(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(body(MiB))
    hasher = PrefixHasher(str(path))
    hasher.extend(2 * MiB)  # a bitfield that claims more than is on disk
    assert hasher.finish(MiB) is None
    assert hasher.error is not None


def test_cancel_gives_no_digest_and_lets_go_of_the_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(body(2 * MiB))
    hasher = PrefixHasher(str(path))
    hasher.extend(MiB)
    hasher.cancel()
    assert hasher.finish(2 * MiB) is None
    untouched = PrefixHasher(str(path))
    untouched.cancel()  # never started: nothing to wait for
    assert untouched.finish(2 * MiB) is None


class CountingStore(ModelStore):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.full_reads = 0

    def sha256_file(self, path):
        self.full_reads += 1
        return super().sha256_file(path)


def staged_file(store, tmp_path, data):
    dest = str(tmp_path / "models" / "m.bin")
    staged = store.staging_path(dest)
    with open(staged, "wb") as out:
        out.write(data)
    return dest, staged


def test_publish_takes_a_matching_streamed_digest_without_reading_the_file(tmp_path):
    store = CountingStore(str(tmp_path / "state"))
    data = body(MiB)
    digest = hashlib.sha256(data).hexdigest()
    dest, staged = staged_file(store, tmp_path, data)
    assert store.publish(staged, dest, size=len(data), sha256=digest, streamed_sha256=digest) == digest
    assert store.full_reads == 0 and store.hashed == 1
    assert open(dest, "rb").read() == data and store.entry(dest)["sha256"] == digest


def test_publish_reads_the_file_when_the_streamed_digest_differs_and_places_a_good_file(tmp_path):
    """A digest of stale bytes (read before they were final) must not fail a good file."""
    store = CountingStore(str(tmp_path / "state"))
    data = body(MiB)
    digest = hashlib.sha256(data).hexdigest()
    dest, staged = staged_file(store, tmp_path, data)
    assert store.publish(staged, dest, size=len(data), sha256=digest, streamed_sha256="0" * 64) == digest
    assert store.full_reads == 1 and open(dest, "rb").read() == data


def test_publish_fails_a_bad_file_whatever_the_streamed_digest_says_when_it_differs(tmp_path):
    store = CountingStore(str(tmp_path / "state"))
    data = body(MiB)
    digest = hashlib.sha256(data).hexdigest()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 1
    bad_digest = hashlib.sha256(bytes(bad)).hexdigest()
    dest, staged = staged_file(store, tmp_path, bytes(bad))
    with pytest.raises(VerifyError, match="differs from the expected"):
        store.publish(staged, dest, size=len(data), sha256=digest, streamed_sha256=bad_digest)
    assert store.full_reads == 1
    assert not os.path.exists(dest) and not os.path.exists(staged)


def test_publish_without_an_expected_sha256_records_the_streamed_one(tmp_path):
    store = CountingStore(str(tmp_path / "state"))
    data = body(MiB)
    digest = hashlib.sha256(data).hexdigest()
    dest, staged = staged_file(store, tmp_path, data)
    assert store.publish(staged, dest, size=len(data), streamed_sha256=digest) == digest
    assert store.full_reads == 0 and store.entry(dest)["sha256"] == digest
