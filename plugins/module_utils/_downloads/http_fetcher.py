# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP fetcher of the download pipeline (module aria2_batch): Hugging Face, CivitAI, URLs.

Probe: each entry's origin is asked where the file is, hop by hop (http_origin.resolve), with
the token only on hops at the origin. Fetch:

* the chain left the origin (signed storage, a CDN) or there is no token: one aria2c for all
  of them, given the final URL and never a token;
* the origin serves the file itself and the token is needed for the body: downloaded
  in-process by ranged_download.py over http_origin.OriginRanges, each ranged GET again
  resolved hop by hop, so a redirect on a later range cannot take the token along.

The sha256 the source publishes (Hugging Face's X-Linked-Etag on the probe's redirect, CivitAI's
model-version API) is what a download is verified against when the entry gives none
(source_hashes.py); a file recorded with such a hash is asked about again at each run, so a
model replaced upstream under the same URL is noticed. The first probe of each origin goes
alone (OriginGates): an origin that cannot be reached costs its retries once per run, and its
recorded files are then kept only while they are as recorded (keep_without_probe).

A URL's ``user:pass@`` is HTTP Basic auth for its origin, sent like a token; a URL that holds
credentials reaches the module by reference (``secret_url``, secret_urls.py), never as an argument.

Tokens come from the entry (``token``, for people calling the module by hand) or, by name
(``token_name``), from the target's environment or env file (target_secrets.py).
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.aria2 import (
    Aria2Error,
    Aria2Session,
    control_progress,
    explain,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import (
    ObjectChanged,
    OriginClient,
    OriginError,
    OriginRanges,
    check_header_value,
    check_url,
    origin_label,
    origin_of,
    resolve,
    userinfo_authorization,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import (
    is_transient as body_broke_off,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import StoreError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import Entry, EntryProblem, for_each
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.prefix_hash import (
    PrefixHasher,
    complete_prefix,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download import (
    MIB,
    DownloadJob,
    RangedDownloader,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.secret_urls import SecretUrls, SecretUrlsError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.source_hashes import (
    FROM_CIVITAI,
    FROM_HUGGINGFACE,
    SourceHashError,
    civitai_api_url,
    civitai_file,
    civitai_version,
    civitai_version_id,
    huggingface_linked,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import SecretsError

PROGRESS_EVERY = 10.0
POLL_EVERY = 0.5
# While files are hashed as they download, aria2c is asked more often: the hash then trails the
# download by less, and a finished download is noticed sooner (the RPC calls cost ~1 ms each).
HASH_POLL_EVERY = 0.1
AUTO_SAVE_SECONDS = 10
RESOLVE_WORKERS = 8
# Verifying means hashing the whole file; two at a time uses both cores of a small pod while
# aria2c keeps downloading the rest.
PUBLISH_WORKERS = 2
# aria2c retries timeouts, resets and 502/503 itself but gives up on a 500 or 429 at once;
# those are often transient at CDNs, so such a download gets a few more rounds (resuming).
RETRY_ROUNDS = 2
TRANSIENT_STATUS_RE = re.compile(r"status=(5\d\d|429)\b")
HTML_TYPES = ("text/html", "application/xhtml+xml")


class Aria2Failed(Exception):
    """aria2c reported a download as failed; ``status`` is its RPC status, ``cause`` the last
    (code, message) it logged for the URL."""

    def __init__(self, status, cause=None):
        super().__init__(status.get("errorMessage") or f"aria2c error {status.get('errorCode')}")
        self.status = status
        self.cause = cause


def aria2_transient(status):
    """A failure aria2c gave up on that another round (resuming from staging) may get past."""
    code = str(status.get("errorCode", ""))
    if code in ("2", "6"):
        return True
    return code == "22" and bool(TRANSIENT_STATUS_RE.search(status.get("errorMessage") or ""))


def _whole_number(value):
    """(size, problem) for an item's ``size``: a number of bytes, or a problem for the entry."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value, ""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()), ""
    return None, f"size must be a whole number of bytes, got {value!r}"


class HttpEntry(Entry):
    """One ``downloads`` item of aria2_batch."""

    def __init__(self, index, spec):
        dest = spec.get("dest")
        name = spec.get("name") or (os.path.basename(dest) if isinstance(dest, str) else f"downloads[{index}]")
        size, self.size_problem = _whole_number(spec.get("size"))
        super().__init__(index, name, dest, spec.get("sha256"), size)
        self.url = spec.get("url") or ""
        try:
            self.source = origin_label(self.url)
        except ValueError:
            self.source = ""
        self.token = spec.get("token") or None
        self.token_name = spec.get("token_name") or None
        self.secret_url = bool(spec.get("secret_url"))
        self.headers = dict(spec.get("headers") or {})
        self.client = None
        self.resolved = None
        self.in_process = False  # the origin serves it and it needs the token: OriginRanges
        self.transport = None
        self.gid = None
        self.rounds = 0


class HttpFetcher:
    """aria2c plus the in-process ranged transport, behind the pipeline's fetcher interface."""

    downloader = "aria2_batch"
    items = "downloads"
    # Every download is hashed while it arrives, an expected sha256 or not: the ledger and the
    # pod lock then hold the sha256 of what was fetched, so a lock can tell a model replaced
    # upstream under the same URL and size. The hash overlaps the download (prefix_hash.py).
    hash_unknown = True

    def __init__(
        self,
        aria2c,
        aria2_options,
        secrets,
        connect_timeout=15,
        tries=3,
        retry_wait=2,
        part_size=8 * MIB,
        connections=32,
        auto_save_seconds=AUTO_SAVE_SECONDS,
        secret_urls=None,
        check_mode=False,
    ):
        self.aria2c = aria2c
        self.secret_urls = secret_urls or SecretUrls(None)
        self.check_mode = check_mode
        self.auto_save_seconds = auto_save_seconds
        self.aria2_options = aria2_options
        self.secrets = secrets
        self.connect_timeout = connect_timeout
        self.tries = tries
        self.retry_wait = retry_wait
        self.part_size = max(MIB, part_size)
        self.connections = max(1, connections)
        self.run = None

    # -- before any network ----------------------------------------------------------------
    def validate(self, entry):
        if entry.size_problem:
            raise EntryProblem(entry.size_problem)
        check_url(entry.url)
        if entry.token and entry.token_name:
            raise EntryProblem("give token or token_name, not both")
        try:
            for key, value in entry.headers.items():
                check_header_value(key, "a header name")
                check_header_value(str(value), f"header {key}")
            if entry.token:
                check_header_value(entry.token, "the token")
        except OriginError as exc:
            raise EntryProblem(str(exc)) from exc

    def _real_url(self, entry):
        """The URL to ask, credentials included (from secret_urls when the entry was given it
        masked); False when the entry ended here."""
        if not entry.secret_url:
            return True
        try:
            entry.url = self.secret_urls.lookup(entry.dest, entry.url)
            check_url(entry.url)
        except SecretUrlsError as exc:
            if self.check_mode:
                entry.finish("would_download", f"not asked in check mode: {exc}")
            else:
                entry.finish("failed", str(exc))
            return False
        except ValueError as exc:
            entry.finish("failed", str(exc))
            return False
        return True

    def prepare(self, entries):
        for entry in entries:
            if not self._real_url(entry):
                continue
            # user:pass@ in the URL is Basic auth for that origin: sent like a token, hop by hop
            # to the origin only, never to aria2c or a host it redirects to.
            entry.url, basic = userinfo_authorization(entry.url)
            token = entry.token
            if not token and entry.token_name:
                try:
                    token = self.secrets.get(entry.token_name)
                except SecretsError as exc:
                    entry.finish("failed", f"cannot read {entry.token_name}: {exc}")
                    continue
            secret = dict((k, str(v)) for k, v in entry.headers.items())
            if token:
                secret["Authorization"] = f"Bearer {token}"
            if basic:
                if any(key.lower() == "authorization" for key in secret):
                    entry.finish(
                        "failed",
                        "the URL holds user:password@ and a token or Authorization header is given too; "
                        "keep one of them",
                    )
                    continue
                secret["Authorization"] = basic
            try:
                entry.client = OriginClient(
                    entry.url, secret, timeout=self.connect_timeout, tries=self.tries, retry_wait=self.retry_wait
                )
            except OriginError as exc:
                entry.finish("failed", f"{entry.token_name or 'token'}: {exc}")

    # -- presence --------------------------------------------------------------------------
    def probe_first(self, entry, store):
        """Ask the origin before judging a file on disk when nothing else can judge it: an
        unrecorded file with no sha256 or size given, or one recorded with the sha256 its
        source published (the source may have replaced it since). A file recorded against the
        manifest's sha256 is present without a request."""
        if entry.sha256 is not None or not os.path.isfile(entry.dest):
            return False
        item = store.entry(entry.dest)
        if item is None:
            return entry.size is None
        return item.get("sha256_from") in (FROM_HUGGINGFACE, FROM_CIVITAI)

    def keep_without_probe(self, entry, store):
        """The origin could not be asked. A file this module recorded is kept only while it is
        as recorded (size and mtime, nothing read): a truncated or rewritten model is not kept
        just because the source is down. A file nobody recorded is the user's own and stays."""
        try:
            recorded = store.entry(entry.dest)
        except StoreError:
            return False
        if recorded is not None:
            return store.recorded_unchanged(entry.dest, entry.sha256)
        return os.path.isfile(entry.dest)

    def probe(self, entries, run):
        gates = OriginGates()
        for_each(lambda entry: self._probe_one(entry, run.stop, gates), entries, RESOLVE_WORKERS, run.stop)

    def _probe_one(self, entry, stop, gates):
        if stop.is_set():
            return
        gate, first = gates.enter(origin_of(entry.url))
        if not first:
            while not gate.answered.wait(0.2):
                if stop.is_set():
                    return
            if gate.unreachable:
                entry.probe_error = (
                    f"{gate.unreachable} (not asked again for this file: an earlier request of this run got no answer)"
                )
                return
        try:
            resolved = resolve(entry.client)
        except OriginError as exc:
            entry.probe_error = str(exc)
            if first and unreachable(exc, entry.url):
                gate.unreachable = str(exc)
            return
        except Exception as exc:  # pylint: disable=broad-except
            entry.probe_error = f"unexpected error asking {entry.source}: {type(exc).__name__}: {exc}"
            return
        finally:
            if first:
                gate.answered.set()
        if resolved.content_type in HTML_TYPES:
            entry.probe_error = (
                f"{origin_label(resolved.url)} answers with an HTML page ({resolved.content_type}), not a model file"
            )
        elif entry.size is not None and resolved.size is not None and entry.size != resolved.size:
            entry.probe_error = f"the origin's file is {resolved.size} bytes but {entry.size} were expected"
        self._source_hash(entry, resolved, stop)
        entry.resolved = resolved
        if entry.size is None:
            entry.size = resolved.size
        entry.etag = resolved.etag
        entry.in_process = entry.client.has_secrets and resolved.served_by_origin

    def _source_hash(self, entry, resolved, stop):
        """What the source says the file is: Hugging Face's linked sha256 and size (on the
        answer already in hand), CivitAI's listed SHA256 (one API request)."""
        linked_sha256, linked_size = huggingface_linked(resolved.origin_headers)
        if linked_sha256:
            entry.source_sha256, entry.source_hash_from = linked_sha256, FROM_HUGGINGFACE
        if linked_size is not None:
            served = resolved.size
            if served is not None and served != linked_size:
                entry.source_error = (
                    f"{origin_label(entry.url)} lists this file as {linked_size} bytes"
                    + (f" (sha256 {linked_sha256})" if linked_sha256 else "")
                    + f" but the download it points to is {served} bytes: a truncated "
                    "or different file; nothing was downloaded, the next start tries again"
                )
                return
            if entry.size is not None and entry.size != linked_size:
                entry.source_error = (
                    f"{origin_label(entry.url)} lists this file as {linked_size} bytes but {entry.size} were expected"
                )
                return
        version_id = civitai_version_id(entry.url)
        if version_id is None or stop.is_set():
            return
        api = OriginClient(
            civitai_api_url(entry.url, version_id),
            entry.client.secret_headers,
            timeout=self.connect_timeout,
            tries=self.tries,
            retry_wait=self.retry_wait,
        )
        try:
            sha256, _name = civitai_file(civitai_version(api), entry.url)
        except SourceHashError as exc:
            entry.notes.append(f"no sha256 from CivitAI ({exc}): only the size was checked")
            return
        entry.source_sha256, entry.source_hash_from = sha256, FROM_CIVITAI

    def identity(self, entry):
        return entry.url.split("?", 1)[0]

    # -- fetching --------------------------------------------------------------------------
    def fetch(self, entries, run):
        self.run = run
        direct = [e for e in entries if e.in_process]
        via_aria2 = [e for e in entries if not e.in_process]
        worker = None
        if direct:
            worker = threading.Thread(target=self._fetch_in_process, args=(direct, run), daemon=True)
            worker.start()
        if via_aria2:
            self._fetch_with_aria2(via_aria2, run)
        if worker is not None:
            while worker.is_alive():
                worker.join(0.2)
                if run.stop.is_set():
                    worker.join(2.0)  # the ranged downloader gives up within about a second
                    break

    def _fetch_in_process(self, entries, run):
        jobs = []
        for entry in entries:
            job = DownloadJob(
                entry.name, entry.staged, entry.size, entry.etag, context=entry, ranges=entry.resolved.ranges
            )
            if entry.sha256 or self.hash_unknown:
                entry.hasher = PrefixHasher(entry.staged)  # hashed as the parts complete, as with R2
                job.on_prefix = entry.hasher.extend
            entry.transport = OriginRanges(entry.client, entry.etag)
            jobs.append(job)
            run.log(
                f"fetching {entry.name} ({bytes_to_human(entry.size) if entry.size is not None else 'size unknown'}) "
                f"from {entry.source} in-process: the origin serves it and it needs the token"
            )

        def finished(job):
            entry = job.context
            entry.fetched_bytes = job.fetched_bytes
            if entry.size is None:
                entry.size = job.size
            note = f"resumed: {bytes_to_human(job.resumed_bytes)} were already in staging" if job.resumed_bytes else ""
            run.settle(entry, job.error, note)

        downloader = RangedDownloader(
            lambda job, start, end: job.context.transport.open_range(job, start, end),
            max_concurrency=self.connections,
            part_size=self.part_size,
            multipart_threshold=2 * self.part_size,
            is_transient=body_broke_off,
            on_finished=finished,
            part_attempts=max(2, self.tries),
            retry_delay=min(2.0, float(self.retry_wait)),
            stop=run.stop,
        )
        try:
            downloader.run(jobs)
        except Exception as exc:  # pylint: disable=broad-except
            for job in jobs:
                run.settle(job.context, exc)

    def _fetch_with_aria2(self, entries, run):
        options = dict(self.aria2_options)
        options.update(
            {
                "continue": "true",
                "allow-overwrite": "false",
                "auto-file-renaming": "false",
                "file-allocation": "none",
                "remote-time": "false",
                # aria2c saves its control files on every stop it sees (SIGTERM, its parent's
                # death); this bounds what a SIGKILL of aria2c itself loses to 10 s of
                # transfer. Each save fsyncs every file in aria2c's only thread, which stalls
                # the download: saving every second cost 1-2 s per 2 GiB (aria2c's default,
                # 60 s, costs nothing beyond the fsync it does when a file completes).
                "auto-save-interval": str(self.auto_save_seconds),
                "max-download-result": str(max(1000, len(entries) * 2)),
                "connect-timeout": str(self.connect_timeout),
            }
        )
        try:
            with Aria2Session(self.aria2c, options, run.store.state_dir) as session:
                for entry in entries:
                    self._add(session, entry)
                self._wait(session, entries, run)
        except (Aria2Error, OSError, ValueError) as exc:
            # aria2c died or stopped answering: every unsettled entry fails; partial files stay
            # in staging so the next run resumes them.
            for entry in entries:
                if not entry.done:
                    run.settle(entry, OriginError(f"aria2c stopped: {exc}"))

    def _add(self, session, entry):
        control = control_progress(entry.staged + ".aria2") if os.path.exists(entry.staged + ".aria2") else None
        entry.resumed_bytes = control or 0
        if (entry.sha256 or self.hash_unknown) and entry.hasher is None:
            # Kept across retry rounds: aria2c resumes from its control file and never
            # rewrites a finished piece, and publish re-reads the file if the digests differ.
            entry.hasher = PrefixHasher(entry.staged)
        entry.gid = session.add(
            entry.resolved.url, run_staging(entry), os.path.basename(entry.staged), in_order=entry.hasher is not None
        )

    @staticmethod
    def _hash_progress(entry, status):
        """Let entry's hasher read what aria2c has finished from the first byte on (a resumed
        download's pieces already on disk included, at its first report)."""
        if entry.hasher is not None and status.get("status") == "active" and status.get("bitfield"):
            entry.hasher.extend(
                complete_prefix(
                    status["bitfield"], int(status.get("pieceLength") or 0), int(status.get("totalLength") or 0)
                )
            )

    def _wait(self, session, entries, run):
        publishers = ThreadPoolExecutor(max_workers=PUBLISH_WORKERS)
        try:
            all_complete = self._poll(session, entries, run, publishers)
        finally:
            # On a stop request a publish in progress (hashing a big file) is not waited for: the
            # staged file stays complete and the next run places it.
            publishers.shutdown(wait=not run.stop.is_set(), cancel_futures=run.stop.is_set())
        # Every download has stopped. When all of them completed, aria2c has nothing left to
        # save (it drops a download's control file on completion), so it is killed at once:
        # SIGTERM costs up to a second, since aria2c looks at signals once a second. Otherwise
        # SIGTERM lets it save the control files a resume needs.
        if all_complete and not run.stop.is_set():
            session.process.kill()
        else:
            session.stop()

    def _poll(self, session, entries, run, publishers):
        """Hand each finished download to a publisher; True when every one of them completed."""
        all_complete = True
        pending = dict((entry.gid, entry) for entry in entries)
        retry_at = {}
        last_progress = time.monotonic()
        while pending or retry_at:
            if run.stop.is_set():
                session.stop()  # aria2c saves every control file on SIGTERM
                return False
            if not session.alive():
                raise Aria2Error(f"aria2c exited unexpectedly (code {session.process.returncode})")
            for entry, when in list(retry_at.items()):
                if time.monotonic() >= when:
                    del retry_at[entry]
                    self._refresh(entry)
                    self._add(session, entry)  # resumes from the partial file in staging
                    pending[entry.gid] = entry
            statuses = session.statuses()
            for gid, entry in list(pending.items()):
                status = statuses.get(gid)
                if status:
                    self._hash_progress(entry, status)
                if not status or status["status"] not in ("complete", "error", "removed"):
                    continue
                del pending[gid]
                if status["status"] == "error" and entry.rounds < RETRY_ROUNDS and aria2_transient(status):
                    entry.rounds += 1
                    retry_at[entry] = time.monotonic() + self.retry_wait * entry.rounds
                    run.log(f"retrying {entry.name}: {self._explain(entry, status, session)}")
                    continue
                all_complete = all_complete and status["status"] == "complete"
                if status["status"] == "complete":
                    entry.fetched_bytes = max(0, int(status.get("totalLength") or 0) - entry.resumed_bytes)
                    note = (
                        f"resumed: {bytes_to_human(entry.resumed_bytes)} were already in staging"
                        if entry.resumed_bytes
                        else ""
                    )
                    publishers.submit(run.settle, entry, None, note)
                else:
                    publishers.submit(run.settle, entry, Aria2Failed(status, session.cause(entry.resolved.url)))
            if pending and time.monotonic() - last_progress >= PROGRESS_EVERY:
                last_progress = time.monotonic()
                done = sum(int(statuses[g]["completedLength"]) for g in pending if g in statuses)
                total = sum(int(statuses[g]["totalLength"]) for g in pending if g in statuses)
                speed = sum(int(statuses[g]["downloadSpeed"]) for g in pending if g in statuses)
                run.log(
                    f"progress: {len(pending)} file(s) in flight, {bytes_to_human(done)} of {bytes_to_human(total)}, {bytes_to_human(speed)}/s"
                )
            if pending or retry_at:
                hashing = any(entry.hasher is not None for entry in pending.values())
                run.stop.wait(HASH_POLL_EVERY if hashing else POLL_EVERY)
        return all_complete

    def _refresh(self, entry):
        """Before a retry round: a signed URL may have expired, so ask the origin again."""
        if not entry.client.has_secrets:
            return
        try:
            resolved = resolve(entry.client)
        except OriginError:
            return  # the retry uses the old URL and reports what happens
        if not resolved.served_by_origin:
            entry.resolved = resolved

    def _explain(self, entry, status, session):
        return self.describe(entry, Aria2Failed(status, session.cause(entry.resolved.url)))

    # -- failures --------------------------------------------------------------------------
    def describe(self, entry, error):
        if isinstance(error, Aria2Failed):
            cause = error.cause
            text = f"{error.status.get('errorMessage') or ''} {(cause[1] if cause else '')}"
            if str(error.status.get("errorCode")) == "9" or "No space left" in text:
                return self.run.disk_full_reason(entry) if self.run else "not enough disk space"
            done = None
            if entry.staged and os.path.exists(entry.staged + ".aria2"):
                done = control_progress(entry.staged + ".aria2")
            return explain(
                error.status,
                cause,
                host=origin_label(entry.resolved.url),
                done=done,
                total=entry.size if done is not None else None,
            )
        if isinstance(error, OriginError):
            return str(error)
        return f"{type(error).__name__}: {error}"

    def discard_after(self, error):
        return isinstance(error, ObjectChanged)


class OriginGate:
    """What the first probe of one origin in this run learnt: ``answered`` is set once it
    ended, ``unreachable`` holds its error when the origin could not be reached at all."""

    def __init__(self):
        self.answered = threading.Event()
        self.unreachable = None


class OriginGates:
    """One probe per origin goes first; the others wait for it. An origin that cannot be
    reached (connection refused, no route, DNS) then costs its retries once per run, not once
    per model: with the hub down, recorded models are kept (or fail) at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._gates = {}

    def enter(self, origin):
        """(gate, True) for the first probe of origin, (gate, False) for the others."""
        with self._lock:
            gate = self._gates.get(origin)
            if gate is not None:
                return gate, False
            gate = self._gates[origin] = OriginGate()
            return gate, True


def unreachable(error, url):
    """The origin of url did not answer at all (not an HTTP error, nor storage it redirects to)."""
    return isinstance(error, OriginError) and str(error).startswith(f"cannot reach {origin_label(url)}:")


def run_staging(entry):
    return os.path.dirname(entry.staged)


def http_entries(downloads):
    """HttpEntry per ``downloads`` item of the module."""
    return [HttpEntry(index, spec) for index, spec in enumerate(downloads or [])]
