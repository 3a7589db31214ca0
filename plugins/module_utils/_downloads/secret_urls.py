# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download URLs that carry credentials, kept out of everything ansible shows or stores.

A manifest may write a credential into a URL: ``https://user:pass@host/...`` or a query
parameter such as CivitAI's ``?token=``. Ansible prints a module's result at ``-vvv`` (the json
callback at any verbosity) and its arguments too, and keeps a background job's arguments in a
temporary file (mode 0744) for as long as the job runs. So such a URL never travels through
ansible:

* model_manifest (``hide``) records each one in a file on the target, mode 0600,
  ``{"version": 1, "urls": {<dest>: <url>}}``, and returns the entry with its URL masked
  (``***``) and ``secret_url: true``;
* aria2_batch (``SecretUrls.lookup``) reads the real URL back by the entry's dest, and checks
  that it masks to the URL it was given, so a stale record is never used for another URL.
"""

from __future__ import annotations

import json
import os
import stat
from urllib.parse import parse_qsl, urlsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import SECRET_QUERY_KEY, masked_url

VERSION = 1


class SecretUrlsError(Exception):
    """The file cannot be used; the message says what to do."""


def carries_credentials(url):
    """True when url holds user information or a secret-looking query parameter."""
    if not isinstance(url, str) or "://" not in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    if "@" in parts.netloc:
        return True
    return any(SECRET_QUERY_KEY.search(key) for key, _value in parse_qsl(parts.query, keep_blank_values=True))


def hide(entries):
    """Mask the URL of every entry that carries credentials (``url``, and ``identifier`` for a
    url entry) and mark it ``secret_url``; returns ``{dest: real url}`` for those."""
    hidden = {}
    for entry in entries:
        url = entry.get("url")
        if not carries_credentials(url):
            continue
        hidden[entry["dest"]] = url
        entry["url"] = masked_url(url)
        if entry.get("identifier") == url:
            entry["identifier"] = entry["url"]
        entry["secret_url"] = True
    return hidden


def write(path, urls, check_mode=False):
    """Record urls ({dest: url}) at path (0600, atomic), only when its content changes. With
    none to record, an existing file is emptied (no credential outlives its manifest line) and
    no file is created. Returns True when the file was written. Raises OSError."""
    exists = os.path.lexists(path)
    if not urls and not exists:
        return False
    text = json.dumps({"version": VERSION, "urls": urls}, indent=1, sort_keys=True) + "\n"
    if exists:
        try:
            with open(path, encoding="utf-8") as handle:
                st = os.fstat(handle.fileno())
                if handle.read() == text and stat.S_IMODE(st.st_mode) == 0o600:
                    return False
        except (OSError, UnicodeDecodeError):
            pass
    if check_mode:
        return False
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    write_file_atomic(path, text, mode=0o600, keep_owner=False, tmp_prefix=".secret-urls.")
    return True


class SecretUrls:
    """The recorded URLs of one file, read once, on first use."""

    def __init__(self, path):
        self.path = path
        self._urls = None

    def _load(self):
        if self._urls is not None:
            return self._urls
        if not self.path:
            raise SecretUrlsError(
                "this entry's URL holds credentials kept on the target, but secret_urls_file is not set"
            )
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise SecretUrlsError(
                f"cannot read {self.path} ({exc.strerror}): it is written by model_manifest (option secret_urls_file)"
            ) from exc
        with os.fdopen(fd, "r", encoding="utf-8") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != os.geteuid():
                raise SecretUrlsError(
                    f"{self.path} must be a regular file of this user with mode 0600; it holds credentials"
                )
            try:
                data = json.load(handle)
            except ValueError as exc:
                raise SecretUrlsError(f"{self.path} is not valid JSON ({exc}); run the models role again") from None
        urls = data.get("urls") if isinstance(data, dict) else None
        self._urls = urls if isinstance(urls, dict) else {}
        return self._urls

    def lookup(self, dest, shown_url):
        """The real URL recorded for dest; it must mask to shown_url (what the module was given)."""
        url = self._load().get(dest)
        if not isinstance(url, str):
            raise SecretUrlsError(f"{self.path} holds no URL for {dest}; run the models role (model_manifest) again")
        if masked_url(url) != shown_url:
            raise SecretUrlsError(
                f"the URL {self.path} holds for {dest} is {masked_url(url)}, not {shown_url}; run the models role (model_manifest) again"
            )
        return url
