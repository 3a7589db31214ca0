# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written whole or not at all, and what a file's bytes hash to.

Every file the collection writes goes through :func:`write_file_atomic`: a temporary file
beside the destination (``mkstemp``: the same filesystem, mode 0600 from its first byte),
flushed to disk, given its final mode and owner, renamed over the destination, and the folder
flushed too. A crash leaves the old file or the new one, never a mix, and nobody can read the
new bytes under a wider mode than the final one, not even for a moment (an ansible
``atomic_move`` of a new file first applies the umask, then the caller narrows it).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile

# A sha256 written out: 64 hexadecimal digits, either case (use fullmatch).
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Large reads: hashing a multi-GB model is bound by the disk, not by Python's loop.
HASH_CHUNK = 4 * 1024 * 1024
# Filesystems without hard links say so with one of these; a checked rename stands in.
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.EACCES)


def is_sha256_hex(value):
    """True when `value` is a sha256 written as 64 hexadecimal digits (nothing around them)."""
    return isinstance(value, str) and SHA256_HEX.fullmatch(value) is not None


def sha256_file(path, chunk=HASH_CHUNK):
    """The sha256 of a file's bytes, as 64 lower-case hexadecimal digits; raises OSError."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path):
    """Flush a folder's entries to disk, so a rename into it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_no_clobber(src, dst):
    """Give the file or link `src` the name `dst` only if `dst` is free; False when it is taken.

    A hard link never replaces an existing name, unlike ``rename``; `src` keeps its own name
    (the caller removes it). On a filesystem without hard links a checked rename stands in,
    and `src` is then gone.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(dst):
            return False
        os.rename(src, dst)
    return True


def _owner_and_mode(path):
    """(uid, gid, mode) of the file `path` shows (through a link), or None when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def write_file_atomic(
    path,
    data,
    mode=None,
    new_file_mode=0o644,
    keep_owner=True,
    replace=True,
    prepare=None,
    tmp_prefix=None,
    make_temp=None,
):
    """Put `data` (bytes, or text written as UTF-8) at `path`, all or nothing.

    ``mode``: the file's mode; None keeps the mode of the file it replaces (``new_file_mode``
    for a new one). ``keep_owner``: a replaced file keeps its owner and group (when this
    process may chown, as root); a new file is this process's. A link at `path` is replaced by
    the file, which takes the mode and owner of what the link showed. ``replace=False`` writes only
    when `path` is free and returns False, writing nothing, when something is there (it never
    overwrites, even if that something appears while the bytes are written).
    ``prepare(tmp)`` runs on the finished temporary file just before it takes the name (an
    ansible module sets its file attributes there). ``tmp_prefix`` names the temporary file
    (default ``.<name>.``). ``make_temp(directory)`` returns ``(fd, path)`` of the new temporary
    file instead of ``mkstemp``, for callers that record it before it exists (and so recognise a
    killed run's leftover by more than its name).

    The folder must exist. Returns True when `path` now holds `data`; raises OSError (the
    temporary file is gone, `path` as it was).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    directory = os.path.dirname(path) or "."
    existing = _owner_and_mode(path) if replace else None
    if make_temp is not None:
        fd, tmp = make_temp(directory)
    else:
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix or f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None and keep_owner:
            try:
                os.chown(tmp, existing[0], existing[1])
            except PermissionError:
                pass  # not root: the file can only be ours
        if mode is None:
            mode = existing[2] if existing is not None else new_file_mode
        os.chmod(tmp, mode)
        if prepare is not None:
            prepare(tmp)
        if replace:
            os.replace(tmp, path)
        elif not link_no_clobber(tmp, path):
            return False
        fsync_dir(directory)
        return True
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
