# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The custom node packs workflows need, as entries of the nodes manifest.

* A pack with an ``aux_id`` (GitHub ``owner/repo``) is cloned from ``<github_url>/owner/repo``;
  one with only a ``cnr_id`` is resolved to its repository through the Comfy Registry (or the
  offline map file). ``comfy-core`` never reaches here (the plan leaves it out).
* A node the nodes manifests name (same folder name or same repository) wins: the workflow's
  pack is not added.
* A pack already installed (its folder exists, under the repository's name or the registry id
  ComfyUI-Manager uses) is left as it is, whatever the workflow pins: workflows carry the
  version their author happened to have, and an existing checkout is never moved for that.
* A missing pack is pinned to the workflow's ``ver``: a commit as the commit, a registry version
  as the repository's tag ``v<ver>`` or ``<ver>`` (asked with ``git ls-remote``); a version
  without such a tag installs the default branch, with a warning.

Nothing here fails the start: a pack that cannot be resolved is reported ``unknown`` with why.
A registry that is unavailable is one warning naming the packs it leaves unknown, not one
warning per pack.
"""

from __future__ import annotations

import os
import re

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfy_registry import (
    UNAVAILABLE,
    RegistryError,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import GitError, public_url
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.nodes_manifest import (
    node_name,
    validate_entry,
)

from .values import shown

# Pack states (before the install; the module turns them into the report's words).
MANIFEST = "manifest"  # a manifest names this node; its entry is installed instead
INSTALL = "install"  # an entry of the install list
UNKNOWN = "unknown"  # no repository could be found
PRESENT = "present"  # installed under its registry id, not a git checkout: left alone

_TAG_LINE = re.compile(r"^([0-9a-f]{40})\trefs/tags/(\S+?)(\^\{\})?$")


def repo_key(url):
    """A repository URL compared loosely: no credentials, case, trailing slash or .git."""
    text = public_url(url).strip().rstrip("/").lower()
    return text[:-4] if text.endswith(".git") else text


def tags_of(git, url):
    """The tag names of the repository at url (git ls-remote); GitError when it cannot be asked.
    git's command line gets the URL without credentials; they reach git as for a clone."""
    rc, out, err = git.run("ls-remote", "--tags", "--", public_url(url), url=url)
    if rc != 0:
        raise GitError(err.splitlines()[-1] if err else "git ls-remote failed")
    tags = set()
    for line in out.splitlines():
        match = _TAG_LINE.match(line)
        if match:
            tags.add(match.group(2))
    return tags


def _source_text(source):
    return shown(f"{source['workflow']} node {source['node_id']} ({source['node_type']})", 400)


