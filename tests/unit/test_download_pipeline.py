"""The shared download pipeline, in-process on real files, with a fetcher of our own.

The real fetchers (aria2c, boto3) are exercised against nginx, the fault origin and moto in
tests/integration; here a fetcher that copies local files lets each promise of the pipeline be
attacked directly: one entry's unexpected exception is that entry's failure only, a whole-run
problem still gives every entry a result and a log line, the disk preflight keeps what fits,
and a stop request ends the run with every unfinished entry saying so.
"""

import hashlib
import os
import shutil
import sys
import threading

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import (  # noqa: E402
    DownloadRun,
    Entry,
    EntryProblem,
    RunError,
)


class CopyFetcher:
    """Fetches entries by copying files from a local folder; misbehaves on request."""

    downloader = "copy_fetch"
    items = "files"
    hash_unknown = False

    def __init__(self, source_dir, crash_probe=(), crash_fetch=(), run_error=None, block=None):
        self.source_dir = source_dir
        self.crash_probe = set(crash_probe)
        self.crash_fetch = set(crash_fetch)
        self.run_error = run_error
        self.block = block

    def validate(self, entry):
        if entry.name.startswith("bad"):
            raise EntryProblem("names starting with 'bad' are refused")

    def prepare(self, entries):
        if self.run_error:
            raise RunError(self.run_error)

    def probe_first(self, entry, store):
        return False

    def keep_without_probe(self, entry, store):
        return False

    def probe(self, entries, run):
        for entry in entries:
            if entry.name in self.crash_probe:
                raise KeyError("boom in probe")  # not the fetcher's own guard: the pipeline's
            entry.size = os.path.getsize(os.path.join(self.source_dir, entry.name))

    def identity(self, entry):
        return entry.name

    def fetch(self, entries, run):
        for entry in entries:
            if self.block is not None:
                self.block.wait()
                if run.stop.is_set():
                    return
            if entry.name in self.crash_fetch:
                run.settle(entry, ZeroDivisionError("boom in fetch"))
                continue
            shutil.copyfile(os.path.join(self.source_dir, entry.name), entry.staged)
            run.settle(entry)

    def describe(self, entry, error):
        return f"{type(error).__name__}: {error}"

    def discard_after(self, error):
        return False


