# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Custom nodes: clone in parallel, then install requirements under the torch constraints.

Checkouts run in a thread pool (each is a git process, so they overlap for real). A node the
image has baked (same URL, usable checkout) is copied from there instead of cloned. Existing
checkouts are never clobbered: a pinned node is moved to its pin only when git reports no
local changes to tracked files; an unpinned node is left where it is unless ``update`` asks
for a fetch + fast-forward (again only when clean). Requirements are installed afterwards,
one pip run for every node whose requirements.txt changed; when that run fails, each node is
retried alone so the failure lands on the node that caused it and the others still install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.aiclipse.comfyui.plugins.module_utils.git_checkout import (
    STAGING_PREFIX,
    GitError,
    clone_into_place,
    redact,
    remove_stale_staging,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils.pip_requirements import (
    RequirementsLedger,
    file_sha256,
)

CHANGED_STATUSES = ("cloned", "seeded", "updated", "would_clone", "would_seed", "would_update")


class NodeInstaller:
    def __init__(self, module, git, dest, nodes, pip=None, update=False, workers=8, seed_from=None):
        self.module = module
        self.seed_from = seed_from
        self.git = git
        self.dest = os.path.abspath(dest)
        self.nodes = nodes
        self.pip = pip
        self.update = update
        self.workers = max(1, workers)
        self.changed = False
        self.ledger = None
        if pip is not None:
            self.ledger = RequirementsLedger(module, os.path.join(pip.state_dir, "custom_nodes.json"))

    def run(self):
        if not self.module.check_mode:
            os.makedirs(self.dest, exist_ok=True)
            remove_stale_staging(self.dest)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(self._checkout, self.nodes))
        # Decided before requirements: a clone stays a change even if its pip run fails later.
        self.changed = any(r["status"] in CHANGED_STATUSES for r in results)
        if self.pip is not None:
            self._requirements(results)
        self.changed = self.changed or any(r["requirements"] in ("installed", "would_install")
                                           for r in results)
        return results

    # Checkouts --------------------------------------------------------------------------
    def _checkout(self, node):
        path = os.path.join(self.dest, node["name"])
        result = {"name": node["name"], "url": redact(node["url"]), "dest": path,
                  "branch": node["branch"], "pin": node["commit"], "origin": node["origin"],
                  "status": "present", "commit": None, "reason": "", "requirements": "none"}
        try:
            if not os.path.lexists(path):
                seed = self._seed_for(node)
                if self.module.check_mode:
                    result["status"] = "would_seed" if seed else "would_clone"
                elif seed:
                    self._seed(seed, node, path, result)
                else:
                    result["commit"] = clone_into_place(self.git, node["url"], path, node["branch"],
                                                        node["commit"])
                    result["status"] = "cloned"
                return result
            problem = self.git.health(path)
            if problem:
                result["reason"] = f"{problem}; left as it is"
                return result
            result["commit"] = self.git.head(path)
            if node["commit"]:
                self._move_to_pin(node, path, result)
            elif self.update:
                self._fast_forward(node, path, result)
        except GitError as exc:
            result.update(status="failed", reason=str(exc))
        return result

    def _seed_for(self, node):
        """The image's baked checkout of this node, when it can stand in for a clone: a working
        checkout of the same URL, on the wanted branch unless a commit pin decides."""
        if not self.seed_from or os.path.realpath(self.seed_from) == os.path.realpath(self.dest):
            return None
        seed = os.path.join(self.seed_from, node["name"])
        if not os.path.isdir(seed) or self.git.health(seed) or self.git.remote_url(seed) != node["url"]:
            return None
        if node["branch"] and not node["commit"]:
            rc, branch, dummy = self.git.run("rev-parse", "--abbrev-ref", "HEAD", repo=seed)
            if rc or branch != node["branch"]:
                return None
        return seed

    def _seed(self, seed, node, path, result):
        stage = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.dest)
        try:
            shutil.copytree(seed, os.path.join(stage, "checkout"), symlinks=True)
            os.rename(os.path.join(stage, "checkout"), path)
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
            self.git.must("fetch", "-q", "origin", repo=path)
        self.git.must("checkout", "-q", "--detach", node["commit"], repo=path)
        result.update(status="updated", commit=self.git.head(path))

    def _fast_forward(self, node, path, result):
        if not self.git.is_clean(path):
            result["reason"] = "local changes kept; not updated"
            return
        self.git.must("fetch", "-q", "origin", node["branch"] or "HEAD", repo=path)
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
        pending = []
        for result in results:
            requirements = os.path.join(result["dest"], "requirements.txt")
            if result["status"] in ("failed", "would_clone", "would_seed") or not os.path.isfile(requirements):
                if result["status"] in ("would_clone", "would_seed"):
                    result["requirements"] = "unknown"
                continue
            sha256 = file_sha256(requirements)
            if self.ledger.matches(result["name"], sha256):
                result["requirements"] = "unchanged"
            elif self.module.check_mode:
                result["requirements"] = "would_install"
            else:
                pending.append((result, requirements, sha256))
        if not pending:
            return
        self.pip.check()
        constraints = self.pip.constraints_file(self.pip.protected_versions())
        rc, dummy = self.pip.install([item[1] for item in pending], constraints)
        if rc:
            # Somebody's requirements broke the joint run: find out whose, one node at a time.
            outcomes = [(item, self.pip.install([item[1]], constraints)) for item in pending]
        else:
            outcomes = [(item, (0, "")) for item in pending]
        for (result, dummy, sha256), (rc, output) in outcomes:
            if rc:
                result.update(status="failed", requirements="failed",
                              reason=f"pip could not install requirements.txt under the protected "
                                     f"versions ({constraints}):\n{output}")
            else:
                result["requirements"] = "installed"
                self.ledger.record(result["name"], sha256)
        self.ledger.save()


def count(results):
    counts = {status: 0 for status in ("cloned", "seeded", "updated", "present", "failed")}
    for result in results:
        key = {"would_clone": "cloned", "would_seed": "seeded", "would_update": "updated"}.get(result["status"], result["status"])
        counts[key] = counts.get(key, 0) + 1
    return counts
