# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What may be shown or stored of a URL that can carry credentials.

A download or repository URL may hold a secret in two places: the userinfo
(``https://user:token@host/`` or ``https://token@host/``) and query parameters such as
``?token=`` or a presigned ``X-Amz-Signature=``. Logs, results and reports show the URL with
those values masked (``masked_url``); files meant to be reused, such as the pod lock, store it
with them removed (``public_url``), since a ``***`` placeholder would only break the recipe.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_KEY = re.compile(r"(token|key|secret|sig|signature|password|passwd|auth|credential|x-amz-)", re.I)
_USERINFO = re.compile(r"//[^/@]*@")


def masked_url(url):
    """`url` with its userinfo (``user:pass@`` or a lone ``token@``: a token is often given as
    the user name) and the values of secret-looking query parameters replaced by ``***``. For
    display only."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("//***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if SECRET_QUERY_KEY.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def public_url(url):
    """`url` without userinfo and without secret-looking query parameters. Values that are not
    URLs (a local path) come back unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("//", url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not SECRET_QUERY_KEY.search(k)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
