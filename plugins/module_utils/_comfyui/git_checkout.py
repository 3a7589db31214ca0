# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git for checkouts we install: clone into a staging directory, then rename into place.

A half-finished clone is never visible at the final path. git runs without prompts (a
private repo without credentials fails instead of hanging the pod) and trusts every checkout
whoever owns it (``git_argv``, the one way the collection runs git): a persistent volume is
often owned by another uid, and git's "dubious ownership" refusal must not make a good
checkout look broken.

Credentials: a user and password (or token) in an http(s) URL never reach git's command line
or a file. git is given the URL without them, and stores that one as ``origin``; the
credentials sit in git's environment (readable by its own user only, unlike argv) and reach
git through a credential helper configured in that environment
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``) for the URL's scheme, host
and port only. A helper rather than an ``http.extraHeader``: git keeps sending an extra header
to wherever a redirect took it, while it asks the helper again for a new host, and the helper
answers only for the host the user wrote. Other helpers (a ``store`` that would write the
token to ~/.git-credentials) are switched off for these commands.

Time: every network command (clone, fetch, ls-remote, pull) runs in a process group of its own
with a deadline; when the deadline passes the whole group (git, git-remote-http, ssh) is
killed and the command fails with "no answer from <host> within N s". git's low-speed limit
cuts an HTTP transfer that stalls part-way earlier. A host that timed out once is not asked
again by the same ``Git`` (one module run): every later network command to it fails at once
with the same words, so packs on one stalled host cost one timeout, not one each.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import mask_credentials, url_credentials
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import Scratch

_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
_SCP_LIKE_HOST = re.compile(r"^(?:[^@/]+@)?([^:/]+):")

# Staging directories live next to the checkout they become (a rename must not cross
# filesystems), which for nodes is custom_nodes/ itself. They are recognised by a record in the
# vault's state folder, written before the directory is made, never by their name alone: a
# user's folder of any name is never taken for one (see make_staging).
STAGING_PREFIX = ".aiclipse+staging-"
# Where those records live, under the vault's .state (the vault is the parent of ComfyUI's
# checkout, and the grandparent of a node's).
STAGING_JOURNAL = "git-staging"

NETWORK_COMMANDS = frozenset(("clone", "fetch", "ls-remote", "pull"))
DEFAULT_TIMEOUT = 300
# A transfer below 1000 bytes/s for 30 s is a stall (curl gives up, the deadline may be far).
LOW_SPEED_LIMIT, LOW_SPEED_TIME = 1000, 30


def git_argv(binary, repo=None, *config):
    """git's argv up to the subcommand: ``safe.directory=*`` (this collection manages the
    checkouts it runs git in, whoever owns the volume), the ``-c`` settings `config` names
    (``"core.quotepath=false"``), then ``-C repo``."""
    argv = [binary, "-c", "safe.directory=*"]
    for setting in config:
        argv += ["-c", setting]
    return argv + (["-C", repo] if repo else [])


def redact(text):
    """Hide credentials embedded in URLs (https://user:token@host/...), up to the last '@'
    before the host: a password may hold a raw '@'."""
    return mask_credentials(text or "")


def url_secrets(url):
    """The credentials a URL carries: the password of user:password@ (and its parts between
    raw '@'), a long token@, secret-looking query values."""
    return url_credentials(url)


def mask_url_credentials(module, urls):
    """Have ansible mask the URLs' credentials everywhere in the result, the echo of the module's
    own arguments (``invocation``) included, which ``redact`` cannot reach."""
    for url in urls:
        module.no_log_values.update(url_secrets(url))


def looks_like_commit(ref):
    return bool(ref and _COMMIT.match(ref))


def _http_parts(url):
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    return parts if parts.scheme.lower() in ("http", "https") else None


def split_credentials(url):
    """(url without user info, (user, password) or None) of an http(s) URL.

    Other URLs come back unchanged: ssh takes keys, not URL passwords (see
    ``credentials_problem``), and file paths have no user.
    """
    parts = _http_parts(url)
    if parts is None or "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, dummy, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def public_url(url):
    """The URL as git may see and store it: no user info for http(s)."""
    return split_credentials(url)[0]


