# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Move a directory's contents into another directory without ever losing or overwriting data.

The rules, in the order they are checked for each entry of the source:

* nothing of that name in the target: the entry is moved there (a whole subtree in one rename
  when both sides are on the same filesystem);
* both are real directories: their contents are merged the same way, recursively, except
  ``.git``: two repositories' databases merged file by file would corrupt both, so the incoming
  one is kept whole under a new name (an old ComfyUI clone merged into the vault's keeps its
  history in ``.git.merged-<stamp>``);
* both are regular files with the same bytes: the incoming copy is dropped (its bytes are
  already in the target);
* anything else is a clash: both are kept, the incoming entry is renamed
  ``<stem>.merged-<stamp><suffix>`` (the suffix is kept, so a ``.json`` stays a ``.json``).

Moves are crash-safe. On one filesystem a file is hard-linked to its new name and only then
unlinked from the old one (a link never replaces an existing name, unlike ``rename``), and a
directory is renamed after checking its new name is free. Across filesystems a file is copied
to a hidden temporary name beside its destination, flushed to disk, read back and compared by
SHA-256 with the source, published under its final name, and only then is the source deleted.
A run killed at any point leaves every byte in the source, the target or both; the next run
finishes the job.

Nothing here follows a symbolic link: links are moved as links.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile

CHUNK = 1024 * 1024
PARTIAL_PREFIX = '.aiclipse-partial-'


class MergeError(Exception):
    """The merge cannot be done safely; the message names the path and what to do."""


