#!/usr/bin/python
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_lock
short_description: Write the lock of a pod (commits, packages, model hashes) and show its drift
version_added: 0.1.0
description:
  - Records what a clean start put on the pod in a human-readable YAML file - ComfyUI's commit, each
    custom node's repository and commit, the venv's installed packages with a digest of them, and each
    planned model's source, destination, size and sha256 (with where that sha256 came from).
  - Repository and model URLs are written without userinfo and without secret-looking query parameters
    (token, key, signature, X-Amz-*), so the lock can be shared.
  - The file is stable - sorted, no timestamps - so two pods provisioned alike have byte-identical locks
    and the file changes only when the pod does.
  - In check mode with diff the module shows how the pod differs from its lock and writes nothing.
  - A model still downloading in the background when the lock is written is listed with C(missing) set
    and the sha256 its manifest gives, if any.
  - With O(expected), the pod is checked against the lock it was provisioned from (see
    M(aiclipse.comfyui.pod_lock_read)) and the task fails listing what was not reproduced.
author:
  - aiclipse (@aiclipse)
options:
  path:
    description:
      - The lock file. Missing parent directories are created.
      - It is replaced atomically and has mode C(0644) - it holds no secret, and people diff it.
    type: path
    required: true
  comfyui_dir:
    description: The ComfyUI checkout.
    type: path
  custom_nodes_dir:
    description: The folder of custom node checkouts, one per subfolder.
    type: path
  python:
    description: The interpreter of the venv whose packages are locked. Skipped when it does not exist.
    type: path
  models:
    description:
      - The planned models, the C(entries) of M(aiclipse.comfyui.model_manifest)'s result.
      - Each needs C(dest), and C(url), or C(bucket) and C(key).
    type: list
    elements: dict
    default: []
  models_from_lock:
    description:
      - Take the planned models from the lock file O(path) itself instead of O(models).
      - C(playbooks/site.yml) does so in check mode when the start stamp skips the roles, so
        C(--check --diff) shows the drift of every part of the lock even then.
    type: bool
    default: false
  state_dir:
    description: The model state directory whose ledger says what each model was verified against.
    type: path
  expected:
    description:
      - The lock this start was to reproduce, the RV(aiclipse.comfyui.pod_lock_read#module:lock) of
        M(aiclipse.comfyui.pod_lock_read).
      - The pod is compared with it - ComfyUI's commit, each locked node's repository and commit,
        each locked model's sha256 and size - and what differs is listed in RV(unreproduced), in
        O(report_file) and in the task's failure. Nodes and models the lock does not name, and the
        venv's packages, are notes, never a failure.
      - The lock file O(path) is written only when the pod reproduces O(expected).
    type: dict
  results:
    description:
      - What the roles reported, so that RV(unreproduced) says why - C(comfyui) (the result of
        M(aiclipse.comfyui.comfyui_install)), C(custom_nodes) (the C(results) of
        M(aiclipse.comfyui.custom_nodes)) and C(downloads) (the C(results) of the download modules).
    type: dict
    default: {}
  report_file:
    description: With O(expected), where the report of what was and was not reproduced is written (mode 0644).
    type: path
  write:
    description: Write O(path). V(false) only compares (with O(expected)) and reports.
    type: bool
    default: true
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the pod drifted from the lock (RV(drift)) without writing it.
  diff_mode:
    support: full
    details: The diff is the lock file before and after, so it shows each commit, package and model that changed.
  idempotent:
    support: full
    details: The file is rewritten only when the pod changed; it holds no timestamp.
"""

EXAMPLES = r"""
- name: Lock what this start put on the pod
  aiclipse.comfyui.pod_lock:
    path: /workspace/aiclipse/.state/pod.lock.yml
    comfyui_dir: /workspace/aiclipse/ComfyUI
    custom_nodes_dir: /workspace/aiclipse/custom_nodes
    python: /venv/bin/python
    models: "{{ models_plan.entries }}"
    state_dir: /workspace/aiclipse/.state/models
"""

RETURN = r"""
path:
  description: The lock file.
  returned: always
  type: str
  sample: /workspace/aiclipse/.state/pod.lock.yml
lock:
  description: The lock as written (or, in check mode, as it would be written).
  returned: success
  type: dict
  sample:
    version: 1
    comfyui: {path: /workspace/aiclipse/ComfyUI, repo: "https://github.com/comfyanonymous/ComfyUI", commit: 0f1e2d3c}
    custom_nodes: []
    python: {interpreter: /venv/bin/python, packages_digest: "sha256:9b1c", packages: ["torch==2.5.1"]}
    models: []
drift:
  description: Whether the pod differs from the lock file as it was before this run.
  returned: success
  type: bool
  sample: false
reproduced:
  description: Whether the pod reproduces O(expected).
  returned: when O(expected) is given
  type: bool
  sample: false
unreproduced:
  description: What of O(expected) the pod does not reproduce, and why.
  returned: when O(expected) is given
  type: list
  elements: str
  sample: ["model /workspace/aiclipse/models/vae/v.safetensors: not downloaded (sha256 9f... differs from the expected 1c...)"]
notes:
  description: What O(expected) holds that a lock does not reproduce, and what the pod has that it does not name.
  returned: when O(expected) is given
  type: list
  elements: str
report:
  description: The text written to O(report_file).
  returned: when O(expected) is given
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace import lock_check
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.pod_lock import (
    LockError,
    build,
    planned_from_lock,
    render,
    write_atomic,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            comfyui_dir=dict(type="path"),
            custom_nodes_dir=dict(type="path"),
            python=dict(type="path"),
            models=dict(type="list", elements="dict", default=[]),
            models_from_lock=dict(type="bool", default=False),
            state_dir=dict(type="path"),
            expected=dict(type="dict"),
            results=dict(type="dict", default={}),
            report_file=dict(type="path"),
            write=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    result = dict(changed=False, path=path)

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"})

    try:
        lock = build(
            run,
            params["comfyui_dir"],
            params["custom_nodes_dir"],
            params["python"],
            planned_from_lock(path) if params["models_from_lock"] else params["models"],
            params["state_dir"],
        )
        after = render(lock)
        try:
            with open(path) as handle:
                before = handle.read()
        except OSError:
            before = ""
        write = params["write"]
        result.update(lock=lock, drift=before != after)
        if params["expected"] is not None:
            failed, notes = lock_check.compare(params["expected"], lock, params["results"])
            report = lock_check.render(params["expected"].get("source") or "given", failed, notes)
            result.update(reproduced=not failed, unreproduced=failed, notes=notes, report=report)
            write = write and not failed
            if params["report_file"] and not module.check_mode:
                try:
                    lock_check.write_report(params["report_file"], report)
                except OSError as exc:
                    module.warn(f"the lock report {params['report_file']} was not written: {exc}")
        result["changed"] = write and before != after
        if result["changed"] and not module.check_mode:
            write_atomic(path, after)
        if module._diff:
            result["diff"] = dict(before=before, after=after, before_header=path, after_header=path)
    except LockError as exc:
        module.fail_json(msg=str(exc), **result)
    if result.get("unreproduced") and not module.check_mode:
        module.fail_json(
            msg=f"the pod does not reproduce the lock {params['expected'].get('source')} "
            f"({len(result['unreproduced'])} problem(s)"
            + (f", report in {params['report_file']}" if params["report_file"] else "")
            + f"): {'; '.join(result['unreproduced'])}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
