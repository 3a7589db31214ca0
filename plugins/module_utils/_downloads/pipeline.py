# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The life cycle of every model download, one piece that the HTTP and R2 fetchers plug into.

Per entry: validate -> check present (ledger, no bytes read) -> probe the source (size, ETag,
where it is) -> present check that needed the probe -> disk preflight -> fetch into staging ->
verify + publish + record (model_store) -> log -> one result. For the run: one run lock (with
the module's PID), one models log, one result shape, one way of reporting ledger problems,
stale-staging cleanup and a clean stop on SIGTERM.

Every entry ends with exactly one result ``{name, dest, source, status, reason, bytes,
fetched_bytes, seconds, sha256, sha256_from}``, status ``downloaded``, ``present``, ``failed`` or (check mode)
``would_download``. Nothing that goes wrong for one entry reaches another; a problem of the
whole run (missing credentials, no state dir) fails every entry with the same reason, and any
unexpected exception becomes the entry's (or every entry's) failure, never a traceback.

A fetcher provides (duck-typed; see http_fetcher.HttpFetcher, r2_fetcher.R2Fetcher)::

    downloader            name for the log, the run lock and messages ("aria2_batch")
    items                 the module option listing the entries ("downloads"), for messages
    hash_unknown          hash files without an expected sha256 at publish (to record it)
    validate(entry)       raise EntryProblem for bad input of one entry (no I/O)
    prepare(entries)      before any network: credentials etc.; raise RunError, or fail entries
    probe_first(e, store) True when presence needs the probe (size/ETag) first
    keep_without_probe(e, store)  the probe failed: is the file on disk still good to keep?
    probe(entries, run)   network: set e.size/e.etag, or e.probe_error; the sha256 the source
                          publishes in e.source_sha256/e.source_hash_from (source_hashes.py), or
                          e.source_error when the source's answer shows the file is wrong
    identity(e)           what names the source, so a partial of other content is not resumed
    fetch(entries, run)   download into e.staged; call run.settle(e, error) once per entry
    describe(e, error)    a reason for a fetch error
    discard_after(error)  True when the partial is of other content (object changed)
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, wait

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import is_sha256_hex
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import (
    ModelStore,
    StopRequested,
    StoreError,
    VerifyError,
    os_error_text,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.models_log import ModelsLog
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download import DownloadStopped
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.source_hashes import FROM_MANIFEST, reconcile

COUNTED = ("downloaded", "present", "failed", "would_download")
RESUMES = "the next start resumes it"


class EntryProblem(ValueError):
    """Bad input for one entry; only that entry fails."""


class RunError(Exception):
    """The whole run cannot go on (no credentials, no state dir): every entry fails with this."""


class Entry:
    """One model to fetch and, as the run proceeds, its result. Fetchers subclass it for their
    own fields (url and token, bucket and key)."""

    def __init__(self, index, name, dest, sha256=None, size=None, source=""):
        self.index = index
        self.name = name
        self.dest = dest
        self.sha256 = (sha256 or "").lower() or None
        self.sha256_from = FROM_MANIFEST if self.sha256 else None
        self.source_sha256 = None
        self.source_hash_from = None
        self.source_error = None
        self.size = size
        self.source = source
        self.etag = None
        self.staged = None
        self.probe_error = None
        self.probed_first = False
        self.status = None
        self.reason = ""
        self.notes = []
        self.bytes = 0
        self.fetched_bytes = 0
        self.resumed_bytes = 0
        self.seconds = 0.0
        self.started = None
        self.hasher = None  # prefix_hash.PrefixHasher when the fetcher hashes while downloading
        self._lock = threading.Lock()

    @property
    def done(self):
        return self.status is not None

    def start(self):
        if self.started is None:
            self.started = time.monotonic()

    def finish(self, status, reason="", size=None):
        """Set the result once; later calls (a stop racing a publish) are ignored."""
        with self._lock:
            if self.status is not None:
                return False
            self.status = status
            self.reason = reason
            self.bytes = size or 0
            if self.started is not None:
                self.seconds = round(time.monotonic() - self.started, 2)
            return True

    def result(self, recorded=None):
        """The result dict; `recorded` (the ledger entry of a present or downloaded file) gives
        the sha256 it was verified against and where that came from."""
        reason = "; ".join([r for r in [self.reason] + self.notes if r])
        sha256, sha256_from = self.sha256, self.sha256_from
        if recorded and self.status in ("present", "downloaded"):
            sha256 = recorded.get("sha256") or sha256
            sha256_from = recorded.get("sha256_from") or (sha256_from if sha256 == self.sha256 else None)
        return {
            "name": self.name,
            "dest": self.dest,
            "source": self.source,
            "status": self.status or "failed",
            "reason": reason,
            "bytes": self.bytes,
            "fetched_bytes": self.fetched_bytes,
            "seconds": self.seconds,
            "sha256": sha256,
            "sha256_from": sha256_from,
        }


def for_each(function, items, workers, stop, grace=1.0):
    """function(item) for every item on `workers` threads; returns when all are done, or about
    `grace` seconds after `stop` is set (a thread blocked on a slow server is left behind: the
    module is about to exit). Exceptions stay in the threads' futures: the function handles its own."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))))
    pending = set(pool.submit(function, item) for item in items)
    stop_seen = None
    while pending:
        _done, pending = wait(pending, timeout=0.2)
        if stop.is_set():
            stop_seen = stop_seen or time.monotonic()
            if time.monotonic() - stop_seen >= grace:
                break
    pool.shutdown(wait=not pending, cancel_futures=True)


def disk_full(exc):
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class DownloadRun:
    """``DownloadRun(fetcher, entries, state_dir, log_file, check_mode, signals).run()`` -> the
    module's result dict (see summary()). ``signals`` (stop.StopSignals) ends the run early."""

    def __init__(self, fetcher, entries, state_dir, log_file=None, check_mode=False, signals=None):
        self.fetcher = fetcher
        self.entries = list(entries)
        self.state_dir = state_dir
        self.check_mode = check_mode
        self.signals = signals
        self.stop = signals.event if signals is not None else threading.Event()
        self.log = ModelsLog(None if check_mode else log_file, fetcher.downloader)
        self.store = None
        self.run_error = None
        self.stopped = False
        self.before = set()

    # -- the run ---------------------------------------------------------------------------
    def run(self):
        self.before = set(e.dest for e in self.entries if isinstance(e.dest, str) and os.path.isfile(e.dest))
        try:
            self._run()
        except (StopRequested, KeyboardInterrupt):
            self.stop.set()
        except RunError as exc:
            self._fail_run(str(exc))
        except Exception as exc:  # pylint: disable=broad-except
            # A bug must still end with a result for every entry and a line in the log.
            self.log(f"unexpected error: {''.join(traceback.format_exception_only(type(exc), exc)).strip()}")
            self._fail_run(f"unexpected error in {self.fetcher.downloader}: {type(exc).__name__}: {exc}")
        if self.stop.is_set():
            self._mark_stopped()
        return self.summary()

    def _run(self):
        self._validate()
        todo = [e for e in self.entries if not e.done]
        if not todo:
            return
        self.fetcher.prepare(todo)
        for entry in todo:
            if entry.status == "failed":
                self.log(f"failed {entry.name}: {entry.reason}")
        todo = [e for e in todo if not e.done]
        if not todo:
            return
        try:
            self.store = ModelStore(self.state_dir, read_only=self.check_mode)
        except StoreError as exc:
            raise RunError(str(exc)) from exc
        with self.store.exclusive_run(self.fetcher.downloader, on_wait=self.log, stop=self.stop):
            self._locked(todo)

    def _validate(self):
        seen = {}
        for entry in self.entries:
            where = f"{entry.name} ({entry.dest})" if entry.name != entry.dest else entry.name
            try:
                if (
                    not isinstance(entry.dest, str)
                    or not os.path.isabs(entry.dest)
                    or os.path.basename(entry.dest) in ("", ".", "..")
                ):
                    raise EntryProblem(f"dest must be an absolute file path, got {entry.dest!r}")
                if os.path.normpath(entry.dest) != entry.dest:
                    raise EntryProblem(
                        f"dest {entry.dest!r} must be a normalized file path (no '..', '//' or trailing '/')"
                    )
                if entry.sha256 and not is_sha256_hex(entry.sha256):
                    raise EntryProblem(f"sha256 must be 64 hex digits, got {entry.sha256!r}")
                if entry.size is not None and entry.size < 0:
                    raise EntryProblem("size must not be negative")
                if entry.dest in seen:
                    raise EntryProblem(
                        f"same dest as {self.fetcher.items}[{seen[entry.dest].index}] ({seen[entry.dest].name}); each file may be listed once"
                    )
                self.fetcher.validate(entry)
            except (EntryProblem, ValueError) as exc:
                entry.finish("failed", f"{self.fetcher.items}[{entry.index}]: {exc}")
                self.log(f"failed {where}: {entry.reason}")
            if isinstance(entry.dest, str):
                seen.setdefault(entry.dest, entry)

    def _fail(self, entry, reason):
        if entry.finish("failed", reason):
            self.log(f"failed {entry.name}: {reason}")

    def _unexpected(self, entry, doing, exc):
        """A bug or an unforeseen error in one entry's step: that entry's failure, nobody else's."""
        self._fail(entry, f"unexpected error while {doing}: {type(exc).__name__}: {exc}")

    def _presence(self, entry, size=None, etag=None):
        """The store's presence check for entry; None (and entry failed) when it cannot tell."""
        try:
            presence = self.store.check_present(
                entry.dest, sha256=entry.sha256, size=size, etag=etag, sha256_from=entry.sha256_from
            )
        except (StoreError, OSError) as exc:
            self._fail(entry, str(exc) if isinstance(exc, StoreError) else os_error_text(exc))
            return None
        except Exception as exc:  # pylint: disable=broad-except
            self._unexpected(entry, f"checking {entry.dest}", exc)
            return None
        self._note_ledger(entry)
        if presence.present:
            entry.finish("present", presence.reason, os.path.getsize(entry.dest))
        elif presence.reason.startswith("replaced upstream"):
            entry.notes.append(presence.reason)
            self.log(f"{entry.name}: {presence.reason}")
        return presence

    def _note_ledger(self, entry):
        problem = self.store.ledger_errors.get(os.path.abspath(entry.dest))
        if problem and not any(n.startswith("ledger not updated") for n in entry.notes):
            entry.notes.append(f"ledger not updated ({problem}): the file is checked again at the next run")
            self.log(
                f"ledger not updated for {entry.name} ({problem}): the file is in place and is checked again at the next run"
            )

    def _locked(self, todo):
        probing = []
        for entry in todo:
            entry.start()
            try:
                first = self.fetcher.probe_first(entry, self.store)
            except Exception as exc:  # pylint: disable=broad-except
                self._unexpected(entry, f"checking {entry.dest}", exc)
                continue
            if first:
                entry.probed_first = True
                probing.append(entry)
            elif self._presence(entry, size=entry.size) is not None and not entry.done:
                probing.append(entry)
        self._check_stop()
        if probing:
            try:
                self.fetcher.probe(probing, self)
            except Exception as exc:  # pylint: disable=broad-except
                for entry in probing:
                    if not entry.done and entry.probe_error is None and entry.size is None:
                        self._unexpected(entry, "asking %s" % (entry.source or "the source"), exc)
        self._check_stop()
        pending = []
        for entry in probing:
            if entry.done:
                continue
            problem = entry.source_error or (reconcile(entry) if not entry.probe_error else "")
            if problem:
                # The source answered, and its answer shows the file is not the wanted one: never
                # kept, never downloaded.
                self._fail(entry, problem)
                continue
            if entry.probe_error:
                if entry.probed_first and self.fetcher.keep_without_probe(entry, self.store):
                    entry.finish(
                        "present",
                        f"kept the file on disk; its source could not be asked ({entry.probe_error})",
                        os.path.getsize(entry.dest),
                    )
                    self.log(f"kept {entry.name}: {entry.reason}")
                else:
                    entry.finish("failed", entry.probe_error)
                    self.log(f"failed {entry.name}: {entry.reason}")
                continue
            if entry.probed_first:
                presence = self._presence(entry, size=entry.size, etag=getattr(entry, "match_etag", None))
                if presence is None or entry.done:
                    continue
            pending.append(entry)
        if self.check_mode:
            for entry in pending:
                staged = self.store.staging_path(entry.dest, self.fetcher.identity(entry))
                left = max(0, (entry.size or 0) - self.store.staged_bytes(staged))
                entry.finish("would_download", "size unknown until downloaded" if entry.size is None else "", left)
            return
        for entry in pending:
            try:
                entry.staged = self.store.staging_path(entry.dest, self.fetcher.identity(entry))
                self.store.check_same_filesystem(entry.dest)
            except (StoreError, OSError) as exc:
                self._fail(entry, str(exc) if isinstance(exc, StoreError) else os_error_text(exc))
            except Exception as exc:  # pylint: disable=broad-except
                self._unexpected(entry, "preparing its staging file", exc)
        pending = [e for e in pending if not e.done]
        try:
            removed = self.store.cleanup_stale(keep=[e.staged for e in pending])
        except OSError as exc:
            removed = []
            self.store.warnings.append(f"stale staging files not cleaned up: {os_error_text(exc)}")
        if removed:
            self.log(f"removed {len(removed)} partial download(s) untouched for a week from staging")
        fits = self._preflight(pending)
        if not fits:
            return
        self.log(f"starting {len(fits)} download(s), {bytes_to_human(sum(e.size or 0 for e in fits))} of known size")
        self._check_stop()
        try:
            self.fetcher.fetch(fits, self)
        except Exception as exc:  # pylint: disable=broad-except
            for entry in fits:
                if not entry.done:
                    self._unexpected(entry, "downloading", exc)
        for entry in fits:
            if not entry.done and not self.stop.is_set():
                self._fail(entry, "the downloader ended without a result for this file")

    def _preflight(self, pending):
        """The entries whose remaining bytes fit on the staging filesystem, in manifest order;
        every other one fails with what it needs and what is free."""
        try:
            free = self.store.free_bytes(self.store.staging_dir)
            where = self.store.filesystem_of(self.store.staging_dir)
        except OSError as exc:
            self.store.warnings.append(f"disk space not checked: {os_error_text(exc)}")
            return pending
        fits = []
        for entry in pending:
            need = max(0, entry.size - self.store.staged_bytes(entry.staged)) if entry.size is not None else 0
            if need <= free:
                free -= need
                fits.append(entry)
                continue
            entry.finish(
                "failed",
                f"not enough disk space: needs {bytes_to_human(need)}, {bytes_to_human(free)} free on {where} (after the other downloads "
                "of this run); free some space, the next start tries again",
            )
            self.log(f"failed {entry.name}: {entry.reason}")
        return fits

    def _check_stop(self):
        if self.stop.is_set():
            raise StopRequested()

    # -- called by fetchers ----------------------------------------------------------------
    def settle(self, entry, error=None, done_note=""):
        """A fetch of entry ended: verify, publish, record and log it, or fail it. Any thread;
        never raises."""
        try:
            self._settle(entry, error, done_note)
        except Exception as exc:  # pylint: disable=broad-except
            entry.finish("failed", f"unexpected error while placing the file: {type(exc).__name__}: {exc}")
            self.log(f"failed {entry.name}: {entry.reason}")

    def _settle(self, entry, error, done_note):
        if entry.done:
            return
        if error is not None:
            if entry.hasher is not None:
                entry.hasher.cancel()
            if self.stop.is_set() and isinstance(error, DownloadStopped):
                return  # reported by _mark_stopped
            if disk_full(error):
                reason = self.disk_full_reason(entry)
            else:
                reason = self.fetcher.describe(entry, error)
            if self.fetcher.discard_after(error):
                self.store.discard_staging(entry.staged)
            entry.finish("failed", reason)
            self.log(f"failed {entry.name}: {reason}")
            return
        try:
            self.store.publish(
                entry.staged,
                entry.dest,
                size=entry.size,
                sha256=entry.sha256,
                etag=entry.etag,
                hash_unknown=self.fetcher.hash_unknown,
                sha256_from=entry.sha256_from,
                streamed_sha256=self._streamed(entry),
            )
        except VerifyError as exc:
            entry.finish("failed", f"verification failed, nothing was placed at {entry.dest}: {exc}")
        except (StoreError, OSError) as exc:
            text = (
                self.disk_full_reason(entry)
                if disk_full(exc)
                else (str(exc) if isinstance(exc, StoreError) else os_error_text(exc))
            )
            entry.finish("failed", f"could not place {entry.dest}: {text}")
        else:
            self._note_ledger(entry)
            entry.finish("downloaded", done_note, os.path.getsize(entry.dest))
            self.log(
                f"downloaded {entry.name} ({bytes_to_human(entry.bytes)} in {entry.seconds:.1f} s{(f', {done_note}' if done_note else '')}) -> {entry.dest}"
            )
            return
        self.log(f"failed {entry.name}: {entry.reason}")

    def _streamed(self, entry):
        """The digest hashed while entry downloaded, once its hasher has read the rest; None
        without one (publish then reads the file)."""
        if entry.hasher is None or not (entry.sha256 or self.fetcher.hash_unknown):
            return None
        try:
            size = os.path.getsize(entry.staged)
        except OSError:
            return None  # publish says that no file was left
        if entry.size is not None and size != entry.size:
            entry.hasher.cancel()
            return None
        return entry.hasher.finish(size)

    def disk_full_reason(self, entry):
        try:
            free = bytes_to_human(self.store.free_bytes(self.store.staging_dir))
            where = self.store.filesystem_of(self.store.staging_dir)
        except OSError:
            free, where = "?", self.store.staging_dir
        need = bytes_to_human(entry.size) if entry.size is not None else "an unknown size"
        return f"the disk filled up while downloading: the file needs {need}, {free} free on {where} now; free some space, {RESUMES}"

    # -- endings ---------------------------------------------------------------------------
    def _fail_run(self, message):
        self.run_error = message
        failed = [e for e in self.entries if e.finish("failed", message)]
        if failed:
            self.log(
                f"FAILED before downloading: {message}; {len(failed)} model(s) not downloaded ({', '.join(e.name for e in failed)}); the next start tries again"
            )

    def _mark_stopped(self):
        self.stopped = True
        name = (self.signals.name if self.signals is not None else None) or "a stop request"
        unfinished = []
        for entry in self.entries:
            if entry.hasher is not None:
                entry.hasher.cancel()
            if entry.done:
                continue
            held = self.store.staged_bytes(entry.staged) if (self.store and entry.staged) else 0
            have = f" ({bytes_to_human(held)} of {bytes_to_human(entry.size)} in staging)" if entry.size else ""
            if entry.finish("failed", f"stopped by {name} before it finished{have}; {RESUMES}"):
                unfinished.append(entry)
        self.log(
            f"stopped by {name}: {len(unfinished)} download(s) unfinished ({', '.join(e.name for e in unfinished) or 'none'}); they resume at the next start"
        )

    def _recorded(self, entry):
        if self.store is None or entry.status not in ("present", "downloaded"):
            return None
        try:
            return self.store.entry(entry.dest)
        except StoreError:
            return None

    def summary(self):
        """The module's result: results, counts, diff, message, warnings."""
        results = [e.result(self._recorded(e)) for e in self.entries]
        counts = dict((key, sum(1 for r in results if r["status"] == key)) for key in COUNTED)
        failed = [r for r in results if r["status"] == "failed"]
        if not self.check_mode and self.entries:
            self.log(
                "summary: {} downloaded, {} present, {} failed{}".format(
                    counts["downloaded"],
                    counts["present"],
                    counts["failed"],
                    "".join(f"\n    failed {r['name']}: {r['reason']}" for r in failed),
                )
            )
        warnings = []
        if self.store is not None:
            warnings += [
                "ledger not updated for {}: {}; it is checked again at the next run".format(*item)
                for item in sorted(self.store.ledger_errors.items())
            ]
            warnings += self.store.warnings
        warnings += [f"log: {problem}" for problem in self.log.errors]
        after = set(self.before)
        after |= set(r["dest"] for r in results if r["status"] in ("downloaded", "would_download"))
        message = ""
        if failed:
            message = f"{len(failed)} of {len(results)} models failed: {'; '.join('{}: {}'.format(r['name'], r['reason']) for r in failed)}"
            if self.run_error:
                message = f"{self.run_error} ({message})"
        return {
            "changed": bool(counts["downloaded"] or counts["would_download"]),
            "results": results,
            "downloaded": counts["downloaded"],
            "present": counts["present"],
            # Not `failed`: Ansible reads any truthy `failed` as a failed task, even with fail_on_error=false.
            "failed_count": counts["failed"],
            "would_download": counts["would_download"],
            "bytes_needed": sum(r["bytes"] for r in results if r["status"] == "would_download"),
            "hashed": self.store.hashed if self.store else 0,
            "diff": {
                "before": "".join(p + "\n" for p in sorted(self.before)),
                "after": "".join(p + "\n" for p in sorted(after)),
            },
            "msg": message,
            "warnings": warnings,
            "stopped": self.stopped,
        }


class Unusable:
    """The fetcher a module runs when it cannot download at all (no boto3, no aria2c, a bad
    option): every entry still gets its failed result and its line in the models log, so a
    background job that cannot start is not silent."""

    hash_unknown = False

    def __init__(self, downloader, items, problem):
        self.downloader = downloader
        self.items = items
        self.problem = problem

    def validate(self, entry):
        """Each entry's own problems are reported as usual (by the run)."""

    def prepare(self, entries):
        raise RunError(self.problem)


def run_module_downloads(module, fetcher, entries, fail_on_error, signals):
    """The end of both modules' main(): run, report, exit (also on a stop request)."""
    run = DownloadRun(
        fetcher,
        entries,
        module.params["state_dir"],
        log_file=module.params.get("log_file"),
        check_mode=module.check_mode,
        signals=signals,
    )
    result = run.run()
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    stopped = result.pop("stopped")
    message = result.pop("msg")
    try:
        if result["failed_count"] and (fail_on_error or stopped):
            module.fail_json(msg=message, **result)
        module.exit_json(**result)
    except SystemExit as exc:
        if stopped:
            # Threads still blocked on a slow server must not hold the exit: the result is out.
            sys.stdout.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        raise
