#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workflow_seed
short_description: Copy template workflows into workflow folders where they are missing
version_added: 0.1.0
description:
  - Copies every file under O(templates_dir) (recursively, keeping sub-folders; names starting
    with C(.) are skipped) into each folder of O(dest_dirs), in one module run however many
    workflows the template carries.
  - A file is written only where the destination has no file of that relative path, so a
    user's edited workflow survives every restart.
  - With O(force=true) a destination file whose content differs from its template is
    overwritten too, and the file it replaces is kept beside it as
    C(<name>.<YYYYmmddTHHMMSS>~). Files with the template's content are not rewritten, so a
    reset left switched on stays idempotent.
  - Files in the destination folders that are not templates are never touched. A folder, link
    or other non-file where a template belongs is left alone and reported as C(not_a_file).
  - A missing O(templates_dir) means there is nothing to seed (an image without workflows).
  - Each file is written to a temporary file in its folder and renamed into place, so a
    crash leaves the old file or the new one, never half a workflow. Missing folders are
    created.
author:
  - aiclipse team (@aiclipse)
options:
  templates_dir:
    description:
      - Absolute folder holding the template workflows (baked into the image).
    type: path
    default: /opt/workflows
  dest_dirs:
    description:
      - Absolute workflow folders that each receive every template. On a pod that is the one
        folder ComfyUI lists and saves workflows in, C(<vault>/user/default/workflows) (the vault
        is ComfyUI's base directory), which C(/workspace/workflows) shows. Created when missing.
    type: list
    elements: path
    required: true
  force:
    description:
      - Overwrite destination files whose content differs from their template (the pod's
        C(FORCE_WORKFLOW_RESET)), keeping a backup of each replaced file.
    type: bool
    default: false
  mode:
    description:
      - Mode of the files written (created or replaced). Existing files are not re-moded.
    type: str
    default: '0644'
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written, no folder is created; RV(workflows) lists what would be done.
  diff_mode:
    support: full
    details: One diff per file created or replaced, with the old and new content (large or
      binary files are shown by size).
  idempotent:
    support: full
seealso:
  - module: aiclipse.comfyui.workspace_link
"""

EXAMPLES = r"""
- name: Seed the image's template workflows where the user has none
  aiclipse.comfyui.workflow_seed:
    templates_dir: /opt/workflows
    dest_dirs:
      - /workspace/aiclipse/user/default/workflows

- name: Reset every workflow to its template, keeping backups of the user's versions
  aiclipse.comfyui.workflow_seed:
    dest_dirs:
      - /workspace/aiclipse/user/default/workflows
    force: "{{ lookup('ansible.builtin.env', 'FORCE_WORKFLOW_RESET', default='false') | bool }}"
  register: workflow_seed

- name: Show where the replaced workflows were kept
  ansible.builtin.debug:
    msg: "{{ workflow_seed.workflows | selectattr('action', 'equalto', 'replaced') | map(attribute='backup') | list }}"
"""

RETURN = r"""
workflows:
  description: One item per destination folder and template, in that order.
  returned: always
  type: list
  elements: dict
  contains:
    template:
      description: The template file.
      type: str
      sample: /opt/workflows/video/wan.json
    dest:
      description: Where it belongs.
      type: str
      sample: /workspace/aiclipse/user/default/workflows/video/wan.json
    action:
      description:
        - V(created) (was missing), V(replaced) (differed, O(force=true)), V(unchanged) (same
          content), V(kept) (differs, the user's version kept) or V(not_a_file) (something
          other than a file is there, left alone).
        - In check mode, what would be done.
      type: str
      sample: created
    backup:
      description: Where the replaced file was kept.
      type: str
      returned: when action is V(replaced), outside check mode
      sample: /workspace/aiclipse/user/default/workflows/txt2img.json.20260101T120000~
counts:
  description: Number of items per action.
  returned: always
  type: dict
  sample: {"created": 2, "replaced": 0, "unchanged": 6, "kept": 1, "not_a_file": 0}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workflow_seed import (
    WorkflowSeedError,
    WorkflowSeeder,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            templates_dir=dict(type="path", default="/opt/workflows"),
            dest_dirs=dict(type="list", elements="path", required=True),
            force=dict(type="bool", default=False),
            mode=dict(type="str", default="0644"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        file_mode = int(params["mode"], 8)
    except ValueError:
        module.fail_json(msg=f"mode {params['mode']!r} is not an octal mode such as 0644.")
    try:
        seeder = WorkflowSeeder(
            params["templates_dir"], params["dest_dirs"], force=params["force"], file_mode=file_mode
        )
        result = seeder.run(check_mode=module.check_mode, want_diff=module._diff)
    except WorkflowSeedError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(
            msg=f"{exc.filename or ''}: {exc.strerror}; files already written are complete, fix the cause and run again"
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
