#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: custom_nodes
short_description: Install ComfyUI custom nodes from manifests, in parallel, without replacing torch
version_added: 0.1.0
description:
  - Reads the nodes manifests (one node a line, C(repo_url|branch|category|description[|commit]),
    C(#) comments and blank lines ignored) and the O(nodes) list, merges them (a later source
    replaces an earlier node of the same directory name) and makes each node a git checkout in
    O(dest)/<name>, where <name> is the URL's last part without C(.git). Manifests are UTF-8,
    with or without a byte order mark.
  - Missing nodes are cloned in parallel (O(workers) at a time), staged next to their final
    directory and renamed into place, so ComfyUI never sees half a node. A branch (second
    field) is cloned instead of the default branch; a commit (fifth field, 7 to 40 hex digits)
    is then checked out detached. A commit id in the branch field (and no fifth field) is taken
    as the pin, the way M(aiclipse.comfyui.comfyui_install) takes a commit as O(ignore:version).
  - B(Credentials.) A user and token in an http(s) URL (C(https://user:token@host/owner/repo))
    never reach git's command line or a file. git gets the URL without them and stores that one
    as C(origin); the token sits in git's environment and reaches git through a credential
    helper set there (C(GIT_CONFIG_COUNT)/C(GIT_CONFIG_KEY_n)/C(GIT_CONFIG_VALUE_n)) that
    answers for that scheme, host and port only, so a redirect to another host never gets it;
    other credential helpers are off for these git runs (no C(store) writes the token to a
    file). Any checkout in O(dest) whose C(origin) still holds a token (stored by an earlier
    version), listed or not, has it removed from the URL (C(credentials_removed) in RV(results)
    for a listed node, RV(credentials_removed) for the others); nothing else in it changes. A
    password in an C(ssh://) or C(git://) URL is refused (ssh uses keys). A password may hold a
    raw C(@) (the user info ends at the last C(@) before the host). No message quotes a
    credential; an error about a manifest line shows its URL masked, with the file and line.
  - B(Time.) Every git network command (clone, fetch, ls-remote) runs in a process group of its
    own and is killed with its helpers after O(git_timeout) seconds; the node then fails with
    "no answer from <host> within N s" and the others go on. Once a host has not answered in
    time, every later git command of the run to that host fails at once with the same words,
    so many nodes on one stalled host cost one timeout, not one each. git's low-speed limit
    (less than 1000 bytes/s for 30 s) ends a stalled HTTP transfer sooner.
  - A missing node that the image has baked into O(seed_from) (a working checkout with the same
    C(origin) URL, on the wanted branch unless a commit is pinned) is copied from there instead
    of cloned, so a pod start needs no network for the template's nodes.
  - Existing checkouts are never clobbered. A pinned node is moved to its pin only when git
    reports no changes to tracked files; an unpinned node stays where it is unless O(update)
    is true, and then is only fast-forwarded, and only when clean. Nothing is ever reset,
    cleaned or deleted.
  - A directory with a node's name that is not a git checkout of its own (a copy made by hand)
    is left alone entirely, its C(requirements.txt) included, unless
    O(install_non_git_requirements) is true.
  - With O(venv), each node's C(requirements.txt) is installed with that venv's pip under a
    constraints file that pins O(protected_packages) at the versions installed, so a node asking
    for another torch fails (and is reported, with pip's explanation) instead of replacing the
    pod's. pip runs only when a node's requirements changed since the last successful install
    (sha256 recorded in C(<venv>/.aiclipse-state/custom_nodes.json)), and then once over every
    node's requirements, so its resolver never installs one node's requirements over another's.
  - When that run fails, pip's resolver (C(pip install --dry-run), pip 22.2 or later) finds out
    which requirements go together, those installed before first, then the changed ones in
    manifest order. A node whose requirements cannot install even alone fails with pip's
    reason; a node whose requirements conflict with another's is not installed
    (C(requirements=conflict) in RV(results)) and both nodes name each other in
    C(conflicts_with) and their C(reason), with pip's "The conflict is caused by"
    lines naming the packages and versions. The rest install.
  - Every node gets a result. A failing node does not stop the others; with O(fail_on_error)
    the task fails at the end, listing every failed node and why.
  - Manifest errors (bad URL, bad commit, too many fields, a node listed twice in one file) fail
    before anything is cloned. Every problem of every manifest is listed at once, each with its
    file and line.
  - "With O(workflows), the custom node packs ComfyUI workflow files name (C(properties.aux_id), a
    GitHub C(owner/repo) cloned from O(github_url); C(properties.cnr_id), a Comfy Registry id
    resolved to its repository through O(registry_endpoint) or the O(registry_map) file) are
    installed too, after the manifests' nodes. C(comfy-core) is ComfyUI itself and never
    installed. A node the manifests or O(nodes) name (same folder or same repository) wins. A
    missing pack is pinned to the workflow's C(ver): a commit as the commit, a registry version
    as the repository's tag C(v<ver>) or C(<ver>); an installed one is left where it is. A pack
    that cannot be resolved, or a malformed workflow, is a warning naming it; the task does not
    fail for it. Neither does the registry: an O(registry_endpoint) that is not an http(s) URL
    is a warning naming the setting, and a registry that cannot be reached (or does not answer
    within O(registry_timeout)) is asked once and then not again in the run; either way one
    warning names the packs left V(unknown), and the manifests' nodes still install."
author:
  - aiclipse team (@aiclipse)
options:
  dest:
    description:
      - The C(custom_nodes) directory of the ComfyUI checkout. Created when missing.
    type: path
    required: true
  manifests:
    description:
      - Nodes manifest files, merged in order (base, then user, then template).
    type: list
    elements: path
    default: []
  missing_manifests:
    description:
      - What a manifest path that does not exist means. V(ignore) lets a role list the usual
        places without checking them first.
    type: str
    choices: [fail, ignore]
    default: fail
  nodes:
    description:
      - Nodes given as variables, merged after O(manifests). Each item is a mapping with C(url)
        (or C(repo_url)) and optional C(branch), C(category), C(description), C(commit), or a
        manifest line as a string.
      - A password or token in a URL (C(https://user:token@host/...)) is masked everywhere in
        the output, the echo of this option included. So is one in a manifest.
    type: list
    elements: raw
    default: []
  seed_from:
    description:
      - The image's baked C(custom_nodes) directory to copy missing nodes from (ignored when it
        is O(dest) itself).
    type: path
  venv:
    description:
      - The virtualenv ComfyUI runs in. Requirements are not installed when omitted.
    type: path
  pip_args:
    description:
      - Extra arguments for C(pip install) (an index, C(--no-index --find-links DIR), ...).
    type: list
    elements: str
    default: []
  protected_packages:
    description:
      - Packages node requirements may not replace; each one installed in O(venv) is pinned at
        its current version.
    type: list
    elements: str
    default: [torch, torchvision, torchaudio, xformers]
  update:
    description:
      - Fetch unpinned nodes and fast-forward them to their branch when they have no local
        changes. Off by default, so a pod restart needs no network for nodes already there.
    type: bool
    default: false
  workers:
    description:
      - How many clones run at the same time.
    type: int
    default: 8
  git_timeout:
    description:
      - Seconds one git network command (a clone, a fetch, an ls-remote) may take. When they
        pass, git and everything it started are killed and the node fails with "no answer from
        <host> within N s"; the other nodes go on. Later commands to that host in the same run
        fail at once.
    type: int
    default: 300
  install_non_git_requirements:
    description:
      - Install the C(requirements.txt) of a directory that has a node's name but is not a git
        checkout (its files are still left alone). Off by default, so a user's own copy is not
        touched at all.
    type: bool
    default: false
  fail_on_error:
    description:
      - Fail the task at the end when any node failed (the others are installed first).
    type: bool
    default: true
  workflows:
    description:
      - ComfyUI workflow files or folders (searched recursively for C(*.json)) whose custom node
        packs are installed too. A folder that does not exist is skipped.
    type: list
    elements: path
    default: []
  github_url:
    description:
      - Base URL a workflow's C(aux_id) (C(owner/repo)) is cloned from, as C(<github_url>/owner/repo).
    type: str
    default: https://github.com
  registry_endpoint:
    description:
      - The Comfy Registry API that turns a C(cnr_id) into a repository. Empty for none (only
        O(registry_map) answers). A value that is not an http(s) URL is a warning, and then
        works like empty.
    type: str
    default: https://api.comfy.org
  registry_timeout:
    description:
      - Seconds one registry request may take in all. A value that is not positive is a warning,
        and the default is used.
    type: float
    default: 15
  registry_map:
    description:
      - Offline map file, one C(cnr_id|repository URL[|version or commit]) a line, asked before the
        registry. A missing file is skipped; a bad one is a warning and is not used.
    type: path
  workflow_report_file:
    description:
      - Write the workflows' report here, per workflow each node pack installed, to install,
        failed or unknown, and each node type no pack is named for. Like a log, it is rewritten
        (atomically) when its text changes, which does not count as a change.
    type: path
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Results say V(would_clone)/V(would_seed)/V(would_update) and requirements V(would_install); nothing changes.
  diff_mode:
    support: full
    details: The diff lists each node and its commit before and after.
  idempotent:
    support: full
    details: Present nodes with recorded requirements report RV(ignore:changed=false) and pip is not run.
notes:
  - Fixed modes, not file arguments - a node is git's checkout (or the seed's copy) as it is; the
    requirements state the module keeps in the venv is C(0644).
  - The credentials of an http(s) URL are visible to processes of the same user (git's
    environment), not to other users of the pod (C(ps) shows no token). Private nodes that
    ComfyUI-Manager should update later need a credential helper of your own; none is set up.
seealso:
  - module: aiclipse.comfyui.comfyui_install
"""

EXAMPLES = r"""
- name: Base, user and template node manifests into the vault's ComfyUI
  aiclipse.comfyui.custom_nodes:
    dest: /workspace/aiclipse/ComfyUI/custom_nodes
    seed_from: /opt/aiclipse/ComfyUI/custom_nodes
    manifests:
      - /opt/aiclipse/manifests/base_nodes.txt
      - /workspace/aiclipse/custom_nodes.txt
      - /opt/aiclipse/manifests/boomboom_nodes.txt
    missing_manifests: ignore
    venv: /venv

- name: Nodes from host vars, one pinned to a commit
  aiclipse.comfyui.custom_nodes:
    dest: /workspace/aiclipse/ComfyUI/custom_nodes
    nodes:
      - url: https://github.com/city96/ComfyUI-GGUF
        branch: main
        commit: 3d673c5
      - https://github.com/kijai/ComfyUI-KJNodes|main|utility|KJ utility nodes
    venv: /venv
"""

RETURN = r"""
results:
  description:
    - One entry per node, in manifest order. C(status) is V(cloned), V(seeded) (copied from
      O(seed_from)), V(updated), V(present), V(failed) (C(reason) says why), or in check mode
      V(would_clone)/V(would_seed)/V(would_update).
      C(requirements) is V(installed), V(unchanged), V(none), V(failed) (pip refused it even
      alone), V(conflict) (it conflicts with C(conflicts_with); not installed), V(skipped) (not
      a git checkout, see O(install_non_git_requirements)), V(would_install) or V(unknown)
      (check mode, not cloned yet). C(url) has credentials masked.
      C(conflicts_with) names the nodes whose requirements conflict with this node's (on both
      sides of a conflict). C(credentials_removed) is true when a token was removed from the
      checkout's C(origin) URL.
  returned: always
  type: list
  elements: dict
  sample:
    - name: rgthree-comfy
      url: https://github.com/rgthree/rgthree-comfy
      dest: /workspace/aiclipse/ComfyUI/custom_nodes/rgthree-comfy
      branch: main
      pin: ''
      origin: /opt/aiclipse/manifests/base_nodes.txt:6
      status: cloned
      commit: 8f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6
      requirements: none
      reason: ''
      conflicts_with: []
      credentials_removed: false
counts:
  description:
    - How many nodes were V(cloned), V(seeded) (or would be), V(updated), already V(present)
      and V(failed).
      A dict, because a top-level C(failed) key would mark the task failed.
  returned: always
  type: dict
  sample: {cloned: 5, seeded: 0, updated: 0, present: 1, failed: 0}
credentials_removed:
  description:
    - Checkouts in O(dest) that no manifest, O(nodes) or workflow names whose C(origin) URL
      held a token (or would, in check mode); the token was removed from that URL and nothing
      else changed.
  returned: always
  type: list
  elements: str
  sample: [/workspace/aiclipse/ComfyUI/custom_nodes/OldPrivateNode]
requirements_ledger:
  description: The file in O(venv) that records the requirements installed for each node.
  returned: always (null without O(venv))
  type: str
  sample: /venv/.aiclipse-state/custom_nodes.json
workflow_packs:
  description: Each node pack the O(workflows) name, C({key, status, detail}); C(status) is
    V(installed), V(to_install) (check mode), V(failed) or V(unknown) (its repository could not
    be found).
  returned: when O(workflows) is given
  type: list
  elements: dict
workflow_report:
  description: The report written to O(workflow_report_file), for a person.
  returned: when O(workflows) is given
  type: str
manifests:
  description: The manifest files that were read (missing ones skipped with O(missing_manifests=ignore)).
  returned: always
  type: list
  elements: str
  sample: [/opt/aiclipse/manifests/base_nodes.txt]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.custom_nodes import NodeInstaller, count
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import Git, mask_url_credentials
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.nodes_manifest import ManifestError, load
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.pip_requirements import PipError, VenvPip
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import mask_credentials
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows import node_provision


def _option_urls(nodes):
    """The URLs of the nodes option as given (entries that failed to parse included)."""
    return [
        str(entry.get("url") or entry.get("repo_url") or "") if isinstance(entry, dict) else str(entry)
        for entry in nodes or []
    ]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            manifests=dict(type="list", elements="path", default=[]),
            missing_manifests=dict(type="str", choices=["fail", "ignore"], default="fail"),
            nodes=dict(type="list", elements="raw", default=[]),
            seed_from=dict(type="path"),
            venv=dict(type="path"),
            pip_args=dict(type="list", elements="str", default=[]),
            protected_packages=dict(
                type="list", elements="str", default=["torch", "torchvision", "torchaudio", "xformers"]
            ),
            update=dict(type="bool", default=False),
            workers=dict(type="int", default=8),
            git_timeout=dict(type="int", default=300),
            install_non_git_requirements=dict(type="bool", default=False),
            fail_on_error=dict(type="bool", default=True),
            workflows=dict(type="list", elements="path", default=[]),
            github_url=dict(type="str", default="https://github.com"),
            registry_endpoint=dict(type="str", default="https://api.comfy.org"),
            registry_timeout=dict(type="float", default=15.0),
            registry_map=dict(type="path"),
            workflow_report_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    # Credentials a URL option carries are masked in every output, the echo of the options too.
    mask_url_credentials(module, [params["github_url"], params["registry_endpoint"]])
    read = [path for path in params["manifests"] if params["missing_manifests"] != "ignore" or os.path.exists(path)]
    try:
        nodes = load(read, params["nodes"])
    except ManifestError as exc:
        mask_url_credentials(module, _option_urls(params["nodes"]))
        # Every message quotes URLs masked already; this holds for any message added later.
        module.fail_json(msg=mask_credentials(f"nodes manifest: {exc}"), manifests=read)

    if params["git_timeout"] < 1:
        module.fail_json(msg=f"git_timeout must be at least 1 second, got {params['git_timeout']}")
    git = Git(module, timeout=params["git_timeout"])
    from_workflows = None
    if params["workflows"]:
        from_workflows = node_provision.WorkflowPacks(module, git)
        nodes = nodes + from_workflows.entries(nodes)
    mask_url_credentials(module, [node["url"] for node in nodes])
    pip = VenvPip(module, params["venv"], params["pip_args"], params["protected_packages"]) if params["venv"] else None
    installer = NodeInstaller(
        module,
        git,
        params["dest"],
        nodes,
        pip=pip,
        update=params["update"],
        workers=params["workers"],
        seed_from=params["seed_from"],
        non_git_requirements=params["install_non_git_requirements"],
    )
    before = {node["name"]: _head_or_absent(installer, node["name"]) for node in nodes}
    try:
        results = installer.run()
    except (PipError, OSError) as exc:
        module.fail_json(msg=str(exc), manifests=read)
    for result in results:
        if result["reason"] and (result["status"] != "failed" or not params["fail_on_error"]):
            verb = " FAILED" if result["status"] == "failed" else ""
            module.warn(f"custom node {result['name']} ({result['origin']}){verb}: {result['reason']}")
    after = {
        r["name"]: (r["commit"] or r["status"]) + (" (token removed from origin)" if r["credentials_removed"] else "")
        for r in results
    }
    for path in installer.credentials_removed:
        before[os.path.basename(path)] = "token stored in origin"
        after[os.path.basename(path)] = "token removed from origin"
    output = dict(
        changed=installer.changed,
        results=results,
        manifests=read,
        diff={"before": _lines(before), "after": _lines(after)},
        counts=count(results),
        credentials_removed=installer.credentials_removed,
        requirements_ledger=installer.ledger.path if installer.ledger else None,
    )
    if from_workflows is not None:
        output.update(from_workflows.report(results))
    failed = [r for r in results if r["status"] == "failed"]
    if failed and params["fail_on_error"]:
        reasons = "; ".join(f"{r['name']} ({r['origin']}): {r['reason']}" for r in failed)
        module.fail_json(msg=f"{len(failed)} of {len(results)} custom nodes failed: {reasons}", **output)
    module.exit_json(**output)


def _head_or_absent(installer, name):
    path = os.path.join(installer.dest, name)
    if not os.path.lexists(path):
        return "absent"
    return installer.git.head(path) or "not a git checkout"


def _lines(mapping):
    return "".join(f"{name}: {value}\n" for name, value in mapping.items())


if __name__ == "__main__":
    main()
