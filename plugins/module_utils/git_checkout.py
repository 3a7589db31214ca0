# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git for checkouts we install: clone into a staging directory, then rename into place.

A half-finished clone is never visible at the final path. git runs without prompts (a
private repo without credentials fails instead of hanging the pod) and with
``safe.directory=*``: a persistent volume is often owned by another uid, and git's
"dubious ownership" refusal must not make a good checkout look broken.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
STAGING_PREFIX = ".aiclipse-staging-"


def redact(text):
    """Hide credentials embedded in URLs (https://user:token@host/...)."""
    return _USERINFO.sub("***@", text or "")


# A user name alone (git@, user@) is not secret and masking it would garble every message that
# holds the word; a token given as the user name (https://<token>@github.com/) is long.
_MIN_PASSWORD, _MIN_TOKEN_AS_USER = 6, 20


def url_secrets(url):
    """The credentials a URL carries: the password of user:password@, or a long token@."""
    match = _USERINFO.search(url or "")
    if not match:
        return set()
    userinfo = match.group(0)[:-1]
    user, sep, password = userinfo.partition(":")
    if sep:
        return {password} if len(password) >= _MIN_PASSWORD else set()
    return {user} if len(user) >= _MIN_TOKEN_AS_USER else set()


def mask_url_credentials(module, urls):
    """Have ansible mask the URLs' credentials everywhere in the result, the echo of the module's
    own arguments (``invocation``) included, which ``redact`` cannot reach."""
    for url in urls:
        module.no_log_values.update(url_secrets(url))


def looks_like_commit(ref):
    return bool(ref and _COMMIT.match(ref))


class GitError(RuntimeError):
    pass


class Git:
    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path("git", required=True)

    def run(self, *args, repo=None):
        """(rc, stdout, stderr) of one git command, stripped, credentials redacted in stderr."""
        cmd = [self.binary, "-c", "safe.directory=*", "-c", "advice.detachedHead=false"]
        if repo:
            cmd += ["-C", repo]
        rc, out, err = self.module.run_command(
            cmd + list(args), expand_user_and_vars=False,
            environ_update={"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_ASKPASS": "true",
                            "SSH_ASKPASS": "true", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"})
        return rc, out.strip(), redact(err.strip())

    def must(self, *args, repo=None):
        rc, out, err = self.run(*args, repo=repo)
        if rc:
            detail = (err or out).splitlines()
            raise GitError(f"git {args[0]} failed: {detail[0] if detail else 'exit code %d' % rc}")
        return out

    def head(self, repo):
        rc, out, dummy = self.run("rev-parse", "--verify", "-q", "HEAD^{commit}", repo=repo)
        return out if rc == 0 else None

    def health(self, path):
        """None when path is a usable checkout whose top level is path itself, else why not."""
        if not os.path.isdir(path):
            return "not a directory"
        rc, top, err = self.run("rev-parse", "--show-toplevel", repo=path)
        if rc:
            return f"not a git checkout ({err.splitlines()[-1] if err else 'rev-parse failed'})"
        if os.path.realpath(top) != os.path.realpath(path):
            return f"not a git checkout of its own (git finds {top})"
        if not self.head(path):
            return "git has no commit checked out (HEAD does not resolve)"
        return None

    def remote_url(self, repo, remote="origin"):
        rc, out, dummy = self.run("remote", "get-url", remote, repo=repo)
        return out if rc == 0 else None

    def is_clean(self, repo):
        """True when tracked files have no local changes (untracked files do not count)."""
        rc, out, dummy = self.run("status", "--porcelain", "--untracked-files=no", repo=repo)
        return rc == 0 and not out

    def clone(self, url, target, branch="", commit=""):
        """Clone url into target (which must not exist), on branch, then at commit when given."""
        args = ["clone", "-q"]
        if branch:
            args += ["--branch", branch]
        self.must(*args, "--", url, target)
        if commit:
            self.must("checkout", "-q", "--detach", commit, repo=target)
        return self.head(target)


def clone_into_place(git, url, final_path, branch="", commit=""):
    """Clone next to final_path and rename it there; return the checked-out commit.

    final_path must not exist. On failure nothing is left behind.
    """
    parent = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)
    try:
        work = os.path.join(stage, "checkout")
        head = git.clone(url, work, branch, commit)
        os.rename(work, final_path)
        return head
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_stale_staging(parent):
    """Staging directories a killed earlier run left behind (ours only, by prefix)."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if name.startswith(STAGING_PREFIX) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
