#!/usr/bin/python
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: model_manifest
short_description: Read, validate and merge model manifests into a download plan
version_added: 0.1.0
description:
  - Reads model manifests on the target host (the pod, where the vault and the image's
    template manifests are) and returns one normalized entry per model file, ready for
    M(aiclipse.comfyui.aria2_batch) (Hugging Face, CivitAI and plain URLs) and
    M(aiclipse.comfyui.r2_fetch) (Cloudflare R2).
  - "Pipe format, one entry a line: C(source|identifier|filename|subdir[|sha256]). Blank lines and
    lines starting with C(#) are ignored; spaces around fields are trimmed."
  - "The 3-field form C(repo_id|filename|subdir) is Hugging Face. A 4-field line whose first field
    is not a source but looks like a repo id (C(org/repo)) is that form plus a sha256."
  - "Sources: C(huggingface) (alias C(hf)) with identifier C(org/repo) or C(org/repo@revision);
    C(civitai) with a model version id; C(url) (alias C(direct)) with a full http(s) URL;
    C(r2) (alias C(cloudflare)) with an object key in O(r2_bucket), or C(bucket/key) when no
    default bucket is set."
  - "The C(filename) field may be a sub-path inside the repository (C(split_files/vae/x.safetensors));
    the file lands under its base name in C(<models_dir>/<subdir>/)."
  - Every problem (unknown source, missing field, bad sha256, C(..) or absolute paths, a URL with a
    bad scheme, host or port such as C(:99999) or C(:abc), two entries of one manifest writing the
    same file) is reported together, each with its file and line, and the task fails before
    anything is downloaded. Lines end at a newline only, so no other character moves a line number.
  - An r2 key without a bucket while O(r2_bucket) is unset is not a manifest error (the same
    template works on a pod with C(R2_BUCKET)); the entry is left out of RV(entries) and listed
    in RV(skipped) with the reason, so the other models still download.
  - Manifests merge in the order given, lowest precedence first. An entry replaces every entry
    of an earlier manifest that lands on the same file (same subdir and file name); entries only
    an earlier manifest has stay. The role M(aiclipse.comfyui.models) passes the user's manifest
    in the vault first, then the image's base manifest, the template's, and entries from
    Ansible variables last.
  - The module only reads manifests. What it may write is O(plan_file), a text file
    listing the merged plan for a person to read (normally under the vault's C(logs/)), rewritten
    atomically only when its content changes, and O(secret_urls_file) for URLs that carry credentials.
  - "With O(workflows), the models ComfyUI workflow files need (read as
    M(aiclipse.comfyui.workflow_requirements) reads them) are planned with the manifests: one
    destination, one entry. A manifest entry for a destination wins over a workflow's, and a
    workflow giving another URL or sha256 for it is a warning (and listed in RV(workflow_models)).
    A workflow model with a URL becomes an entry like a manifest line (C(url) source, or
    C(huggingface) for a C(/resolve/) URL on O(hf_endpoint), so the Hugging Face token still goes
    to that origin only) and passes the same checks; its sha256 (C(hash) with C(hash_type) sha256)
    is verified like a manifest's. A model no workflow gives a URL for is C(unresolved) (a
    warning) unless a manifest lists it or its file is present."
  - A workflow that cannot be read, or a hostile value in one (a C(javascript:) URL, a
    C(../) folder), is a warning naming the file; the model is not downloaded and the task
    does not fail.
  - "With O(default_workflow), RV(entries) is the download queue in the order a person can use
    it: the entries writing a model that workflow needs come first, then every other entry, each
    group in plan order. The downloaders take their entries in this order."
author:
  - aiclipse team (@aiclipse)
