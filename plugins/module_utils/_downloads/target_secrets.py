# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets read on the target by name, so they never travel as module arguments.

A module's arguments rest in ansible's temporary files (``AnsiballZ_<module>.py``, mode 0644
or 0744) for as long as the module runs - a whole background download - and a killed job
leaves them behind. So the roles pass *names* (``HF_TOKEN``, ``R2_SECRET_ACCESS_KEY``) and
the modules look the values up where they run:

1. the module's own environment: at pod start ``ansible-playbook -c local`` runs with the
   container's environment, and local modules (async jobs too) inherit it;
2. else the pod's environment file (``/etc/rp_environment``, written by the pod_env role as
   ``export NAME='value'`` lines, POSIX single-quoted). Over SSH (fleets) this is where the
   pod's settings are.

The file is read only when it is a regular file (not a link), owned by the user the module
runs as and not readable by group or others (0600); otherwise the lookup fails with a
message that says what to fix, rather than trusting a file anyone could have written or read.
"""

from __future__ import annotations

import errno
import os
import re
import stat

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=")
_UNQUOTED = re.compile(r"[^\s'\"\\$`;&|<>()]+")


class SecretsError(Exception):
    """The environment file cannot be trusted or read; the message says what to do."""


def parse_env_file(text):
    """name -> value of the ``[export ]NAME='value'`` lines of a POSIX shell env file.

    Values are single-quoted runs joined by ``\\'`` (a quote), as rp_env_export writes them,
    so they may hold anything, newlines included; a plain unquoted word is accepted too.
    Comments, blank lines and lines this parser does not understand are skipped.
    """
    values = {}
    pos, end = 0, len(text)
    while pos < end:
        line_end = text.find("\n", pos)
        line_end = end if line_end < 0 else line_end
        match = _ASSIGNMENT.match(text, pos, line_end)
        if not match:
            pos = line_end + 1
            continue
        name, pos = match.group(1), match.end()
        parts = []
        while pos < end:
            if text[pos] == "'":
                close = text.find("'", pos + 1)
                if close < 0:
                    return values  # an unterminated quote: nothing after it is trustworthy
                parts.append(text[pos + 1 : close])
                pos = close + 1
            elif text.startswith("\\'", pos):
                parts.append("'")
                pos += 2
            else:
                word = _UNQUOTED.match(text, pos)
                if not word:
                    break
                parts.append(word.group(0))
                pos = word.end()
        values[name] = "".join(parts)
        line_end = text.find("\n", pos)
        pos = end if line_end < 0 else line_end + 1
    return values


class TargetSecrets:
    """``secrets.get("HF_TOKEN")`` -> the value, or None when it is set nowhere."""

    def __init__(self, env_file=None, environ=None):
        self.env_file = env_file or None
        self.environ = os.environ if environ is None else environ
        self._file_values = None

    def get(self, name):
        if not name:
            return None
        if not _NAME.fullmatch(name):
            raise SecretsError(f"{name!r} is not a variable name")
        value = self.environ.get(name)
        if value:
            return value
        if not self.env_file:
            return None
        return self._from_file().get(name) or None

    def where(self, name):
        """Where a lookup of `name` looked, for messages."""
        if self.env_file:
            return f"{name} is not set in the environment nor in {self.env_file}"
        return f"{name} is not set in the environment"

    def _from_file(self):
        if self._file_values is None:
            self._file_values = self._read()
        return self._file_values

    def _read(self):
        path = self.env_file
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return {}
            if exc.errno == errno.ELOOP:
                raise SecretsError(
                    f"refusing to read secrets from {path}: it is a symbolic link; point env_file at the real file"
                ) from exc
            raise SecretsError(f"cannot read secrets from {path}: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SecretsError(f"refusing to read secrets from {path}: it is not a regular file")
            if st.st_uid != os.geteuid():
                raise SecretsError(
                    f"refusing to read secrets from {path}: it is owned by uid {st.st_uid}, not by the user "
                    f"running the download (uid {os.geteuid()}); chown it"
                )
            if st.st_mode & 0o077:
                raise SecretsError(
                    f"refusing to read secrets from {path}: its mode is {stat.S_IMODE(st.st_mode):04o}, so others can read or "
                    f"change it; it must be 0600 (chmod 600 {path})"
                )
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return parse_env_file(b"".join(chunks).decode("utf-8", "replace"))
