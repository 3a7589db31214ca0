# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parallel ranged downloads into pre-allocated staging files, resumable inside every part.

Transport-agnostic: the caller gives ``open_range(job, start, end)`` returning a readable
stream of exactly bytes ``start..end`` (inclusive) of the job's object. r2_fetcher.py does
that with S3 ranged GETs, http_origin.py with HTTP ranged GETs that carry a token only to its
origin. One thread pool serves every part of every object, so small objects and the parts of
big ones all run side by side up to ``max_concurrency``.

Resume: each staging file has a side file, ``<staging>.parts``: one JSON line naming the
object (size, ETag, part size, number of parts), then one 8-byte counter per part holding how
many bytes of that part are on disk. A counter is written (one ``pwrite``, in place) right
after the bytes it counts, so a SIGKILLed run leaves counters that never claim more than is
written; the next run continues every part where it stopped and loses at most the chunk that
was in flight per part (``READ_CHUNK``). A journal of another object version (size, ETag or
part size differ) is not trusted: the partial is started over. The journal guards against
killed processes; a power cut can lose written pages, which the sha256 check at publish
catches when the manifest gives one.

An object of unknown size (an HTTP origin without Content-Length) is one streamed part with
no journal: it starts over when interrupted.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

JOURNAL_SUFFIX = ".parts"
JOURNAL_VERSION = 2
COUNTER = struct.Struct(">Q")
# Per part in flight (32 at once by default): 256 KiB keeps r2_fetch's peak RSS at 4 x 1 GiB
# under 100 MiB (1 MiB reads left glibc's arenas holding about 130 MiB) and a killed part loses
# less; the extra reads cost nothing measurable next to the network.
READ_CHUNK = 256 * 1024
MIB = 1024 * 1024
# After a stop request, how long the main thread waits for parts to notice it.
STOP_GRACE_SECONDS = 1.0


class DownloadStopped(Exception):
    """The run was asked to stop; the part keeps what it wrote and resumes next time."""


class StagingWriteError(OSError):
    """Writing the staging file failed (a full disk): never worth a retry of the request."""


def plan_parts(size, part_size, multipart_threshold):
    """Inclusive byte ranges [(start, end), ...] covering size bytes.

    Objects below the threshold are one part (a plain GET); bigger ones are split into
    part_size pieces, the last one shorter. An unknown size is one open-ended part.
    """
    if size is None:
        return [(0, None)]
    if size <= 0:
        return []
    if size < multipart_threshold:
        return [(0, size - 1)]
    return [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]


