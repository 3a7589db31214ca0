"""aria2_batch hashes each file while aria2c still downloads it (prefix_hash.py), against real
aria2c and the nginx origin.

What is attacked: a wrong byte anywhere (first, middle, last) still fails the model and nothing
is published; a resumed partial is hashed from what is already on disk, and a partial whose
finished prefix was corrupted on disk is still caught; several files at once each get their
own digest; and the digest really is computed during the download (no full read at publish,
only the last pieces left to read at the end), which is the point of the change.
"""

import hashlib
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.ansible_run import run_module
from harness.model_vault import Vault
from harness.nginx import write_file
from harness.paths import REPO
from harness.throttle_proxy import ThrottleProxy

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.aria2 import ControlFile  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_fetcher import (  # noqa: E402
    HttpFetcher,
    http_entries,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import ModelStore  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import DownloadRun  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.prefix_hash import complete_prefix  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets  # noqa: E402

MiB = 1024 * 1024


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def vault(tmp_path):
    return Vault(tmp_path / "vault")


@pytest.fixture
def full_reads(monkeypatch):
    """How many times publish (or anything) read a whole file to hash it."""
    calls = []
    original = ModelStore.sha256_file

    def counting(self, path):
        calls.append(path)
        return original(self, path)

    monkeypatch.setattr(ModelStore, "sha256_file", counting)
    return calls


def in_process_run(vault, downloads, split=4, stop=None):
    """The module's code in-process (so its hashers can be looked at), real aria2c."""
    options = {
        "max-concurrent-downloads": 4,
        "split": split,
        "max-connection-per-server": split,
        "min-split-size": "1M",
        "timeout": 30,
        "max-tries": 3,
        "retry-wait": 1,
    }
    # Control files saved every second (the module: every 10 s), so that a stopped run's partial
    # is recent: these tests are about what is hashed, not about how often aria2c saves.
    fetcher = HttpFetcher(
        shutil.which("aria2c"), options, TargetSecrets(None, environ={}), retry_wait=1, auto_save_seconds=1
    )
    entries = http_entries(downloads)
    run = DownloadRun(fetcher, entries, str(vault.state), log_file=str(vault.log))
    if stop is not None:
        run.stop = stop
    return entries, run.run()


def corrupt(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x55]))


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_wrong_byte_anywhere_fails_that_model_and_publishes_nothing(make_origin, vault, tmp_path, where):
    """Two files at once through ansible: the origin serves one of them with one byte changed
    (its sha256 is of the right bytes); that one fails, the other is placed."""
    served = tmp_path / "served"
    size = 12 * MiB + 333
    good = write_file(served / "good.bin", size, seed=1)
    expected = write_file(served / "bad.bin", size, seed=2)
    corrupt(served / "bad.bin", {"start": 0, "middle": size // 2, "end": size - 1}[where])
    origin = make_origin(served, limit_rate="8m")
    downloads = [
        {"url": f"{origin.url}/public/{name}", "dest": vault.dest(name), "sha256": digest}
        for name, digest in (("good.bin", good), ("bad.bin", expected))
    ]
    result, _run = run_module(
        "aria2_batch",
        {
            "state_dir": str(vault.state),
            "log_file": str(vault.log),
            "downloads": downloads,
            "split": 4,
            "min_split_size": "1M",
            "fail_on_error": False,
        },
    )
    by_name = {r["name"]: r for r in result["results"]}
    assert by_name["good.bin"]["status"] == "downloaded" and sha(vault.dest("good.bin")) == good
    bad = by_name["bad.bin"]
    assert bad["status"] == "failed"
    assert "verification failed" in bad["reason"] and f"differs from the expected {expected}" in bad["reason"]
    assert not os.path.exists(vault.dest("bad.bin")), "a file with a wrong byte must never be published"
    assert vault.staged() == [], "the wrong partial is discarded, so the next run starts it over"
    assert result["failed_count"] == 1 and result["downloaded"] == 1


def test_two_files_at_once_are_hashed_while_they_download(make_origin, vault, tmp_path, full_reads):
    """No file is read again at publish, and what was left to hash after the last byte is a
    small part of each file (the in-order window and one poll), not the whole file."""
    served = tmp_path / "served"
    size = 24 * MiB + 17
    digests = {name: write_file(served / name, size, seed=i) for i, name in enumerate(("a.bin", "b.bin"))}
    # A proxy that limits each connection (nginx's limit_rate is per request and sometimes lets a
    # whole file through in one burst, which leaves nothing to hash while it downloads): 2 MiB/s
    # per connection, 4 per file, so each file takes about three seconds.
    origin = make_origin(served)
    with ThrottleProxy(origin.port, 2 * MiB) as proxy:
        entries, result = in_process_run(
            vault,
            [
                {"url": f"{proxy.endpoint}/public/{name}", "dest": vault.dest(name), "sha256": digest}
                for name, digest in digests.items()
            ],
        )
    assert result["downloaded"] == 2, result["msg"]
    for name, digest in digests.items():
        assert sha(vault.dest(name)) == digest
    assert full_reads == [], "publish read a file again instead of taking the digest from the download"
    assert result["hashed"] == 2
    for entry in entries:
        assert entry.hasher is not None
        assert entry.hasher.read_at_finish < size // 2, (
            f"{entry.name}: {entry.hasher.read_at_finish / MiB:.1f} of {size / MiB:.1f} MiB were hashed after the download ended"
        )


def test_files_without_a_sha256_are_hashed_while_they_download_and_not_read_again(
    make_origin, vault, tmp_path, full_reads
):
    """Nothing to compare with, but the digest of what was fetched is recorded (the pod lock
    holds it), and it costs no read after the download."""
    served = tmp_path / "served"
    digest = write_file(served / "n.bin", 3 * MiB, seed=5)
    origin = make_origin(served)
    entries, result = in_process_run(vault, [{"url": f"{origin.url}/public/n.bin", "dest": vault.dest("n.bin")}])
    assert result["downloaded"] == 1 and result["hashed"] == 1 and full_reads == []
    assert entries[0].hasher is not None
    got = result["results"][0]
    assert (got["sha256"], got["sha256_from"]) == (digest, "download"), got


def _stop_when_staged(vault, at_least, stop):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        controls = list((vault.state / "staging").glob("*.aria2")) if (vault.state / "staging").exists() else []
        control = ControlFile.read(str(controls[0])) if controls else None
        if control is not None and complete_prefix(control.bitfield, control.piece_length, control.total) >= at_least:
            stop.set()
            return
        time.sleep(0.05)
    stop.set()


def _partial_run(vault, proxy, name, digest, at_least):
    """Download name through a slow proxy (per connection, not per request as nginx's
    limit_rate) and stop the run once aria2c has saved at least `at_least` finished bytes from
    the start; returns the partial and that prefix."""
    stop = threading.Event()
    watcher = threading.Thread(target=_stop_when_staged, args=(vault, at_least, stop), daemon=True)
    watcher.start()
    _entries, result = in_process_run(
        vault, [{"url": f"{proxy.endpoint}/public/{name}", "dest": vault.dest(name), "sha256": digest}], stop=stop
    )
    watcher.join()
    assert result["downloaded"] == 0 and "stopped" in result["results"][0]["reason"], result["results"]
    (staged,) = vault.staged()
    control = ControlFile.read(str(staged) + ".aria2")
    prefix = complete_prefix(control.bitfield, control.piece_length, control.total)
    assert prefix >= at_least
    return staged, prefix


def test_a_resumed_download_hashes_the_partial_already_on_disk_first(make_origin, vault, tmp_path, full_reads):
    served = tmp_path / "served"
    size = 20 * MiB
    digest = write_file(served / "r.bin", size, seed=7)
    origin = make_origin(served)
    with ThrottleProxy(origin.port, 512 * 1024) as proxy:
        _staged, prefix = _partial_run(vault, proxy, "r.bin", digest, 4 * MiB)
        proxy.rate = 2 * MiB  # the resumed run's new connections: faster, the same URL
        entries, result = in_process_run(
            vault, [{"url": f"{proxy.endpoint}/public/r.bin", "dest": vault.dest("r.bin"), "sha256": digest}]
        )
    assert result["downloaded"] == 1, result["msg"]
    assert "resumed" in result["results"][0]["reason"]
    assert 0 < result["results"][0]["fetched_bytes"] <= size - prefix
    assert sha(vault.dest("r.bin")) == digest and full_reads == []
    assert entries[0].hasher.read_at_finish < size // 2


def test_a_resumed_partial_corrupted_on_disk_is_caught_and_not_published(make_origin, vault, tmp_path):
    """A byte of the finished prefix changes in staging between runs (a bad disk, a crash that
    lost a write): the resumed run's digest includes it, the file fails, nothing is placed,
    and the run after that downloads it cleanly."""
    served = tmp_path / "served"
    size = 20 * MiB
    digest = write_file(served / "c.bin", size, seed=9)
    origin = make_origin(served)
    with ThrottleProxy(origin.port, 512 * 1024) as proxy:
        staged, prefix = _partial_run(vault, proxy, "c.bin", digest, 4 * MiB)
        corrupt(staged, prefix // 2)
        proxy.rate = 8 * MiB
        download = [{"url": f"{proxy.endpoint}/public/c.bin", "dest": vault.dest("c.bin"), "sha256": digest}]
        _entries, result = in_process_run(vault, download)
        (only,) = result["results"]
        assert only["status"] == "failed" and f"differs from the expected {digest}" in only["reason"]
        assert not os.path.exists(vault.dest("c.bin")) and vault.staged() == []
        _entries, again = in_process_run(vault, download)
    assert again["downloaded"] == 1 and sha(vault.dest("c.bin")) == digest


def test_files_the_origin_serves_with_the_token_are_hashed_while_downloading_too(
    make_origin, vault, tmp_path, full_reads
):
    """The in-process path (the origin serves the bytes and needs the token): the good file is
    never read again at publish, the one served with a wrong middle byte still fails."""
    served = tmp_path / "served"
    size = 20 * MiB + 5
    good = write_file(served / "good.bin", size, seed=3)
    expected = write_file(served / "bad.bin", size, seed=4)
    corrupt(served / "bad.bin", size // 2)
    origin = make_origin(served, limit_rate="4m")
    entries, result = in_process_run(
        vault,
        [
            {
                "url": f"{origin.url}/private/{name}",
                "dest": vault.dest(name),
                "sha256": digest,
                "token": origin.token,
            }
            for name, digest in (("good.bin", good), ("bad.bin", expected))
        ],
    )
    by_name = {r["name"]: r for r in result["results"]}
    assert by_name["good.bin"]["status"] == "downloaded" and sha(vault.dest("good.bin")) == good
    assert (
        by_name["bad.bin"]["status"] == "failed"
        and f"differs from the expected {expected}" in by_name["bad.bin"]["reason"]
    )
    assert not os.path.exists(vault.dest("bad.bin"))
    assert all(entry.in_process and entry.hasher is not None for entry in entries)
    # The good file: no full read. The bad one: exactly one, the read that confirms the mismatch.
    assert [Path(p).name.split(".", 1)[1] for p in full_reads] == ["bad.bin"]
