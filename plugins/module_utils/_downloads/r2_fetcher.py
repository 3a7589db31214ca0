# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fetch a list of R2 (S3) objects into the model store: what the r2_fetch module does.

Per object: HEAD (size + ETag) -> ledger check (a recorded file with the same size, mtime and
ETag is present: no GET, no hashing) -> ranged parallel GETs into staging, each one
``If-Match: <ETag>`` so bytes of two object versions are never mixed -> verify (size, sha256
when given, not an error page) and atomic publish through model_store.

Every object is attempted and gets a result; nothing here raises for one object's failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import r2_client
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import StoreError, VerifyError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download import DownloadJob, RangedDownloader

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class ObjectSpec:
    """One wanted object: s3://bucket/key -> dest (optionally with a known sha256)."""

    def __init__(self, bucket, key, dest, sha256=None):
        self.bucket = bucket
        self.key = key
        self.dest = dest
        self.sha256 = sha256.lower() if sha256 else None

    @property
    def name(self):
        return "s3://%s/%s" % (self.bucket, self.key)


def parse_objects(objects, default_bucket=None):
    """ObjectSpecs from the module's ``objects`` option; R2ConfigError lists every bad item."""
    specs, problems, seen = [], [], {}
    for index, item in enumerate(objects or []):
        where = "objects[%d]" % index
        key = (item.get("key") or "").lstrip("/")
        bucket = item.get("bucket") or default_bucket
        dest = item.get("dest") or ""
        sha256 = item.get("sha256") or None
        mine = []
        if not key:
            mine.append("%s: key is empty" % where)
        if not bucket:
            mine.append("%s (%s): no bucket: set R2_BUCKET (option bucket) or give this object a bucket" % (where, key))
        if not dest or not os.path.isabs(dest):
            mine.append("%s (%s): dest must be an absolute path, got %r" % (where, key, dest))
        elif os.path.normpath(dest) != dest or dest.endswith("/"):
            mine.append("%s (%s): dest %r must be a normalized file path (no '..', '//' or trailing '/')" % (where, key, dest))
        elif dest in seen:
            mine.append("%s (%s): dest %s is also the destination of objects[%d]" % (where, key, dest, seen[dest]))
        if sha256 and not _SHA256.match(sha256):
            mine.append("%s (%s): sha256 must be 64 hex digits, got %r" % (where, key, sha256))
        problems.extend(mine)
        if dest and dest not in seen:
            seen[dest] = index
        if not mine:
            specs.append(ObjectSpec(bucket, key, dest, sha256))
    if problems:
        raise r2_client.R2ConfigError("bad objects, nothing was downloaded:\n  " + "\n  ".join(problems))
    return specs


class ProgressLog:
    """Append-only log a person reads (tail -f). Holds names and sizes, never credentials."""

    def __init__(self, path=None):
        self.path = path
        self._lock = threading.Lock()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def __call__(self, message):
        if not self.path:
            return
        line = "%s r2_fetch: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), message)
        with self._lock:
            with open(self.path, "a") as handle:
                handle.write(line)


def _mib(size):
    return "%.1f MiB" % (size / 1048576.0)


