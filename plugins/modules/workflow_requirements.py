#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workflow_requirements
short_description: Read ComfyUI workflow files and list the models and custom nodes they need
version_added: 0.1.0
description:
  - Reads every workflow under O(paths) and returns the models and custom node packs they need,
    each with every place that needs it (workflow file, node id and type, subgraph path) and
    what the workflows say about it (URL, model folder, file name, sha256, pack id, version).
  - "Formats: UI workflows as ComfyUI saves them (schema 0.4 and 1), including subgraph
    definitions (C(definitions.subgraphs[]), nested ones too) and legacy group nodes; API
    prompts (C({id: {class_type, inputs}}), bare or as the C(prompt) of a /prompt body)."
  - "Models come from a node's C(properties.models) (C(name), C(url), C(directory), optional
    C(hash) and C(hash_type)), from the workflow's top-level C(models) list, and from the file
    inputs of ComfyUI's own loaders (C(CheckpointLoaderSimple.ckpt_name) -> C(checkpoints),
    C(LoraLoader.lora_name) -> C(loras), C(VAELoader.vae_name) -> C(vae), C(UNETLoader.unet_name)
    -> C(diffusion_models), C(CLIPLoader)/C(DualCLIPLoader)/C(TripleCLIPLoader)/C(QuadrupleCLIPLoader)
    -> C(text_encoders), C(ControlNetLoader) -> C(controlnet), C(CLIPVisionLoader) -> C(clip_vision),
    C(StyleModelLoader) -> C(style_models), C(UpscaleModelLoader) -> C(upscale_models), and the
    GLIGEN, hypernetwork, PhotoMaker, model patch, audio encoder and hook loaders). A loader's
    file has no URL unless the workflow declares a model of that name."
  - Like ComfyUI's own missing-models check, a model in a node's C(properties.models) counts
    only when the node's widget values (or those of an instance of its subgraph) select it;
    one they do not select is stale metadata and listed in RV(ignored). A node without widget
    values keeps all its models. A model of the top-level C(models) list is required by the
    nodes that select it, or by the workflow itself when none does.
  - "Models are merged by destination C(<directory>/<name>): one entry each, listing every
    place that needs it. The first URL given (workflows in path order, nodes in file order)
    is used, with its sha256; another URL or sha256 for the same destination is reported in
    the entry's C(conflicts), never merged. An entry without any URL is C(unresolved)."
  - "Node packs come from C(properties.cnr_id) (a Comfy Registry id), C(properties.aux_id) (a
    GitHub C(owner/repo)) and C(properties.ver) (a version or a commit). C(comfy-core) is
    ComfyUI itself and never listed. A pack gets the highest version when all workflows give
    semantic versions, else the first one given; any other is a conflict. Node types no
    workflow names a pack for are listed in RV(unidentified_nodes)."
  - "Workflow files are untrusted input. Only http(s) URLs without credentials are taken;
    C(directory) must be one plain model folder name and C(name) a plain file name (no C(/),
    C(\\), C(..), hidden names, NUL or control characters); a C(hash) whose C(hash_type) is
    sha256 must be 64 hex digits (other hash types are kept but not verified). A bad value is
    reported in RV(problems) naming the file, node and field; a model whose URL or hash is bad
    stays required (unresolved or unverified)."
  - A workflow that cannot be read (not UTF-8, invalid JSON, nested too deeply, larger than
    O(max_file_size), not a workflow at all) is a warning naming the file; the task does not
    fail. Links to files outside the folders of O(paths), links to folders and anything that
    is not a regular file (a FIFO, a device) are not read and are listed with the reason.
  - The module only reads. With O(models_dir) it also looks whether each model's file exists
    (in its folder or the one ComfyUI searches with it, e.g. C(clip) for C(text_encoders)).
author:
  - aiclipse team (@aiclipse)
options:
  paths:
    description:
      - Workflow files or folders (searched recursively for C(*.json), hidden names skipped).
        A path that does not exist is listed as skipped (an image without template workflows).
    type: list
    elements: path
    required: true
  models_dir:
    description:
      - The ComfyUI models folder. When given, each model gets its absolute RV(models[].dest)
        and the status C(present) when its file exists there.
    type: path
  include_inactive:
    description:
      - Count nodes that are bypassed (mode 4), muted (mode 2) or inside a subgraph no active
        node uses, so a user who switches them on finds their models. With V(false) they are
        listed in RV(ignored) instead.
    type: bool
    default: true
  max_file_size:
    description:
      - Largest workflow file read, in bytes; a larger one is a warning.
    type: int
    default: 33554432
  max_files:
    description:
      - Most workflow files read in one run; the rest are listed as skipped.
    type: int
    default: 10000
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode returns the same result.
  diff_mode:
    support: none
    details: Nothing is changed, so there is no diff; the result's C(changed) is always false.
  idempotent:
    support: full
