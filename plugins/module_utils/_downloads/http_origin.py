# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP requests that carry a token to its origin and nowhere else.

Hugging Face and CivitAI answer a download URL with a redirect to signed storage (S3, R2, a
CDN). The token must reach only the origin it was issued for: the signed URL carries its own
authorization, and a foreign host must never see the token. So redirects are never followed
automatically. Every hop is resolved here, one at a time:

* the origin is the full (scheme, host, port) of the entry's URL; a hop's URL is resolved
  against the current one (relative, protocol-relative ``//host/...``, absolute, scheme
  changing) and compared with it;
* a request carries the secret headers only while the chain has never left the origin. Once
  a hop goes elsewhere, no later hop carries them, even one that comes back;
* this holds for every request: the probe, and each ranged GET of an in-process download
  (``OriginRanges``), so an origin that answers HEAD with 200 but GET with a redirect, or
  redirects only a later range, cannot pull the token anywhere.

``aria2c`` never sees a token: an entry whose chain leaves the origin is handed to aria2c as
the final, tokenless URL; an entry the origin serves itself (so the token is needed for the
body) is downloaded in-process by ranged_download.py over ``OriginRanges``.

``check_url`` is the one URL syntax check (manifests and modules); ``mask_url`` what logs,
results and the plan file may show of a URL.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import time
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_url

MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
RETRY_CODES = (429, 500, 502, 503, 504)
DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OriginError(Exception):
    """The origin refused or failed; the message is fit for a per-entry result."""


class ObjectChanged(OriginError):
    """The file changed at the origin during the download (another ETag or size)."""


# -- URLs --------------------------------------------------------------------------------


def _url_problem(url):
    if not isinstance(url, str) or not url:
        return "is empty"
    if " " in url or "\t" in url:
        return "contains a space; write it as %20"
    if _CONTROL.search(url) or any(c in url for c in ("\u2028", "\u2029", "\x85")):
        return "contains a control character"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    hostport = parts.netloc.rpartition("@")[2]
    port = hostport.rpartition("]")[2].partition(":")[2] if hostport.startswith("[") else hostport.partition(":")[2]
    if port:
        if not port.isdigit():
            return f"has a bad port: port '{port}' is not a number"
        if not 1 <= int(port) <= 65535:
            return f"has a bad port: port {port} is out of range (1-65535)"
    return ""


def check_url(url):
    """Raise ValueError saying what is wrong with an http(s) download URL."""
    problem = _url_problem(url)
    if problem:
        raise ValueError(f"url '{mask_url(url) if isinstance(url, str) else url}' {problem}")


def mask_url(url):
    """What logs, results and the plan file may show of `url` (see ``_common.urls``)."""
    return masked_url(url)


def userinfo_authorization(url):
    """(url without its ``user:pass@``, the ``Authorization: Basic`` value it stood for), or
    (url, None) when it has none. The header then goes, like a token, to that origin only."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _at, hostport = parts.netloc.rpartition("@")
    user, _colon, password = userinfo.partition(":")
    pair = (f"{unquote(user)}:{unquote(password)}").encode()
    return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment)), "Basic " + base64.b64encode(
        pair
    ).decode("ascii")


def origin_of(url):
    """(scheme, host, port) of a URL: what 'the same origin' means here."""
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme.lower())


def origin_label(url):
    """``scheme://host[:port]``: what results and logs may say about where a file comes from."""
    scheme, host, port = origin_of(url)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}{('' if port == DEFAULT_PORTS.get(scheme) else f':{port}')}"


def check_header_value(value, what):
    """Header values go on the wire; a line break would smuggle in more headers."""
    if "\r" in value or "\n" in value:
        raise OriginError(f"{what} contains a line break; remove it")


def describe_status(status, reason, host, with_auth):
    hints = {
        401: " (the token is missing or wrong)" if with_auth else " (this URL needs a token)",
        403: " (access denied: check the token's permissions or accept the model's licence)",
        404: " (no such file: check the URL, repo, revision and file name)",
        429: " (too many requests: the origin rate-limits; try again later)",
    }
    return f"HTTP {status} {reason} from {host}{hints.get(status, '')}"


