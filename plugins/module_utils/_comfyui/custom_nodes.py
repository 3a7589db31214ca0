# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Custom nodes: clone in parallel, then install requirements under the torch constraints.

Checkouts run in a thread pool (each is a git process, so they overlap for real). A node the
image has baked (same URL, usable checkout) is copied from there instead of cloned. Existing
checkouts are never clobbered: a pinned node is moved to its pin only when git reports no
local changes to tracked files; an unpinned node is left where it is unless ``update`` asks
for a fetch + fast-forward (again only when clean). A directory with a node's name that is not
a git checkout of its own is somebody's copy: left alone entirely, its requirements too, unless
``install_non_git_requirements`` opts in. A token that an earlier version let git store in the
``origin`` URL of any checkout in custom_nodes (a listed node, or one no list names any more) is
removed from it; nothing else in the checkout changes.

Requirements: when any node's requirements.txt changed, pip runs once over every node's file
(unchanged ones included), so pip's resolver sees them together and never installs one node's
requirements over another's. When that run fails, pip's resolver is asked (``--dry-run``)
which files go together: nodes whose requirements were installed before come first, then the
changed ones in manifest order; a node that cannot install even alone fails with pip's reason,
a node that conflicts with others is not installed and both sides name each other, the
packages and the versions (pip's own "The conflict is caused by" lines). The rest install.
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import (
    GitError,
    clone_into_place,
    public_url,
    redact,
    make_staging,
    remove_stale_staging,
    stored_credentials,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.pip_requirements import (
    RequirementsLedger,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import sha256_file

CHANGED_STATUSES = ("cloned", "seeded", "updated", "would_clone", "would_seed", "would_update")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_names(path):
    """Normalized project names a requirements file asks for (options and URLs skipped)."""
    names = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return names
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")) or "://" in line:
            continue
        match = _REQUIREMENT_NAME.match(line)
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


class _Pending:
    """One node's requirements.txt on its way through pip."""

    def __init__(self, result, path, sha256, installed_before):
        self.result = result
        self.path = path
        self.sha256 = sha256
        self.installed_before = installed_before

    @property
    def name(self):
        return self.result["name"]


class NodeInstaller:
    def __init__(
        self, module, git, dest, nodes, pip=None, update=False, workers=8, seed_from=None, non_git_requirements=False
    ):
        self.module = module
        self.seed_from = seed_from
        self.git = git
        self.dest = os.path.abspath(dest)
        self.nodes = nodes
        self.pip = pip
        self.update = update
        self.workers = max(1, workers)
        self.non_git_requirements = non_git_requirements
        self.changed = False
        self.not_git = set()
        self.credentials_removed = []  # checkouts no list names whose origin lost a stored token
        self.ledger = None
        if pip is not None:
            self.ledger = RequirementsLedger(os.path.join(pip.state_dir, "custom_nodes.json"))

    def run(self):
        if not self.module.check_mode:
            os.makedirs(self.dest, exist_ok=True)
            remove_stale_staging(self.dest)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(self._checkout, self.nodes))
        self.credentials_removed = self._clean_unlisted({node["name"] for node in self.nodes})
        # Decided before requirements: a clone stays a change even if its pip run fails later.
        self.changed = bool(self.credentials_removed) or any(
            r["status"] in CHANGED_STATUSES or r["credentials_removed"] for r in results
        )
        if self.pip is not None:
            self._requirements(results)
        self.changed = self.changed or any(r["requirements"] in ("installed", "would_install") for r in results)
        return results

    # Checkouts --------------------------------------------------------------------------
    def _checkout(self, node):
        path = os.path.join(self.dest, node["name"])
        result = {
            "name": node["name"],
            "url": redact(node["url"]),
            "dest": path,
            "branch": node["branch"],
            "pin": node["commit"],
            "origin": node["origin"],
            "status": "present",
            "commit": None,
            "reason": "",
            "requirements": "none",
            "credentials_removed": False,
            "conflicts_with": [],
        }
        try:
            if not os.path.lexists(path):
                seed = self._seed_for(node)
                if self.module.check_mode:
                    result["status"] = "would_seed" if seed else "would_clone"
                elif seed:
                    self._seed(seed, node, path, result)
                else:
                    result["commit"] = clone_into_place(self.git, node["url"], path, node["branch"], node["commit"])
                    result["status"] = "cloned"
                return result
            problem = self.git.health(path)
            if problem:
                self.not_git.add(node["name"])
                if self.non_git_requirements:
                    result["reason"] = f"{problem}; left as it is"
                else:
                    result["requirements"] = "skipped"
                    result["reason"] = (
                        f"{problem}; left as it is, its requirements too (install_non_git_requirements installs them)"
                    )
                return result
            result["commit"] = self.git.head(path)
            self._remove_stored_credentials(path, result)
            if node["commit"]:
                self._move_to_pin(node, path, result)
            elif self.update:
                self._fast_forward(node, path, result)
        except GitError as exc:
            result.update(status="failed", reason=str(exc))
        return result

    def _remove_stored_credentials(self, path, result):
        """An origin URL with a token in it (written by an earlier version) loses the token."""
        current = self.git.remote_url(path)
        if not current or not stored_credentials(current):
            return
        result["credentials_removed"] = True
        if not self.module.check_mode:
            self.git.must("remote", "set-url", "origin", public_url(current), repo=path)

    def _clean_unlisted(self, listed):
        """Checkouts in dest that no list names (dropped from a manifest, installed by hand or
        by ComfyUI-Manager) whose origin URL stores a credential: the credential is removed from
        that URL, nothing else changes. Returns their paths."""
        cleaned = []
        try:
            names = sorted(os.listdir(self.dest))
        except OSError:
            return cleaned
        for name in names:
            path = os.path.join(self.dest, name)
            if name in listed or os.path.islink(path):
                continue
            if not os.path.isdir(path) or not os.path.lexists(os.path.join(path, ".git")):
                continue
            current = self.git.remote_url(path)
            if not current or not stored_credentials(current):
                continue
            # Only a checkout of its own: a broken .git must not let git find ComfyUI's repository.
            rc, top, dummy = self.git.run("rev-parse", "--show-toplevel", repo=path)
            if rc or os.path.realpath(top) != os.path.realpath(path):
                continue
            if not self.module.check_mode:
                rc, dummy, err = self.git.run("remote", "set-url", "origin", public_url(current), repo=path)
                if rc:
                    self.module.warn(f"could not remove the token stored in the origin URL of {path}: {err}")
                    continue
            cleaned.append(path)
        return cleaned

    def _seed_for(self, node):
        """The image's baked checkout of this node, when it can stand in for a clone: a working
        checkout of the same URL, on the wanted branch unless a commit pin decides."""
        if not self.seed_from or os.path.realpath(self.seed_from) == os.path.realpath(self.dest):
            return None
        seed = os.path.join(self.seed_from, node["name"])
        if not os.path.isdir(seed) or self.git.health(seed):
            return None
        if public_url(self.git.remote_url(seed) or "") != public_url(node["url"]):
            return None
        if node["branch"] and not node["commit"] and not self._seed_is_at(seed, node["branch"]):
            return None
        return seed

    def _seed_is_at(self, seed, ref):
        """The seed is on branch `ref`, or checked out at tag `ref` (a workflow's version, or a
        manifest line's tag, leaves the baked clone detached at that tag)."""
        rc, branch, dummy = self.git.run("rev-parse", "--abbrev-ref", "HEAD", repo=seed)
        if rc == 0 and branch == ref:
            return True
        rc, tagged, dummy = self.git.run("rev-parse", "-q", "--verify", f"refs/tags/{ref}^{{commit}}", repo=seed)
        return rc == 0 and tagged == self.git.head(seed)

    def _seed(self, seed, node, path, result):
        stage = make_staging(self.dest)
        try:
            work = os.path.join(stage, "checkout")
            shutil.copytree(seed, work, symlinks=True)
            if stored_credentials(self.git.remote_url(work) or ""):
                self.git.set_origin(work, node["url"])
            os.rename(work, path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        result["commit"] = self.git.head(path)
        if node["commit"]:
            self._move_to_pin(node, path, result)
        result["status"] = "seeded"

    def _move_to_pin(self, node, path, result):
        if result["commit"].startswith(node["commit"]):
            return
        if not self.git.is_clean(path):
            result["reason"] = f"local changes kept; not moved to pinned commit {node['commit']}"
            return
        if self.module.check_mode:
            result["status"] = "would_update"
            return
        rc, dummy, dummy2 = self.git.run("cat-file", "-e", f"{node['commit']}^{{commit}}", repo=path)
        if rc:
            self.git.fetch(path, node["url"])
        self.git.must("checkout", "-q", "--detach", node["commit"], repo=path)
        result.update(status="updated", commit=self.git.head(path))

    def _fast_forward(self, node, path, result):
        if not self.git.is_clean(path):
            result["reason"] = "local changes kept; not updated"
            return
        self.git.fetch(path, node["url"], node["branch"] or "HEAD")
        rc, upstream, dummy = self.git.run("rev-parse", "FETCH_HEAD^{commit}", repo=path)
        if rc or upstream == result["commit"]:
            return
        rc, dummy, dummy2 = self.git.run("merge-base", "--is-ancestor", result["commit"], upstream, repo=path)
        if rc:
            result["reason"] = "local commits kept; the branch cannot fast-forward"
            return
        if self.module.check_mode:
            result["status"] = "would_update"
            return
        self.git.must("merge", "-q", "--ff-only", upstream, repo=path)
        result.update(status="updated", commit=self.git.head(path))

    # Requirements -----------------------------------------------------------------------
    def _requirements(self, results):
        candidates = []
        for result in results:
            if result["status"] in ("would_clone", "would_seed"):
                result["requirements"] = "unknown"
                continue
            if result["status"] == "failed" or result["requirements"] == "skipped":
                continue
            path = os.path.join(result["dest"], "requirements.txt")
            if not os.path.isfile(path):
                continue
            sha256 = sha256_file(path)
            installed = self.ledger.matches(result["name"], sha256)
            if installed:
                result["requirements"] = "unchanged"
            candidates.append(_Pending(result, path, sha256, installed))
        pending = [item for item in candidates if not item.installed_before]
        if not pending:
            return
        if self.module.check_mode:
            for item in pending:
                item.result["requirements"] = "would_install"
            return
        self.pip.check()
        protected = self.pip.protected_versions()
        constraints = self.pip.constraints_file(protected)
        rc, dummy = self.pip.install([item.path for item in candidates], constraints)
        if rc:
            accepted = self._resolve(candidates, constraints, protected)
            if any(not item.installed_before for item in accepted):
                rc, dummy = self.pip.install([item.path for item in accepted], constraints)
                if rc:
                    # pip's resolver agreed but the install broke (a build, the disk): find whose.
                    accepted = [item for item in accepted if self._install_alone(item, constraints, protected)]
        else:
            accepted = candidates
        for item in accepted:
            if not item.installed_before:
                item.result["requirements"] = "installed"
                self.ledger.record(item.name, item.sha256)
                if item.name in self.not_git:
                    _add_reason(item.result, "its requirements.txt was installed (install_non_git_requirements)")
        self.ledger.save()

    def _resolve(self, candidates, constraints, protected):
        """The requirement files that install together, found with pip's resolver; every other
        node gets pip's reason. What was installed before goes first, so a change can never
        displace requirements that already work."""
        ordered = [item for item in candidates if item.installed_before]
        ordered += [item for item in candidates if not item.installed_before]
        accepted = []
        for item in ordered:
            rc, reason = self.pip.dry_run([other.path for other in accepted] + [item.path], constraints)
            if rc == 0:
                accepted.append(item)
                continue
            if accepted:
                rc, reason = self.pip.dry_run([item.path], constraints)
            if rc:
                self._refuse(
                    item, "failed", f"pip cannot install its requirements.txt{_protected_note(protected)}:\n{reason}"
                )
                continue
            self._report_conflict(item, accepted, constraints)
        return accepted

    def _report_conflict(self, item, accepted, constraints):
        """item installs alone but not with accepted: find the nodes it conflicts with (those
        asking for the same packages first) and have both sides say so."""
        wanted = requirement_names(item.path)
        sharing = [other for other in accepted if requirement_names(other.path) & wanted]
        rest = [other for other in accepted if other not in sharing]
        partners = self._conflicting(item, sharing, constraints) or self._conflicting(item, rest, constraints)
        if not partners:
            names = ", ".join(f"{other.name} ({other.result['origin']})" for other in accepted)
            self._refuse(
                item,
                "conflict",
                f"requirements.txt cannot be installed together with those of "
                f"{names} (no single one of them conflicts alone); not installed",
            )
            return
        for other, reason in partners:
            other.result["conflicts_with"].append(item.name)
            kept = "stay installed" if other.installed_before else "were installed"
            _add_reason(
                other.result,
                f"requirements.txt of {item.name} ({item.result['origin']}) conflicts "
                f"with this node's, which {kept}; {item.name}'s were not installed:"
                f"\n{reason}",
            )
        item.result["conflicts_with"] = [other.name for other, dummy in partners]
        names = ", ".join(f"{other.name} ({other.result['origin']})" for other, dummy in partners)
        self._refuse(
            item,
            "conflict",
            f"requirements.txt conflicts with that of {names}, which came first; not installed:\n{partners[0][1]}",
        )

    def _conflicting(self, item, others, constraints):
        found = []
        for other in others:
            rc, reason = self.pip.dry_run([other.path, item.path], constraints)
            if rc:
                found.append((other, reason))
        return found

    def _install_alone(self, item, constraints, protected):
        rc, reason = self.pip.install([item.path], constraints)
        if rc:
            self._refuse(
                item, "failed", f"pip could not install its requirements.txt{_protected_note(protected)}:\n{reason}"
            )
        return rc == 0

    def _refuse(self, item, requirements, reason):
        item.result.update(status="failed", requirements=requirements)
        _add_reason(item.result, reason)
        if item.installed_before:
            # Not true any more: the next run must try again rather than call it unchanged.
            self.ledger.forget(item.name)


def _add_reason(result, reason):
    result["reason"] = f"{result['reason']}; {reason}" if result["reason"] else reason


def _protected_note(protected):
    if not protected:
        return ""
    return " (protected: " + ", ".join(f"{name}=={version}" for name, version in sorted(protected.items())) + ")"


def count(results):
    counts = {status: 0 for status in ("cloned", "seeded", "updated", "present", "failed")}
    for result in results:
        key = {"would_clone": "cloned", "would_seed": "seeded", "would_update": "updated"}.get(
            result["status"], result["status"]
        )
        counts[key] = counts.get(key, 0) + 1
    return counts
