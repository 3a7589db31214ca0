# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep one hook line, which sources the pod's environment file, first in shell startup files.

bash reads ~/.bashrc for non-interactive SSH commands too, but Debian's and Ubuntu's bashrc
`return` early for them, so the hook must be the very first line. The line carries a marker
comment: that is how copies, and a hook someone moved further down, are found again.
"""

from __future__ import annotations

import os
import re
import shlex
import stat

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.printable import escape_text

HOOK_MARKER = "# aiclipse.comfyui pod_env hook"
# Where the `source` lines of earlier images pointed; they piled up at every boot.
LEGACY_SOURCES = ("/etc/rp_environment",)


class ShellHookError(Exception):
    """A file that cannot be read or written; the message names it and what to do."""


def hook_line(env_file):
    """The hook: quiet for a user who may not read the file (it is private to root)."""
    quoted = shlex.quote(env_file)
    return f"if [ -r {quoted} ]; then . {quoted}; fi  {HOOK_MARKER}"


def legacy_pattern(paths):
    """`source FILE` / `. FILE` lines, alone on their line, for any of `paths`."""
    alternatives = "|".join(re.escape(path) for path in paths)
    return re.compile(rf"\A\s*(?:source|\.)\s+(?:{alternatives})\s*\Z")


def hooked_content(existing, line, legacy_paths):
    """`existing` text (None: no file) with exactly one `line` first, old hooks and legacy lines gone."""
    legacy = legacy_pattern(legacy_paths)
    kept = []
    for old in (existing or "").splitlines(True):
        bare = old.rstrip("\r\n")
        if bare.rstrip().endswith(HOOK_MARKER) or legacy.match(bare):
            continue
        kept.append(old)
    return line + "\n" + "".join(kept)


class ShellHook:
    """Decides the content of each hook file and the profile.d script, and writes what differs.

    `module` is an AnsibleModule: check mode and file modes come from it.
    """

    def __init__(
        self,
        module,
        hook_files,
        env_file,
        profile_script=None,
        legacy_sources=LEGACY_SOURCES,
        profile_mode="0644",
        new_file_mode="0644",
    ):
        self.module = module
        self.hook_files = list(hook_files)
        self.env_file = env_file
        self.profile_script = profile_script or None
        self.legacy_paths = list(dict.fromkeys(list(legacy_sources) + [env_file]))
        self.profile_mode = profile_mode
        self.new_file_mode = new_file_mode
        self.line = hook_line(env_file)
        self.created_dirs = []
        self.replaced_links = {}
        self.diffs = []

    def apply(self):
        changed_files = []
        for path in self.hook_files:
            existing = self._read(path, through_link=True)
            desired = hooked_content(existing, self.line, self.legacy_paths)
            if self._ensure(path, existing, desired, self.new_file_mode, force=path in self.replaced_links):
                changed_files.append(path)
        if self.profile_script:
            existing = self._read(self.profile_script, through_link=False)
            content_changed = self._ensure(
                self.profile_script,
                existing,
                self.line + "\n",
                self.profile_mode,
                force=self.profile_script in self.replaced_links,
            )
            # The script must stay readable for every login shell, so its mode is enforced.
            if self._fix_mode(self.profile_script, self.profile_mode) or content_changed:
                changed_files.append(self.profile_script)
        for path, text in sorted(self.replaced_links.items()):
            self.module.warn(
                f"{path} was a symbolic link to {text}; it is "
                f"{'to be replaced' if self.module.check_mode else 'replaced'} by a regular file"
                + (" holding what it showed plus the hook" if path in self.hook_files else "")
                + ". What it pointed to is "
                "left as it was."
            )
        result = dict(
            changed=bool(changed_files or self.created_dirs),
            line=self.line,
            changed_files=changed_files,
            created_dirs=self.created_dirs,
            replaced_links=sorted(self.replaced_links),
        )
        if self.diffs:
            result["diff"] = self.diffs
        return result

    def _read(self, path, through_link):
        """The file's text (None: absent). Every managed file ends up a regular file: a link is
        noted in ``replaced_links`` and replaced when written. `through_link`: what a link shows
        is kept (a bashrc); otherwise a link counts as absent (the profile script, all ours)."""
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ShellHookError(f"Cannot look at {path} ({to_text(exc.strerror or exc)}).") from exc
        if stat.S_ISLNK(info.st_mode):
            self.replaced_links[path] = os.readlink(path)
            try:
                info = os.stat(path)
            except OSError:
                return None  # dangling: nothing to keep
            if not through_link:
                return None
        if not stat.S_ISREG(info.st_mode):
            raise ShellHookError(
                f"{path} is not a regular file ({'a directory' if stat.S_ISDIR(info.st_mode) else 'a special file'}); "
                "move it away or leave it out of the hook files."
            )
        try:
            with open(path, "rb") as handle:
                return to_text(handle.read(), errors="surrogate_or_strict")
        except (OSError, UnicodeError) as exc:
            raise ShellHookError(
                f"Cannot read {path} ({to_text(getattr(exc, 'strerror', None) or exc)}); fix the file or leave it out of the hook files."
            ) from exc

    def _ensure(self, path, existing, desired, new_mode, force=False):
        """Write `desired` when it differs (or `force`); True when it did (or would, in check mode)."""
        if existing == desired and not force:
            return False
        before = existing or ""
        if path in self.replaced_links:
            before = f"# (a symbolic link to {self.replaced_links[path]})\n{before}"
        # Bytes that are not UTF-8 are carried exactly in the file, escaped in the diff.
        self.diffs.append(
            dict(before_header=path, after_header=path, before=escape_text(before), after=escape_text(desired))
        )
        if not self.module.check_mode:
            self._make_parent(path)
            self._write(path, desired, new_mode)
        return True

    def _make_parent(self, path):
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            try:
                # The umask decides the mode, as for any directory a shell would create.
                os.makedirs(directory, 0o755)
            except OSError as exc:
                raise ShellHookError(
                    f"Cannot create the directory {directory} ({to_text(exc.strerror or exc)})."
                ) from exc
            self.created_dirs.append(directory)

    def _write(self, path, content, new_mode):
        # A bashrc someone made private stays private, and keeps its owner (the writer keeps a
        # replaced file's mode and owner); a new file gets `new_mode` before it takes its name.
        exists = os.path.exists(path)
        try:
            write_file_atomic(
                path,
                to_bytes(content, errors="surrogate_or_strict"),
                keep_owner=True,
                prepare=None if exists else lambda tmp: self.module.set_mode_if_different(tmp, new_mode, False),
                tmp_prefix=".shell_hook.",
            )
        except OSError as exc:
            raise ShellHookError(f"Cannot write {path} ({to_text(exc.strerror or exc)}).") from exc

    def _fix_mode(self, path, mode):
        if not os.path.exists(path):
            return False
        diff = dict(before=dict(path=path), after=dict(path=path))
        changed = self.module.set_mode_if_different(path, mode, False, diff)
        if changed:
            self.diffs.append(diff)
        return changed