# -- one request at a time ----------------------------------------------------------------


class Answer:
    """The last hop's response: status, headers (lower-case names), the URL that gave it,
    whether the request carried the secrets, and the open body (``read``/``close``).
    ``origin_headers`` are the headers of the last response the origin itself gave (a redirect
    to storage included): what the origin says about the file, e.g. Hugging Face's
    X-Linked-Etag, which only its redirect carries."""

    def __init__(
        self, url, status, reason, headers, response, connection, sent_secrets, left_origin, hops, origin_headers=None
    ):
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers
        self.origin_headers = origin_headers if origin_headers is not None else {}
        self.sent_secrets = sent_secrets
        self.left_origin = left_origin
        self.hops = hops
        self._response = response
        self._connection = connection

    def read(self, size=-1):
        return self._response.read(size)

    def close(self):
        try:
            self._response.close()
        finally:
            self._connection.close()


class OriginClient:
    """Requests for one URL whose ``secret_headers`` (Authorization, an API key) go only to
    that URL's origin, hop by hop (see the module docstring)."""

    def __init__(self, url, secret_headers=None, timeout=30, tries=3, retry_wait=2.0):
        self.url = url
        self.origin = origin_of(url)
        self.secret_headers = dict(secret_headers or {})
        for key, value in self.secret_headers.items():
            check_header_value(key, "a header name")
            check_header_value(value, f"the value of header {key}")
        self.timeout = timeout
        self.tries = max(1, tries)
        self.retry_wait = retry_wait

    @property
    def has_secrets(self):
        return bool(self.secret_headers)

    def _open(self, method, url, headers):
        parts = urlsplit(url)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        elif parts.scheme == "http":
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        else:
            raise OriginError(f"unsupported URL scheme {parts.scheme!r} (use http or https)")
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
        if parts.query:
            path += "?" + parts.query
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return conn, response

    def _request(self, method, url, headers):
        """One request with retries on connection errors and 429/5xx; (conn, response)."""
        last = None
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.retry_wait * attempt)
            try:
                conn, response = self._open(method, url, headers)
            except (OSError, socket.timeout, http.client.HTTPException) as exc:
                last = OriginError(f"cannot reach {origin_label(url)}: {exc}")
                continue
            if response.status in RETRY_CODES and attempt + 1 < self.tries:
                response.close()
                conn.close()
                last = None
                continue
            return conn, response
        raise last or OriginError(f"cannot reach {origin_label(url)}")

    def walk(self, method, headers=None):
        """Send `method` to the URL and follow its redirects hop by hop; return the Answer of
        the first non-redirect response, body unread (close() it)."""
        current = self.url
        left_origin = False
        origin_headers = {}
        for hop in range(MAX_REDIRECTS + 1):
            send = dict(headers or {})
            sent_secrets = False
            if self.secret_headers and not left_origin and origin_of(current) == self.origin:
                send.update(self.secret_headers)
                sent_secrets = True
            conn, response = self._request(method, current, send)
            info = dict((k.lower(), v) for k, v in response.getheaders())
            if not left_origin and origin_of(current) == self.origin:
                origin_headers = info
            if response.status in REDIRECT_CODES:
                response.close()
                conn.close()
                location = info.get("location")
                if not location:
                    raise OriginError(f"HTTP {response.status} from {origin_label(current)} without a Location header")
                following = urljoin(current, location.strip())
                if _url_problem(following):
                    raise OriginError(f"{origin_label(current)} redirects to a URL that {_url_problem(following)}")
                if origin_of(following) != self.origin:
                    left_origin = True  # from here on nothing carries the secrets, even back home
                current = following
                continue
            return Answer(
                current,
                response.status,
                response.reason,
                info,
                response,
                conn,
                sent_secrets,
                left_origin,
                hop,
                origin_headers,
            )
        raise OriginError(f"more than {MAX_REDIRECTS} redirects starting at {origin_label(self.url)}")


# -- what is there to download ------------------------------------------------------------


