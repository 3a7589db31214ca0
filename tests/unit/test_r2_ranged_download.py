"""ranged_download: part planning, parallel writes at offsets, resume inside parts, retries, stop.

The source is a real file read by range (the transport is not what is under test here; the
S3 side is covered against moto in tests/integration/test_r2_fetch.py).
"""

import json
import os
import random
import sys
import threading

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download import (  # noqa: E402
    READ_CHUNK,
    DownloadJob,
    DownloadStopped,
    PartJournal,
    RangedDownloader,
    plan_parts,
)

KIB = 1024


class FileSource:
    """open_range over a real file; records every range asked for; can fail on purpose."""

    def __init__(self, path):
        self.path = path
        self.ranges = []
        self.lock = threading.Lock()
        self.break_after = {}  # start offset -> bytes to deliver before the connection "drops"
        self.refuse = set()  # start offsets answered with a permanent error

    def __call__(self, job, start, end):
        with self.lock:
            self.ranges.append((start, end))
            cut = self.break_after.pop(start, None)
        if start in self.refuse:
            raise PermissionError(f"refused {start}")
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read() if end is None else handle.read(end - start + 1)
        return Stream(data if cut is None else data[:cut])


class Stream:
    def __init__(self, data):
        self.data = data
        self.closed = False

    def read(self, size):
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    def close(self):
        self.closed = True


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "remote.bin"
    path.write_bytes(random.Random(5).randbytes(1000 * KIB + 123))
    return FileSource(path)


def job_for(source, tmp_path, etag='"v1"', name="remote.bin"):
    return DownloadJob(name, str(tmp_path / ("staged-" + name)), os.path.getsize(source.path), etag)


def test_plan_parts_covers_every_byte_once():
    assert plan_parts(0, 10, 20) == []
    assert plan_parts(19, 10, 20) == [(0, 18)]
    assert plan_parts(20, 10, 20) == [(0, 9), (10, 19)]
    assert plan_parts(25, 10, 20) == [(0, 9), (10, 19), (20, 24)]
    parts = plan_parts(10**9 + 7, 16 * 2**20, 32 * 2**20)
    assert parts[0][0] == 0 and parts[-1][1] == 10**9 + 6
    assert all(b[0] == a[1] + 1 for a, b in zip(parts, parts[1:]))


def test_parallel_parts_land_at_their_offsets(source, tmp_path):
    finished = []
    job = job_for(source, tmp_path)
    RangedDownloader(
        source, max_concurrency=4, part_size=64 * KIB, multipart_threshold=128 * KIB, on_finished=finished.append
    ).run([job])
    assert not job.failed, job.error
    assert finished == [job]
    assert open(job.staged, "rb").read() == source.path.read_bytes()
    assert len(source.ranges) == len(job.parts) == 16
    assert job.fetched_bytes == job.size
    assert journal_progress(job) == [end - start + 1 for start, end in job.parts]


def test_small_object_is_one_request(source, tmp_path):
    job = job_for(source, tmp_path)
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=10**7).run([job])
    assert source.ranges == [(0, job.size - 1)]


def journal_progress(job):
    """Bytes per part that the journal on disk records (as a new run would read it)."""
    part_size = job.parts[0][1] + 1 if len(job.parts) > 1 else job.size
    return PartJournal(job.staged, job.size, job.etag, part_size, job.parts).load(job.staged)


def test_resume_fetches_only_bytes_missing_from_the_journal(source, tmp_path):
    job = job_for(source, tmp_path)
    source.refuse = {5 * 64 * KIB, 9 * 64 * KIB}
    RangedDownloader(source, max_concurrency=3, part_size=64 * KIB, multipart_threshold=1).run([job])
    assert job.failed and isinstance(job.error, PermissionError)
    progress = journal_progress(job)
    assert progress[5] == 0 and progress[9] == 0

    source.refuse, source.ranges = set(), []
    again = job_for(source, tmp_path)
    RangedDownloader(source, max_concurrency=3, part_size=64 * KIB, multipart_threshold=1).run([again])
    assert not again.failed
    assert again.resumed_bytes == sum(progress)
    assert sum(end - start + 1 for start, end in source.ranges) == again.size - sum(progress)
    assert open(again.staged, "rb").read() == source.path.read_bytes()


