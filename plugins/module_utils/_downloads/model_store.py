# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared model state: staging area, ledger and verified atomic publish.

Used by every downloader (``aria2_batch``, ``r2_fetch``) so that all of them keep the same
promises: nothing partial is ever visible at a final path, a recorded file is skipped without
reading its bytes, and a killed run resumes from staging.

Layout under ``state_dir`` (normally ``{{ aiclipse_vault }}/.state/models``)::

    staging/<key>.<basename>        partial download for one destination (stable name, so a
                                    killed run resumes; downloaders may keep side files such as
                                    aria2's ``<that>.aria2`` control file next to it)
    ledger.json                     mode 0600: {"version": 1, "entries": {<dest>: {size,
                                    mtime_ns, sha256, sha256_from, etag}}}; never a URL or a
                                    token. sha256_from says what the file was verified
                                    against: manifest, huggingface, civitai, s3, or download
                                    (hashed as downloaded, nothing to compare with)
    ledger.lock                     flock guarding read-modify-write of the ledger, so two
                                    downloaders (HTTP and R2) may run at the same time
    <downloader>.run.lock           flock held for a whole run of one downloader, so a second
                                    run (a fleet re-run while the pod's background job still
                                    downloads) waits instead of writing the same staging files.
                                    While it is held the file holds the running module's PID
                                    (text, newline-terminated): SIGTERM to that PID stops the
                                    download cleanly (see stop.py). A PID in an unlocked file is
                                    stale: test the lock (flock -n) before trusting it.

API (all paths absolute; errors raise :class:`StoreError` with a message a person can act on)::

    store = ModelStore(state_dir)                 # creates state_dir and staging/ (0700)
    store = ModelStore(state_dir, read_only=True) # check mode: creates nothing, records nothing
    store.check_present(dest, sha256=None, size=None, etag=None, sha256_from=None) -> Presence
        # Presence.present, .hashed (bytes were read), .reason. A ledger hit whose size and
        # mtime still match is present without hashing; a known sha256 without a ledger entry
        # hashes the file once and records it.
    store.staging_path(dest, identity="")         # stable partial-file path for dest
    store.check_same_filesystem(dest)             # StoreError when os.replace could not work
    store.publish(staged, dest, size=None, sha256=None, etag=None, hash_unknown=True,
                  sha256_from=None, streamed_sha256=None) -> sha256
        # verify size, sha256 and that the body is not an HTML/JSON error page, then fsync +
        # os.replace + fsync dir, then record; on failure the staged file is discarded. A
        # ledger write failing after the rename is kept in store.ledger_errors, not raised.
    store.record(dest, sha256=None, etag=None, sha256_from=None)  # ledger entry from the file as it is now
                                                  # (raises; check_present and publish never do)
    store.discard_staging(staged)                 # partial file and its side files
    store.cleanup_stale(keep=(), max_age=7 days)  # forgotten partials of old runs
    store.staged_bytes(staged)                    # bytes a partial already holds on disk
    store.free_bytes(path), store.filesystem_of(path)   # for the disk-space preflight
    with store.exclusive_run("aria2_batch", on_wait=log, stop=event):  # one run per downloader
    store.hashed                                  # how many files this store read to hash
    store.ledger_errors                           # dest -> why its ledger entry could not be
                                                  # written (disk full); the file itself is fine
    store.warnings                                # other problems a run should report

Only the standard library is used, so any module can import this.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import threading

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import (
    HASH_CHUNK,
    fsync_dir,
    sha256_file,
    write_file_atomic,
)

LEDGER_VERSION = 1
STALE_AFTER_SECONDS = 7 * 24 * 3600
# A real model is never this small and is never HTML or JSON; an error page often is both.
SNIFF_BYTES = 1024
JSON_ERROR_MAX_BYTES = 1024 * 1024
# Downloaders' files next to a partial: aria2's control file, r2_fetch's finished-parts journal.
SIDE_FILE_SUFFIXES = (".aria2", ".parts")


class StoreError(Exception):
    """A problem with the store or one file in it; the message says what to do."""


class StopRequested(Exception):
    """The run was asked to stop (SIGTERM/SIGINT) while it waited for its run lock."""


class VerifyError(StoreError):
    """A downloaded file failed verification and was not published."""


class Presence:
    """Whether a destination already holds the wanted file, and how that was decided."""

    def __init__(self, present, hashed=False, reason=""):
        self.present = present
        self.hashed = hashed
        self.reason = reason

    def __repr__(self):
        return f"Presence(present={self.present!r}, hashed={self.hashed!r}, reason={self.reason!r})"


def os_error_text(exc):
    """`strerror` of an OSError ("No space left on device"), else the exception as text."""
    return getattr(exc, "strerror", None) or str(exc)


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def looks_like_error_body(path, size=None):
    """Return a reason when the file is an HTML page or a JSON document, else ''.

    Servers answer failed model downloads with 200 and an error page surprisingly often
    (expired signed URLs, login walls). Safetensors files start with an 8-byte length, GGUF
    and pickles with binary magic, so a leading ``<`` or a small whole-file JSON is never a
    model.
    """
    if size is None:
        size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<title")):
        return "the server sent an HTML/XML page instead of a model file"
    if size <= JSON_ERROR_MAX_BYTES and text[:1] in (b"{", b"["):
        with open(path, "rb") as handle:
            try:
                json.loads(handle.read().decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return ""
        return "the server sent a JSON document instead of a model file"
    return ""


class ModelStore:
    """Staging, ledger and publish for one state directory (see the module docstring)."""

    def __init__(self, state_dir, read_only=False):
        self.read_only = read_only
        self.state_dir = os.path.abspath(state_dir)
        self.staging_dir = os.path.join(self.state_dir, "staging")
        self.ledger_path = os.path.join(self.state_dir, "ledger.json")
        self.lock_path = os.path.join(self.state_dir, "ledger.lock")
        self.hashed = 0
        self.ledger_errors = {}
        self.warnings = []
        self._thread_lock = threading.Lock()
        self._ledger_cache = (None, {})
        if read_only:
            return
        try:
            for path in (self.state_dir, self.staging_dir):
                os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
        except OSError as exc:
            raise StoreError(f"cannot create the model state directory {self.state_dir}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def exclusive_run(self, downloader, on_wait=None, stop=None):
        """Hold ``<state_dir>/<downloader>.run.lock`` for a whole run (presence checks included).

        A second run waits for the first, then finds its files present. The lock is released
        by the kernel when the process dies, so a killed run never leaves it held. While the
        lock is held the file holds this process's PID, for whoever wants to stop the run
        (SIGTERM); it is emptied when the run ends. `stop` (a threading.Event) ends the wait
        with StopRequested. Check mode writes nothing, so it takes no lock.
        """
        if self.read_only:
            yield
            return
        path = os.path.join(self.state_dir, f"{downloader}.run.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the run lock {path}: {os_error_text(exc)}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait:
                    on_wait(f"another {downloader} run is downloading into {self.state_dir}; waiting for it to finish")
                while True:
                    if stop is not None and stop.is_set():
                        raise StopRequested() from None
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        time.sleep(0.2)
            self._write_pid(fd, path)
            try:
                yield
            finally:
                try:
                    os.ftruncate(fd, 0)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def _write_pid(self, fd, path):
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (f"{os.getpid()}\n").encode(), 0)
        except OSError as exc:
            # A full disk cannot take even this; the run goes on, it just cannot be stopped by PID.
            self.warnings.append(f"cannot write the PID into {path}: {os_error_text(exc)}")

    # -- hashing ---------------------------------------------------------------------------
    def sha256_file(self, path):
        """sha256 of a file; counted in ``self.hashed`` so callers can prove a skip read nothing."""
        digest = sha256_file(path, HASH_CHUNK)
        with self._thread_lock:
            self.hashed += 1
        return digest

    # -- ledger ----------------------------------------------------------------------------
    def _read_ledger(self, cached=False):
        """The ledger's entries. With `cached`, a dict parsed once per change of the file, to be
        read only (a skip check of hundreds of models asks once per model); a read-modify-write
        always parses the file afresh under the ledger lock."""
        try:
            with open(self.ledger_path) as handle:
                if cached:
                    st = os.fstat(handle.fileno())
                    key = (st.st_ino, st.st_size, st.st_mtime_ns)
                    cached_key, entries = self._ledger_cache
                    if key == cached_key:
                        return entries
                data = json.load(handle)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return {}
            raise StoreError(f"cannot read the model ledger {self.ledger_path}: {exc.strerror}") from exc
        except ValueError:
            # A damaged ledger only costs re-hashing; never block downloads on it.
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            return {}
        if cached:
            self._ledger_cache = (key, data["entries"])
        return data["entries"]

    def _write_ledger(self, entries):
        text = json.dumps({"version": LEDGER_VERSION, "entries": entries}, indent=1, sort_keys=True) + "\n"
        write_file_atomic(self.ledger_path, text, mode=0o600, keep_owner=False, tmp_prefix=".ledger.")

    def _update_ledger(self, change):
        """Apply change(entries) under both the thread and the file lock, then write atomically."""
        if self.read_only:
            return
        with self._thread_lock:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                entries = self._read_ledger()
                change(entries)
                self._write_ledger(entries)
            finally:
                os.close(fd)

    def entry(self, dest):
        """The ledger entry for dest (a dict) or None."""
        return self._read_ledger(cached=True).get(os.path.abspath(dest))

    def record_quietly(self, dest, sha256=None, etag=None, sha256_from=None):
        """record(), but a failure (disk full, read-only state dir) is noted in ledger_errors
        instead of raised: an unrecorded file only costs a check at the next run. Returns the
        problem as text, or ''."""
        try:
            self.record(dest, sha256=sha256, etag=etag, sha256_from=sha256_from)
        except (OSError, StoreError) as exc:
            problem = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
            with self._thread_lock:
                self.ledger_errors[os.path.abspath(dest)] = problem
            return problem
        return ""

    def recorded_unchanged(self, dest, sha256=None):
        """True when dest is in the ledger with its size and mtime unchanged (nothing is read)."""
        try:
            item = self.entry(dest)
            st = os.stat(dest)
        except (StoreError, OSError):
            return False
        return (
            bool(item)
            and item.get("size") == st.st_size
            and item.get("mtime_ns") == st.st_mtime_ns
            and (not sha256 or item.get("sha256") == sha256.lower())
        )

    def record(self, dest, sha256=None, etag=None, sha256_from=None):
        """Record dest as it is on disk now (size, mtime) with what is known about its content."""
        dest = os.path.abspath(dest)
        st = os.stat(dest)
        item = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if sha256:
            item["sha256"] = sha256.lower()
            if sha256_from:
                item["sha256_from"] = sha256_from
        if etag:
            item["etag"] = etag

        def change(entries):
            entries[dest] = item

        self._update_ledger(change)
        return item

    # -- presence --------------------------------------------------------------------------
    def check_present(self, dest, sha256=None, size=None, etag=None, sha256_from=None):
        """Decide whether dest already holds the wanted file.

        A ledger entry whose size and mtime match the file (and whose sha256/etag agree with
        the wanted ones, when both sides know them) is trusted without reading a byte. Without
        such an entry, a known sha256 is checked by hashing once and recorded; a known size
        alone is compared and recorded; with neither, the existing file is adopted as is.
        """
        dest = os.path.abspath(dest)
        sha256 = sha256.lower() if sha256 else None
        try:
            st = os.stat(dest)
        except OSError:
            return Presence(False, reason="missing")
        if not os.path.isfile(dest):
            raise StoreError(f"{dest} exists but is not a regular file; move it away so the model can be placed there")
        item = self.entry(dest)
        if item and item.get("size") == st.st_size and item.get("mtime_ns") == st.st_mtime_ns:
            if sha256 and item.get("sha256") and item["sha256"] != sha256:
                if sha256_from and sha256_from != "manifest" and item.get("sha256_from") == sha256_from:
                    return Presence(
                        False,
                        reason=f"replaced upstream: {sha256_from} now gives sha256 {sha256}, the file here "
                        f"was {item['sha256']}; downloading the new one",
                    )
                return Presence(False, reason=f"the recorded sha256 {item['sha256']} differs from the wanted {sha256}")
            if etag and item.get("etag") and item["etag"] != etag:
                return Presence(False, reason="the remote object changed (etag differs)")
            if size is not None and size != st.st_size:
                return Presence(False, reason=f"size on disk {st.st_size} differs from the expected {size}")
            if sha256 and not item.get("sha256"):
                # Recorded before a sha256 was known: check once, then trust.
                return self._check_by_hash(dest, sha256, etag, sha256_from)
            return Presence(True, reason="recorded in the ledger")
        if size is not None and size != st.st_size:
            return Presence(False, reason=f"size on disk {st.st_size} differs from the expected {size}")
        if sha256:
            return self._check_by_hash(dest, sha256, etag, sha256_from)
        if item is None and (size is not None or etag is None):
            # Nothing to check the bytes against: adopt the file (its size matched when known).
            self.record_quietly(dest, etag=etag)
            return Presence(True, reason="existing file adopted (no sha256 to check)")
        return Presence(False, reason="the file changed since it was recorded")

    def _check_by_hash(self, dest, sha256, etag, sha256_from=None):
        actual = self.sha256_file(dest)
        if actual != sha256:
            return Presence(False, hashed=True, reason=f"sha256 on disk {actual} differs from the expected {sha256}")
        if self.record_quietly(dest, sha256=sha256, etag=etag, sha256_from=sha256_from):
            return Presence(True, hashed=True, reason="sha256 verified")
        return Presence(True, hashed=True, reason="sha256 verified and recorded")

    # -- staging ---------------------------------------------------------------------------
    def staging_path(self, dest, identity=""):
        """Stable partial-file path for dest; `identity` (e.g. URL without query, or key+etag)
        changes the name when the source changes, so a partial of other content is never resumed."""
        dest = os.path.abspath(dest)
        key = hashlib.sha256((f"{dest}\0{identity}").encode()).hexdigest()[:20]
        return os.path.join(self.staging_dir, f"{key}.{os.path.basename(dest)}")

    def check_same_filesystem(self, dest):
        """Raise StoreError unless staging and dest's directory share a filesystem."""
        dest_dir = _nearest_existing(os.path.dirname(os.path.abspath(dest)))
        if os.stat(dest_dir).st_dev != os.stat(_nearest_existing(self.staging_dir)).st_dev:
            raise StoreError(
                f"staging {self.staging_dir} and destination {os.path.dirname(dest)} are on different filesystems, so a finished file "
                "cannot be moved into place atomically; put state_dir on the same filesystem as "
                "the models directory"
            )

    def discard_staging(self, staged):
        """Remove a partial file and its side files (e.g. aria2's .aria2 control file)."""
        for path in (staged,) + tuple(staged + suffix for suffix in SIDE_FILE_SUFFIXES):
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise

    def cleanup_stale(self, keep=(), max_age=STALE_AFTER_SECONDS):
        """Delete staging files not in `keep` untouched for `max_age` seconds; return their names."""
        keep = set(os.path.abspath(k) for k in keep)
        keep |= set(k + suffix for k in keep for suffix in SIDE_FILE_SUFFIXES)
        now = time.time()
        removed = []
        if self.read_only or not os.path.isdir(self.staging_dir):
            return removed
        for name in sorted(os.listdir(self.staging_dir)):
            path = os.path.join(self.staging_dir, name)
            if path in keep or not os.path.isfile(path):
                continue
            if now - os.stat(path).st_mtime >= max_age:
                os.unlink(path)
                removed.append(name)
        return removed

    @staticmethod
    def staged_bytes(staged):
        """Bytes a partial download already holds on disk: allocated blocks, since parallel
        connections leave holes (so the apparent size says little) and a pre-allocated file
        already took its space."""
        try:
            st = os.stat(staged)
        except OSError:
            return 0
        return min(st.st_size, st.st_blocks * 512)

    @staticmethod
    def filesystem_of(path):
        """The mount point of the filesystem holding path, for messages ("2.10 GB free on /workspace")."""
        path = _nearest_existing(path)
        device = os.stat(path).st_dev
        while True:
            parent = os.path.dirname(path)
            if parent == path or os.stat(parent).st_dev != device:
                return path
            path = parent

    @staticmethod
    def free_bytes(path):
        """Bytes available to this user on the filesystem holding path (or its nearest parent)."""
        st = os.statvfs(_nearest_existing(path))
        return st.f_bavail * st.f_frsize

    # -- publish ---------------------------------------------------------------------------
    def publish(
        self,
        staged,
        dest,
        size=None,
        sha256=None,
        etag=None,
        mode=0o644,
        hash_unknown=True,
        sha256_from=None,
        streamed_sha256=None,
    ):
        """Verify the staged file and move it to dest atomically; return its sha256.

        With ``hash_unknown=False`` a file without an expected sha256 is not read at all (its
        sha256 is then neither returned nor recorded): hashing is the slow part of a publish.
        ``streamed_sha256`` is the digest of the staged file computed while it downloaded
        (prefix_hash.PrefixHasher); it replaces the read when it matches the expected sha256
        (or none is expected), and a digest that differs is checked by reading the file.

        Raises VerifyError (staged file discarded: it is wrong, resuming it cannot help) when
        the size or sha256 differ or the body is an HTML/JSON error page.
        """
        if self.read_only:
            raise StoreError("publish called on a read-only (check mode) model store")
        dest = os.path.abspath(dest)
        try:
            actual_size = os.path.getsize(staged)
        except OSError:
            raise VerifyError(f"the download left no file in staging ({staged})") from None
        problem = ""
        if size is not None and actual_size != size:
            problem = f"size {actual_size} differs from the expected {size}"
        elif actual_size == 0:
            problem = "the server sent an empty body"
        else:
            problem = looks_like_error_body(staged, actual_size)
        actual_sha = None
        if not problem and (sha256 or hash_unknown):
            if streamed_sha256 and (not sha256 or streamed_sha256 == sha256.lower()):
                # Hashed while downloading (prefix_hash.py): the bytes were read once already.
                actual_sha = streamed_sha256
                with self._thread_lock:
                    self.hashed += 1
            else:
                # No digest from the download, or one that differs: only a full read of the
                # file as it is now may fail it.
                actual_sha = self.sha256_file(staged)
            if sha256 and actual_sha != sha256.lower():
                problem = f"sha256 {actual_sha} differs from the expected {sha256.lower()}"
        if problem:
            self.discard_staging(staged)
            raise VerifyError(problem)
        self.check_same_filesystem(dest)
        dest_dir = os.path.dirname(dest)
        os.makedirs(dest_dir, exist_ok=True)
        fd = os.open(staged, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(staged, dest)
        fsync_dir(dest_dir)
        self.discard_staging(staged)  # a left-over .aria2 control file or .parts journal
        # The verified file is in place; an unrecorded file only costs a check next run.
        self.record_quietly(
            dest, sha256=actual_sha, etag=etag, sha256_from=(sha256_from or "manifest") if sha256 else "download"
        )
        return actual_sha
