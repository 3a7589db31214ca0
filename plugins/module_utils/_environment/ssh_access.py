# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSH access to a pod: public keys in authorized_keys once, and the host keys sshd needs.

Both happen at every start, so they are one module run (each task costs ansible ~0.3 s).
authorized_keys is only ever appended to: lines already there, other people's keys and
comments included, stay as they are. A rewrite goes through a temporary file and a rename, so
a crash never leaves a half-written file that would lock everyone out. It must be a regular
file: a symbolic link there is replaced by a regular file holding what the link showed.

A host key that exists but cannot be used (0 bytes, corrupt, passphrase-protected, a dangling
link) is as good as missing for sshd: it is moved aside (an empty file is removed) and made
anew. ``ssh-keygen -y`` is the check, as it reads the private key itself; ``ssh-keygen -l``
would read the ``.pub`` beside a corrupt key and pass it.
"""

from __future__ import annotations

import os
import stat
import time

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic

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
        self.replaced_link = None
        self.invalid_host_keys = []
        self.host_key_modes_fixed = []

    # -- authorized_keys ------------------------------------------------------------------

    def authorize(self):
        """(added key lines, fixed modes, before text, after text); nothing when no keys."""
        if not self.keys or not self.authorized_keys:
            return [], [], "", ""
        directory = os.path.dirname(self.authorized_keys) or "."
        before = self._read_keys()
        present = {line.strip() for line in before.splitlines()}
        added = [key for key in self.keys if key not in present]
        after = before
        if added:
            after = (
                before + ("" if not before or before.endswith("\n") else "\n") + "".join(f"{key}\n" for key in added)
            )
        fixed = self._modes_to_fix(directory)
        if not self.module.check_mode:
            self._make_dir(directory)
            if added or self.replaced_link is not None:
                self._write(after)
            for path, mode in fixed:
                os.chmod(path, mode)  # after a rewrite, the new regular file
        if self.replaced_link is not None:
            self.module.warn(
                f"{self.authorized_keys} was a symbolic link to {self.replaced_link}; it is "
                f"{'to be replaced' if self.module.check_mode else 'replaced'} by a regular file of mode "
                "0600 holding the same keys. What it pointed to is left as it was."
            )
        return added, [path for path, dummy in fixed], before, after

    def _read_keys(self):
        """The file's text ("" when absent). A link is noted in replaced_link (it is replaced by a
        regular file holding what it shows); a folder or special file is refused."""
        path = self.authorized_keys
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return ""
        except OSError as exc:
            raise SSHAccessError(f"Cannot look at {path}: {exc.strerror}") from exc
        if stat.S_ISLNK(info.st_mode):
            self.replaced_link = os.readlink(path)
            try:
                info = os.stat(path)
            except OSError:
                return ""  # dangling: no keys to keep
        if not stat.S_ISREG(info.st_mode):
            raise SSHAccessError(
                f"{path} is not a regular file ({'a directory' if stat.S_ISDIR(info.st_mode) else 'a special file'}); "
                "move it away so the keys can be written there"
            )
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                return handle.read()
        except OSError as exc:
            raise SSHAccessError(f"Cannot read {path}: {exc.strerror}") from exc

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
        try:
            # sshd's own rules: mode 0600, owned by the user (the module runs as that user).
            write_file_atomic(
                self.authorized_keys, text, mode=FILE_MODE, keep_owner=False, tmp_prefix=".authorized_keys-"
            )
        except OSError as exc:
            raise SSHAccessError(f"Cannot write {self.authorized_keys}: {exc.strerror}") from exc

    # -- host keys ------------------------------------------------------------------------

    def missing_host_keys(self):
        if not self.host_key_dir:
            return []
        return [
            kind
            for kind in self.host_key_types
            if not os.path.lexists(os.path.join(self.host_key_dir, f"ssh_host_{kind}_key"))
        ]

    def _keygen(self, missing):
        keygen = self.module.get_bin_path("ssh-keygen")
        if not keygen:
            raise SSHAccessError(
                f"ssh-keygen is not installed: cannot check or make the host keys "
                f"({', '.join(missing)}) in {self.host_key_dir}. Install openssh-client, "
                "or set host_key_types to [] when the image brings its own keys"
            )
        return keygen

    def unusable_host_keys(self):
        """[(type, path, problem)] of host keys that exist but that sshd could not load.

        A key readable by others is first made private (sshd refuses such a key), which is what
        lets ``ssh-keygen -y`` judge its content.
        """
        present = [kind for kind in self.host_key_types if kind not in self.missing_host_keys()]
        if not present:
            return []
        keygen = self._keygen(present)
        unusable = []
        for kind in present:
            path = os.path.join(self.host_key_dir, f"ssh_host_{kind}_key")
            try:
                info = os.stat(path)
            except OSError as exc:
                unusable.append((kind, path, f"a link to nothing ({exc.strerror})"))
                continue
            if not stat.S_ISREG(info.st_mode):
                unusable.append((kind, path, "not a regular file"))
                continue
            if info.st_size == 0:
                unusable.append((kind, path, "empty"))
                continue
            if stat.S_IMODE(info.st_mode) & 0o077:
                self.host_key_modes_fixed.append(path)
                if self.module.check_mode:
                    continue  # cannot be judged before its mode is fixed; it will be at the real run
                os.chmod(path, FILE_MODE)
            rc, dummy, err = self.module.run_command([keygen, "-y", "-P", "", "-f", path])
            if rc:
                reason = " ".join((err or "").split()) or f"exit code {rc}"
                unusable.append((kind, path, f"ssh-keygen -y cannot load it: {reason}"))
        return unusable

    def _move_aside(self, path):
        """Put an unusable key (and its .pub) out of sshd's way; an empty one is simply removed."""
        moved = None
        if os.path.islink(path) or os.path.getsize(path) > 0:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            moved = f"{path}.invalid-{stamp}"
            counter = 1
            while os.path.lexists(moved) or os.path.lexists(moved + ".pub"):
                moved = f"{path}.invalid-{stamp}-{counter}"
                counter += 1
            os.rename(path, moved)
            if os.path.lexists(path + ".pub"):
                os.rename(path + ".pub", moved + ".pub")
        else:
            os.unlink(path)
            if os.path.lexists(path + ".pub"):
                os.unlink(path + ".pub")
        return moved

    def make_host_keys(self):
        """Types of the host keys made, missing or unusable (or, in check mode, that would be)."""
        missing = self.missing_host_keys()
        for kind, path, problem in self.unusable_host_keys():
            record = {"type": kind, "path": path, "problem": problem, "moved_to": None}
            if not self.module.check_mode:
                record["moved_to"] = self._move_aside(path)
            self.invalid_host_keys.append(record)
            self.module.warn(
                f"SSH host key {path} is unusable ({problem}); "
                + (
                    f"moved aside to {record['moved_to']}, "
                    if record["moved_to"]
                    else "removed, "
                    if not self.module.check_mode
                    else ""
                )
                + ("a new one is made" if not self.module.check_mode else "a new one would be made")
            )
            missing.append(kind)
        missing = [kind for kind in self.host_key_types if kind in missing]
        if not missing or self.module.check_mode:
            return missing
        keygen = self._keygen(missing)
        try:
            os.makedirs(self.host_key_dir, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise SSHAccessError(f"Cannot create {self.host_key_dir}: {exc.strerror}") from exc
        for kind in missing:
            path = os.path.join(self.host_key_dir, f"ssh_host_{kind}_key")
            rc, dummy, err = self.module.run_command([keygen, "-q", "-t", kind, "-N", "", "-C", "", "-f", path])
            if rc:
                raise SSHAccessError(
                    f"ssh-keygen could not make the {kind} host key {path}: {(err or '').strip() or f'exit code {rc}'}"
                )
        return missing
