# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The R2 (S3) fetcher of the download pipeline (module r2_fetch).

Probe: one HEAD per object (size + ETag); a recorded file whose size, mtime and ETag still
match is present without a GET or any hashing, and the HEAD is what notices a re-upload under
the same key. The same HEAD (ChecksumMode ENABLED) brings the object's whole-object
``ChecksumSHA256`` or ``x-amz-meta-sha256`` metadata, what the download is verified against
when the entry gives no sha256 (source_hashes.py). Fetch: ranged parallel GETs into staging (ranged_download.py), each one
``If-Match: <ETag>`` so bytes of two object versions are never mixed.

Credentials and settings come from the options (people calling the module by hand) or, by
name, from the target's environment or env file (target_secrets.py): ``R2_ACCESS_KEY_ID``,
``R2_SECRET_ACCESS_KEY``, ``R2_ACCOUNT_ID``, ``R2_ENDPOINT_URL``, ``R2_BUCKET``.
"""

from __future__ import annotations

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import r2_client
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import (
    Entry,
    EntryProblem,
    RunError,
    for_each,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.prefix_hash import PrefixHasher
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.ranged_download import (
    MIB,
    DownloadJob,
    RangedDownloader,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.source_hashes import FROM_S3, s3_sha256
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import SecretsError

# Option -> the variable a pod sets (read from the target when the option is not given).
SETTINGS = (
    ("access_key_id", "R2_ACCESS_KEY_ID"),
    ("secret_access_key", "R2_SECRET_ACCESS_KEY"),
    ("account_id", "R2_ACCOUNT_ID"),
    ("endpoint_url", "R2_ENDPOINT_URL"),
    ("bucket", "R2_BUCKET"),
)


class R2Entry(Entry):
    """One ``objects`` item of r2_fetch: s3://bucket/key -> dest."""

    def __init__(self, index, spec, default_bucket=None):
        self.key = (spec.get("key") or "").lstrip("/")
        self.bucket = spec.get("bucket") or default_bucket
        super().__init__(index, spec.get("name") or self.object_name, spec.get("dest"), spec.get("sha256"))
        self.source = self.object_name
        self.match_etag = None

    @property
    def object_name(self):
        return f"s3://{self.bucket or '?'}/{self.key}"


