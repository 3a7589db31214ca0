# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start writing a download's finished bytes to disk while the rest is still arriving.

Every model is fsync'd before it is published (model_store.publish). Linux starts writing dirty
pages back only once a tenth of memory is dirty, so on a pod with plenty of RAM a whole
download can sit in the page cache, and the fsync after the last byte writes all of it: about
0.25 s per 512 MiB on the test machine's disk, far more on a network volume. Asking the kernel
to start writing each stretch as soon as it is final (sync_file_range with
SYNC_FILE_RANGE_WRITE: start, do not wait) leaves that fsync almost nothing to do.

It is only a head start: durability still comes from the fsync. Where the call does not exist
(not Linux, no C library to load), nothing happens.
"""

from __future__ import annotations

import ctypes
import functools

SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of the range's dirty pages, do not wait


@functools.lru_cache(maxsize=1)
def _sync_file_range():
    """The C library's sync_file_range, loaded once; None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def start_writeback(fd, offset, length):
    """Ask the kernel to start writing bytes [offset, offset + length) of the open file `fd`
    to disk; returns at once. Advisory: failures are ignored, the fsync before publishing
    still decides."""
    function = _sync_file_range()
    if function is not None and length > 0:
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)
