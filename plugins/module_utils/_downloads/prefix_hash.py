# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hash a staging file while it is still being downloaded: the sha256 of its completed prefix.

A downloader writes a file out of order (aria2c's ranged connections, r2_fetch's parts), but
sha256 can only be computed front to back. So the downloader reports how far the file is
complete *from its first byte* (``extend(upto)``: bytes ``[0, upto)`` are final on disk and
will not be written again), and a thread of this hasher reads and hashes up to there as the
prefix grows. When the download ends, ``finish(size)`` reads what is left (normally the last
pieces, a moment's work) and returns the digest, so the check before publishing no longer reads
the whole file after the last byte arrived.

The digest is only a shortcut to the answer a full read would give, never a weaker one:

* ``finish`` returns None (the caller then hashes the whole file) when reading failed, the
  file at the path is no longer the one that was read (replaced), or it is not ``size`` long;
* a caller that gets a digest other than the one it expects re-reads the whole file before
  calling it a mismatch (model_store.publish), so only a full read can fail a download, and a
  digest that matches is of bytes that were final when they were read.
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.early_writeback import start_writeback

READ_CHUNK = 1024 * 1024
# Each hashed stretch of this size is handed to the disk at once (early_writeback.py), so the
# fsync before publishing does not write the whole file after its last byte.
WRITEBACK_STEP = 16 * 1024 * 1024


class Turns:
    """A lock that is handed over in the order it was asked for (``with turns:``). A plain Lock
    is not: a thread that releases it and asks again at once usually gets it back, and the
    other hashers would wait until that file is done."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue = collections.deque()

    def __enter__(self):
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket:
                self._cond.wait()

    def __exit__(self, *exc):
        with self._cond:
            self._queue.popleft()
            self._cond.notify_all()


# The hashers' threads take turns, one chunk at a time: the downloads run side by side, but
# their hashing uses one core, whatever the number of files. aria2c is one thread that needs a
# core of its own at full speed; four files hashed at once would take both cores of a small pod
# from it, and one core's sha256 still outruns the download (so the prefix keeps up).
_ONE_CORE = Turns()


def leading_pieces(bitfield):
    """How many pieces from index 0 on are complete in an aria2 bitfield (bytes, or the hex
    string its RPC gives); the highest bit of the first byte is piece 0."""
    if isinstance(bitfield, str):
        try:
            bitfield = bytes.fromhex(bitfield)
        except ValueError:
            return 0
    count = 0
    for byte in bitfield:
        if byte == 0xFF:
            count += 8
            continue
        mask = 0x80
        while mask and byte & mask:
            count += 1
            mask >>= 1
        break
    return count


def complete_prefix(bitfield, piece_length, total):
    """Bytes from the start of the file that a bitfield of finished pieces says are on disk."""
    if not piece_length or not total:
        return 0
    return min(total, leading_pieces(bitfield) * int(piece_length))


class PrefixHasher:
    """``h = PrefixHasher(path); h.extend(n) ...; digest = h.finish(size)``; ``cancel()`` on a
    stop. One reading thread, started by the first extend() past 0, so hashers of downloads
    that are still queued cost nothing."""

    def __init__(self, path, chunk=READ_CHUNK):
        self.path = path
        self.chunk = chunk
        self.position = 0
        self.written_back = 0  # bytes [0, written_back) were handed to the disk's writeback
        self.read_at_finish = 0  # bytes finish() still had to read: what hashing added after the download
        self.error = None
        self._digest = hashlib.sha256()
        self._target = 0
        self._closing = False
        self._cancelled = False
        self._handle = None
        self._cond = threading.Condition()
        self._thread = None

    def extend(self, upto):
        """Bytes [0, upto) of the file are complete and final: hash up to there."""
        with self._cond:
            if upto <= self._target or self._closing:
                return
            self._target = upto
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="prefix-hash", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _work(self):
        buffer = bytearray(self.chunk)
        view = memoryview(buffer)
        try:
            while True:
                with self._cond:
                    while self._target <= self.position and not self._closing and not self._cancelled:
                        self._cond.wait()
                    if self._cancelled or self._target <= self.position:
                        return
                    upto = self._target
                self._read_to(upto, view, turns=_ONE_CORE)
        except OSError as exc:
            self.error = exc
        finally:
            if self._cancelled:
                self._close(from_thread=True)

    def _read_to(self, upto, view, turns=None):
        if self._handle is None:
            self._handle = open(self.path, "rb")  # pylint: disable=consider-using-with
        while self.position < upto and not self._cancelled:
            if turns is None:
                self._read_chunk(upto, view)
            else:
                with turns:
                    self._read_chunk(upto, view)
            if self.position - self.written_back >= WRITEBACK_STEP:
                start_writeback(self._handle.fileno(), self.written_back, self.position - self.written_back)
                self.written_back = self.position

    def _read_chunk(self, upto, view):
        want = min(len(view), upto - self.position)
        got = os.preadv(self._handle.fileno(), [view[:want]], self.position)
        if got <= 0:
            raise OSError(f"{self.path} ended at byte {self.position}, before the {upto} reported complete")
        self._digest.update(view[:got])
        self.position += got

    def finish(self, size):
        """The sha256 (hex) of the file's `size` bytes, reading what the thread has not; None
        when it cannot vouch for the file now at the path (read error, file replaced or of
        another size): then the caller hashes the file itself."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        try:
            if self.error is not None or self._cancelled:
                return None
            before = self.position
            self._read_to(size, memoryview(bytearray(min(self.chunk, max(1, size - self.position)))))
            self.read_at_finish = self.position - before
            if self.position != size or not self._same_file(size):
                return None
            return self._digest.hexdigest()
        except OSError:
            return None
        finally:
            self._close()

    def _same_file(self, size):
        held = os.fstat(self._handle.fileno())
        now = os.stat(self.path)
        return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino) and now.st_size == size

    def cancel(self):
        """Stop reading (a stop request, a failed download); finish() then returns None."""
        with self._cond:
            self._cancelled = True
            self._cond.notify()
        if self._thread is None:
            self._close()

    def _close(self, from_thread=False):
        with self._cond:
            if self._handle is not None and (from_thread or self._thread is None or not self._thread.is_alive()):
                self._handle.close()
                self._handle = None