notes:
  - A Comfy Registry id is not resolved to a repository here; that needs the registry (or a
    map file) and is done by the custom nodes role.
  - Model files in sub-folders of a model folder (C(wan/x.safetensors)) are not provisioned
    from workflows; they are reported in RV(problems). List them in a models manifest.
seealso:
  - module: aiclipse.comfyui.model_manifest
  - module: aiclipse.comfyui.custom_nodes
"""

EXAMPLES = r"""
- name: List what the template workflows need
  aiclipse.comfyui.workflow_requirements:
    paths:
      - /opt/workflows
    models_dir: /workspace/aiclipse/models
  register: needs

- name: Write the report where a person reads it
  ansible.builtin.copy:
    content: "{{ needs.report }}"
    dest: /workspace/aiclipse/logs/workflow-requirements.txt
    mode: '0644'

- name: Models the workflows can download
  ansible.builtin.debug:
    msg: "{{ needs.models | selectattr('status', 'equalto', 'to_download') | map(attribute='key') | list }}"

- name: Node packs to install, pinned where the workflows say
  ansible.builtin.debug:
    msg: "{{ needs.node_packs | map(attribute='key') | zip(needs.node_packs | map(attribute='ver')) | list }}"
"""

RETURN = r"""
workflows:
  description: One item per workflow file found or given, in path order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file as found under O(paths).
      type: str
      sample: /opt/workflows/flux_dev.json
    status:
      description: V(read), V(invalid) (could not be read or is no workflow) or V(skipped) (not opened).
      type: str
      sample: read
    reason:
      description: Why the file was not read; null when it was.
      type: str
      sample: "invalid JSON at line 3 column 5: Expecting value"
    format:
      description: V(ui) or V(api); null when not read.
      type: str
      sample: ui
    schema_version:
      description: The UI schema version (V(0.4), V(1)); null for API prompts or when absent.
      type: str
      sample: "0.4"
    nodes_read:
      description: Nodes looked at (notes, reroutes and subgraph instances not counted).
      type: int
      sample: 14
    builtin_nodes:
      description: Nodes of ComfyUI itself (C(comfy-core), or a core loader without a pack id).
      type: int
      sample: 11
    problems:
      description: Number of bad values found in this workflow (listed in RV(problems)).
      type: int
      sample: 0
    ignored:
      description: Number of values deliberately not used (listed in RV(ignored)).
      type: int
      sample: 1
