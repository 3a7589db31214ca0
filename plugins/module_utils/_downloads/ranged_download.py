# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parallel ranged downloads into pre-allocated staging files, resumable part by part.

Transport-agnostic: the caller gives ``open_range(job, start, end)`` returning a readable
stream of exactly bytes ``start..end`` (inclusive) of the job's object; r2_fetcher.py does
that with S3 ranged GETs. One thread pool serves every part of every object, so small
objects and the parts of big ones all run side by side up to ``max_concurrency``.

Resume: each staging file has a small side file, ``<staging>.parts``, listing the parts that
are fully written, together with the object's size, ETag and the part size used. It is
rewritten atomically after every finished part, so a SIGKILLed run leaves an exact record;
the next run re-fetches only the missing parts, and only when size, ETag and part size still
match (otherwise the partial is of other content and is started over). The journal guards
against killed processes; a power cut can lose written pages, which the sha256 check at
publish catches when the manifest gives one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

JOURNAL_SUFFIX = ".parts"
JOURNAL_VERSION = 1
READ_CHUNK = 1024 * 1024
MIB = 1024 * 1024


def plan_parts(size, part_size, multipart_threshold):
    """Inclusive byte ranges [(start, end), ...] covering size bytes.

    Objects below the threshold are one part (a plain GET); bigger ones are split into
    part_size pieces, the last one shorter.
    """
    if size <= 0:
        return []
    if size < multipart_threshold:
        return [(0, size - 1)]
    return [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]


class PartJournal:
    """The ``<staging>.parts`` side file: which parts of which object version are on disk."""

    def __init__(self, staged, size, etag, part_size):
        self.path = staged + JOURNAL_SUFFIX
        self.identity = {"size": size, "etag": etag, "part_size": part_size}

    def load(self, staged):
        """Indices of finished parts, or an empty set when nothing can be trusted."""
        try:
            with open(self.path) as handle:
                data = json.load(handle)
            staged_size = os.path.getsize(staged)
        except (OSError, ValueError):
            return set()
        if not isinstance(data, dict) or data.get("version") != JOURNAL_VERSION:
            return set()
        if any(data.get(k) != v for k, v in self.identity.items()):
            return set()
        if staged_size != self.identity["size"]:
            return set()
        return set(int(i) for i in data.get("done", []))

    def save(self, done):
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".parts.", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(dict(self.identity, version=JOURNAL_VERSION, done=sorted(done)), handle)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def remove(self):
        try:
            os.unlink(self.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise


class DownloadJob:
    """One object to fetch into ``staged``. The caller sets ``context`` for its own use."""

    def __init__(self, name, staged, size, etag, context=None):
        self.name = name
        self.staged = staged
        self.size = size
        self.etag = etag
        self.context = context
        self.parts = []
        self.done = set()
        self.resumed_parts = 0
        self.fetched_bytes = 0
        self.requests = 0
        self.error = None
        self.started = None
        self.seconds = 0.0
        self._fd = None
        self._journal = None
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def failed(self):
        return self.error is not None


class RangedDownloader:
    """Fetch many DownloadJobs with one pool of ``max_concurrency`` threads.

    ``open_range(job, start, end)`` -> object with ``read(n)`` and optionally ``close()``.
    ``is_transient(exc)`` -> True for errors worth retrying the rest of a part (a dropped
    connection mid-body); request-level retries belong to the transport.
    ``on_finished(job)`` runs in a worker thread once a job has all parts (or failed), so
    verification and publish of one object overlap the downloads of the others.
    """

    def __init__(self, open_range, max_concurrency=32, part_size=8 * MIB,
                 multipart_threshold=16 * MIB, is_transient=None, on_finished=None,
                 part_attempts=3, retry_delay=0.5):
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

    # -- preparing ---------------------------------------------------------------------------
    def prepare(self, job):
        """Plan parts, restore finished ones from the journal, open and size the staging file."""
        job.parts = plan_parts(job.size, self.part_size, self.multipart_threshold)
        part_size = self.part_size if len(job.parts) > 1 else job.size
        job._journal = PartJournal(job.staged, job.size, job.etag, part_size)
        job.done = job._journal.load(job.staged) if os.path.exists(job.staged) else set()
        job.done &= set(range(len(job.parts)))
        job.resumed_parts = len(job.done)
        if not job.done:
            # Nothing trustworthy on disk: start from an empty, fully allocated file so a full
            # disk is found now, not after most of the bytes were fetched.
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
        job._pending = len(job.parts) - len(job.done)

    # -- running -----------------------------------------------------------------------------
    def run(self, jobs):
        """Download every job; errors end up in ``job.error``, never raised."""
        work = []
        for job in jobs:
            job.started = time.monotonic()
            try:
                self.prepare(job)
            except (IOError, OSError) as exc:
                job.error = exc
                self._finish(job)
                continue
            if job._pending == 0:
                self._finish(job)
                continue
            work.extend((job, index) for index in range(len(job.parts)) if index not in job.done)
        if not work:
            return jobs
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(work))) as pool:
            # Parts are queued object by object, so the first objects complete first.
            for future in [pool.submit(self._run_part, job, index) for job, index in work]:
                future.result()
        return jobs

    def _run_part(self, job, index):
        if job.failed:
            return self._part_over(job)
        start, end = job.parts[index]
        progress = [start]  # next byte to write; _copy_range moves it on, so a retry resumes there
        attempt = 0
        while True:
            try:
                self._copy_range(job, progress, end)
                break
            except Exception as exc:  # pylint: disable=broad-except
                attempt += 1
                if job.failed:
                    break
                if attempt >= self.part_attempts or not self.is_transient(exc):
                    with job._lock:
                        if job.error is None:
                            job.error = exc
                    break
                time.sleep(self.retry_delay * attempt)
        if not job.failed:
            with job._lock:
                job.done.add(index)
                try:
                    job._journal.save(job.done)
                except (IOError, OSError) as exc:
                    job.error = exc
        return self._part_over(job)

    def _copy_range(self, job, progress, end):
        """Write bytes progress[0]..end of the object at their offsets, advancing progress[0]."""
        position = progress[0]
        with job._lock:
            job.requests += 1
        stream = self.open_range(job, position, end)
        try:
            while position <= end:
                chunk = stream.read(min(READ_CHUNK, end - position + 1))
                if not chunk:
                    raise IOError("connection closed after %d of %d bytes of %s"
                                  % (position, job.size, job.name))
                written = os.pwrite(job._fd, chunk, position)
                position += written
                progress[0] = position
                with job._lock:
                    job.fetched_bytes += written
            if stream.read(1):
                raise IOError("the server sent more bytes than the %s range asked for" % job.name)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def _part_over(self, job):
        with job._lock:
            job._pending -= 1
            last = job._pending == 0
        if last:
            self._finish(job)

    def _finish(self, job):
        if job._fd is not None:
            os.close(job._fd)
            job._fd = None
        job.seconds = time.monotonic() - (job.started or time.monotonic())
        self.on_finished(job)

    @staticmethod
    def forget_journal(staged):
        """Remove the part journal of a staging file (after publish or discard)."""
        PartJournal(staged, 0, None, 0).remove()