class R2Fetcher:
    """Runs one batch; ``run()`` returns the per-object result dicts in input order."""

    def __init__(self, client, endpoint, store, max_concurrency=32, part_size=8 * 1048576,
                 multipart_threshold=16 * 1048576, log=None):
        self.client = client
        self.endpoint = endpoint
        self.store = store
        self.max_concurrency = max_concurrency
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.log = log or ProgressLog()

    # -- result helpers ----------------------------------------------------------------------
    @staticmethod
    def _result(spec, status, reason="", size=None, fetched=0, seconds=0.0, etag=None, resumed_parts=0):
        return {"name": spec.name, "bucket": spec.bucket, "key": spec.key, "dest": spec.dest,
                "status": status, "reason": reason, "bytes": size or 0, "fetched_bytes": fetched,
                "seconds": round(seconds, 3), "etag": etag, "resumed_parts": resumed_parts}

    def _describe(self, exc, spec):
        return r2_client.describe_error(exc, spec.bucket, spec.key, self.endpoint)

    # -- HEAD --------------------------------------------------------------------------------
    def head(self, spec):
        """(size, etag) of the object, or raise the most informative error available."""
        try:
            answer = self.client.head_object(Bucket=spec.bucket, Key=spec.key)
        except Exception as exc:  # pylint: disable=broad-except
            if not r2_client.is_bodyless_status_error(exc):
                raise
            # HEAD errors carry no XML body: ask with a 1-byte GET to learn which error it is.
            probe_error = None
            try:
                self.client.get_object(Bucket=spec.bucket, Key=spec.key, Range="bytes=0-0")["Body"].close()
            except Exception as probe_exc:  # pylint: disable=broad-except
                probe_error = probe_exc
            raise probe_error or exc
        return int(answer["ContentLength"]), answer.get("ETag")

    def _recorded(self, spec):
        """True when dest is in the ledger with its size and mtime unchanged (nothing is read)."""
        try:
            item = self.store.entry(spec.dest)
            st = os.stat(spec.dest)
        except (StoreError, OSError):
            return False
        return bool(item) and item.get("size") == st.st_size and item.get("mtime_ns") == st.st_mtime_ns \
            and (not spec.sha256 or item.get("sha256") == spec.sha256)

    def _open_range(self, job, start, end):
        spec = job.context[1]
        kwargs = {"Bucket": spec.bucket, "Key": spec.key}
        if job.etag:
            kwargs["IfMatch"] = job.etag
        if not (start == 0 and end == job.size - 1 and len(job.parts) == 1):
            kwargs["Range"] = "bytes=%d-%d" % (start, end)
        answer = self.client.get_object(**kwargs)
        length = int(answer.get("ContentLength", -1))
        if length != end - start + 1:
            answer["Body"].close()
            raise IOError("%s: asked for bytes %d-%d, the server answered with %d bytes"
                          % (spec.name, start, end, length))
        return answer["Body"]

    @staticmethod
    def _is_transient(exc):
        # Request-level retries (5xx, throttling, connect errors) are botocore's; what is left
        # here is a body that broke off mid-way, which is worth resuming from where it stopped.
        if r2_client.HAS_BOTO3 and isinstance(exc, r2_client.ClientError):
            return False
        if r2_client.HAS_BOTO3 and isinstance(exc, r2_client.BotoCoreError):
            return True
        return isinstance(exc, (IOError, OSError))

    # -- the batch ---------------------------------------------------------------------------
    def run(self, specs, check_mode=False):
        results = [None] * len(specs)
        plans = {}

        def look(index):
            spec = specs[index]
            try:
                size, etag = self.head(spec)
            except Exception as exc:  # pylint: disable=broad-except
                return index, None, None, exc
            return index, size, etag, None

        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(specs)))) as pool:
            looked = list(pool.map(look, range(len(specs))))

        for index, size, etag, error in looked:
            spec = specs[index]
            if error is not None and self._recorded(spec):
                # A pod booting while R2 is unreachable keeps the models it already verified.
                results[index] = self._result(spec, "present", "recorded in the ledger; the server could not be "
                                              "asked whether it changed (%s)" % self._describe(error, spec))
                self.log("kept %s: %s" % (spec.name, results[index]["reason"]))
                continue
            if error is not None:
                results[index] = self._result(spec, "failed", self._describe(error, spec))
                self.log("FAILED %s: %s" % (spec.name, results[index]["reason"]))
                continue
            try:
                presence = self.store.check_present(spec.dest, sha256=spec.sha256, size=size, etag=etag)
                if not presence.present:
                    self.store.check_same_filesystem(spec.dest)
            except (StoreError, OSError) as exc:
                results[index] = self._result(spec, "failed", str(exc), size=size, etag=etag)
                self.log("FAILED %s: %s" % (spec.name, exc))
                continue
            if presence.present:
                results[index] = self._result(spec, "present", presence.reason, size=size, etag=etag)
                continue
            if check_mode:
                results[index] = self._result(spec, "would_download", presence.reason, size=size, etag=etag)
                continue
            plans[index] = (size, etag, presence.reason)

        if plans:
            self._download(specs, plans, results)
        return results

    def _download(self, specs, plans, results):
        jobs = []
        for index, (size, etag, _reason) in sorted(plans.items()):
            spec = specs[index]
            staged = self.store.staging_path(spec.dest, identity=spec.name)
            jobs.append(DownloadJob(spec.name, staged, size, etag, context=(index, spec)))
            self.log("fetching %s (%s) -> %s" % (spec.name, _mib(size), spec.dest))

        def finished(job):
            index, spec = job.context
            if job.failed:
                reason = self._describe(job.error, spec)
                if r2_client.error_code(job.error) == "PreconditionFailed":
                    # The object changed: the partial is of the old version, resuming is wrong.
                    self._discard(job.staged)
            else:
                try:
                    self.store.publish(job.staged, spec.dest, size=job.size, sha256=spec.sha256, etag=job.etag)
                    reason = "resumed %d of %d parts" % (job.resumed_parts, len(job.parts)) if job.resumed_parts else ""
                except VerifyError as exc:
                    reason = "verification failed, nothing was placed at %s: %s" % (spec.dest, exc)
                    job.error = exc
                    self._discard(job.staged)
                except Exception as exc:  # pylint: disable=broad-except
                    # Any other failure still becomes this object's result, never the batch's.
                    reason = "could not place %s: %s" % (spec.dest, exc)
                    job.error = exc
                else:
                    RangedDownloader.forget_journal(job.staged)
            status = "failed" if job.failed else "downloaded"
            results[index] = self._result(spec, status, reason, size=job.size, fetched=job.fetched_bytes,
                                          seconds=job.seconds, etag=job.etag, resumed_parts=job.resumed_parts)
            if job.failed:
                self.log("FAILED %s: %s" % (spec.name, reason))
            else:
                self.log("done %s: %s in %.1f s%s" % (spec.name, _mib(job.size), job.seconds,
                                                      " (%s)" % reason if reason else ""))

        downloader = RangedDownloader(self._open_range, max_concurrency=self.max_concurrency,
                                      part_size=self.part_size, multipart_threshold=self.multipart_threshold,
                                      is_transient=self._is_transient, on_finished=finished)
        downloader.run(jobs)

    def _discard(self, staged):
        self.store.discard_staging(staged)
        RangedDownloader.forget_journal(staged)


def summarize(results):
    """Counts per status; ``failed_count`` because Ansible reads any true ``failed`` as a failed task."""
    counts = {"downloaded": 0, "present": 0, "failed_count": 0, "would_download": 0}
    for item in results:
        counts["failed_count" if item["status"] == "failed" else item["status"]] += 1
    return counts
