# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What may be shown or stored of a URL that can carry credentials.

A download or repository URL may hold a secret in two places: the userinfo
(``https://user:token@host/`` or ``https://token@host/``) and query parameters such as
``?token=`` or a presigned ``X-Amz-Signature=``. Logs, results and reports show the URL with
those values masked (``masked_url``); files meant to be reused, such as the pod lock, store it
with them removed (``public_url``), since a ``***`` placeholder would only break the recipe.

The userinfo ends at the LAST ``@`` before the host: a password may hold a raw ``@`` (git, curl
and urllib all read ``https://user:left@right@host/`` that way), and masking up to the first
one would show the rest of the password. Free text (an error message, git's stderr) is masked
with ``mask_credentials``, every URL in it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_KEY = re.compile(r"(token|key|secret|sig|signature|password|passwd|auth|credential|x-amz-)", re.I)
# Up to the last '@' before the path (or a space, in free text): a password may hold a raw '@'.
_USERINFO = re.compile(r"//[^/\s]*@")
_TEXT_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
_TEXT_SECRET_QUERY = re.compile(
    r"([?&][^=&#\s]*(?:token|key|secret|sig|signature|password|passwd|auth|credential|x-amz-)[^=&#\s]*=)[^&#\s]*",
    re.I,
)
# A URL without a scheme: "user:password@host/..." (git's own scp-like "git@host:x" is no secret).
_BARE_USERINFO = re.compile(r"^[^/\s]*@")
_PLAIN_USER = re.compile(r"^[A-Za-z0-9._-]{1,19}$")


def mask_credentials(text, placeholder="***"):
    """`text` with the credentials of every URL in it replaced by `placeholder`: the userinfo
    (up to the last ``@`` before the host) and the values of secret-looking query parameters.
    For messages and logs that may quote a URL as a user wrote it."""
    if not isinstance(text, str):
        return text
    text = _TEXT_USERINFO.sub(lambda match: f"{match.group(1)}{placeholder}@", text)
    return _TEXT_SECRET_QUERY.sub(lambda match: f"{match.group(1)}{placeholder}", text)


def masked_location(value):
    """A repository location as a message may show it: ``masked_url`` for a URL; without a
    scheme (a typo such as ``user:token@host/x``, or git's ``git@host:owner/repo``) whatever
    comes before the last ``@`` of its first part is hidden unless it is a plain user name."""
    if not isinstance(value, str) or "://" in value:
        return mask_credentials(masked_url(value)) if isinstance(value, str) else value
    match = _BARE_USERINFO.match(value)
    if match and not _PLAIN_USER.match(match.group(0)[:-1]):
        value = "***@" + value[match.end() :]
    return mask_credentials(value)


# A user name alone (git@, user@) is not secret, and an output filter that masks a short word
# garbles every message holding it; a token given as the user name is long.
_MIN_SECRET, _MIN_TOKEN_AS_USER = 6, 20


def url_credentials(url):
    """The secret values a URL carries, for an output filter: the password of ``user:password@``
    (a raw ``@`` in it included) and its parts between ``@``, a long lone user name (a token is
    often given as one), and the values of secret-looking query parameters. Short values that
    cannot be told from ordinary words are left out."""
    found = set()
    if not isinstance(url, str):
        return found
    match = re.search(r"(?<=://)[^/\s]*(?=@)", url) or _BARE_USERINFO.match(url)
    if match:
        user, sep, password = match.group(0).rstrip("@").partition(":")
        if sep:
            found.update(part for part in [password] + password.split("@") if len(part) >= _MIN_SECRET)
        elif len(user) >= _MIN_TOKEN_AS_USER:
            found.add(user)
    for match in _TEXT_SECRET_QUERY.finditer(url):
        value = match.group(0)[len(match.group(1)) :]
        if len(value) >= _MIN_SECRET:
            found.add(value)
    return found


def masked_url(url):
    """`url` with its userinfo (``user:pass@`` or a lone ``token@``: a token is often given as
    the user name) and the values of secret-looking query parameters replaced by ``***``. For
    display only."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_credentials(url)
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
