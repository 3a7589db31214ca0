# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A batch of HTTP model downloads: skip what is recorded, resolve origins, one aria2c for the
rest, verify and publish through the shared model store. The logic behind ``aria2_batch``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.aria2 import Aria2Error, Aria2Session, describe_error
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import OriginError, check_header_value, resolve
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import ModelStore, StoreError

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
PROGRESS_EVERY = 10.0
POLL_EVERY = 0.5
RESOLVE_WORKERS = 8
# Verifying means hashing the whole file; two at a time uses both cores of a small pod while
# aria2c keeps downloading the rest.
PUBLISH_WORKERS = 2


# aria2c retries timeouts, resets and 502/503 itself but gives up on a 500 or 429 at once;
# those are often transient at CDNs, so such a download gets a few more rounds.
RETRY_ROUNDS = 2
TRANSIENT_STATUS_RE = re.compile(r"status=(5\d\d|429)\b")


def is_transient(status):
    code = str(status.get("errorCode", ""))
    if code in ("2", "6"):
        return True
    return code == "22" and bool(TRANSIENT_STATUS_RE.search(status.get("errorMessage") or ""))


class BatchError(Exception):
    """The batch as a whole cannot run (bad input, no disk space); nothing was downloaded."""


def human(size):
    size = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return "%.1f %s" % (size, unit) if unit != "B" else "%d B" % size
        size /= 1024
    return "%d B" % size


class Entry:
    """One requested download and, as the batch proceeds, its result."""

    def __init__(self, index, spec):
        self.index = index
        self.url = spec["url"]
        self.dest = spec["dest"]
        self.name = spec.get("name") or os.path.basename(self.dest)
        self.sha256 = (spec.get("sha256") or "").lower() or None
        self.size = spec.get("size")
        self.token = spec.get("token") or None
        self.headers = dict(spec.get("headers") or {})
        self.resolved = None
        self.staged = None
        self.gid = None
        self.rounds = 0
        self.started = None
        self.status = None
        self.reason = ""
        self.bytes = 0
        self.seconds = 0.0

    @property
    def origin(self):
        """Scheme and host only: what logs and results may say about where a file came from."""
        parts = urlsplit(self.url)
        return "%s://%s" % (parts.scheme, parts.hostname or "")

    def finish(self, status, reason="", size=0):
        self.status = status
        self.reason = reason
        self.bytes = size or 0
        if self.started is not None:
            self.seconds = round(time.monotonic() - self.started, 2)

    def result(self):
        return {"name": self.name, "dest": self.dest, "status": self.status, "reason": self.reason,
                "bytes": self.bytes, "seconds": self.seconds}