class PartJournal:
    """The ``<staging>.parts`` side file: bytes on disk per part of one object version."""

    def __init__(self, staged, size, etag, part_size, parts):
        self.path = staged + JOURNAL_SUFFIX
        self.identity = {"size": size, "etag": etag, "part_size": part_size, "parts": len(parts)}
        self.lengths = [end - start + 1 for start, end in parts]
        self._fd = None
        self._offset = 0

    def load(self, staged):
        """Bytes on disk per part, or None when nothing can be trusted."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
            staged_size = os.path.getsize(staged)
        except OSError:
            return None
        if staged_size != self.identity["size"]:
            return None
        header, newline, counters = data.partition(b"\n")
        try:
            meta = json.loads(header.decode("utf-8"))
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        if meta.get("version") == 1:
            return self._load_v1(meta)
        if meta.get("version") != JOURNAL_VERSION or not newline:
            return None
        if any(meta.get(k) != v for k, v in self.identity.items()):
            return None
        if len(counters) != COUNTER.size * len(self.lengths):
            return None
        progress = [COUNTER.unpack_from(counters, COUNTER.size * i)[0] for i in range(len(self.lengths))]
        return [min(done, length) for done, length in zip(progress, self.lengths)]

    def _load_v1(self, meta):
        """A journal of the previous format (finished parts only), left by an older run."""
        if any(meta.get(k) != self.identity[k] for k in ("size", "etag", "part_size")):
            return None
        done = set(int(i) for i in meta.get("done", []))
        return [length if i in done else 0 for i, length in enumerate(self.lengths)]

    def open(self, progress):
        """Write the journal afresh for `progress` and keep it open for update()."""
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".parts.", dir=directory)
        header = json.dumps(dict(self.identity, version=JOURNAL_VERSION), sort_keys=True).encode() + b"\n"
        try:
            os.write(fd, header + b"".join(COUNTER.pack(done) for done in progress))
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._fd = fd
        self._offset = len(header)

    def update(self, index, done):
        """Record that `done` bytes of part `index` are on disk (one in-place write)."""
        os.pwrite(self._fd, COUNTER.pack(done), self._offset + COUNTER.size * index)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self):
        self.close()
        try:
            os.unlink(self.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise


class DownloadJob:
    """One object to fetch into ``staged``. The caller sets ``context`` for its own use."""

    def __init__(self, name, staged, size, etag, context=None, ranges=True):
        self.name = name
        self.staged = staged
        self.size = size
        self.etag = etag
        self.context = context
        # False: the source ignores byte ranges, so one request for everything and no resume.
        self.ranges = ranges
        self.parts = []
        self.progress = []
        self.resumed_bytes = 0
        self.fetched_bytes = 0
        self.requests = 0
        self.error = None
        self.started = None
        self.seconds = 0.0
        self._fd = None
        self._journal = None
        self._lock = threading.Lock()
        self._pending = 0
        self._finished = False
        # on_prefix(upto): bytes [0, upto) are written and final (prefix_hash.PrefixHasher.extend);
        # called as the lowest unfinished part advances, parts being written front to back.
        self.on_prefix = None
        self._first_open = 0

    @property
    def failed(self):
        return self.error is not None

    @property
    def stopped(self):
        return isinstance(self.error, DownloadStopped)

    @property
    def done_bytes(self):
        return sum(self.progress)


class RangedDownloader:
    """Fetch many DownloadJobs with one pool of ``max_concurrency`` threads.

    ``open_range(job, start, end)`` -> object with ``read(n)`` and optionally ``close()``
    (``end`` is None for an object of unknown size: read to the end).
    ``is_transient(exc)`` -> True for errors worth retrying the rest of a part (a dropped
    connection mid-body); request-level retries belong to the transport.
    ``on_finished(job)`` runs in a worker thread once a job has all parts (or failed), so
    verification and publish of one object overlap the downloads of the others.
    ``stop`` (a threading.Event) ends the run early: parts stop between chunks, their
    counters current, and run() returns within about a second; unfinished jobs fail with
    DownloadStopped (on_finished is not called for them).
    """

    def __init__(
        self,
        open_range,
        max_concurrency=32,
        part_size=8 * MIB,
        multipart_threshold=16 * MIB,
        is_transient=None,
        on_finished=None,
        part_attempts=3,
        retry_delay=0.5,
        stop=None,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self.open_range = open_range
        self.max_concurrency = max_concurrency
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.is_transient = is_transient or (lambda exc: isinstance(exc, (IOError, OSError)))
        self.on_finished = on_finished or (lambda job: None)
        self.part_attempts = part_attempts
        self.retry_delay = retry_delay
        self.stop = stop or threading.Event()

    # -- preparing ---------------------------------------------------------------------------
    def prepare(self, job):
        """Plan parts, restore progress from the journal, open and size the staging file."""
        job.parts = plan_parts(job.size, self.part_size, self.multipart_threshold if job.ranges else float("inf"))
        if job.size is None:
            job.progress = [0]
            job._fd = os.open(job.staged, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            job._pending = 1
            return
        part_size = self.part_size if len(job.parts) > 1 else job.size
        job._journal = PartJournal(job.staged, job.size, job.etag, part_size, job.parts)
        progress = job._journal.load(job.staged) if job.ranges and os.path.exists(job.staged) else None
        if not progress or not any(progress):
            # Nothing trustworthy on disk: start from an empty, fully allocated file so a full
            # disk is found now, not after most of the bytes were fetched.
            progress = [0] * len(job.parts)
            job._journal.remove()
            fd = os.open(job.staged, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if job.size:
                    try:
                        os.posix_fallocate(fd, 0, job.size)
                    except OSError as exc:
                        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                            raise
                        os.ftruncate(fd, job.size)
            except BaseException:
                os.close(fd)
                raise
        else:
            fd = os.open(job.staged, os.O_RDWR)
        job._fd = fd
        job.progress = progress
        job.resumed_bytes = sum(progress)
        job._journal.open(progress)
        job._pending = sum(1 for index, done in enumerate(progress) if done < self._length(job, index))
        self._advance_prefix(job)  # a resumed partial: what is already on disk, first

    def _advance_prefix(self, job):
        """Tell job.on_prefix how far the file is complete from its first byte: the finished
        parts from the start, plus what the first unfinished one has written (a part is
        written front to back, its counter after its bytes)."""
        if job.on_prefix is None or job.size is None:
            return
        with job._lock:
            while job._first_open < len(job.parts) and job.progress[job._first_open] == self._length(
                job, job._first_open
            ):
                job._first_open += 1
            if job._first_open == len(job.parts):
                upto = job.size
            else:
                upto = job.parts[job._first_open][0] + job.progress[job._first_open]
            if upto:
                job.on_prefix(upto)  # under the lock, so the reports never go backwards (it is quick)

    @staticmethod
    def _length(job, index):
        start, end = job.parts[index]
        return None if end is None else end - start + 1

    # -- running -----------------------------------------------------------------------------
    def run(self, jobs):
        """Download every job; errors end up in ``job.error``, never raised."""
        work = []
        for job in jobs:
            job.started = time.monotonic()
            try:
                self.prepare(job)
            except OSError as exc:
                job.error = exc
                self._finish(job)
                continue
            if job._pending == 0:
                self._finish(job)
                continue
            work.extend(
                (job, index) for index in range(len(job.parts)) if job.progress[index] != self._length(job, index)
            )
        if not work:
            return jobs
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(work)))
        # Parts are queued object by object, so the first objects complete first.
        futures = [pool.submit(self._run_part, job, index) for job, index in work]
        pending = set(futures)
        stop_seen = None
        while pending:
            _done, pending = wait(pending, timeout=0.2)
            if self.stop.is_set():
                stop_seen = stop_seen or time.monotonic()
                if time.monotonic() - stop_seen >= STOP_GRACE_SECONDS:
                    break
        pool.shutdown(wait=not pending, cancel_futures=True)
        for job in jobs:
            if not job._finished and self.stop.is_set():
                with job._lock:
                    if job.error is None:
                        job.error = DownloadStopped("stopped")
                if not pending:
                    self._close(job)
                # Else a part may still be between a read and its write: its descriptors stay
                # open (closing them could let a new file take their numbers) until the process,
                # which is stopping, exits.
        return jobs

    def _run_part(self, job, index):
        if job.failed or self.stop.is_set():
            if self.stop.is_set():
                with job._lock:
                    if job.error is None:
                        job.error = DownloadStopped("stopped")
            return self._part_over(job)
        attempt = 0
        while True:
            try:
                self._copy_range(job, index)
                break
            except Exception as exc:  # pylint: disable=broad-except
                attempt += 1
                if job.failed:
                    break
                final = isinstance(exc, (DownloadStopped, StagingWriteError))
                if final or attempt >= self.part_attempts or not self.is_transient(exc):
                    with job._lock:
                        if job.error is None:
                            job.error = exc
                    break
                if not job.ranges:
                    # A source without byte ranges cannot continue mid-way: the retry starts over.
                    job.progress[index] = 0
                time.sleep(self.retry_delay * attempt)
        return self._part_over(job)

    def _copy_range(self, job, index):
        """Write the rest of part `index` at its offsets, counting progress as it goes."""
        start, end = job.parts[index]
        position = start + job.progress[index]
        with job._lock:
            job.requests += 1
        stream = self.open_range(job, position, end)
        try:
            while end is None or position <= end:
                if self.stop.is_set():
                    raise DownloadStopped("stopped")
                want = READ_CHUNK if end is None else min(READ_CHUNK, end - position + 1)
                chunk = stream.read(want)
                if not chunk:
                    if end is None:
                        job.size = position
                        return
                    raise OSError(f"connection closed after {position} of {job.size} bytes of {job.name}")
                written = self._write(job, chunk, position)
                position += written
                job.progress[index] = position - start
                if job._journal is not None:
                    job._journal.update(index, position - start)
                with job._lock:
                    job.fetched_bytes += written
                if index == job._first_open:
                    self._advance_prefix(job)
            if stream.read(1):
                raise OSError(f"the server sent more bytes than the {job.name} range asked for")
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    @staticmethod
    def _write(job, chunk, position):
        """Write all of chunk at position (a write may come back short, at the edge of a full disk)."""
        view = memoryview(chunk)
        while view:
            try:
                written = os.pwrite(job._fd, view, position)
            except OSError as exc:
                raise StagingWriteError(
                    exc.errno, f"cannot write the staging file {job.staged}: {exc.strerror}"
                ) from exc
            if written <= 0:
                raise StagingWriteError(28, f"cannot write the staging file {job.staged}: nothing was written")
            view = view[written:]
            position += written
        return len(chunk)

    def _part_over(self, job):
        with job._lock:
            job._pending -= 1
            last = job._pending == 0
        if last:
            self._finish(job)

    def _close(self, job):
        if job._journal is not None:
            job._journal.close()
        if job._fd is not None:
            os.close(job._fd)
            job._fd = None

    def _finish(self, job):
        with job._lock:
            if job._finished:
                return
            job._finished = True
        self._close(job)
        job.seconds = time.monotonic() - (job.started or time.monotonic())
        if not job.stopped:
            self.on_finished(job)