@pytest.fixture
def world(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for index, name in enumerate(("a.bin", "b.bin", "c.bin", "big.bin", "bad.bin")):
        (source / name).write_bytes(bytes([65 + index]) * (300_000 if name == "big.bin" else 5_000))
    return tmp_path


def entries_for(world, names):
    return [Entry(i, name, str(world / "models" / name)) for i, name in enumerate(names)]


def run(world, fetcher, names, **kwargs):
    entries = entries_for(world, names)
    result = DownloadRun(fetcher, entries, str(world / "state"), log_file=str(world / "models.log"), **kwargs).run()
    return result, {r["name"]: r for r in result["results"]}, (world / "models.log").read_text()


def test_unexpected_exceptions_fail_only_their_entry(world):
    fetcher = CopyFetcher(str(world / "source"), crash_fetch={"b.bin"})
    result, by_name, log = run(world, fetcher, ["a.bin", "b.bin", "bad.bin", "c.bin"])
    assert [r["status"] for r in result["results"]] == ["downloaded", "failed", "failed", "downloaded"]
    assert by_name["b.bin"]["reason"] == "ZeroDivisionError: boom in fetch"
    assert by_name["bad.bin"]["reason"] == "files[2]: names starting with 'bad' are refused"
    assert result["failed_count"] == 2 and result["msg"].startswith("2 of 4 models failed: b.bin: ")
    assert "failed b.bin: ZeroDivisionError" in log and "summary: 2 downloaded, 0 present, 2 failed" in log
    assert not os.listdir(world / "state/staging")


def test_a_crash_while_asking_the_source_fails_those_entries_with_the_reason(world):
    result, by_name, _log = run(world, CopyFetcher(str(world / "source"), crash_probe={"a.bin"}), ["a.bin", "b.bin"])
    assert by_name["a.bin"]["status"] == "failed"
    assert by_name["a.bin"]["reason"].startswith("unexpected error while asking")
    assert "KeyError" in by_name["a.bin"]["reason"]


def test_a_whole_run_problem_gives_every_entry_a_result_and_the_log_a_line(world):
    fetcher = CopyFetcher(str(world / "source"), run_error="R2 credentials missing: set R2_ACCESS_KEY_ID")
    result, by_name, log = run(world, fetcher, ["a.bin", "b.bin"])
    assert [r["status"] for r in result["results"]] == ["failed", "failed"]
    assert all(r["reason"] == "R2 credentials missing: set R2_ACCESS_KEY_ID" for r in result["results"])
    assert result["msg"].startswith("R2 credentials missing: set R2_ACCESS_KEY_ID (2 of 2 models failed")
    assert (
        "FAILED before downloading: R2 credentials missing: set R2_ACCESS_KEY_ID; 2 model(s) not downloaded "
        "(a.bin, b.bin); the next start tries again"
    ) in log
    assert not (world / "state").exists(), "nothing is created for a run that cannot start"


def test_preflight_keeps_what_fits_in_order_and_fails_the_rest(world, small_tmpfs):
    tiny = small_tmpfs("200k")
    fetcher = CopyFetcher(str(world / "source"))
    entries = entries_for(world, ["a.bin", "big.bin", "b.bin"])
    for entry in entries:
        entry.dest = str(tiny / "models" / entry.name)
    result = DownloadRun(fetcher, entries, str(tiny / "state"), log_file=str(world / "models.log")).run()
    statuses = [(r["name"], r["status"]) for r in result["results"]]
    assert statuses == [("a.bin", "downloaded"), ("big.bin", "failed"), ("b.bin", "downloaded")]
    assert result["results"][1]["reason"].startswith("not enough disk space: needs 292.97 KB, ")
    assert (f"free on {tiny}") in result["results"][1]["reason"]


def test_present_files_are_checked_once_and_the_diff_is_truthful(world):
    fetcher = CopyFetcher(str(world / "source"))
    first, _by_name, _log = run(world, fetcher, ["a.bin", "b.bin"])
    assert first["changed"] and first["diff"]["before"] == ""
    second, by_name, log = run(world, fetcher, ["a.bin", "b.bin", "c.bin"])
    assert [r["status"] for r in second["results"]] == ["present", "present", "downloaded"]
    assert second["diff"]["before"].count("\n") == 2 and second["diff"]["after"].count("\n") == 3
    third, _by_name, _log = run(world, fetcher, ["a.bin", "b.bin", "c.bin"])
    assert not third["changed"] and third["hashed"] == 0


def test_check_mode_writes_nothing(world):
    result = DownloadRun(
        CopyFetcher(str(world / "source")),
        entries_for(world, ["a.bin"]),
        str(world / "state"),
        log_file=str(world / "models.log"),
        check_mode=True,
    ).run()
    assert result["results"][0]["status"] == "would_download" and result["bytes_needed"] == 5_000
    assert not (world / "state").exists() and not (world / "models.log").exists()


def test_a_stop_request_ends_the_run_and_says_so_for_every_unfinished_entry(world):
    class Signals:
        event = threading.Event()
        name = "SIGTERM"

    block = threading.Event()
    fetcher = CopyFetcher(str(world / "source"), block=block)
    signals = Signals()
    entries = entries_for(world, ["a.bin", "b.bin"])
    runner = DownloadRun(fetcher, entries, str(world / "state"), log_file=str(world / "models.log"), signals=signals)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=runner.run()))
    thread.start()
    signals.event.set()
    block.set()
    thread.join(10)
    result = outcome["result"]
    assert result["stopped"] is True
    assert [r["status"] for r in result["results"]] == ["failed", "failed"]
    assert all(r["reason"].startswith("stopped by SIGTERM before it finished") for r in result["results"])
    assert (
        "stopped by SIGTERM: 2 download(s) unfinished (a.bin, b.bin); they resume at the next start"
        in (world / "models.log").read_text()
    )
    assert (world / "state/copy_fetch.run.lock").read_text() == ""


def test_sha256_mismatch_places_nothing(world):
    entries = entries_for(world, ["a.bin"])
    entries[0].sha256 = hashlib.sha256(b"something else").hexdigest()
    result = DownloadRun(CopyFetcher(str(world / "source")), entries, str(world / "state")).run()
    assert result["results"][0]["status"] == "failed" and "sha256" in result["results"][0]["reason"]
    assert not os.path.exists(entries[0].dest)
