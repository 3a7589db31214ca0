# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSH access to a pod: public keys in authorized_keys once, and the host keys sshd needs.

Both happen at every start, so they are one module run (each task costs ansible ~0.3 s).
authorized_keys is only ever appended to: lines already there, other people's keys and
comments included, stay as they are. A rewrite goes through a temporary file and a rename, so
a crash never leaves a half-written file that would lock everyone out.
"""

from __future__ import annotations

import os
import stat
import tempfile

DIR_MODE = 0o700
FILE_MODE = 0o600


class SSHAccessError(RuntimeError):
    pass


def key_lines(keys):
    """The non-empty, non-comment lines of the given keys (a key may hold several lines)."""
    lines = []
    for key in keys or []:
        for line in str(key).splitlines():
            line = line.strip()
            if line and not line.startswith("#") and line not in lines:
                lines.append(line)
    return lines


class SSHAccess:
    def __init__(self, module, authorized_keys=None, keys=(), host_key_dir=None, host_key_types=()):
        self.module = module
        self.authorized_keys = authorized_keys
        self.keys = key_lines(keys)
        self.host_key_dir = host_key_dir
        self.host_key_types = list(host_key_types or [])

    # -- authorized_keys ------------------------------------------------------------------

    def authorize(self):
        """(added key lines, fixed modes, before text, after text); nothing when no keys."""
        if not self.keys or not self.authorized_keys:
            return [], [], "", ""
        directory = os.path.dirname(self.authorized_keys) or "."
        try:
            with open(self.authorized_keys, encoding="utf-8", errors="surrogateescape") as handle:
                before = handle.read()
        except FileNotFoundError:
            before = ""
        except OSError as exc:
            raise SSHAccessError(f"Cannot read {self.authorized_keys}: {exc.strerror}") from exc
        present = {line.strip() for line in before.splitlines()}
        added = [key for key in self.keys if key not in present]
        after = before
        if added:
            after = before + ("" if not before or before.endswith("\n") else "\n") + "".join(f"{key}\n" for key in added)
        fixed = self._modes_to_fix(directory)
        if not self.module.check_mode:
            self._make_dir(directory)
            if added:
                self._write(after)
            for path, mode in fixed:
                os.chmod(path, mode)
        return added, [path for path, dummy in fixed], before, after

    def _modes_to_fix(self, directory):
        """sshd refuses keys in a group- or world-writable place: 0700 folder, 0600 file."""
        fixes = []
        for path, mode in ((directory, DIR_MODE), (self.authorized_keys, FILE_MODE)):
            try:
                if stat.S_IMODE(os.stat(path).st_mode) != mode:
                    fixes.append((path, mode))
            except FileNotFoundError:
                continue
        return fixes

    def _make_dir(self, directory):
        try:
            os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise SSHAccessError(f"Cannot create {directory}: {exc.strerror}") from exc

    def _write(self, text):
        directory = os.path.dirname(self.authorized_keys) or "."
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".authorized_keys-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.authorized_keys)
            tmp = None
        except OSError as exc:
            raise SSHAccessError(f"Cannot write {self.authorized_keys}: {exc.strerror}") from exc
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)

    # -- host keys ------------------------------------------------------------------------

    def missing_host_keys(self):
        if not self.host_key_dir:
            return []
        return [kind for kind in self.host_key_types
                if not os.path.lexists(os.path.join(self.host_key_dir, f"ssh_host_{kind}_key"))]

    def make_host_keys(self):
        """Types of the host keys made (or, in check mode, that would be)."""
        missing = self.missing_host_keys()
        if not missing or self.module.check_mode:
            return missing
        keygen = self.module.get_bin_path("ssh-keygen")
        if not keygen:
            raise SSHAccessError(f"ssh-keygen is not installed: cannot make the missing host keys "
                                 f"({', '.join(missing)}) in {self.host_key_dir}. Install openssh-client, "
                                 "or set host_key_types to [] when the image brings its own keys")
        try:
            os.makedirs(self.host_key_dir, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise SSHAccessError(f"Cannot create {self.host_key_dir}: {exc.strerror}") from exc
        for kind in missing:
            path = os.path.join(self.host_key_dir, f"ssh_host_{kind}_key")
            rc, dummy, err = self.module.run_command([keygen, "-q", "-t", kind, "-N", "", "-C", "", "-f", path])
            if rc:
                raise SSHAccessError(f"ssh-keygen could not make the {kind} host key {path}: "
                                     f"{(err or '').strip() or 'exit code %d' % rc}")
        return missing
