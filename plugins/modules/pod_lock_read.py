#!/usr/bin/python
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_lock_read
short_description: Read a pod lock or a ComfyUI-Manager snapshot to provision a pod from
version_added: 0.1.0
description:
  - Reads the lock a pod should be made to match, from a file or an http(s) URL, checks every
    field and returns what the roles need. C(playbooks/site.yml) runs it on the controller
    (C(delegate_to) localhost) when C(AICLIPSE_LOCK) or C(aiclipse_lock_source) is set, so one
    lock file on a laptop provisions a whole fleet.
  - Two formats are read. A pod lock, the YAML M(aiclipse.comfyui.pod_lock) writes, gives
    ComfyUI's repository and commit, each custom node's repository and commit, and each model's
    source, destination, size and sha256. A ComfyUI-Manager snapshot (its JSON, or the YAML
    Manager writes with C(custom_nodes) around the same keys) gives ComfyUI's commit
    (C(comfyui)) and the nodes (C(git_custom_nodes) with their commits, C(cnr_custom_nodes)
    with their versions); the manifests still plan the models then.
  - Comfy Registry nodes of a snapshot are resolved to their repository through
    O(registry_endpoint) (or the O(registry_map) file) and installed from the repository's tag
    of that version (C(v1.2.3) or C(1.2.3)). One that cannot be resolved is listed in
    RV(lock.unresolved); the start goes on and its report says it was not reproduced.
  - What a snapshot holds but cannot be reproduced from it (disabled nodes, single-file nodes,
    its pip list) is listed in RV(lock.notes).
  - A locked model URL at O(hf_endpoint) or O(civitai_endpoint) is downloaded as a Hugging Face
    or CivitAI model, with that source's token; any other URL is downloaded without a token, so
    a lock can never make a pod send its token to another host. A lock fetched from a URL is
    fetched without any credential.
  - Every problem of the lock is listed at once, each with the file and line, and the task fails
    before anything on the pod changes.
author:
  - aiclipse (@aiclipse)
options:
  source:
    description: The lock, a path on the host the module runs on, or an http(s) URL.
    type: str
    required: true
  models_dir:
    description: The pod's models folder; a locked model's absolute C(dest) must be under it.
    type: str
    required: true
  hf_endpoint:
    description: The Hugging Face endpoint the pod downloads from (C(HF_ENDPOINT)).
    type: str
    default: https://huggingface.co
  civitai_endpoint:
    description: The CivitAI endpoint the pod downloads from.
    type: str
    default: https://civitai.com
  registry_endpoint:
    description: The Comfy Registry API resolving a snapshot's C(cnr_custom_nodes); empty means offline.
    type: str
    default: https://api.comfy.org
  registry_timeout:
    description: Seconds one registry request may take.
    type: float
    default: 15
  registry_map:
    description: A C(cnr_id|repository URL[|version or commit]) file asked before the registry (skipped when missing).
    type: path
  timeout:
    description: Seconds fetching a lock URL, or asking a repository for its tags, may take.
    type: int
    default: 60
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reads only; it behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything.
"""

EXAMPLES = r"""
- name: Read the lock this pod is provisioned from
  aiclipse.comfyui.pod_lock_read:
    source: https://example.com/locks/sdxl-pod.lock.yml
    models_dir: /workspace/aiclipse/models
  delegate_to: localhost
  register: pod_lock_wanted
"""

RETURN = r"""
lock:
  description: The lock as the roles use it.
  returned: success
  type: dict
  contains:
    format:
      description: V(pod-lock) or V(comfyui-manager-snapshot).
      type: str
    source:
      description: Where the lock was read from.
      type: str
    digest:
      description: sha256 of the lock's text.
      type: str
    comfyui:
      description: C(repo) (null when the lock names none) and C(commit).
      type: dict
    custom_nodes:
      description: Each node's C(name) (its folder), C(repo), C(commit), C(branch) (a version tag) and
        C(origin) (file and line). C(repo) null is a folder that was no git checkout.
      type: list
      elements: dict
    models:
      description: The locked models as model manifest items (C(source), C(identifier), C(filename),
        C(subdir), C(sha256), C(size), C(origin)); null for a snapshot, whose models the manifests plan.
      type: list
      elements: dict
    node_items:
      description: The locked git nodes as items of the C(nodes) option of M(aiclipse.comfyui.custom_nodes).
      type: list
      elements: dict
    models_locked:
      description: Each locked model's C(dest) on this pod, C(sha256), C(size) and C(origin), what the pod is checked against.
      type: list
      elements: dict
    python:
      description: The lock's C(packages_digest) (compared, never installed).
      type: dict
    unresolved:
      description: C({what, reason}) for each locked thing that cannot be installed (a registry node the
        registry does not know).
      type: list
      elements: dict
    notes:
      description: What the lock holds that is not reproduced, and why.
      type: list
      elements: str
  sample:
    format: pod-lock
    source: /srv/locks/pod.lock.yml
    digest: "sha256:2c6e"
    comfyui: {repo: "https://github.com/comfyanonymous/ComfyUI.git", commit: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c}
    custom_nodes: []
    models: []
    unresolved: []
    notes: []
"""


import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfy_registry import (
    ComfyRegistry,
    NodeMapError,
    read_node_map,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import Git
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.lock_source import (
    LockSourceError,
    node_items,
    parse,
    read_text,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.lock_registry import resolve_registry_nodes


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str", required=True),
            models_dir=dict(type="str", required=True),
            hf_endpoint=dict(type="str", default="https://huggingface.co"),
            civitai_endpoint=dict(type="str", default="https://civitai.com"),
            registry_endpoint=dict(type="str", default="https://api.comfy.org"),
            registry_timeout=dict(type="float", default=15.0),
            registry_map=dict(type="path"),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        text, name = read_text(params["source"], timeout=params["timeout"])
        lock = parse(text, name, params["models_dir"], params["hf_endpoint"], params["civitai_endpoint"])
    except LockSourceError as exc:
        module.fail_json(msg=str(exc))
    lock["unresolved"] = []
    if lock["registry_nodes"]:
        node_map = {}
        if params["registry_map"]:
            try:
                node_map = read_node_map(params["registry_map"]) if os.path.exists(params["registry_map"]) else {}
            except NodeMapError as exc:
                module.warn(f"registry map not used: {exc}")
        try:
            registry = ComfyRegistry(
                (params["registry_endpoint"] or "").strip() or None,
                timeout=params["registry_timeout"],
                node_map=node_map,
            )
        except ValueError as exc:
            module.fail_json(msg=f"registry_endpoint: {exc}")
        git = Git(module, timeout=params["timeout"])
        resolve_registry_nodes(lock, registry, git)
    del lock["registry_nodes"]
    lock["node_items"] = node_items(lock)
    module.exit_json(changed=False, lock=lock)


if __name__ == "__main__":
    main()