options:
  models_dir:
    description:
      - The models folder entries land in, normally C({{ aiclipse_vault }}/models).
      - Used to build each entry's absolute RV(entries[].dest); it need not exist yet.
    type: path
    required: true
  manifests:
    description:
      - The manifests to merge, lowest precedence first.
      - Each item is either a file on the target (O(manifests[].path)) or a list of entries
        from Ansible variables (O(manifests[].entries)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - A pipe-format manifest file on the target.
        type: path
      entries:
        description:
          - "Entries as a YAML list. Each item is a pipe-format string or a mapping with keys
            C(source) (default C(huggingface)), C(identifier) (or C(repo), C(repo_id), C(url),
            C(key), C(id)), C(filename), C(subdir), optional C(sha256) and optional C(size) (bytes, checked
            by the download; a pod lock's models carry it)."
        type: list
        elements: raw
      name:
        description:
          - How errors and the result name this manifest.
          - Defaults to O(manifests[].path), or C(entries) for a list.
        type: str
      required:
        description:
          - Fail when the file does not exist. When V(false), a missing file counts as an
            empty manifest (a user who has no manifest of their own is normal).
        type: bool
        default: false
  hf_endpoint:
    description:
      - Base URL of the Hugging Face hub (the C(HF_ENDPOINT) convention of C(huggingface_hub)),
        for mirrors and tests. Entries become C(<hf_endpoint>/<repo>/resolve/<revision>/<filename>).
    type: str
    default: https://huggingface.co
  civitai_endpoint:
    description:
      - Base URL of CivitAI. Entries become C(<civitai_endpoint>/api/download/models/<id>).
    type: str
    default: https://civitai.com
  r2_bucket:
    description:
      - Default bucket for C(r2) entries (C(R2_BUCKET)). When set, an r2 identifier is the object
        key in this bucket; when not, it must be C(bucket/key).
    type: str
  secret_urls_file:
    description:
      - Where to keep the download URLs that carry credentials (C(https://user:pass@host/...), a
        secret-looking query parameter such as CivitAI's C(?token=)), normally under the model state
        directory. Each such URL is written to this file (mode C(0600), JSON, keyed by destination)
        and RV(entries) carry it masked (C(***@), C(token=***)) with RV(entries[].secret_url) set;
        M(aiclipse.comfyui.aria2_batch) reads it back from there (its O(aiclipse.comfyui.aria2_batch#module:secret_urls_file)).
        So the credential is in no result, no module argument and no temporary file of ansible.
      - The file is rewritten atomically when its content changes, emptied when no URL needs it,
        and not written in check mode.
      - When not set, URLs are returned as written. The role M(aiclipse.comfyui.models) sets it.
    type: path
  plan_file:
    description:
      - Also write the merged plan to this file, one model a line with its origin, then the
        replaced entries and the ones this host cannot fetch (C(NOT FETCHED)).
      - Its folder is created when missing. The file (mode C(0640)) is replaced atomically and
        only when its content changes, which is what C(changed) then reports. URLs in it show no
        user information and no secret query value (C(***@), C(token=***)).
      - When it cannot be written (a full disk) the module warns and still returns the plan; the
        old file stays as it was.
      - When not set, nothing is written.
    type: path
  plan_log_file:
    description:
      - The download log the plan file points a reader to (only mentioned in O(plan_file)).
    type: str
  workflows:
    description:
      - ComfyUI workflow files or folders (searched recursively for C(*.json)) whose models are
        planned with the manifests, at the lowest precedence. A folder that does not exist is
        skipped.
    type: list
    elements: path
    default: []
  default_workflow:
    description:
      - The workflow a person opens first (the image's default), whose models are queued first
        in RV(entries).
      - A workflow file, or a folder (the image's template workflows) whose C(default.json) is
        the default when it has one, else its first workflow file in name order.
      - Its models count whether or not O(workflows) plans models from workflows. A path that
        does not exist, or a folder without workflows, leaves the plan order as it is (a path
        given as a file that does not exist is a warning).
    type: path
  workflow_report_file:
    description:
      - Write the workflows' report here, per workflow each model present, to download,
        unresolved or refused and why. Like a log, it is rewritten (atomically) when its text
        changes, which does not count as a change.
      - Its folder is created when missing; the file has mode C(0640).
    type: path
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: It returns the same plan in check mode and writes no O(plan_file), only predicts
      whether it would change.
  diff_mode:
    support: full
    details: The old and new text of O(plan_file), when it changes.
  idempotent:
    support: full
    details: Without O(plan_file) it always reports C(changed=false); with it, only a changed plan
      rewrites the file.
seealso:
  - module: aiclipse.comfyui.aria2_batch
  - module: aiclipse.comfyui.r2_fetch
"""

EXAMPLES = r"""
- name: Build the download plan from the user's, the base and the template's manifests
  aiclipse.comfyui.model_manifest:
    models_dir: /workspace/aiclipse/models
    manifests:
      - path: /workspace/aiclipse/models_manifest.txt
      - path: /opt/aiclipse/manifests/base_models.txt
      - path: "/opt/aiclipse/manifests/{{ lookup('ansible.builtin.env', 'TEMPLATE_TYPE') }}_models.txt"
        required: true
      - name: models_entries
        entries:
          - "hf|Comfy-Org/Qwen-Image_ComfyUI|split_files/vae/qwen_image_vae.safetensors|vae"
          - source: civitai
            identifier: "128713"
            filename: dreamshaper_8.safetensors
            subdir: checkpoints
            sha256: 879db523c30d3b9017143d56705015e15a2cb5628762c11d086fed9538abd7fd
    r2_bucket: "{{ lookup('ansible.builtin.env', 'R2_BUCKET') }}"
    plan_file: /workspace/aiclipse/logs/models-plan.txt
    plan_log_file: /workspace/aiclipse/logs/models.log
    # A URL with user:pass@ or ?token= is kept here, and masked in the result.
    secret_urls_file: /workspace/aiclipse/.state/models/secret-urls.json
  register: models_plan

- name: Show where each model comes from
  ansible.builtin.debug:
    msg: "{{ models_plan.entries | map(attribute='origin') | list }}"
"""

RETURN = r"""
entries:
  description: One normalized entry per model file, after the merge.
  returned: success
  type: list
  elements: dict
  contains:
    source:
      description: V(huggingface), V(civitai), V(url) or V(r2) (aliases resolved).
      type: str
      sample: huggingface
    identifier:
      description: The identifier as written (repo id with optional C(@revision), version id, URL or key).
      type: str
      sample: Comfy-Org/Qwen-Image_ComfyUI
    filename:
      description: The file as named in the manifest, possibly a sub-path of the repository.
      type: str
      sample: split_files/vae/qwen_image_vae.safetensors
    subdir:
      description: Folder under O(models_dir), normalized.
      type: str
      sample: vae
    sha256:
      description: Expected sha256 in lower case, or V(null) when the manifest gives none.
      type: str
      sample: null
    name:
      description: C(<subdir>/<file name>), a short label for results and logs.
      type: str
      sample: vae/qwen_image_vae.safetensors
    dest:
      description: Absolute final path of the file.
      type: str
      sample: /workspace/aiclipse/models/vae/qwen_image_vae.safetensors
    origin:
      description: Where the entry was written, C(file:line) (or C(name item N) for a list).
      type: str
      sample: /opt/aiclipse/manifests/qwen_models.txt:3
    url:
      description:
        - Download URL, for HTTP sources only.
        - Masked (C(***@), C(token=***)) when it carries credentials and O(secret_urls_file) is set.
      type: str
      returned: when source is huggingface, civitai or url
      sample: https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors
    secret_url:
      description: The real URL carries credentials and is kept in O(secret_urls_file), not here.
      type: bool
      returned: when O(secret_urls_file) is set and the URL carries credentials
      sample: true
    repo:
      description: Hugging Face repo id without the revision.
      type: str
      returned: when source is huggingface
      sample: Comfy-Org/Qwen-Image_ComfyUI
    revision:
      description: Hugging Face revision, V(main) unless the identifier names one.
      type: str
      returned: when source is huggingface
      sample: main
    bucket:
      description: R2 bucket.
      type: str
      returned: when source is r2
      sample: models
    key:
      description: R2 object key.
      type: str
      returned: when source is r2
      sample: loras/v12_xelios_it.safetensors
counts:
  description: Number of entries per source after the merge.
  returned: success
  type: dict
  sample: {"huggingface": 5, "civitai": 0, "url": 0, "r2": 3}
manifests:
  description: What was read, in merge order.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "/workspace/aiclipse/models_manifest.txt", "path": "/workspace/aiclipse/models_manifest.txt",
            "status": "missing", "entries": 0}]
replaced:
  description: Entries dropped because a later manifest writes the same file.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "vae/ae.safetensors", "origin": "/workspace/aiclipse/models_manifest.txt:4",
            "replaced_by": "/opt/aiclipse/manifests/flux_models.txt:12"}]
skipped:
  description: Valid entries this host cannot fetch, with C(name), C(origin), C(dest) and C(reason).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "loras/hk_v1_final.safetensors", "origin": "/opt/aiclipse/manifests/qwen_models.txt:5",
            "dest": "/workspace/aiclipse/models/loras/hk_v1_final.safetensors",
            "reason": "r2 key 'hk_v1_final.safetensors' names no bucket and R2_BUCKET is not set: ..."}]
plan_file:
  description: The plan file written (or, in check mode, that would be written).
  returned: when O(plan_file) is set
  type: str
  sample: /workspace/aiclipse/logs/models-plan.txt
workflow_models:
  description: Each model the O(workflows) need, with C(key) (C(<folder>/<file>)), C(dest),
    C(url), C(sha256), C(status) (V(manifest) a manifest entry writes it, V(to_download) a
    workflow entry of RV(entries) does, V(present) its file is there, V(unresolved) no URL
    anywhere, V(refused) its URL or hash failed the manifest checks), C(origin) (the entry that
    provides it), C(reason), C(disagreements) (C({field, workflow, manifest}) where the manifest
    wins), C(required_by) and C(conflicts) (between workflows) as in
    M(aiclipse.comfyui.workflow_requirements).
  returned: success, when O(workflows) is given
  type: list
  elements: dict
workflow_counts:
  description: Workflow models per status, and C(disagreements) with the manifests.
  returned: success, when O(workflows) is given
  type: dict
  sample: {"manifest": 1, "to_download": 2, "present": 0, "unresolved": 1, "refused": 0, "disagreements": 1}
default_workflow:
  description: The default workflow found from O(default_workflow) (C(path), V(null) when none)
    and the C(names) of the entries queued first for it, in queue order.
  returned: success, when O(default_workflow) is given
  type: dict
  sample: {"path": "/opt/workflows/default.json", "names": ["checkpoints/sd15.safetensors", "vae/ae.safetensors"]}
workflow_report:
  description: The report written to O(workflow_report_file), for a person.
  returned: success, when O(workflows) is given
  type: str
problems:
  description: Every problem found, each with the C(origin) (file and line) and a C(message).
  returned: failure
  type: list
  elements: dict
  sample: [{"origin": "/workspace/aiclipse/models_manifest.txt:7", "message": "unknown source 'hugginface'"}]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_url
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import download_order, secret_urls
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.manifest import (
    SOURCES,
    ManifestError,
    ManifestParser,
    ManifestSource,
    build_plan,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.plan_file import (
    PlanFileError,
    render_plan,
    update_plan_file,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows import model_sources, report
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan import plan_workflows


def main():
    module = AnsibleModule(
        argument_spec=dict(
            models_dir=dict(type="path", required=True),
            manifests=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    path=dict(type="path"),
                    entries=dict(type="list", elements="raw"),
                    name=dict(type="str"),
                    required=dict(type="bool", default=False),
                ),
                mutually_exclusive=[("path", "entries")],
                required_one_of=[("path", "entries")],
            ),
            hf_endpoint=dict(type="str", default="https://huggingface.co"),
            civitai_endpoint=dict(type="str", default="https://civitai.com"),
            r2_bucket=dict(type="str"),
            plan_file=dict(type="path"),
            secret_urls_file=dict(type="path"),
            plan_log_file=dict(type="str"),
            workflows=dict(type="list", elements="path", default=[]),
            workflow_report_file=dict(type="path"),
            default_workflow=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    try:
        parser = ManifestParser(
            module.params["models_dir"],
            hf_endpoint=module.params["hf_endpoint"],
            civitai_endpoint=module.params["civitai_endpoint"],
            r2_bucket=module.params["r2_bucket"],
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    sources = [
        ManifestSource(path=item["path"], entries=item["entries"], name=item["name"], required=item["required"])
        for item in module.params["manifests"]
    ]
    try:
        plan = build_plan(sources, parser)
    except ManifestError as exc:
        module.fail_json(
            msg=exc.describe(), problems=[{"origin": origin, "message": message} for origin, message in exc.problems]
        )
    workflow_result = None
    if module.params["workflows"]:
        workflow_result = _plan_workflow_models(module, plan, parser)
    default_result = None
    if module.params["default_workflow"]:
        default_result = _default_workflow_first(module, plan, parser)
    if module.params["secret_urls_file"]:
        _keep_url_credentials_on_target(module, plan, workflow_result)
    counts = dict((source, 0) for source in SOURCES)
    for entry in plan["entries"]:
        counts[entry["source"]] += 1
    result = dict(changed=False, counts=counts, **plan)
    if workflow_result is not None:
        result.update(workflow_result)
    if default_result is not None:
        result["default_workflow"] = default_result
    if module.params["plan_file"]:
        path = module.params["plan_file"]
        text = render_plan(plan, module.params["plan_log_file"], first=default_result)
        try:
            changed, before = update_plan_file(path, text, check_mode=module.check_mode)
        except PlanFileError as exc:
            # The plan file is for people; the plan itself is fine, so the downloads go on (on a
            # full disk they report their own failures).
            module.warn(f"plan file not written: {exc}")
            changed, before = False, ""
        result.update(changed=changed, plan_file=path)
        if changed and module._diff:
            result["diff"] = dict(before_header=path, after_header=path, before=before, after=text)
    module.exit_json(**result)


def _keep_url_credentials_on_target(module, plan, workflow_result):
    """Move URLs with credentials out of the result into O(secret_urls_file)."""
    path = module.params["secret_urls_file"]
    hidden = secret_urls.hide(plan["entries"])
    for model in (workflow_result or {}).get("workflow_models") or []:
        if model.get("url"):
            model["url"] = masked_url(model["url"])
    try:
        secret_urls.write(path, hidden, check_mode=module.check_mode)
    except OSError as exc:
        # The entries that need the file then fail in aria2_batch, each saying so; the others
        # download.
        module.warn(
            f"{path} not written ({exc.strerror or exc}): the {len(hidden)} model(s) whose URL holds credentials cannot be downloaded"
        )


def _default_workflow_first(module, plan, parser):
    """Queue the default workflow's models first; returns the module's ``default_workflow``."""
    given = module.params["default_workflow"]
    workflow, reason = download_order.find_default_workflow(given)
    if workflow is None:
        if not os.path.isdir(given) and (os.path.lexists(given) or given.lower().endswith(".json")):
            module.warn(f"{reason}; the models are queued in plan order")
        return dict(path=None, names=[])
    dests, warnings = download_order.default_workflow_dests(workflow, parser.models_dir)
    if any(_inside(workflow, folder) for folder in module.params["workflows"]):
        warnings = []  # the same file was read for the workflow plan, which already warned
    for warning in warnings:
        module.warn(warning)
    plan["entries"], first = download_order.default_first(plan["entries"], dests)
    return dict(path=workflow, names=[entry["name"] for entry in first])


def _inside(path, folder):
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _plan_workflow_models(module, plan, parser):
    """Append the workflows' models no manifest writes to the plan; warn about the rest."""
    try:
        needs = plan_workflows(module.params["workflows"], models_dir=parser.models_dir)
    except ValueError as exc:
        module.fail_json(msg=f"workflows: {exc}")
    for warning in needs.pop("warnings"):
        module.warn(warning)
    entries, models, warnings = model_sources.plan_workflow_models(needs, plan["entries"], parser)
    for warning in warnings:
        module.warn(warning)
    plan["entries"].extend(entries)
    totals = model_sources.counts(models)
    # The first line of the workflows' own summary counts before the merge; this one after it.
    text = report.render(needs, parts=("models",), model_states=model_sources.report_states(models)).split("\n", 1)[1]
    summary = (
        f"Workflow models: {totals['to_download']} to download from workflows, {totals['manifest']} from manifests, "
        f"{totals['present']} present, {totals['unresolved']} unresolved, "
        f"{totals['refused']} refused, {totals['disagreements']} disagreements with a manifest\n"
    )
    text = summary + text
    path = module.params["workflow_report_file"]
    if path:
        try:
            # A log for people: rewriting it is not a change to the pod.
            update_plan_file(path, text, check_mode=module.check_mode)
        except PlanFileError as exc:
            module.warn(f"workflow report not written: {exc}")
    return dict(workflow_models=models, workflow_counts=totals, workflow_report=text)


if __name__ == "__main__":
    main()
