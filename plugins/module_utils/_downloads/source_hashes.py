# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sha256 a model's source publishes, so a download is verified even when the manifest
gives none.

* Hugging Face answers a ``resolve`` request for an LFS file with a redirect to storage that
  carries ``X-Linked-Etag`` (the file's sha256, quoted) and ``X-Linked-Size``: the probe that
  finds the download URL reads them, no extra request. A file kept in git itself has no such
  header (its ETag is a git object id, not a sha256): nothing to learn there.
* CivitAI's ``/api/v1/model-versions/{id}`` lists the version's files, each with
  ``hashes.SHA256`` (upper-case hex): one API request per CivitAI model.
* An S3/R2 object's HEAD may carry ``ChecksumSHA256`` (base64 of the digest; only a
  whole-object checksum is the file's sha256, not the composite checksum of a multipart
  upload) or ``x-amz-meta-sha256`` metadata.

``reconcile(entry)`` then decides what the download is verified against: the manifest's
sha256 when given (a source saying otherwise is an error naming both), else the source's.
Only the standard library is used.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import parse_qsl, urljoin, urlsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import is_sha256_hex
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import (
    OriginError,
    describe_status,
    origin_label,
)

CIVITAI_DOWNLOAD = re.compile(r"^/api/download/models/([0-9]+)/?$")
CIVITAI_API_MAX_BYTES = 4 * 1024 * 1024
# Where an expected sha256 came from, as recorded in the ledger and shown in results.
FROM_MANIFEST = "manifest"
FROM_HUGGINGFACE = "huggingface"
FROM_CIVITAI = "civitai"
FROM_S3 = "s3"
SOURCES = (FROM_HUGGINGFACE, FROM_CIVITAI, FROM_S3)


class SourceHashError(Exception):
    """The source's answer about a file cannot be used; the message says why."""


def normalize_etag(value):
    """``W/"abc"`` -> ``abc`` (how Hugging Face's own client reads its ETags)."""
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').strip().lower()


def huggingface_linked(headers):
    """(sha256, size) from a Hugging Face answer's X-Linked-Etag / X-Linked-Size (lower-case
    header names), each None when absent or not what an LFS file has."""
    sha256 = normalize_etag(headers.get("x-linked-etag"))
    size = (headers.get("x-linked-size") or "").strip()
    return (sha256 if is_sha256_hex(sha256) else None), (int(size) if size.isdigit() else None)


def civitai_version_id(url):
    """The model version id of a CivitAI download URL (``/api/download/models/<id>``), or None."""
    try:
        match = CIVITAI_DOWNLOAD.match(urlsplit(url).path)
    except ValueError:
        return None
    return match.group(1) if match else None


def civitai_api_url(url, version_id):
    return urljoin(url, f"/api/v1/model-versions/{version_id}")


def civitai_file(version, url):
    """(sha256, file name) of the file a CivitAI download URL gets, from the model-version
    document: the file whose downloadUrl is this URL, else the one its query names
    (``type``, ``format``), else the primary file, else the only one."""
    files = version.get("files") if isinstance(version, dict) else None
    if not isinstance(files, list) or not files:
        raise SourceHashError("CivitAI lists no files for this model version")
    files = [f for f in files if isinstance(f, dict)]
    wanted = urlsplit(url)
    chosen = [f for f in files if _same_download(f.get("downloadUrl"), wanted)]
    if len(chosen) != 1:
        query = dict(parse_qsl(wanted.query))
        chosen = [
            f
            for f in files
            if (not query.get("type") or f.get("type") == query["type"])
            and (not query.get("format") or (f.get("metadata") or {}).get("format") == query["format"])
        ]
        if len(chosen) > 1:
            chosen = [f for f in chosen if f.get("primary")] or chosen
    if len(chosen) != 1:
        raise SourceHashError(f"CivitAI lists {len(files)} files for this model version and none is the primary one")
    found = chosen[0]
    sha256 = str(((found.get("hashes") or {}).get("SHA256")) or "").strip().lower()
    if not is_sha256_hex(sha256):
        raise SourceHashError("CivitAI gives no SHA256 for %s" % (found.get("name") or "this file"))
    return sha256, found.get("name") or ""


def _same_download(link, wanted):
    if not isinstance(link, str):
        return False
    try:
        parts = urlsplit(link)
    except ValueError:
        return False
    return parts.path.rstrip("/") == wanted.path.rstrip("/") and sorted(parse_qsl(parts.query)) == sorted(
        parse_qsl(wanted.query)
    )


def civitai_version(client):
    """GET the model-version document with `client` (an http_origin.OriginClient for the API
    URL: the token goes to CivitAI only); the parsed JSON or SourceHashError."""
    try:
        answer = client.walk("GET", {"Accept": "application/json"})
    except OriginError as exc:
        raise SourceHashError(str(exc)) from exc
    try:
        if answer.status != 200:
            raise SourceHashError(
                describe_status(answer.status, answer.reason, origin_label(answer.url), answer.sent_secrets)
            )
        body = answer.read(CIVITAI_API_MAX_BYTES + 1)
    except OSError as exc:
        raise SourceHashError(f"cannot read CivitAI's answer: {exc}") from exc
    finally:
        answer.close()
    if len(body) > CIVITAI_API_MAX_BYTES:
        raise SourceHashError(f"CivitAI's model-version answer is larger than {CIVITAI_API_MAX_BYTES} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SourceHashError("CivitAI's model-version answer is not JSON") from None


def s3_sha256(head):
    """The object's sha256 from a HeadObject answer (with ChecksumMode=ENABLED), or None.

    ``ChecksumSHA256`` is the file's digest only for a whole-object checksum; a multipart
    upload's composite checksum (``...-N``, type COMPOSITE, or a multipart ETag without
    FULL_OBJECT) is a digest of digests, so it is not used. Metadata ``sha256`` (what
    ``aws s3 cp --metadata sha256=...`` writes) is the fallback."""
    checksum = head.get("ChecksumSHA256")
    kind = (head.get("ChecksumType") or "").upper()
    multipart = "-" in normalize_etag(head.get("ETag"))
    if checksum and "-" not in checksum and kind != "COMPOSITE" and (kind == "FULL_OBJECT" or not multipart):
        try:
            digest = base64.b64decode(checksum, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) == 32:
            return binascii.hexlify(digest).decode("ascii")
    metadata = dict((str(k).lower(), v) for k, v in (head.get("Metadata") or {}).items())
    value = str(metadata.get("sha256") or "").strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    return value if is_sha256_hex(value) else None


def reconcile(entry):
    """Settle what `entry` is verified against; return a problem (str) or ''.

    The fetcher's probe set ``entry.source_sha256`` / ``entry.source_hash_from`` (and maybe
    ``entry.source_size``). A manifest sha256 that differs from the source's is a problem
    naming both; otherwise the source's sha256 becomes the expected one when the manifest
    gave none."""
    source = getattr(entry, "source_sha256", None)
    if not source:
        return ""
    where = getattr(entry, "source_hash_from", None) or "the source"
    if entry.sha256 and entry.sha256 != source:
        return (
            f"sha256 mismatch for {entry.name} ({entry.dest}): the manifest says {entry.sha256}, {where} says {source}; correct the manifest's "
            "sha256 (or the source), nothing was downloaded"
        )
    if not entry.sha256:
        entry.sha256 = source
        entry.sha256_from = where
    return ""