class Resolved:
    """Where to download from and what is known about the file.

    ``served_by_origin`` with secrets means the body needs them: download in-process
    (OriginRanges). Otherwise ``url`` is tokenless and any client may fetch it.
    """

    def __init__(
        self, url, served_by_origin, size=None, content_type="", etag=None, ranges=False, hops=0, origin_headers=None
    ):
        self.url = url
        self.origin_headers = origin_headers or {}
        self.served_by_origin = served_by_origin
        self.size = size
        self.content_type = content_type
        self.etag = etag
        self.ranges = ranges
        self.hops = hops


def _size_of(answer):
    if answer.status == 206 and "/" in answer.headers.get("content-range", ""):
        total = answer.headers["content-range"].rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = answer.headers.get("content-length", "")
    return int(length) if answer.status == 200 and length.isdigit() else None


def resolve(client):
    """Ask the origin where the file is and what it is; return Resolved or raise OriginError.

    With secrets the probe is the request a download makes (a GET, ``Range: bytes=0-0``), so
    what the origin answers HEAD cannot differ from what the download meets. Without secrets a
    HEAD is enough (a GET for servers that refuse HEAD, like presigned S3 URLs).
    """
    if client.has_secrets:
        answer = client.walk("GET", {"Range": "bytes=0-0"})
    else:
        answer = client.walk("HEAD")
        if answer.status in (403, 405, 501):
            answer.close()
            answer = client.walk("GET", {"Range": "bytes=0-0"})
    try:
        if answer.status >= 400:
            raise OriginError(
                describe_status(
                    answer.status, answer.reason, origin_label(answer.url), answer.sent_secrets or client.has_secrets
                )
            )
        if answer.status not in (200, 206):
            raise OriginError(f"unexpected HTTP {answer.status} {answer.reason} from {origin_label(answer.url)}")
        ranges = answer.status == 206 or answer.headers.get("accept-ranges", "").lower() == "bytes"
        content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        return Resolved(
            answer.url,
            not answer.left_origin,
            _size_of(answer),
            content_type,
            answer.headers.get("etag"),
            ranges,
            answer.hops,
            answer.origin_headers,
        )
    finally:
        answer.close()  # never read a body here: for a server ignoring Range it is the whole model


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class OriginRanges:
    """``open_range`` for ranged_download.py: each range is its own request chain from the
    origin URL, secrets only on the hops at the origin."""

    def __init__(self, client, etag=None):
        self.client = client
        self.etag = etag

    def open_range(self, job, start, end):
        headers = {}
        if end is not None:
            headers["Range"] = f"bytes={start}-{end}"
        elif start:
            headers["Range"] = f"bytes={start}-"
        answer = self.client.walk("GET", headers)
        try:
            where = origin_label(answer.url)
            if answer.status >= 400:
                raise OriginError(describe_status(answer.status, answer.reason, where, answer.sent_secrets))
            etag = answer.headers.get("etag")
            if self.etag and etag and etag != self.etag and not etag.startswith("W/"):
                raise ObjectChanged(
                    f"the file changed at {where} during the download (ETag {etag}, was {self.etag}); run again"
                )
            if answer.status == 206:
                match = _CONTENT_RANGE.match(answer.headers.get("content-range", ""))
                if not match or int(match.group(1)) != start or (end is not None and int(match.group(2)) != end):
                    raise OriginError(
                        f"{where} answered bytes {answer.headers.get('content-range', '?')} to a request for {start}-{end}"
                    )
                if job.size is not None and match.group(3) != "*" and int(match.group(3)) != job.size:
                    raise ObjectChanged(f"the file at {where} is now {match.group(3)} bytes, not {job.size}; run again")
            elif answer.status == 200:
                if start != 0 or (end is not None and job.size is not None and end != job.size - 1):
                    raise OriginError(f"{where} ignores byte ranges (HTTP 200 to a range request)")
            else:
                raise OriginError(f"unexpected HTTP {answer.status} {answer.reason} from {where}")
        except BaseException:
            answer.close()
            raise
        return answer


def is_transient(exc):
    """A dropped connection or a read that timed out mid-body: worth resuming the part."""
    if isinstance(exc, ObjectChanged):
        return False
    if isinstance(exc, OriginError):
        return str(exc).startswith("cannot reach")
    return isinstance(exc, (OSError, socket.timeout, http.client.HTTPException))