class HttpDownloadBatch:
    """Run with ``HttpDownloadBatch(...).run()``; returns the module's result dict."""

    def __init__(self, downloads, state_dir, aria2c, aria2_options, log_file=None, check_mode=False,
                 connect_timeout=15, tries=3, retry_wait=2):
        self.entries = [Entry(i, spec) for i, spec in enumerate(downloads)]
        self.state_dir = state_dir
        self.aria2c = aria2c
        self.aria2_options = aria2_options
        self.log_file = log_file
        self.check_mode = check_mode
        self.connect_timeout = connect_timeout
        self.tries = tries
        self.retry_wait = retry_wait
        self.store = None
        self._log_lock = threading.Lock()
        self.log_errors = []

    # -- logging -------------------------------------------------------------------------
    def log(self, message):
        if not self.log_file or self.check_mode:
            return
        line = "%s aria2_batch: %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), message)
        try:
            directory = os.path.dirname(self.log_file)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with self._log_lock, open(self.log_file, "a") as handle:
                handle.write(line)
        except OSError as exc:
            # The log is for people; a full disk must not turn finished downloads into a crash.
            self.log_errors.append("cannot write %s: %s" % (self.log_file, exc.strerror))

    # -- steps ---------------------------------------------------------------------------
    def validate(self):
        seen = {}
        problems = []
        for entry in self.entries:
            where = "downloads[%d] (%s)" % (entry.index, entry.name)
            scheme = urlsplit(entry.url).scheme
            if scheme not in ("http", "https"):
                problems.append("%s: url must start with http:// or https://" % where)
            if not os.path.isabs(entry.dest) or os.path.basename(entry.dest) in ("", ".", ".."):
                problems.append("%s: dest must be an absolute file path, got %r" % (where, entry.dest))
            if entry.sha256 and not SHA256_RE.match(entry.sha256):
                problems.append("%s: sha256 must be 64 hex digits" % where)
            if entry.size is not None and entry.size < 0:
                problems.append("%s: size must not be negative" % where)
            try:
                for key, value in entry.headers.items():
                    check_header_value(key, "a header name")
                    check_header_value(str(value), "header %s" % key)
                if entry.token:
                    check_header_value(entry.token, "the token")
            except OriginError as exc:
                problems.append("%s: %s" % (where, exc))
            dest = os.path.abspath(entry.dest)
            if dest in seen:
                problems.append("%s: same dest as downloads[%d]; each file may be listed once" % (where, seen[dest]))
            seen[dest] = entry.index
        if problems:
            raise BatchError("invalid downloads:\n  " + "\n  ".join(problems))

    def check_present(self, entry, size=None):
        try:
            presence = self.store.check_present(entry.dest, sha256=entry.sha256, size=size)
        except StoreError as exc:
            entry.finish("failed", str(exc))
            return True
        if presence.present:
            entry.finish("present", presence.reason, os.path.getsize(entry.dest))
            return True
        return False

    def needs_size_to_adopt(self, entry):
        """An unrecorded file with nothing to check it against: ask the origin for its size."""
        return (entry.sha256 is None and entry.size is None and os.path.isfile(entry.dest)
                and self.store.entry(entry.dest) is None)

    def resolve_one(self, entry):
        entry.started = time.monotonic()
        try:
            entry.resolved = resolve(entry.url, entry.token, entry.headers, timeout=self.connect_timeout,
                                     tries=self.tries, retry_wait=self.retry_wait)
        except OriginError as exc:
            entry.finish("failed", str(exc))
            return
        resolved = entry.resolved
        if resolved.content_type in ("text/html", "application/xhtml+xml"):
            entry.finish("failed", "%s answers with an HTML page (%s), not a model file" % (entry.origin, resolved.content_type))
        elif entry.size is not None and resolved.size is not None and entry.size != resolved.size:
            entry.finish("failed", "the origin's file is %d bytes but %d were expected" % (resolved.size, entry.size))

    def expected_size(self, entry):
        if entry.size is not None:
            return entry.size
        return entry.resolved.size if entry.resolved else None

    def staged_bytes(self, entry):
        """Bytes a partial download already holds on disk (allocated blocks: parallel
        connections leave holes, so the apparent size says little)."""
        try:
            st = os.stat(entry.staged)
        except OSError:
            return 0
        return min(st.st_size, st.st_blocks * 512)

    def preflight_disk(self, todo):
        """Fail before any download when the known sizes cannot fit. Every entry left here
        stages on the state dir's filesystem (check_same_filesystem), so one sum is enough."""
        want = sum(max(0, self.expected_size(e) - self.staged_bytes(e)) for e in todo
                   if self.expected_size(e) is not None)
        if want:
            free = self.store.free_bytes(self.store.staging_dir)
            if want > free:
                raise BatchError(
                    "not enough disk space for the models: %s needed, %s free on the filesystem of %s; "
                    "free some space or remove entries (nothing was downloaded)"
                    % (human(want), human(free), self.store.staging_dir))

    def run_aria2(self, todo):
        options = dict(self.aria2_options)
        options.update({"continue": "true", "allow-overwrite": "false", "auto-file-renaming": "false",
                        "file-allocation": "none", "remote-time": "false", "auto-save-interval": "5",
                        "max-download-result": str(max(1000, len(todo) * 2)),
                        "connect-timeout": str(self.connect_timeout)})
        try:
            with Aria2Session(self.aria2c, options, self.store.state_dir) as session:
                for entry in todo:
                    self.add(session, entry)
                self.wait(session, todo)
        except (Aria2Error, OSError, ValueError) as exc:
            # aria2c died or stopped answering: every unsettled entry fails; partial files stay
            # in staging so the next run resumes them.
            for entry in todo:
                if entry.status is None:
                    entry.finish("failed", "aria2c stopped: %s" % exc)

    def add(self, session, entry):
        headers = []
        if entry.resolved.with_auth:
            headers = ["%s: %s" % item for item in entry.headers.items()]
            if entry.token:
                headers.append("Authorization: Bearer %s" % entry.token)
        entry.gid = session.add(entry.resolved.url, self.store.staging_dir, os.path.basename(entry.staged), headers)

    def wait(self, session, todo):
        with ThreadPoolExecutor(max_workers=PUBLISH_WORKERS) as publishers:
            all_complete = self._poll(session, todo, publishers)
            # Every download has stopped. When all of them completed, aria2c has nothing left to
            # save (it drops a download's control file on completion), so it is killed at once:
            # SIGTERM costs up to a second, since aria2c looks at signals once a second. Otherwise
            # SIGTERM lets it save the control files a resume needs.
            if all_complete:
                session.process.kill()
            else:
                session.process.terminate()

    def _poll(self, session, todo, publishers):
        """Hand each finished download to a publisher; True when every one of them completed."""
        all_complete = True
        pending = dict((entry.gid, entry) for entry in todo)
        retry_at = {}
        last_progress = time.monotonic()
        while pending or retry_at:
            if not session.alive():
                raise Aria2Error("aria2c exited unexpectedly (code %s)" % session.process.returncode)
            for entry, when in list(retry_at.items()):
                if time.monotonic() >= when:
                    del retry_at[entry]
                    self.add(session, entry)  # resumes from the partial file in staging
                    pending[entry.gid] = entry
            statuses = session.statuses()
            for gid, entry in list(pending.items()):
                status = statuses.get(gid)
                if status and status["status"] in ("complete", "error", "removed"):
                    del pending[gid]
                    if status["status"] == "error" and entry.rounds < RETRY_ROUNDS and is_transient(status):
                        entry.rounds += 1
                        retry_at[entry] = time.monotonic() + self.retry_wait * entry.rounds
                        self.log("retrying %s: %s" % (entry.name, describe_error(status)))
                        continue
                    all_complete = all_complete and status["status"] == "complete"
                    publishers.submit(self.settle, entry, status)
            if pending and time.monotonic() - last_progress >= PROGRESS_EVERY:
                last_progress = time.monotonic()
                done = sum(int(statuses[g]["completedLength"]) for g in pending if g in statuses)
                total = sum(int(statuses[g]["totalLength"]) for g in pending if g in statuses)
                speed = sum(int(statuses[g]["downloadSpeed"]) for g in pending if g in statuses)
                self.log("progress: %d file(s) in flight, %s of %s, %s/s"
                         % (len(pending), human(done), human(total), human(speed)))
            if pending or retry_at:
                time.sleep(POLL_EVERY)
        return all_complete

    def settle(self, entry, status):
        try:
            self._settle(entry, status)
        except Exception as exc:  # pylint: disable=broad-except
            # A worker thread's exception would otherwise vanish; the entry must still get a result.
            entry.finish("failed", "unexpected error while publishing: %s" % exc)

    def _settle(self, entry, status):
        if status["status"] != "complete":
            entry.finish("failed", describe_error(status))
            self.log("failed %s: %s" % (entry.name, entry.reason))
            return
        total = int(status.get("totalLength") or 0)
        size = self.expected_size(entry)
        try:
            self.store.publish(entry.staged, entry.dest, size=size if size is not None else (total or None),
                               sha256=entry.sha256, etag=entry.resolved.etag, hash_unknown=False)
        except (StoreError, OSError) as exc:
            entry.finish("failed", "not published: %s" % exc)
            self.log("failed %s: %s" % (entry.name, entry.reason))
            return
        entry.finish("downloaded", "", os.path.getsize(entry.dest))
        self.log("downloaded %s (%s in %.1f s) -> %s" % (entry.name, human(entry.bytes), entry.seconds, entry.dest))

    # -- the whole run ---------------------------------------------------------------------
    def run(self):
        self.validate()
        try:
            self.store = ModelStore(self.state_dir, read_only=self.check_mode)
        except StoreError as exc:
            raise BatchError(str(exc))
        with self.store.exclusive_run("aria2_batch", on_wait=self.log):
            return self._run_locked()

    def _run_locked(self):
        before = [e.dest for e in self.entries if os.path.isfile(e.dest)]
        todo = []
        adopt = []
        for entry in self.entries:
            if self.needs_size_to_adopt(entry):
                adopt.append(entry)
            elif not self.check_present(entry):
                todo.append(entry)
        with ThreadPoolExecutor(max_workers=RESOLVE_WORKERS) as pool:
            list(pool.map(self.resolve_one, adopt + todo))
        for entry in adopt:
            if entry.status is None and not self.check_present(entry, size=entry.resolved.size):
                todo.append(entry)
            elif entry.status == "failed":
                # The origin failed, but the file on disk was never ours to judge: keep it.
                entry.finish("present", "kept the existing file; the origin could not be asked (%s)" % entry.reason,
                             os.path.getsize(entry.dest))
        todo = [e for e in todo if e.status is None]
        for entry in todo:
            entry.staged = self.store.staging_path(entry.dest, entry.url.split("?", 1)[0])
            try:
                self.store.check_same_filesystem(entry.dest)
            except StoreError as exc:
                entry.finish("failed", str(exc))
        todo = [e for e in todo if e.status is None]
        if self.check_mode:
            for entry in todo:
                size = self.expected_size(entry)
                entry.finish("would_download", "size unknown until downloaded" if size is None else "",
                             max(0, (size or 0) - self.staged_bytes(entry)))
        else:
            self.store.cleanup_stale(keep=[e.staged for e in todo])
            self.preflight_disk(todo)
            if todo:
                self.log("starting %d download(s) of %s known size with aria2c"
                         % (len(todo), human(sum(self.expected_size(e) or 0 for e in todo))))
                self.run_aria2(todo)
        return self.summary(before)

    def summary(self, before):
        results = [e.result() for e in self.entries]
        counts = dict((key, sum(1 for r in results if r["status"] == key))
                      for key in ("downloaded", "present", "failed", "would_download"))
        after = [e.dest for e in self.entries
                 if e.status in ("downloaded", "would_download") or (e.status != "failed" and e.dest in before)]
        if not self.check_mode:
            for problem in self.store.ledger_errors:
                self.log("ledger not updated (the file is in place and will be checked next run): %s" % problem)
            failed = [r for r in results if r["status"] == "failed"]
            self.log("summary: %d downloaded, %d present, %d failed%s" % (
                counts["downloaded"], counts["present"], counts["failed"],
                "".join("\n    failed %s: %s" % (r["name"], r["reason"]) for r in failed)))
        return {
            "changed": bool(counts["downloaded"] or counts["would_download"]),
            "results": results,
            "downloaded": counts["downloaded"],
            "present": counts["present"],
            # Not `failed`: Ansible reads any truthy `failed` as a failed task, even with fail_on_error=false.
            "failed_count": counts["failed"],
            "would_download": counts["would_download"],
            "bytes_needed": sum(r["bytes"] for r in results if r["status"] == "would_download"),
            "hashed": self.store.hashed,
            "warnings": (["log: " + self.log_errors[0]] if self.log_errors else [])
            + ["ledger not updated for %s" % e for e in self.store.ledger_errors],
            "diff": {"before": "".join(p + "\n" for p in sorted(before)),
                     "after": "".join(p + "\n" for p in sorted(set(after)))},
        }