models:
  description: One item per model destination, in the order first needed.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: C(<directory>/<name>), the destination relative to the models folder.
      type: str
      sample: vae/ae.safetensors
    directory:
      description: Model folder, one plain name.
      type: str
      sample: vae
    name:
      description: File name, a plain base name.
      type: str
      sample: ae.safetensors
    known_directory:
      description: Whether C(directory) is one of ComfyUI's own model folders (others need the
        custom node that registers them).
      type: bool
      sample: true
    url:
      description: Where to download it (http or https); null when no workflow says.
      type: str
      sample: https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors
    sha256:
      description: Lower-case sha256 to verify the download with; null when not given as sha256.
      type: str
      sample: afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38
    status:
      description:
        - V(to_download) (has a URL), V(unresolved) (no workflow gives a URL) or V(present)
          (its file exists; only with O(models_dir)).
      type: str
      sample: to_download
    dest:
      description: Absolute destination under O(models_dir); null without it.
      type: str
      sample: /workspace/aiclipse/models/vae/ae.safetensors
    present_at:
      description: The existing file when V(present) (may be in an alias folder such as C(clip)).
      type: str
      sample: /workspace/aiclipse/models/vae/ae.safetensors
    required_by:
      description: Every place that needs it.
      type: list
      elements: dict
      contains:
        workflow:
          description: The workflow file.
          type: str
        node_id:
          description: The node's id (as text); null for the workflow's own C(models) list.
          type: str
        node_type:
          description: The node's type or class_type; null for the workflow's own list.
          type: str
        subgraph:
          description: Names of the subgraphs the node is in, outermost first (legacy group
            nodes as C(group node <name>)); empty at the top level.
          type: list
          elements: str
        via:
          description: V(node_models) (C(properties.models)), V(workflow_models) (top-level
            C(models)) or V(loader_input) (a core loader's file input).
          type: str
        input:
          description: The loader input (V(loader_input) only).
          type: str
        active:
          description: False when the node is bypassed, muted or in an unused subgraph.
          type: bool
    conflicts:
      description: Other values workflows give for this destination, each C({field, value,
        chosen, source}); C(field) is V(url) or V(sha256), C(source) is a C(required_by) item.
      type: list
      elements: dict
node_packs:
  description: One item per custom node pack, built-ins left out.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: C(cnr:<registry id>) or C(github:<owner/repo>), lower case.
      type: str
      sample: cnr:comfyui-kjnodes
    cnr_id:
      description: Comfy Registry id; null for GitHub-only packs.
      type: str
      sample: comfyui-kjnodes
    aux_id:
      description: GitHub C(owner/repo) when a workflow gives one.
      type: str
      sample: kijai/ComfyUI-KJNodes
    repository:
      description: C(https://github.com/<aux_id>); null for registry-only packs (resolve the
        id through the registry).
      type: str
      sample: https://github.com/kijai/ComfyUI-KJNodes
    ver:
      description: Version (semantic, no leading v) or commit to pin; null for the latest.
      type: str
      sample: 1.1.2
    ver_kind:
      description: V(version), V(commit) or null.
      type: str
      sample: version
    node_types:
      description: Node types of this pack the workflows use.
      type: list
      elements: str
      sample: ["ImageResizeKJv2"]
    required_by:
      description: Every node that needs it (as in RV(models[].required_by), plus C(ver) it gave;
        C(via) is V(node_identity), or V(same_node_type) for a node without a pack id whose
        type this pack provides elsewhere).
      type: list
      elements: dict
    conflicts:
      description: Other versions workflows give, each C({field, value, chosen, source}) with
        C(field) V(ver).
      type: list
      elements: dict
unidentified_nodes:
  description: Node types without a pack id (built in, or from a pack no workflow names), each
    C({node_type, used_in}); C(used_in) lists C({workflow, nodes}), C(nodes) being how many
    nodes of that type the workflow has.
  returned: always
  type: list
  elements: dict
  sample: [{"node_type": "KSampler", "used_in": [{"workflow": "/opt/workflows/api/sdxl.json", "nodes": 2}]}]
problems:
  description: Bad values, each C({workflow, where, message}); C(where) names the node and field.
  returned: always
  type: list
  elements: dict
  sample: [{"workflow": "/opt/workflows/x.json", "where": "node 4 (VAELoader) properties.models[0]",
            "message": "url 'file:///etc/passwd' is not http(s); only http and https URLs are downloaded; the model is listed as unresolved"}]
ignored:
  description: Values deliberately not used (stale declared models, hashes that are not sha256,
    inactive nodes with O(include_inactive=false)), each C({workflow, where, value, reason}).
  returned: always
  type: list
  elements: dict
counts:
  description: Totals.
  returned: always
  type: dict
  sample: {"workflows": 3, "workflows_not_read": 1, "models": 6, "to_download": 3, "unresolved": 2, "present": 1,
           "model_conflicts": 1, "node_packs": 2, "node_conflicts": 0, "unidentified_node_types": 1,
           "problems": 4, "ignored": 1}
report:
  description: The same as text for a person (summary line, then per workflow each model
    present / to download / unresolved, each node pack needed, each unknown node type,
    conflicts, problems, ignored values); values from workflows have control characters escaped.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan import plan_workflows


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            models_dir=dict(type="path"),
            include_inactive=dict(type="bool", default=True),
            max_file_size=dict(type="int", default=32 * 1024 * 1024),
            max_files=dict(type="int", default=10000),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["max_file_size"] < 1 or params["max_files"] < 1:
        module.fail_json(msg="max_file_size and max_files must be positive")
    try:
        result = plan_workflows(
            params["paths"],
            models_dir=params["models_dir"],
            include_inactive=params["include_inactive"],
            max_bytes=params["max_file_size"],
            max_files=params["max_files"],
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