def test_a_part_cut_off_in_the_middle_resumes_where_its_bytes_stop(source, tmp_path, monkeypatch):
    """What a SIGKILL leaves: a part half written and counted. Only the rest is asked for."""
    import ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download as ranged

    monkeypatch.setattr(ranged, "READ_CHUNK", 4 * KIB)
    source.break_after = {256 * KIB: 10 * KIB + 123}
    job = job_for(source, tmp_path)
    RangedDownloader(source, max_concurrency=2, part_size=256 * KIB, multipart_threshold=1, part_attempts=1).run([job])
    assert job.failed
    progress = journal_progress(job)
    # Counted chunk by chunk as they land; the bytes of a chunk cut short are written and counted too.
    assert progress[0] == 256 * KIB and progress[1] == 10 * KIB + 123
    source.ranges = []
    again = job_for(source, tmp_path)
    RangedDownloader(source, max_concurrency=2, part_size=256 * KIB, multipart_threshold=1).run([again])
    assert not again.failed
    assert (266 * KIB + 123, 512 * KIB - 1) in source.ranges and not [r for r in source.ranges if r[0] < 256 * KIB]
    assert again.fetched_bytes == again.size - sum(progress)
    assert open(again.staged, "rb").read() == source.path.read_bytes()


def test_a_journal_of_the_previous_format_is_taken_over(source, tmp_path):
    job = job_for(source, tmp_path)
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=1).run([job])
    with open(job.staged + ".parts", "w") as handle:
        json.dump({"version": 1, "size": job.size, "etag": job.etag, "part_size": 64 * KIB, "done": [0, 1, 2]}, handle)
    source.ranges = []
    again = job_for(source, tmp_path)
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=1).run([again])
    assert again.resumed_bytes == 3 * 64 * KIB and len(source.ranges) == len(again.parts) - 3


def test_a_stop_request_ends_the_run_quickly_with_every_counter_current(source, tmp_path):
    stop = threading.Event()

    def slow(job, start, end):
        stream = source(job, start, end)

        class Slow:
            def read(self, size):
                stop.set()  # the stop arrives while the first chunk is being read
                return stream.read(size)

            def close(self):
                stream.close()

        return Slow()

    job = job_for(source, tmp_path)
    finished = []
    RangedDownloader(
        slow, max_concurrency=2, part_size=64 * KIB, multipart_threshold=1, stop=stop, on_finished=finished.append
    ).run([job])
    assert isinstance(job.error, DownloadStopped) and finished == []
    progress = journal_progress(job)
    assert 0 < sum(progress) <= 2 * READ_CHUNK
    with open(job.staged, "rb") as handle, open(source.path, "rb") as original:
        for (start, _end), done in zip(job.parts, progress):
            handle.seek(start)
            original.seek(start)
            assert handle.read(done) == original.read(done), "a counter claims bytes that are not on disk"


@pytest.mark.parametrize("change", ["etag", "part_size", "truncated"])
def test_journal_of_other_content_is_not_trusted(source, tmp_path, change):
    job = job_for(source, tmp_path)
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=1).run([job])
    part_size = 64 * KIB
    etag = '"v1"'
    if change == "etag":
        etag = '"v2"'
    elif change == "part_size":
        part_size = 128 * KIB
    else:
        os.truncate(job.staged, 1000)
    source.ranges = []
    again = job_for(source, tmp_path, etag=etag)
    RangedDownloader(source, part_size=part_size, multipart_threshold=1).run([again])
    assert again.resumed_bytes == 0
    assert len(source.ranges) == len(again.parts), "everything must be fetched again"
    assert open(again.staged, "rb").read() == source.path.read_bytes()


def test_dropped_connection_resumes_inside_the_part(source, tmp_path):
    source.break_after = {64 * KIB: 1000}
    job = job_for(source, tmp_path)
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=1, retry_delay=0).run([job])
    assert not job.failed, job.error
    assert (64 * KIB + 1000, 128 * KIB - 1) in source.ranges, "the retry must start where the bytes stopped"
    assert open(job.staged, "rb").read() == source.path.read_bytes()


def test_one_failing_object_does_not_stop_the_others(source, tmp_path):
    bad = job_for(source, tmp_path, name="bad.bin")
    good = job_for(source, tmp_path, name="good.bin")

    def open_range(job, start, end):
        if job is bad:
            raise PermissionError("no")
        return source(job, start, end)

    finished = []
    RangedDownloader(
        open_range, max_concurrency=2, part_size=64 * KIB, multipart_threshold=1, on_finished=finished.append
    ).run([bad, good])
    assert bad.failed and not good.failed
    assert sorted(j.name for j in finished) == ["bad.bin", "good.bin"]
    assert open(good.staged, "rb").read() == source.path.read_bytes()