def repo_url_on_target(repo_url, env_name=None, env_file=None):
    """The URL to clone: the value of the variable `env_name` where the module runs (its
    environment, else the pod's 0600 env file) when it names the same repository as `repo_url`,
    which the role passes without credentials; otherwise `repo_url`. A token so never has to be
    a module argument, which ansible keeps in a temporary file while the module runs."""
    if not env_name:
        return repo_url
    from_target = TargetSecrets(env_file).get(env_name)
    if from_target and public_url(from_target) == public_url(repo_url):
        return from_target
    return repo_url


def credentials_problem(url):
    """Why a URL's credentials cannot be used safely, or None.

    A password in an ssh:// or git:// URL would go on git's command line and into .git/config,
    and neither protocol uses it.
    """
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    if parts.scheme.lower() in ("http", "https", "") or "@" not in parts.netloc:
        return None
    if ":" in parts.netloc.rsplit("@", 1)[0]:
        return (
            f"a password in a {parts.scheme}:// URL is not used by {parts.scheme} and would be "
            "stored in .git/config; use an SSH key, or an https:// URL with the token"
        )
    return None


def remote_host(url):
    """host[:port] of a git URL reached over the network (no credentials), or None (a local
    path, file://, no URL)."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        parts = None
    if parts is not None and parts.scheme and parts.scheme.lower() != "file" and parts.netloc:
        return parts.netloc.rsplit("@", 1)[-1]
    match = _SCP_LIKE_HOST.match(url or "")
    if match and "://" not in url:
        return match.group(1)
    return None


def url_host(url):
    """host[:port] of a git URL for messages (no credentials), or a description."""
    return remote_host(url) or ("its remote" if not url else "the local repository")


# The helper prints the credentials from its environment (printf is a shell builtin: no argv)
# and only for "get"; git's "store"/"erase" calls are ignored.
_HELPER = (
    '!f() { test "$1" = get || return 0; '
    'printf \'username=%s\\npassword=%s\\n\' "$AICLIPSE_GIT_USERNAME" "$AICLIPSE_GIT_PASSWORD"; }; f'
)


def git_environment(auth_url=None):
    """The environment git runs in: no prompts, low-speed limits, and when auth_url carries
    credentials, a credential helper that hands them out for that URL's host only."""
    env = dict(os.environ)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_ASKPASS": "true",
            "SSH_ASKPASS": "true",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "GIT_HTTP_LOW_SPEED_LIMIT": str(LOW_SPEED_LIMIT),
            "GIT_HTTP_LOW_SPEED_TIME": str(LOW_SPEED_TIME),
        }
    )
    for name in ("AICLIPSE_GIT_USERNAME", "AICLIPSE_GIT_PASSWORD"):
        env.pop(name, None)
    public, credentials = split_credentials(auth_url or "")
    if credentials is not None:
        parts = urlsplit(public)
        try:
            index = int(env.get("GIT_CONFIG_COUNT") or 0)
        except ValueError:
            index = 0
        env["AICLIPSE_GIT_USERNAME"] = credentials[0]
        env["AICLIPSE_GIT_PASSWORD"] = credentials[1]
        # An empty helper first: git forgets the helpers configured before (a store helper
        # would write the token to a file), then ours, for this scheme://host:port only.
        config = [("credential.helper", ""), (f"credential.{parts.scheme}://{parts.netloc}.helper", _HELPER)]
        for offset, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index + offset}"] = key
            env[f"GIT_CONFIG_VALUE_{index + offset}"] = value
        env["GIT_CONFIG_COUNT"] = str(index + len(config))
    return env


class GitError(RuntimeError):
    pass


class GitTimeout(GitError):
    pass


