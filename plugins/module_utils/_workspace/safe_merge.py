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
* both are regular files with the same bytes, under two different names (two folders, or two
  hard links of one file): the incoming name is dropped, its bytes are already in the target;
* anything else is a clash: both are kept, the incoming entry is renamed
  ``<stem>.merged-<stamp><suffix>`` (the suffix is kept, so a ``.json`` stays a ``.json``). Every
  destination of a folder is planned before anything moves, so a clash name never takes the name
  an incoming entry needs.

Folders are judged by what they are, not by how they are spelled: a source and a target that
are the same folder (through a link, a chain of links or a bind mount: same device and inode),
or one inside the other, are refused before anything is planned. A name is never unlinked
because "its copy" is itself.

Moves are crash-safe. On one filesystem a file is hard-linked to its new name and only then
unlinked from the old one (a link never replaces an existing name, unlike ``rename``), and a
directory is renamed after checking its new name is free. Across filesystems a file is copied
to a hidden scratch name beside its destination, flushed to disk, read back and compared by
SHA-256 with the source, published under its final name, and only then is the source deleted.
A run killed at any point leaves every byte in the source, the target or both; the next run
finishes the job.

Scratch names are recorded in a state directory (``state_dir``) *before* they are created, and a
later run removes only what that journal lists (with the kind, and a link's text, it recorded).
A user's file that happens to be named like a scratch file is never touched. Without a state
directory, a killed run's scratch file is left in place (hidden, never deleted).

Nothing here follows a symbolic link inside the trees: links are moved as links.
"""

from __future__ import annotations

import binascii
import errno
import filecmp
import hashlib
import json
import os
import shutil
import stat

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import link_no_clobber, sha256_file

CHUNK = 1024 * 1024
# Scratch names start with these; only the journal decides that a name is scratch.
PARTIAL_PREFIX = ".aiclipse-partial-"
LINK_TMP_MARK = ".aiclipse-link-"


class MergeError(Exception):
    """The merge cannot be done safely; the message names the path and what to do."""


def entry_kind(path):
    """'absent', 'link', 'dir', 'file' or 'other' for `path`, never following a final link."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "absent"  # NotADirectory: a parent is a file (check mode, before it is moved aside)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "absent"  # a parent is a loop of links (check mode, before it is moved aside)
        raise
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "other"


def clash_name(path, stamp, label="merged", taken=()):
    """A free name beside `path`: ``<stem>.<label>-<stamp>[-N]<suffix>``.

    Free means: nothing there on disk, and not in `taken` (paths other steps of a plan will use).
    """
    parent, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    if not stem or name.startswith(".") and suffix == name:
        stem, suffix = name, ""
    candidate = os.path.join(parent, f"{stem}.{label}-{stamp}{suffix}")
    counter = 1
    while candidate in taken or os.path.lexists(candidate):
        candidate = os.path.join(parent, f"{stem}.{label}-{stamp}-{counter}{suffix}")
        counter += 1
    return candidate


def same_entry(first, second):
    """True when two paths name one directory entry (same folder by identity, same name).

    Unlinking `first` because `second` holds its bytes would then delete the only copy. Two hard
    links of one file are two entries: dropping one keeps the bytes under the other.
    """
    if os.path.basename(first) != os.path.basename(second):
        return False
    try:
        return os.path.samestat(os.stat(os.path.dirname(first) or "."), os.stat(os.path.dirname(second) or "."))
    except OSError:
        return False


def _identity_chain(path):
    """stat results of the folder `path` resolves to and of each of its ancestors, up to /.

    For a path that does not exist yet, the chain starts at its closest existing ancestor.
    """
    real = os.path.realpath(path)
    chain = []
    while True:
        try:
            chain.append(os.stat(real))
        except OSError:
            pass
        parent = os.path.dirname(real)
        if parent == real:
            return chain
        real = parent


def folder_relation(source, target):
    """How two folders relate by identity: 'same', 'target_inside', 'source_inside' or None.

    Links, chains of links and bind mounts are all seen through: only devices and inodes count.
    """
    source_chain = _identity_chain(source)
    target_chain = _identity_chain(target)
    if not source_chain or not target_chain:
        return None
    if os.path.lexists(target) and os.path.exists(target) and os.path.samestat(source_chain[0], target_chain[0]):
        return "same"
    if any(os.path.samestat(source_chain[0], st) for st in target_chain):
        return "target_inside"
    if os.path.exists(target) and any(os.path.samestat(target_chain[0], st) for st in source_chain):
        return "source_inside"
    return None


def check_folders(source, target):
    """Refuse, with what to do, a merge of a folder into itself or into/out of its own subtree."""
    relation = folder_relation(source, target)
    if relation == "same":
        raise MergeError(
            f"{source} and {target} are the same folder ({os.path.realpath(target)}); merging it into itself would delete what "
            "it holds, so nothing was done"
        )
    if relation == "target_inside":
        raise MergeError(
            f"{target} resolves to {os.path.realpath(target)}, inside {source}: a folder cannot be merged into its own subfolder; "
            "move that folder out first"
        )
    if relation == "source_inside":
        raise MergeError(
            f"{source} lies inside {target} ({os.path.realpath(target)}): a folder cannot be merged into its own parent; move it "
            "out first"
        )


class Scratch:
    """Scratch names created outside the state directory, recorded in it before they exist.

    ``<state_dir>/scratch/<token>.json`` holds the path, its kind and, for a link, its text. A
    record is written before its scratch entry is created and removed after the entry is gone, so
    a killed run leaves a record for anything it left behind. ``leftovers()`` reports (and
    ``sweep()`` removes) only recorded entries that still have the recorded kind and text.
    Without a state directory nothing is recorded and nothing is ever swept.
    """

    def __init__(self, state_dir=None):
        self.state_dir = state_dir
        self.directory = os.path.join(state_dir, "scratch") if state_dir else None

    @staticmethod
    def _token():
        return binascii.hexlify(os.urandom(12)).decode("ascii")

    def _record(self, token, path, kind, text=None):
        if not self.directory:
            return
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        record = os.path.join(self.directory, token + ".json")
        # ensure_ascii escapes the lone surrogates of non-UTF-8 names; json.load gives them back.
        data = json.dumps({"path": path, "kind": kind, "text": text}).encode("ascii")
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def forget(self, token):
        if self.directory and token:
            try:
                os.unlink(os.path.join(self.directory, token + ".json"))
            except FileNotFoundError:
                pass

    def new_file(self, directory):
        """(fd, path, token) of a new scratch file in `directory`, mode 0600."""
        for _dummy in range(100):
            token = self._token()
            path = os.path.join(directory, PARTIAL_PREFIX + token)
            self._record(token, path, "file")
            try:
                return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path, token
            except FileExistsError:
                self.forget(token)
        raise MergeError(f"could not find a free scratch name in {directory}")

    def new_dir(self, parent, prefix):
        """The path of a new, empty scratch directory ``<prefix><token>`` in `parent`, mode 0700.

        A killed run's directory is removed by ``sweep()`` only when this record says it is ours.
        """
        for _dummy in range(100):
            token = self._token()
            path = os.path.join(parent, prefix + token)
            self._record(token, path, "dir")
            try:
                os.mkdir(path, 0o700)
                return path
            except FileExistsError:
                self.forget(token)
        raise MergeError(f"could not find a free scratch name in {parent}")

    def new_link(self, beside, text):
        """(path, token) of a new scratch link holding `text`, in the folder of `beside`."""
        parent, name = os.path.split(beside)
        for _dummy in range(100):
            token = self._token()
            path = os.path.join(parent, f".{name}{LINK_TMP_MARK}{token}")
            self._record(token, path, "link", text)
            try:
                os.symlink(text, path)
                return path, token
            except FileExistsError:
                self.forget(token)
        raise MergeError(f"could not find a free temporary name beside {beside}")

    def records(self):
        """[(token, record dict or None)] of every record (None: unreadable, written half)."""
        if not self.directory:
            return []
        try:
            names = sorted(os.listdir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as handle:
                    record = json.loads(handle.read().decode("ascii"))
                if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                    record = None
            except (OSError, ValueError):
                record = None
            found.append((name[: -len(".json")], record))
        return found

    @staticmethod
    def _is_ours(record):
        path, kind = record["path"], record.get("kind")
        if kind == "file":
            return entry_kind(path) == "file"
        if kind == "link":
            return entry_kind(path) == "link" and os.readlink(path) == record.get("text")
        if kind == "dir":
            return entry_kind(path) == "dir"
        return False

    def leftovers(self):
        """[(token, path, kind)] of scratch entries a killed run left (records with no entry too)."""
        found = []
        for token, record in self.records():
            if record is None:
                found.append((token, None, None))
            elif self._is_ours(record):
                found.append((token, record["path"], record["kind"]))
            else:
                found.append((token, None, None))  # never created, or already gone: only the record
        return found

    def sweep(self, check_mode=False, parent=None):
        """Remove what killed runs left; returns the scratch paths removed (or that would be).

        ``parent``: only the records of scratch entries directly in that folder (and the records
        that name nothing) are handled; the others are left for their own sweep.
        """
        removed = []
        for token, path, kind in self.leftovers():
            if parent is not None and path is not None and os.path.dirname(path) != parent:
                continue
            if path is not None:
                removed.append(path)
            if not check_mode:
                if kind == "dir":
                    shutil.rmtree(path, ignore_errors=True)
                    if os.path.lexists(path):
                        continue  # kept with its record, for the next sweep
                elif path is not None and os.path.lexists(path):
                    os.unlink(path)
                self.forget(token)
        return removed


class MergePlan:
    """What merging `source` into `target` will do, computed without changing anything.

    ``operations`` is a list of ``(action, source, destination)`` tuples, in order:
    ``move`` (to a free name), ``rename`` (a clash: moved to a new free name), ``drop``
    (identical bytes already at the destination under another name), ``rmdir`` (a source
    directory emptied by the steps before it) and ``discard_partial`` (a scratch copy a killed
    run left, known from the journal in `state_dir`).
    """

    def __init__(self, source, target, stamp, state_dir=None):
        self.source = source
        self.target = target
        self.stamp = stamp
        self.scratch = Scratch(state_dir)
        self.operations = []
        if entry_kind(source) != "dir":
            raise MergeError(f"{source} is not a real directory; only a directory (not a link) can be merged")
        check_folders(source, target)
        self._device = os.lstat(source).st_dev
        for _dummy, path, kind in self.scratch.leftovers():
            if kind == "file":
                self.operations.append(("discard_partial", path, None))
        self._walk(source, target)
        self.operations.append(("rmdir", source, None))

    def _links_into_source(self, link):
        return _links_into(link, self.source)

    @property
    def renamed_entries(self):
        """The clashes, each kept under a new name: [{'from': source entry, 'to': new name}]."""
        return [{"from": src, "to": dst} for action, src, dst in self.operations if action == "rename"]

    def count(self, action):
        return sum(1 for op in self.operations if op[0] == action)

    def _walk(self, source, target):
        names = sorted(os.listdir(source))
        existing = os.listdir(target) if os.path.isdir(target) else []
        # Every name an incoming entry keeps, and every name already there, is spoken for before
        # any clash gets a new name.
        taken = set(os.path.join(target, name) for name in names + existing)
        for name in names:
            src = os.path.join(source, name)
            dst = os.path.join(target, name)
            src_kind = entry_kind(src)
            if src_kind == "dir" and os.lstat(src).st_dev != self._device:
                raise MergeError(
                    f"{src} is a mount point inside {self.source}; unmount it or move it out of the way "
                    "first, a mount cannot be merged"
                )
            dst_kind = entry_kind(dst)
            if dst_kind == "link" and src_kind == "dir" and self._links_into_source(dst):
                # A target entry that is a link into the folder being merged (an adopted install's
                # subfolder: aiclipse/models/loras -> /workspace/models/loras). Kept as a clash it
                # would hide the folder and loop once the source becomes a link to the target.
                if not os.path.samestat(os.stat(dst), os.lstat(src)):
                    raise MergeError(
                        f"{dst} is a link to {os.path.realpath(dst)}, inside {self.source}, which is being merged into {self.target}: it would loop "
                        f"afterwards. Replace {dst} by a real folder (or remove the link) and run again"
                    )
                # The link shows this very folder: the folder takes the link's place.
                self.operations.append(("unlink_link", dst, os.readlink(dst)))
                self.operations.append(("move", src, dst))
            elif dst_kind == "absent":
                self.operations.append(("move", src, dst))
            elif src_kind == "dir" and dst_kind == "dir" and name != ".git":
                if os.path.samestat(os.lstat(src), os.lstat(dst)):
                    raise MergeError(f"{src} and {dst} are the same folder (a bind mount?); nothing was done")
                self._walk(src, dst)
                self.operations.append(("rmdir", src, None))
            elif src_kind == "file" and dst_kind == "file" and filecmp.cmp(src, dst, shallow=False):
                if same_entry(src, dst):
                    raise MergeError(f"{src} and {dst} are one file; nothing was done")
                self.operations.append(("drop", src, dst))
            else:
                clash = clash_name(dst, self.stamp, taken=taken)
                taken.add(clash)
                self.operations.append(("rename", src, clash))


def _links_into(link, folder):
    """True when the link `link` resolves to `folder` or to something inside it (by identity)."""
    if not os.path.exists(link):
        return False
    try:
        top = os.stat(folder)
    except OSError:
        return False
    return any(os.path.samestat(top, st) for st in _identity_chain(link))


def _copy_verified(src, dst, scratch):
    """Copy regular file `src` to the free name `dst` through a verified scratch file beside it."""
    before = os.stat(src)
    fd, tmp, token = scratch.new_file(os.path.dirname(dst))
    try:
        source_hash = hashlib.sha256()
        with open(src, "rb") as reader, os.fdopen(fd, "wb") as writer:
            for block in iter(lambda: reader.read(CHUNK), b""):
                source_hash.update(block)
                writer.write(block)
            writer.flush()
            os.fsync(writer.fileno())
        after = os.stat(src)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise MergeError(
                f"{src} changed while it was being copied; nothing was deleted, run again "
                "once it is no longer being written"
            )
        if sha256_file(tmp) != source_hash.hexdigest() or os.path.getsize(tmp) != after.st_size:
            raise MergeError(f"the copy of {src} at {dst} does not match the original; nothing was deleted")
        _copy_owner(before, tmp)
        os.chmod(tmp, stat.S_IMODE(before.st_mode))
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
        publish_no_clobber(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        scratch.forget(token)


def _copy_owner(st, path):
    """Give `path` the owner of `st` when we may (as root); otherwise it stays ours."""
    try:
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    except PermissionError:
        pass


def publish_no_clobber(src, dst):
    """Give `src` (a file or link) the name `dst` if, and only if, `dst` is free; drop `src`.

    A hard link fails instead of replacing an existing name, which ``rename`` would silently do.
    Filesystems without hard links fall back to a checked rename.
    """
    if not link_no_clobber(src, dst):
        raise MergeError(f"{dst} appeared while moving {src} there; nothing was overwritten, run again")
    if os.path.lexists(src):
        os.unlink(src)


def move_no_clobber(src, dst, scratch=None):
    """Move one entry (file, link, directory tree) to the free name `dst`, crash-safely."""
    scratch = scratch or Scratch()
    if os.path.lexists(dst):
        raise MergeError(f"{dst} appeared while moving {src} there; nothing was overwritten, run again")
    kind = entry_kind(src)
    same_fs = os.lstat(src).st_dev == os.stat(os.path.dirname(dst)).st_dev
    if same_fs:
        if kind == "dir" or kind == "other":
            os.rename(src, dst)
        else:
            publish_no_clobber(src, dst)
        return
    if kind == "file":
        _copy_verified(src, dst, scratch)
        os.unlink(src)
    elif kind == "link":
        tmp, token = scratch.new_link(dst, os.readlink(src))
        try:
            publish_no_clobber(tmp, dst)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            scratch.forget(token)
        os.unlink(src)
    elif kind == "dir":
        st = os.lstat(src)
        # Writable by its owner while it fills (a read-only folder could not take its entries),
        # its exact mode once it is complete; a run killed in between leaves only the u+w.
        os.mkdir(dst)
        os.chmod(dst, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        _copy_owner(st, dst)
        for name in sorted(os.listdir(src)):
            move_no_clobber(os.path.join(src, name), os.path.join(dst, name), scratch)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.rmdir(src)
    else:
        raise MergeError(
            f"{src} is a special file (socket, device or pipe) and cannot be copied to "
            "another filesystem; move it away by hand"
        )


def nearest_existing(path):
    """`path` or its closest ancestor that exists (to learn which filesystem it will be on)."""
    while not os.path.exists(path):  # follows links: a dangling one is moved aside, not used
        path = os.path.dirname(path)
    return path


def preflight(source, target, identity=True):
    """Refuse up front what a merge of `source` into `target` could not finish, or must not do.

    A folder merged into itself or into its own subtree (however the paths are spelled), a mount
    point inside `source` (its contents are another filesystem's business), and a socket, device
    or pipe that would have to be copied across filesystems. Checking first means a merge never
    stops half-way on them. ``identity=False`` skips the first check, for a caller that has judged
    how the two folders relate itself.
    """
    if identity:
        check_folders(source, target)
    device = os.lstat(source).st_dev
    crossing = os.stat(nearest_existing(target)).st_dev != device
    pending = [source]
    while pending:
        current = pending.pop()
        for name in os.listdir(current):
            path = os.path.join(current, name)
            kind = entry_kind(path)
            if kind == "dir":
                if os.lstat(path).st_dev != device:
                    raise MergeError(
                        f"{path} is a mount point inside {source}; unmount it or move it out of the way "
                        "first, a mount cannot be merged"
                    )
                counterpart = os.path.join(target, os.path.relpath(path, source))
                if (
                    entry_kind(counterpart) == "link"
                    and _links_into(counterpart, source)
                    and not os.path.samestat(os.stat(counterpart), os.lstat(path))
                ):
                    raise MergeError(
                        f"{counterpart} is a link to {os.path.realpath(counterpart)}, inside {source}, which is being merged into {target}: it would loop "
                        f"afterwards. Replace {counterpart} by a real folder (or remove the link) and run again"
                    )
                pending.append(path)
            elif kind == "other" and crossing:
                raise MergeError(
                    f"{path} is a special file (socket, device or pipe) and cannot be copied to "
                    "another filesystem; move it away by hand"
                )


def apply_plan(plan):
    """Carry out a MergePlan. Re-checks each destination, so a stale plan never overwrites."""
    scratch = getattr(plan, "scratch", None) or Scratch()
    for action, src, dst in plan.operations:
        if action in ("move", "rename"):
            move_no_clobber(src, dst, scratch)
        elif action == "drop":
            if same_entry(src, dst) or not filecmp.cmp(src, dst, shallow=False):
                raise MergeError(f"{src} changed during the merge; it was left in place, run again")
            os.unlink(src)
        elif action == "unlink_link":
            if entry_kind(src) != "link" or os.readlink(src) != dst:
                raise MergeError(f"{src} changed during the merge; it was left in place, run again")
            os.unlink(src)  # only a link: the folder it showed is moved to its name next
        elif action == "discard_partial":
            scratch.sweep()
        elif action == "rmdir":
            try:
                os.rmdir(src)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise MergeError(
                        f"{src} is not empty after merging its contents ({', '.join(sorted(os.listdir(src)))}); something wrote "
                        "into it during the run, run again"
                    ) from None
                raise
