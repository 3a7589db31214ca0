# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The start stamp: what a clean provisioning run depended on, so the next start can skip it.

A run is deterministic given its inputs and the state it finds. The stamp records both at the
end of a clean run:

- ``inputs``: a digest the caller computes from the run's variables, environment and code;
- ``watch``: the lstat of every path the roles check (a file's size and mtime, a link's target);
- ``trees``: the same for every entry below a few small directories (workflow templates);
- ``contents``: the sha256 of files read as data (``/proc/1/environ``);
- ``git``: HEAD and ``git status`` of each checkout (a deleted tracked file shows there);
- ``expected``: files that must exist, such as models still downloading in the background.

A start whose inputs digest and observations all match the stamp would find nothing to do, so
it may skip the roles. Any difference, or a stamp that cannot be read, means a full run.
"""

from __future__ import annotations

import errno
import json
import os
import stat

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import Git
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import sha256_file, write_file_atomic

STAMP_VERSION = 1
# Reasons reported when the stamp is not current: enough to see why, short enough to read.
MAX_REASONS = 10


class StartStampError(RuntimeError):
    pass


def _stat_fingerprint(info):
    common = [stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_ino]
    if stat.S_ISDIR(info.st_mode):
        return ["dir"] + common
    if stat.S_ISREG(info.st_mode):
        return ["file", info.st_size, info.st_mtime_ns] + common
    return ["other", stat.S_IFMT(info.st_mode)] + common


def fingerprint(path):
    """What lstat says about path, as a JSON-able list; ['missing'] when it does not exist.

    A rewritten file has a new inode or mtime. A link is known by its text and by what it
    resolves to (a file a managed path was swapped for, made world-readable later, is a
    change). A directory's mtime is left out: ComfyUI's outputs and the logs come and go in
    the folders the roles only make sure exist. Access times are left out too: reading is not
    a change.
    """
    try:
        info = os.lstat(path)
    except OSError as exc:
        return ["missing"] if exc.errno in (errno.ENOENT, errno.ENOTDIR) else ["error", exc.errno]
    if stat.S_ISLNK(info.st_mode):
        try:
            text = os.readlink(path)
        except OSError as exc:
            return ["error", exc.errno]
        try:
            return ["link", text, _stat_fingerprint(os.stat(path))]
        except OSError as exc:
            return ["link", text, ["dangling", exc.errno]]
    return _stat_fingerprint(info)


def tree_fingerprint(root):
    """{relative path: fingerprint} of root and everything below it, links not followed."""
    prints = {".": fingerprint(root)}
    if prints["."][0] != "dir":
        return prints
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            prints[os.path.relpath(directory, root)] = ["error", exc.errno]
            continue
        for entry in entries:
            relative = os.path.relpath(entry.path, root)
            prints[relative] = fingerprint(entry.path)
            if prints[relative][0] == "dir":
                pending.append(entry.path)
    return prints


def content_digest(path):
    """sha256 of a file's bytes (None when it cannot be read): for data files like /proc/1/environ,
    whose lstat says nothing."""
    try:
        return sha256_file(path)
    except OSError:
        return None


class StartStamp:
    """Observes the watched state and compares it with, writes or removes the stamp file."""

    def __init__(self, module, path, inputs="", watch=(), trees=(), contents=(), git=(), expected=()):
        self.module = module
        self.path = path
        self.inputs = inputs
        self.watch = sorted(set(watch))
        self.trees = sorted(set(trees))
        self.contents = sorted(set(contents))
        self.git_checkouts = sorted(set(git))
        self.expected = sorted(set(expected))
        self._git = None

    # -- observing ------------------------------------------------------------------------

    def _git_state(self, checkout):
        if self._git is None:
            # Git() fails the module when git is missing; here that only means "not current".
            if not self.module.get_bin_path("git"):
                return {"problem": "git is not installed"}
            self._git = Git(self.module)
        problem = self._git.health(checkout)
        if problem:
            return {"problem": problem}
        rc, status, dummy = self._git.run("status", "--porcelain", "--untracked-files=no", repo=checkout)
        return {"head": self._git.head(checkout), "status": status if rc == 0 else f"error {rc}"}

    def observe(self):
        """The stamp this state would get, with the given paths and inputs digest."""
        return {
            "version": STAMP_VERSION,
            "inputs": self.inputs,
            "watch": {path: fingerprint(path) for path in self.watch + self.expected},
            "trees": {root: tree_fingerprint(root) for root in self.trees},
            "contents": {path: content_digest(path) for path in self.contents},
            "git": {checkout: self._git_state(checkout) for checkout in self.git_checkouts},
            "expected": self.expected,
        }

    # -- the stamp file -------------------------------------------------------------------

    def read(self):
        """The recorded stamp, or None when there is none; an unreadable one counts as none."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                recorded = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or recorded.get("version") != STAMP_VERSION:
            return None
        return recorded

    def verify(self):
        """(current, reasons): whether the state still is what the recorded stamp describes.

        The recorded stamp says what to look at, so paths a run found dynamically (custom node
        checkouts, planned models) are checked without knowing them up front.
        """
        recorded = self.read()
        if recorded is None:
            return False, [f"no stamp of an earlier clean run at {self.path}"]
        if recorded.get("inputs") != self.inputs:
            return False, ["the inputs changed (variables, environment, collection or ansible version)"]
        reasons = []
        expected = set(recorded.get("expected") or [])
        for path, then in sorted((recorded.get("watch") or {}).items()):
            now = fingerprint(path)
            if path in expected and then == ["missing"]:
                # Still downloading at the last start: it only has to be there by now.
                if now[0] != "file":
                    reasons.append(f"{path}: not there yet (downloading at the last start?)")
            elif now != then or now[0] == "error":
                reasons.append(f"{path}: {_describe(then, now)}")
        for root, then in sorted((recorded.get("trees") or {}).items()):
            if tree_fingerprint(root) != then:
                reasons.append(f"{root}: something in it changed")
        for path, then in sorted((recorded.get("contents") or {}).items()):
            if then is None or content_digest(path) != then:
                reasons.append(f"{path}: its content changed")
        for checkout, then in sorted((recorded.get("git") or {}).items()):
            now = self._git_state(checkout)
            if now != then or "problem" in now:
                reasons.append(f"{checkout}: {now.get('problem') or 'HEAD or tracked files changed'}")
        return not reasons, reasons[:MAX_REASONS] + (
            ["... and %s more" % (len(reasons) - MAX_REASONS)] if len(reasons) > MAX_REASONS else []
        )

    def record(self):
        """Write the stamp of the current state; (changed, before, after) as JSON text."""
        before = self.read()
        after = self.observe()
        if before == after:
            return False, before, after
        if not self.module.check_mode:
            self._write(json.dumps(after, indent=1, sort_keys=True) + "\n")
        return True, before, after

    def remove(self):
        """Remove the stamp (the next start runs in full); (changed, before)."""
        before = self.read()
        exists = os.path.lexists(self.path)
        if exists and not self.module.check_mode:
            try:
                os.unlink(self.path)
            except OSError as exc:
                raise StartStampError(f"Cannot remove the start stamp {self.path}: {exc.strerror}") from exc
        return exists, before

    def _write(self, text):
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StartStampError(f"Cannot write the start stamp in {directory}: {exc.strerror}") from exc
        try:
            # 0600 from the first byte: the inputs digest covers tokens.
            write_file_atomic(self.path, text, mode=0o600, keep_owner=False, tmp_prefix=".start-stamp-")
        except OSError as exc:
            raise StartStampError(f"Cannot write the start stamp {self.path}: {exc.strerror}") from exc


def _describe(then, now):
    if now[0] == "missing":
        return "removed"
    if then[0] == "missing":
        return "appeared"
    if now[0] != then[0]:
        return f"was a {then[0]}, is a {now[0]} now"
    if now[0] == "link" and now[1] == then[1]:
        return "what it links to changed"
    if now[0] == "link":
        return f"points to {now[1]} now (was {then[1]})"
    if now[0] == "error":
        return f"cannot be read (errno {now[1]})"
    return "modified"
