# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make sure a directory holds a working ComfyUI checkout, without ever losing user data.

- missing: seed it from the baked copy in the image (a local copy, seconds) or clone it;
- healthy (main.py + a git checkout of its own): left alone, whatever its version; only a
  wrong ``origin`` URL is corrected (no files change);
- on a branch: a checkout at a pinned tag or commit (``COMFYUI_VERSION``) would be a detached
  HEAD, where ``git pull`` stops ("You are not currently on a branch"). HEAD is attached to a
  local branch named like origin's default branch (``master``), made at that very commit and
  tracking ``origin/master``, so every updater moves it forward from the pin. Only when that
  commit is on the remote branch and no local branch of that name points elsewhere; no file
  changes;
- broken (no main.py, no git, HEAD gone, a dangling link): the old directory is renamed to
  ``<name>.broken-<timestamp>``, a fresh copy takes its place, and the user's content
  (input, output, user, custom_nodes, models, extra_model_paths.yaml) is moved back in where
  the fresh copy has no such file. What cannot move back stays in the backup; empty leftovers
  are removed (the workspace role then moves them into the vault). Never ``git reset`` or
  ``git clean``.

Every copy or clone is staged next to the destination and renamed into place, so a killed run
never leaves half a ComfyUI where the launcher looks.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import time

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import (
    GitError,
    looks_like_commit,
    public_url,
    redact,
    make_staging,
    remove_stale_staging,
    stored_credentials,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.pip_requirements import (
    PipError,
    RequirementsLedger,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import sha256_file

USER_CONTENT = ("input", "output", "user", "custom_nodes", "models", "extra_model_paths.yaml")


class InstallError(RuntimeError):
    pass


def move_back(source, target):
    """Move entries of source into target where target has none; recurse into directories
    present in both; drop a file only when target has a byte-identical copy. Returns the paths
    left in source (real conflicts)."""
    left = []
    for name in sorted(os.listdir(source)):
        src = os.path.join(source, name)
        dst = os.path.join(target, name)
        if not os.path.lexists(dst):
            os.rename(src, dst)
        elif os.path.isdir(src) and not os.path.islink(src) and os.path.isdir(dst) and not os.path.islink(dst):
            left.extend(move_back(src, dst))
            _rmdir_if_empty(src)
        elif _same_file_content(src, dst):
            os.unlink(src)
        else:
            left.append(src)
    return left


def _same_file_content(first, second):
    if os.path.islink(first) or os.path.islink(second):
        return False
    if not (os.path.isfile(first) and os.path.isfile(second)):
        return False
    return filecmp.cmp(first, second, shallow=False)


def _rmdir_if_empty(path):
    try:
        os.rmdir(path)
    except OSError:
        pass


def _prune_empty(root):
    """Remove empty directories under root (bottom-up), then root itself when empty."""
    for current, _dummy, _dummy2 in os.walk(root, topdown=False):
        if not os.path.islink(current):
            _rmdir_if_empty(current)


class ComfyUIInstaller:
    def __init__(self, module, git, dest, repo_url, version="", seed_from=None):
        self.module = module
        self.git = git
        self.dest = os.path.abspath(dest)
        self.repo_url = repo_url
        self.version = version or ""
        self.seed_from = seed_from
        self.result = {
            "dest": self.dest,
            "status": "present",
            "changed": False,
            "commit": None,
            "branch": None,
            "backup": None,
            "left_in_backup": [],
            "reason": "",
        }

    # Health -----------------------------------------------------------------------------
    def problem(self, path=None):
        """None when path (default dest) holds a working ComfyUI checkout, else why not."""
        path = path or self.dest
        if not os.path.lexists(path):
            return "missing"
        if os.path.islink(path) and not os.path.exists(path):
            return "a dangling symbolic link"
        if not os.path.isfile(os.path.join(path, "main.py")):
            return "main.py is missing"
        return self.git.health(path)

    def _seed_source(self):
        if not self.seed_from or not os.path.isdir(self.seed_from):
            return None
        if os.path.realpath(self.seed_from) == os.path.realpath(self.dest):
            return None
        return self.seed_from if self.problem(self.seed_from) is None else None

    # Install ----------------------------------------------------------------------------
    def ensure(self):
        parent = os.path.dirname(self.dest)
        if not self.module.check_mode:
            remove_stale_staging(parent)
        problem = self.problem()
        if problem is None:
            self.result["commit"] = self.git.head(self.dest)
            self._ensure_remote()
            self._attach_head(self.dest)
            self.result["branch"] = self._branch(self.dest)
            return self.result
        source = self._seed_source()
        self.result.update(changed=True, reason=problem, status="seeded" if source else "cloned")
        if problem != "missing":
            self.result["status"] = "repaired"
        self.result["source"] = source or redact(self.repo_url)
        if self.module.check_mode:
            return self.result
        os.makedirs(parent, exist_ok=True)
        stage = make_staging(parent)
        try:
            fresh = os.path.join(stage, "ComfyUI")
            if source:
                shutil.copytree(source, fresh, symlinks=True)
            else:
                self._clone(fresh)
            self.result["commit"] = self.git.head(fresh)
            if self.git.remote_url(fresh) != public_url(self.repo_url):
                # A baked copy made from another URL: point it where this pod's settings say.
                self.git.set_origin(fresh, self.repo_url)
            self._attach_head(fresh, report=False)
            if problem == "missing":
                os.rename(fresh, self.dest)
            else:
                self._replace_broken(fresh)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        self.result["branch"] = self._branch(self.dest)
        return self.result

    def move_to_version(self):
        """Put a working checkout on the commit in ``version`` (a pod lock's), the way a pinned
        custom node is moved: only when git reports no local changes, fetching the commit from
        origin when the checkout lacks it. What stands in the way is reported in
        ``not_at_version``, never an error: the caller's report says what was not reproduced."""
        if not looks_like_commit(self.version) or self.problem() is not None:
            return self.result
        head = self.git.head(self.dest) or ""
        if head.startswith(self.version.lower()):
            return self.result
        if not self.git.is_clean(self.dest):
            self.result["not_at_version"] = f"local changes kept; not moved to the locked commit {self.version}"
            return self.result
        changed_before = self.result["changed"]
        self.result["changed"] = True
        if self.module.check_mode:
            self.result["status"] = "would_move"
            return self.result
        try:
            if self.git.run("cat-file", "-e", f"{self.version}^{{commit}}", repo=self.dest)[0]:
                self.git.fetch(self.dest, self.repo_url)
            self.git.must("checkout", "-q", "--detach", self.version, repo=self.dest)
        except GitError as exc:
            self.result.update(changed=changed_before, not_at_version=f"cannot check out {self.version}: {exc}")
            return self.result
        self.result.update(status="moved", commit=self.git.head(self.dest))
        self._keep_local_commits(self.dest)
        self._attach_head(self.dest, report=False)
        self.result["branch"] = self._branch(self.dest)
        return self.result

    def _keep_local_commits(self, repo):
        """Before the default branch is set to the locked commit: commits of the user's on it
        (reachable from neither the lock nor origin) keep a branch of their own, named in
        ``kept_branch``; nothing is ever orphaned."""
        branch = self._default_branch(repo)
        if not branch:
            return
        rc, tip, dummy = self.git.run("rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}", repo=repo)
        head = self.git.head(repo)
        if rc != 0 or not tip or tip == head:
            return
        for upstream in (head, f"refs/remotes/origin/{branch}"):
            if self.git.run("merge-base", "--is-ancestor", tip, upstream, repo=repo)[0] == 0:
                return
        name = f"{branch}-before-lock-{time.strftime('%Y%m%d-%H%M%S')}"
        self.git.must("branch", name, tip, repo=repo)
        self.result["kept_branch"] = name

    def _branch(self, repo):
        rc, out, dummy = self.git.run("symbolic-ref", "-q", "--short", "HEAD", repo=repo)
        return out if rc == 0 else None

    def _clone(self, target):
        try:
            if looks_like_commit(self.version):
                self.git.clone(self.repo_url, target, commit=self.version)
            else:
                self.git.clone(self.repo_url, target, branch=self.version)
        except GitError as exc:
            raise InstallError(
                f"cannot clone ComfyUI from {redact(self.repo_url)} at {self.version or 'its default branch'}: {exc}"
            ) from None

    def _replace_broken(self, fresh):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = f"{self.dest}.broken-{stamp}"
        suffix = 1
        while os.path.lexists(backup):
            suffix += 1
            backup = f"{self.dest}.broken-{stamp}-{suffix}"
        os.rename(self.dest, backup)
        os.rename(fresh, self.dest)
        left = []
        if os.path.isdir(backup) and not os.path.islink(backup):
            for name in USER_CONTENT:
                old = os.path.join(backup, name)
                new = os.path.join(self.dest, name)
                if not os.path.lexists(old):
                    continue
                if not os.path.lexists(new):
                    os.rename(old, new)
                elif os.path.isdir(old) and not os.path.islink(old) and os.path.isdir(new) and not os.path.islink(new):
                    left.extend(move_back(old, new))
                else:
                    left.append(old)
            _prune_empty(backup)
        if os.path.lexists(backup):
            self.result["backup"] = backup
            self.result["left_in_backup"] = sorted(left)

    # Pinned checkouts -------------------------------------------------------------------
    def _default_branch(self, repo):
        """origin's default branch: what origin/HEAD names, else master or main."""
        rc, out, dummy = self.git.run("symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD", repo=repo)
        if rc == 0 and out.startswith("origin/"):
            return out[len("origin/") :]
        for name in ("master", "main"):
            if self.git.run("rev-parse", "-q", "--verify", f"refs/remotes/origin/{name}", repo=repo)[0] == 0:
                return name
        return None

    def _attach_head(self, repo, report=True):
        """Put a detached HEAD on a local default branch at the same commit, tracking origin.

        Nothing moves (same commit, same files). In an existing checkout a local branch of that
        name pointing at another commit is the user's and stays as it is (HEAD then stays
        detached, and says why); in a fresh install (``report=False``) it is the one the clone
        made at origin's tip, and is set to the pin.
        """
        rc, dummy, dummy2 = self.git.run("symbolic-ref", "-q", "HEAD", repo=repo)
        if rc == 0:
            return
        head = self.git.head(repo)
        branch = self._default_branch(repo)
        why = None
        if not head or not branch:
            why = "origin has no default branch to follow"
        elif self.git.run("merge-base", "--is-ancestor", head, f"refs/remotes/origin/{branch}", repo=repo)[0] != 0:
            why = f"the checked-out commit is not on origin/{branch}"
        else:
            rc, local, dummy = self.git.run("rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}", repo=repo)
            if report and rc == 0 and local != head:
                why = f"a local branch {branch} already exists at another commit"
        if why:
            self.result["detached"] = (
                f"HEAD stays detached: {why}; git pull needs a branch (git switch {branch or 'master'})"
            )
            return
        if report:
            self.result.update(changed=True, attached=branch)
            if self.result["status"] == "present":
                self.result["status"] = "attached"
            if self.module.check_mode:
                return
        self.git.must("branch", "-f", branch, head, repo=repo)
        self.git.must("branch", f"--set-upstream-to=origin/{branch}", branch, repo=repo)
        self.git.must("symbolic-ref", "HEAD", f"refs/heads/{branch}", repo=repo)

    def _ensure_remote(self):
        # origin is stored without credentials; the token travels in git's environment.
        current = self.git.remote_url(self.dest)
        if current == public_url(self.repo_url):
            return
        reason = f"origin was {redact(current) if current else 'not set'}"
        if current and stored_credentials(current) and public_url(current) == public_url(self.repo_url):
            reason = "origin's URL held credentials in .git/config; they were removed from it"
        self.result.update(changed=True, status="remote_fixed", previous_remote=redact(current or ""), reason=reason)
        if self.module.check_mode:
            return
        self.git.set_origin(self.dest, self.repo_url)


def index_args(wheelhouse=None, offline=False):
    """pip arguments for a wheelhouse (``--find-links``, when the folder exists) and for a pod
    without a package index (``--no-index``): (arguments, a note for the user or None)."""
    args, note = [], None
    if wheelhouse and os.path.isdir(wheelhouse):
        args += ["--find-links", wheelhouse]
    elif wheelhouse and offline:
        note = f"the wheelhouse {wheelhouse} does not exist, so pip has nowhere to install from offline"
    if offline:
        args.append("--no-index")
    return args, note


class RequirementsInstaller:
    """ComfyUI's requirements.txt into the venv when its sha256 differs from the record."""

    LEDGER_KEY = "comfyui"

    def __init__(self, module, pip):
        self.module = module
        self.pip = pip
        self.ledger = RequirementsLedger(os.path.join(pip.state_dir, "comfyui.json"))

    def ensure(self, comfyui_dir):
        requirements = os.path.join(comfyui_dir, "requirements.txt")
        if not os.path.isfile(requirements):
            return {"status": "none", "changed": False, "sha256": None}
        if not os.path.isdir(self.pip.venv) and self.module.check_mode:
            return {"status": "would_install", "changed": True, "sha256": None}
        sha256 = sha256_file(requirements)
        if self.ledger.matches(self.LEDGER_KEY, sha256):
            return {"status": "unchanged", "changed": False, "sha256": sha256}
        if self.module.check_mode:
            return {"status": "would_install", "changed": True, "sha256": sha256}
        self.pip.check()
        protected = self.pip.protected_versions()
        constraints = self.pip.constraints_file(protected)
        rc, output = self.pip.install([requirements], constraints)
        if rc:
            source = " ".join(self.pip.pip_args) or "the package index"
            raise PipError(
                f"pip could not install {requirements} from {source} (nothing recorded, the "
                f"next run tries again; protected: {protected or 'none installed'}):\n{output}"
            )
        self.ledger.record(self.LEDGER_KEY, sha256)
        self.ledger.save()
        return {"status": "installed", "changed": True, "sha256": sha256, "protected": protected}