class R2Fetcher:
    """boto3 ranged GETs behind the pipeline's fetcher interface."""

    downloader = "r2_fetch"
    items = "objects"
    hash_unknown = True

    def __init__(
        self,
        settings,
        secrets,
        max_concurrency=32,
        part_size=8 * MIB,
        multipart_threshold=16 * MIB,
        client_factory=None,
    ):
        self.settings = dict(settings)
        self.secrets = secrets
        self.max_concurrency = max_concurrency
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.client_factory = client_factory or r2_client.make_client
        self.client = None
        self.endpoint = None
        self.default_bucket = None

    def setting(self, option):
        """An option's value, else the pod's variable for it (environment, then env file)."""
        if self.settings.get(option):
            return self.settings[option]
        name = dict(SETTINGS)[option]
        return self.secrets.get(name)

    # -- before any network ----------------------------------------------------------------
    def validate(self, entry):
        if not entry.key:
            raise EntryProblem("key is empty")
        if not entry.bucket and not self._default_bucket():
            raise EntryProblem(f"no bucket for {entry.key}: set R2_BUCKET (option bucket) or give this object a bucket")

    def _default_bucket(self):
        if self.default_bucket is None:
            try:
                self.default_bucket = self.setting("bucket") or ""
            except SecretsError:
                self.default_bucket = ""
        return self.default_bucket

    def prepare(self, entries):
        for entry in entries:
            if not entry.bucket:
                entry.bucket = self._default_bucket()
                entry.source = entry.object_name
                if entry.name.startswith("s3://?/"):
                    entry.name = entry.object_name
        try:
            values = dict((option, self.setting(option)) for option, _name in SETTINGS[:4])
        except SecretsError as exc:
            raise RunError(f"cannot read the R2 credentials: {exc}") from exc
        try:
            r2_client.check_credentials(values["access_key_id"], values["secret_access_key"], self.secrets.env_file)
            self.endpoint = r2_client.resolve_endpoint(values["account_id"], values["endpoint_url"])
        except r2_client.R2ConfigError as exc:
            raise RunError(str(exc)) from exc
        self.client = self.client_factory(
            self.endpoint,
            values["access_key_id"],
            values["secret_access_key"],
            max_pool_connections=self.max_concurrency,
        )

    # -- presence --------------------------------------------------------------------------
    def probe_first(self, entry, store):
        return True  # the HEAD's ETag is part of the present check

    def keep_without_probe(self, entry, store):
        # A pod booting while R2 is unreachable keeps the models it already verified.
        return store.recorded_unchanged(entry.dest, entry.sha256)

    def probe(self, entries, run):
        for_each(lambda entry: self._head(entry, run.stop), entries, self.max_concurrency, run.stop)

    def _head(self, entry, stop):
        if stop.is_set():
            return
        try:
            answer = self._head_object(entry)
        except Exception as exc:  # pylint: disable=broad-except
            entry.probe_error = r2_client.describe_error(exc, entry.bucket, entry.key, self.endpoint)
            return
        entry.size = int(answer["ContentLength"])
        entry.etag = entry.match_etag = answer.get("ETag")
        sha256 = s3_sha256(answer)
        if sha256:
            entry.source_sha256, entry.source_hash_from = sha256, FROM_S3

    def _head_object(self, entry):
        try:
            return self.client.head_object(Bucket=entry.bucket, Key=entry.key, ChecksumMode="ENABLED")
        except Exception as exc:  # pylint: disable=broad-except
            if not r2_client.is_bodyless_status_error(exc):
                raise
            # HEAD errors carry no XML body: ask with a 1-byte GET to learn which error it is.
            probe_error = None
            try:
                self.client.get_object(Bucket=entry.bucket, Key=entry.key, Range="bytes=0-0")["Body"].close()
            except Exception as probe_exc:  # pylint: disable=broad-except
                probe_error = probe_exc
            if probe_error is None:
                raise
            raise probe_error from exc

    def identity(self, entry):
        return entry.object_name

    # -- fetching --------------------------------------------------------------------------
    def fetch(self, entries, run):
        jobs = []
        for entry in entries:
            job = DownloadJob(entry.name, entry.staged, entry.size, entry.etag, context=entry)
            # Parts are queued object by object and written front to back, so the file's prefix
            # is hashed while the rest downloads; publish then has the digest at the last byte.
            entry.hasher = PrefixHasher(entry.staged)
            job.on_prefix = entry.hasher.extend
            jobs.append(job)
            run.log(f"fetching {entry.object_name} ({bytes_to_human(entry.size)}) -> {entry.dest}")

        def finished(job):
            entry = job.context
            entry.fetched_bytes = job.fetched_bytes
            note = f"resumed: {bytes_to_human(job.resumed_bytes)} were already in staging" if job.resumed_bytes else ""
            run.settle(entry, job.error, note)

        RangedDownloader(
            self._open_range,
            max_concurrency=self.max_concurrency,
            part_size=self.part_size,
            multipart_threshold=self.multipart_threshold,
            is_transient=self._is_transient,
            on_finished=finished,
            stop=run.stop,
        ).run(jobs)

    def _open_range(self, job, start, end):
        entry = job.context
        kwargs = {"Bucket": entry.bucket, "Key": entry.key}
        if job.etag:
            kwargs["IfMatch"] = job.etag
        if not (start == 0 and end == job.size - 1 and len(job.parts) == 1):
            kwargs["Range"] = f"bytes={start}-{end}"
        answer = self.client.get_object(**kwargs)
        length = int(answer.get("ContentLength", -1))
        if length != end - start + 1:
            answer["Body"].close()
            raise OSError(
                f"{entry.object_name}: asked for bytes {start}-{end}, the server answered with {length} bytes"
            )
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

    # -- failures --------------------------------------------------------------------------
    def describe(self, entry, error):
        return r2_client.describe_error(error, entry.bucket, entry.key, self.endpoint)

    def discard_after(self, error):
        # The object changed: the partial is of the old version, resuming it is wrong.
        return r2_client.error_code(error) == "PreconditionFailed"


def r2_entries(objects, default_bucket=None):
    """R2Entry per ``objects`` item of the module."""
    return [R2Entry(index, spec, default_bucket) for index, spec in enumerate(objects or [])]
