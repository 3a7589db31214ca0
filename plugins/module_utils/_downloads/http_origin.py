# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask an HTTP origin where a file really is, without ever leaking its token.

Hugging Face and CivitAI answer a download URL with a redirect to signed storage (S3, R2,
a CDN). The token must reach only the origin: the signed URL carries its own authorization and
storage refuses (or worse, logs) a second one. So the redirect chain is walked here, one hop at
a time, with redirects never followed automatically:

* the first request carries the token;
* a relative ``Location`` stays on the origin, so the next hop carries it too (Hugging Face
  serves small files of private repos that way);
* an absolute ``Location`` is treated as someone else (signed storage), even on the same host,
  and from then on no hop carries the token.

The answer says which URL to download, whether that URL needs the token, and what the origin
said about the file (size, type, etag), so the downloader can verify and preflight disk space.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
RETRY_CODES = (429, 500, 502, 503, 504)


class OriginError(Exception):
    """The origin refused or failed; the message is fit for a per-entry result."""


class Resolved:
    """Where to download from and what is known about the file."""

    def __init__(self, url, with_auth, size=None, content_type="", etag=None, hops=0):
        self.url = url
        self.with_auth = with_auth
        self.size = size
        self.content_type = content_type
        self.etag = etag
        self.hops = hops


def check_header_value(value, what):
    """Header values end up in aria2's options; a line break would smuggle in more."""
    if "\r" in value or "\n" in value:
        raise OriginError("%s contains a line break; remove it" % what)


def _describe(status, reason, host, with_auth):
    hints = {
        401: " (the token is missing or wrong)" if with_auth else " (this URL needs a token)",
        403: " (access denied: check the token's permissions or accept the model's licence)",
        404: " (no such file: check the URL, repo, revision and file name)",
    }
    return "HTTP %d %s from %s%s" % (status, reason, host, hints.get(status, ""))


def _request(method, url, headers, timeout):
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    elif parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        raise OriginError("unsupported URL scheme %r (use http or https)" % parts.scheme)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        # Never read a body: for a GET fallback that could be the whole model.
        return resp.status, resp.reason, dict((k.lower(), v) for k, v in resp.getheaders())
    finally:
        conn.close()


def resolve(url, token=None, headers=None, timeout=30, tries=3, retry_wait=2.0):
    """Walk the redirect chain of url; return Resolved or raise OriginError.

    `headers` (e.g. a custom auth header) are treated like the token: origin only.
    """
    secret_headers = dict(headers or {})
    for key, value in secret_headers.items():
        check_header_value(key, "a header name")
        check_header_value(value, "the value of header %s" % key)
    if token:
        check_header_value(token, "the token")
        secret_headers["Authorization"] = "Bearer %s" % token
    with_auth = bool(secret_headers)
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        status, reason, info = _request_with_retries(current, secret_headers if with_auth else {},
                                                     timeout, tries, retry_wait)
        host = urlsplit(current).netloc
        if status in REDIRECT_CODES:
            location = info.get("location")
            if not location:
                raise OriginError("HTTP %d from %s without a Location header" % (status, host))
            if urlsplit(location).scheme:
                with_auth = False  # absolute: signed storage or another host
            current = urljoin(current, location)
            continue
        if status >= 400:
            raise OriginError(_describe(status, reason, host, with_auth))
        if status not in (200, 206):
            raise OriginError("unexpected HTTP %d %s from %s" % (status, reason, host))
        size = None
        if status == 206 and "/" in info.get("content-range", ""):
            total = info["content-range"].rsplit("/", 1)[1]
            size = int(total) if total.isdigit() else None
        elif status == 200 and info.get("content-length", "").isdigit():
            size = int(info["content-length"])
        content_type = info.get("content-type", "").split(";")[0].strip().lower()
        return Resolved(current, with_auth, size, content_type, info.get("etag"), hop)
    raise OriginError("more than %d redirects starting at %s" % (MAX_REDIRECTS, urlsplit(url).netloc))


def _request_with_retries(url, headers, timeout, tries, retry_wait):
    last = None
    for attempt in range(max(1, tries)):
        if attempt:
            time.sleep(retry_wait * attempt)
        try:
            status, reason, info = _request("HEAD", url, headers, timeout)
            if status in (403, 405, 501):
                # Some APIs refuse HEAD, and presigned S3/R2 URLs are signed for GET only (a HEAD
                # gets 403): a one-byte ranged GET tells the same without the body.
                ranged = dict(headers, Range="bytes=0-0")
                status, reason, info = _request("GET", url, ranged, timeout)
        except (OSError, socket.timeout, http.client.HTTPException) as exc:
            last = OriginError("cannot reach %s: %s" % (urlsplit(url).netloc, exc))
            continue
        if status in RETRY_CODES:
            last = OriginError(_describe(status, reason, urlsplit(url).netloc, bool(headers)))
            continue
        return status, reason, info
    raise last
