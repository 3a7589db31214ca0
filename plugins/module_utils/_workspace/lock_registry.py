# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A ComfyUI-Manager snapshot's Comfy Registry nodes as git checkouts of the lock.

Manager installs a registry node from the registry's zip of that version; a pod installs it
from the node's repository at the tag of that version (``v1.2.3`` or ``1.2.3``), the way
provisioning from workflows does. A node the registry cannot resolve, or whose repository has
no such tag, is listed in the lock's ``unresolved`` and reported as not reproduced.
"""

from __future__ import annotations

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfy_registry import RegistryError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import GitError, public_url
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.nodes_manifest import node_name
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.node_sources import tags_of


def resolve_registry_nodes(lock, registry, git):
    """Move lock["registry_nodes"] into lock["custom_nodes"] (or lock["unresolved"])."""
    taken = {node["name"].lower(): node for node in lock["custom_nodes"]}
    for item in lock["registry_nodes"]:
        what = f"custom node {item['cnr_id']} {item['version']} ({item['origin']})"
        try:
            answer = registry.resolve(item["cnr_id"], item["version"])
        except RegistryError as exc:
            lock["unresolved"].append({"what": what, "reason": str(exc)})
            continue
        repository = answer["repository"]
        name = node_name(repository)
        if name.lower() in taken:
            lock["notes"].append(f"{what}: its folder {name} is the snapshot's git node {taken[name.lower()]['repo']}")
            continue
        node = {
            "name": name,
            "repo": repository,
            "commit": answer["commit"],
            "branch": "",
            "cnr_id": item["cnr_id"],
            "version": answer["version"] or item["version"],
            "origin": item["origin"],
        }
        if not node["commit"]:
            try:
                tags = tags_of(git, repository)
            except GitError as exc:
                lock["unresolved"].append(
                    {"what": what, "reason": f"cannot ask {public_url(repository)} for its tags: {exc}"}
                )
                continue
            tag = next((t for t in ("v" + node["version"], node["version"]) if t in tags), None)
            if tag is None:
                lock["unresolved"].append(
                    {
                        "what": what,
                        "reason": f"{public_url(repository)} has no tag v{node['version']} or {node['version']}",
                    }
                )
                continue
            node["branch"] = tag
        taken[name.lower()] = node
        lock["custom_nodes"].append(node)