def entry_kind(path):
    """'absent', 'link', 'dir', 'file' or 'other' for `path`, never following a final link."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return 'absent'  # NotADirectory: a parent is a file (check mode, before it is moved aside)
    if stat.S_ISLNK(st.st_mode):
        return 'link'
    if stat.S_ISDIR(st.st_mode):
        return 'dir'
    if stat.S_ISREG(st.st_mode):
        return 'file'
    return 'other'


def clash_name(path, stamp, label='merged'):
    """A free name beside `path`: ``<stem>.<label>-<stamp>[-N]<suffix>``."""
    parent, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    if not stem or name.startswith('.') and suffix == name:
        stem, suffix = name, ''
    candidate = os.path.join(parent, '%s.%s-%s%s' % (stem, label, stamp, suffix))
    counter = 1
    while os.path.lexists(candidate):
        candidate = os.path.join(parent, '%s.%s-%s-%d%s' % (stem, label, stamp, counter, suffix))
        counter += 1
    return candidate


def same_bytes(first, second):
    """True when two regular files hold exactly the same bytes (or are the same file)."""
    st1, st2 = os.stat(first), os.stat(second)
    if os.path.samestat(st1, st2):
        return True
    if st1.st_size != st2.st_size:
        return False
    with open(first, 'rb') as one, open(second, 'rb') as two:
        while True:
            block = one.read(CHUNK)
            if block != two.read(CHUNK):
                return False
            if not block:
                return True


class MergePlan:
    """What merging `source` into `target` will do, computed without changing anything.

    ``operations`` is a list of ``(action, source, destination)`` tuples, in order:
    ``move`` (to a free name), ``rename`` (a clash: moved to a new free name), ``drop``
    (identical bytes already at the destination), ``rmdir`` (a source directory emptied
    by the steps before it) and ``discard_partial`` (a temporary copy a killed run left in
    the target).
    """

    def __init__(self, source, target, stamp):
        self.source = source
        self.target = target
        self.stamp = stamp
        self.operations = []
        self._claimed = set()
        self._device = os.lstat(source).st_dev
        self._walk(source, target)
        self.operations.append(('rmdir', source, None))

    @property
    def renamed(self):
        return [{'from': src, 'to': dst} for action, src, dst in self.operations if action == 'rename']

    def count(self, action):
        return sum(1 for op in self.operations if op[0] == action)

    def _free_clash_name(self, path):
        candidate = clash_name(path, self.stamp)
        while candidate in self._claimed:
            candidate = clash_name(candidate, self.stamp)
        self._claimed.add(candidate)
        return candidate

    def _walk(self, source, target):
        if entry_kind(target) == 'dir':
            # Hidden temporary copies left by a run killed mid-copy. Their originals were
            # never deleted (that happens only after publishing), so they hold no unique data.
            for name in sorted(os.listdir(target)):
                leftover = os.path.join(target, name)
                if name.startswith(PARTIAL_PREFIX) and entry_kind(leftover) == 'file':
                    self.operations.append(('discard_partial', leftover, None))
        for name in sorted(os.listdir(source)):
            src = os.path.join(source, name)
            dst = os.path.join(target, name)
            src_kind = entry_kind(src)
            if src_kind == 'dir' and os.lstat(src).st_dev != self._device:
                raise MergeError('%s is a mount point inside %s; unmount it or move it out of the way '
                                 'first, a mount cannot be merged' % (src, self.source))
            dst_kind = entry_kind(dst)
            if dst_kind == 'absent':
                self.operations.append(('move', src, dst))
            elif src_kind == 'dir' and dst_kind == 'dir' and name != '.git':
                self._walk(src, dst)
                self.operations.append(('rmdir', src, None))
            elif src_kind == 'file' and dst_kind == 'file' and same_bytes(src, dst):
                self.operations.append(('drop', src, dst))
            else:
                self.operations.append(('rename', src, self._free_clash_name(dst)))


def _copy_verified(src, dst):
    """Copy regular file `src` to the free name `dst` through a verified hidden temporary file."""
    before = os.stat(src)
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=os.path.dirname(dst))
    try:
        source_hash = hashlib.sha256()
        with open(src, 'rb') as reader, os.fdopen(fd, 'wb') as writer:
            for block in iter(lambda: reader.read(CHUNK), b''):
                source_hash.update(block)
                writer.write(block)
            writer.flush()
            os.fsync(writer.fileno())
        after = os.stat(src)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise MergeError('%s changed while it was being copied; nothing was deleted, run again '
                             'once it is no longer being written' % src)
        copy_hash = hashlib.sha256()
        with open(tmp, 'rb') as check:
            for block in iter(lambda: check.read(CHUNK), b''):
                copy_hash.update(block)
        if copy_hash.digest() != source_hash.digest() or os.path.getsize(tmp) != after.st_size:
            raise MergeError('the copy of %s at %s does not match the original; nothing was deleted'
                             % (src, dst))
        _copy_owner(before, tmp)
        os.chmod(tmp, stat.S_IMODE(before.st_mode))
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
        publish_no_clobber(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _copy_owner(st, path):
    """Give `path` the owner of `st` when we may (as root); otherwise it stays ours."""
    try:
        os.chown(path, st.st_uid, st.st_gid)
    except PermissionError:
        pass


def publish_no_clobber(src, dst):
    """Give `src` (a file or link) the name `dst` if, and only if, `dst` is free; drop `src`.

    A hard link fails instead of replacing an existing name, which ``rename`` would silently do.
    Filesystems without hard links fall back to a checked rename.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise MergeError('%s appeared while moving %s there; nothing was overwritten, run again'
                             % (dst, src)) from None
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.EACCES):
            raise
        if os.path.lexists(dst):
            raise MergeError('%s appeared while moving %s there; nothing was overwritten, run again'
                             % (dst, src)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def move_no_clobber(src, dst):
    """Move one entry (file, link, directory tree) to the free name `dst`, crash-safely."""
    if os.path.lexists(dst):
        raise MergeError('%s appeared while moving %s there; nothing was overwritten, run again' % (dst, src))
    kind = entry_kind(src)
    same_fs = os.lstat(src).st_dev == os.stat(os.path.dirname(dst)).st_dev
    if same_fs:
        if kind == 'dir' or kind == 'other':
            os.rename(src, dst)
        else:
            publish_no_clobber(src, dst)
        return
    if kind == 'file':
        _copy_verified(src, dst)
        os.unlink(src)
    elif kind == 'link':
        os.symlink(os.readlink(src), dst)
        os.unlink(src)
    elif kind == 'dir':
        st = os.lstat(src)
        os.mkdir(dst)
        _copy_owner(st, dst)
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # mkdir's mode is cut by the umask
        for name in sorted(os.listdir(src)):
            move_no_clobber(os.path.join(src, name), os.path.join(dst, name))
        os.rmdir(src)
    else:
        raise MergeError('%s is a special file (socket, device or pipe) and cannot be copied to '
                         'another filesystem; move it away by hand' % src)


def nearest_existing(path):
    """`path` or its closest ancestor that exists (to learn which filesystem it will be on)."""
    while not os.path.exists(path):  # follows links: a dangling one is moved aside, not used
        path = os.path.dirname(path)
    return path


def preflight(source, target):
    """Refuse up front what a merge of `source` into `target` could not finish.

    A mount point inside `source` cannot be merged (its contents are another filesystem's
    business), and a socket, device or pipe cannot be copied across filesystems. Checking first
    means a merge never stops half-way on them.
    """
    device = os.lstat(source).st_dev
    crossing = os.stat(nearest_existing(target)).st_dev != device
    pending = [source]
    while pending:
        current = pending.pop()
        for name in os.listdir(current):
            path = os.path.join(current, name)
            kind = entry_kind(path)
            if kind == 'dir':
                if os.lstat(path).st_dev != device:
                    raise MergeError('%s is a mount point inside %s; unmount it or move it out of the way '
                                     'first, a mount cannot be merged' % (path, source))
                pending.append(path)
            elif kind == 'other' and crossing:
                raise MergeError('%s is a special file (socket, device or pipe) and cannot be copied to '
                                 'another filesystem; move it away by hand' % path)


def apply_plan(plan):
    """Carry out a MergePlan. Re-checks each destination, so a stale plan never overwrites."""
    for action, src, dst in plan.operations:
        if action in ('move', 'rename'):
            move_no_clobber(src, dst)
        elif action == 'drop':
            if not same_bytes(src, dst):
                raise MergeError('%s changed during the merge; it was left in place, run again' % src)
            os.unlink(src)
        elif action == 'discard_partial':
            if os.path.lexists(src):
                os.unlink(src)
        elif action == 'rmdir':
            try:
                os.rmdir(src)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise MergeError('%s is not empty after merging its contents (%s); something wrote '
                                     'into it during the run, run again' % (src, ', '.join(sorted(os.listdir(src))))) from None
                raise


def merge_into(source, target, stamp):
    """Plan and apply a merge of directory `source` into directory `target`; return the plan."""
    preflight(source, target)
    plan = MergePlan(source, target, stamp)
    apply_plan(plan)
    return plan