def _kill_group(proc):
    """SIGKILL the process group git leads (its helpers included); quiet when it is gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Git:
    def __init__(self, module, timeout=DEFAULT_TIMEOUT):
        self.module = module
        self.binary = module.get_bin_path("git", required=True)
        self.timeout = timeout
        # host -> "no answer from <host> within N s": hosts that stalled in this run.
        self._silent_hosts = {}
        self._silent_lock = threading.Lock()

    def run(self, *args, repo=None, url=None):
        """(rc, stdout, stderr) of one git command, stripped, credentials redacted in stderr.

        ``url`` is the URL a network command talks to, as the user gave it (credentials
        included): its credentials go to git's credential helper, its host names a timeout.
        A network command that passes the deadline raises GitTimeout, and so does every later
        one to the same host, at once.
        """
        cmd = git_argv(self.binary, repo, "advice.detachedHead=false") + list(args)
        network = bool(args) and args[0] in NETWORK_COMMANDS
        host = remote_host(url) if network else None
        with self._silent_lock:
            silent = self._silent_hosts.get(host) if host else None
        if silent:
            raise GitTimeout(f"{silent} (earlier in this run; git {args[0]} was not tried again)")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=git_environment(url if network else None),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=self.timeout if network else None)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            silent = f"no answer from {url_host(url)} within {self.timeout} s"
            if host:
                with self._silent_lock:
                    self._silent_hosts.setdefault(host, silent)
            raise GitTimeout(f"{silent} (git {args[0]} was stopped)") from None
        finally:
            # Nothing git started outlives the command: helpers left in its group go too.
            _kill_group(proc)
            if proc.poll() is None:
                proc.wait()
        return (proc.returncode, out.decode("utf-8", "replace").strip(), redact(err.decode("utf-8", "replace").strip()))

    def must(self, *args, repo=None, url=None):
        rc, out, err = self.run(*args, repo=repo, url=url)
        if rc:
            detail = (err or out).splitlines()
            raise GitError(f"git {args[0]} failed: {detail[0] if detail else f'exit code {rc}'}")
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

    def set_origin(self, repo, url):
        """Point origin at url, stored without credentials; add origin when missing."""
        verb = "set-url" if self.remote_url(repo) is not None else "add"
        self.must("remote", verb, "origin", public_url(url), repo=repo)

    def is_clean(self, repo):
        """True when tracked files have no local changes (untracked files do not count)."""
        rc, out, dummy = self.run("status", "--porcelain", "--untracked-files=no", repo=repo)
        return rc == 0 and not out

    def clone(self, url, target, branch="", commit=""):
        """Clone url into target (which must not exist), on branch, then at commit when given."""
        args = ["clone", "-q"]
        if branch:
            args += ["--branch", branch]
        self.must(*args, "--", public_url(url), target, url=url)
        if commit:
            self.must("checkout", "-q", "--detach", commit, repo=target)
        return self.head(target)

    def fetch(self, repo, url, *refspecs):
        """Fetch from origin; url is origin's URL as the user gave it (for its credentials)."""
        return self.must("fetch", "-q", "origin", *refspecs, repo=repo, url=url)


def stored_credentials(url):
    """True when a remote URL as stored in .git/config carries credentials we must remove."""
    return split_credentials(url)[1] is not None


def clone_into_place(git, url, final_path, branch="", commit=""):
    """Clone next to final_path and rename it there; return the checked-out commit.

    final_path must not exist. On failure nothing is left behind.
    """
    parent = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(parent, exist_ok=True)
    stage = make_staging(parent)
    try:
        work = os.path.join(stage, "checkout")
        head = git.clone(url, work, branch, commit)
        os.rename(work, final_path)
        return head
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _staging_scratch(parent):
    """The journal of staging directories made in `parent`: ``<vault>/.state/git-staging``.

    The vault is `parent` (ComfyUI's checkout) or its parent (a node's); with no ``.state``
    folder at either, nothing is recorded and a killed run's directory is left in place
    (hidden, never deleted).
    """
    parent = os.path.abspath(parent)
    for base in (parent, os.path.dirname(parent)):
        state = os.path.join(base, ".state")
        if os.path.isdir(state) and not os.path.islink(state):
            return Scratch(os.path.join(state, STAGING_JOURNAL))
    return Scratch(None)


def make_staging(parent):
    """A new staging directory in `parent` (mode 0700), recorded before it is made."""
    return _staging_scratch(parent).new_dir(os.path.abspath(parent), STAGING_PREFIX)


def remove_stale_staging(parent):
    """Staging directories a killed earlier run left in `parent`: only those its journal lists.

    A folder named like one (``.aiclipse+staging-*``, or the ``.aiclipse-staging-*`` of earlier
    versions) that no record names is the user's, and stays.
    """
    return _staging_scratch(parent).sweep(parent=os.path.abspath(parent))