class WorkflowNodes:
    """Turns the plan's node packs into nodes-manifest entries."""

    def __init__(self, registry, github_url, dest, git):
        self.registry = registry
        self.github_url = github_url.rstrip("/")
        self.dest = dest
        self.git = git
        self.warnings = []
        self._registry_down = []  # (pack key, why) of packs the unreachable registry left unknown

    def entries(self, packs, manifest_nodes):
        """(entries to install, {pack key: state}) where a state is ``{status, name, url, detail}``."""
        by_name = {node["name"].lower(): node for node in manifest_nodes}
        by_repo = {repo_key(node["url"]): node for node in manifest_nodes}
        entries, states, taken = [], {}, set(by_name)
        for pack in packs:
            state = self._pack(pack, by_name, by_repo, taken)
            states[pack["key"]] = state
            if state.get("entry"):
                entries.append(state.pop("entry"))
        if self._registry_down:
            keys = ", ".join(key for key, dummy in self._registry_down)
            self.warnings.append(
                f"the Comfy Registry is unavailable ({shown(self._registry_down[0][1], 300)}); custom node packs {keys} are not installed "
                "(a registry map file pins ids without it)"
            )
        return entries, states

    def _pack(self, pack, by_name, by_repo, taken):
        first = pack["required_by"][0]
        origin = f"workflow {_source_text(first)}"
        installed = self._installed_folder(pack)
        if installed and installed.lower() in by_name:
            manifest = by_name[installed.lower()]
            return {
                "status": MANIFEST,
                "name": manifest["name"],
                "url": manifest["url"],
                "detail": f"the manifest's entry ({manifest['origin']}) is used",
            }
        if installed and not pack["aux_id"]:
            # Installed under its registry id: the registry need not be asked, nothing is moved.
            taken.add(installed.lower())
            path = os.path.join(self.dest, installed)
            if not os.path.isdir(os.path.join(path, ".git")):
                return {
                    "status": PRESENT,
                    "name": installed,
                    "url": None,
                    "detail": "not a git checkout; left as it is",
                }
            entry = {
                "name": installed,
                "url": path,
                "branch": "",
                "commit": "",
                "category": "workflow",
                "description": pack["key"],
                "origin": origin,
            }
            return {"status": INSTALL, "name": installed, "url": None, "detail": None, "entry": entry}
        try:
            url, pin_version, pin_commit = self._repository(pack)
        except RegistryError as exc:
            if exc.kind == UNAVAILABLE:
                self._registry_down.append((pack["key"], str(exc)))
                return {"status": UNKNOWN, "name": None, "url": None, "detail": f"cannot find its repository: {exc}"}
            self.warnings.append(
                f"custom node pack {pack['key']} needed by {_source_text(first)}: {shown(str(exc), 300)}; it is not installed"
            )
            return {"status": UNKNOWN, "name": None, "url": None, "detail": f"cannot find its repository: {exc}"}
        name = installed or node_name(url)
        manifest = by_name.get(name.lower()) or by_repo.get(repo_key(url))
        if manifest is not None:
            return {
                "status": MANIFEST,
                "name": manifest["name"],
                "url": manifest["url"],
                "detail": f"the manifest's entry ({manifest['origin']}) is used",
            }
        if name.lower() in taken:
            return {"status": MANIFEST, "name": name, "url": url, "detail": f"another pack has the folder {name}"}
        taken.add(name.lower())
        branch = commit = ""
        if not installed and not os.path.lexists(os.path.join(self.dest, name)):
            if pin_commit:
                commit = pin_commit
            elif pin_version:
                branch = self._version_tag(url, pin_version, pack)
        try:
            entry = validate_entry(
                {"url": url, "branch": branch, "commit": commit, "category": "workflow", "description": pack["key"]},
                origin,
            )
        except ValueError as exc:  # validate_entry says what is wrong; the warning says where
            self.warnings.append(
                f"custom node pack {pack['key']} needed by {_source_text(first)}: {shown(str(exc), 300)}; it is not installed"
            )
            return {"status": UNKNOWN, "name": None, "url": url, "detail": str(exc)}
        if installed:
            entry["name"] = installed
        return {"status": INSTALL, "name": entry["name"], "url": url, "detail": None, "entry": entry}

    def _installed_folder(self, pack):
        """The folder of this pack already in dest: by the repository name of aux_id or the
        registry id (ComfyUI-Manager installs registry packs under their id)."""
        candidates = []
        if pack["aux_id"]:
            candidates.append(pack["aux_id"].split("/", 1)[1])
        if pack["cnr_id"]:
            candidates.append(pack["cnr_id"])
        try:
            present = {entry.lower(): entry for entry in os.listdir(self.dest)}
        except OSError:
            return None
        for candidate in candidates:
            if candidate.lower() in present and os.path.isdir(os.path.join(self.dest, present[candidate.lower()])):
                return present[candidate.lower()]
        return None

    def _repository(self, pack):
        """(url, version to pin, commit to pin)."""
        ver, kind = pack["ver"], pack["ver_kind"]
        if pack["aux_id"]:
            return (
                f"{self.github_url}/{pack['aux_id']}",
                ver if kind == "version" else None,
                ver if kind == "commit" else None,
            )
        answer = self.registry.resolve(pack["cnr_id"], ver)
        self.warnings.extend(answer["warnings"])
        if answer["commit"]:
            return answer["repository"], None, answer["commit"]
        if ver and kind == "version" or answer["source"] == "map":
            return answer["repository"], answer["version"], None
        return answer["repository"], None, None

    def _version_tag(self, url, version, pack):
        """The tag of `version` in the repository (v1.2.3 or 1.2.3), or '' with a warning."""
        try:
            tags = tags_of(self.git, url)
        except GitError as exc:
            tags, why = None, f"could not be asked for its tags ({shown(str(exc), 200)})"
        if tags is not None:
            for tag in ("v" + version, version):
                if tag in tags:
                    return tag
            why = f"has no tag v{version} or {version}"
        self.warnings.append(
            f"custom node pack {pack['key']}: version {version} is wanted but {shown(public_url(url), 200)} {why}; its default branch is installed"
        )
        return ""


# Install results -> the report's words.
_REPORTED = {
    "cloned": "installed",
    "seeded": "installed",
    "updated": "installed",
    "present": "installed",
    "would_clone": "to_install",
    "would_seed": "to_install",
    "would_update": "installed",
    "failed": "failed",
}


def final_states(states, results):
    """{pack key: {status, detail}} for the report: installed, to_install, failed, unknown."""
    by_name = {result["name"].lower(): result for result in results}
    out = {}
    for key, state in states.items():
        if state["status"] == UNKNOWN:
            out[key] = {"status": "unknown", "detail": state["detail"]}
            continue
        if state["status"] == PRESENT:
            out[key] = {"status": "installed", "detail": f"{state['name']}: {state['detail']}"}
            continue
        result = by_name.get((state["name"] or "").lower())
        if result is None:
            out[key] = {"status": "unknown", "detail": state["detail"]}
            continue
        status = _REPORTED.get(result["status"], result["status"])
        detail = f"custom_nodes/{result['name']}"
        if result.get("commit"):
            detail += f" @ {result['commit'][:12]}"
        if state["detail"]:
            detail += "; " + state["detail"]
        if result.get("reason"):
            detail += "; " + result["reason"]
        out[key] = {"status": status, "detail": detail}
    return out


def summary_line(states):
    totals = {}
    for state in states.values():
        totals[state["status"]] = totals.get(state["status"], 0) + 1
    return (
        f"Workflow node packs: {totals.get('installed', 0)} installed, {totals.get('to_install', 0)} to install, "
        f"{totals.get('failed', 0)} failed, {totals.get('unknown', 0)} unknown\n"
    )