def test_too_many_bytes_is_an_error(source, tmp_path):
    def generous(job, start, end):
        return Stream(b"x" * (end - start + 2))

    job = job_for(source, tmp_path)
    RangedDownloader(generous, part_size=64 * KIB, multipart_threshold=1, part_attempts=1).run([job])
    assert job.failed and "more bytes" in str(job.error)


def test_journal_remove_is_idempotent(tmp_path):
    journal = PartJournal(str(tmp_path / "x"), 1, None, 1, [(0, 0)])
    journal.remove()
    journal.open([0])
    assert os.path.exists(journal.path)
    journal.remove()
    assert not os.path.exists(journal.path)


def test_a_source_without_ranges_starts_a_broken_stream_over(source, tmp_path):
    source.break_after = {0: 100 * KIB}
    job = DownloadJob("remote.bin", str(tmp_path / "staged"), os.path.getsize(source.path), None, ranges=False)
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=1, retry_delay=0).run([job])
    assert not job.failed, job.error
    assert len(job.parts) == 1 and [start for start, _end in source.ranges] == [0, 0]
    assert open(job.staged, "rb").read() == source.path.read_bytes()


def test_a_full_disk_is_not_retried(source, small_tmpfs):
    tiny = small_tmpfs("256k")
    job = DownloadJob("remote.bin", str(tiny / "staged"), None, None, ranges=False)  # size unknown: no fallocate
    RangedDownloader(source, part_size=64 * KIB, multipart_threshold=1, retry_delay=0).run([job])
    assert job.failed and job.error.errno == 28 and "cannot write the staging file" in str(job.error)
    assert len(source.ranges) == 1, "a full disk is not a reason to ask the server again"


class PrefixWatcher:
    """on_prefix that checks every report against the staging file: the bytes claimed final
    must already be the source's bytes on disk when the report is made."""

    def __init__(self, job, source):
        self.job = job
        self.expected = source.path.read_bytes()
        self.reports = []
        self.lies = []

    def __call__(self, upto):
        with open(self.job.staged, "rb") as handle:
            if handle.read(upto) != self.expected[:upto]:
                self.lies.append(upto)
        self.reports.append(upto)


@pytest.mark.parametrize("workers", [1, 4])
def test_the_finished_prefix_is_reported_as_it_grows_and_never_ahead_of_the_bytes(
    source, tmp_path, monkeypatch, workers
):
    import ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download as ranged

    monkeypatch.setattr(ranged, "READ_CHUNK", 16 * KIB)
    job = job_for(source, tmp_path)
    job.on_prefix = watcher = PrefixWatcher(job, source)
    RangedDownloader(source, max_concurrency=workers, part_size=64 * KIB, multipart_threshold=1).run([job])
    assert not job.failed
    assert watcher.lies == [], "a prefix was reported before its bytes were written"
    assert watcher.reports[-1] == job.size
    assert all(b >= a for a, b in zip(watcher.reports, watcher.reports[1:]))
    if workers == 1:  # with more, which part lands first is the scheduler's choice
        assert len(watcher.reports) >= job.size // (16 * KIB), "reported chunk by chunk, not only per part"


def test_a_resumed_job_reports_the_prefix_already_on_disk_before_fetching(source, tmp_path):
    job = job_for(source, tmp_path)
    source.refuse = {3 * 64 * KIB}
    RangedDownloader(source, max_concurrency=1, part_size=64 * KIB, multipart_threshold=1).run([job])
    assert job.failed
    source.refuse = set()
    again = job_for(source, tmp_path)
    again.on_prefix = watcher = PrefixWatcher(again, source)
    requests_at_first_report = []
    original = watcher.__call__

    def first(upto):
        if not requests_at_first_report:
            requests_at_first_report.append(len(source.ranges))
        original(upto)

    again.on_prefix = first
    source.ranges = []
    RangedDownloader(source, max_concurrency=1, part_size=64 * KIB, multipart_threshold=1).run([again])
    assert not again.failed and watcher.lies == []
    assert watcher.reports[0] == 3 * 64 * KIB and requests_at_first_report == [0]
    assert watcher.reports[-1] == again.size
