#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: start_stamp
short_description: Tell whether a pod start would change anything, from the stamp of the last clean one
version_added: 0.1.0
description:
  - Each module task of a pod start costs ansible about 0.3 s however little it does, so a
    restart that checks every role takes seconds even when nothing changed. This module lets
    the play skip the roles when a run is certain to find nothing to do.
  - With O(state=present), at the end of a clean run, it records a stamp of what the run
    depended on. That is the O(inputs) digest of the run's variables, environment and code,
    and the state of every path the roles check.
    For O(watch) and O(expected) paths this is their C(lstat), a file's size, mtime, inode,
    owner and mode, a link's target. For O(trees), the same for every entry below.
    For O(contents), a sha256 of the bytes. For O(git) checkouts, HEAD and C(git status).
  - With O(state=verify), at the next start, it compares the stamp with the state now.
    RV(current) is true only when the O(inputs) digest is the same and every recorded
    observation still holds. Anything else means a full run, and RV(reasons) says why.
    The paths come from the stamp, so those the last run found on its own, such as custom node
    checkouts and planned models, are checked without being passed again.
  - O(expected) files that were missing when the stamp was written, such as models still
    downloading in the background, only have to exist at O(state=verify). Downloads publish a
    model with an atomic rename, so a file that is there is complete. A download that failed
    leaves it missing, and the next start runs in full and retries it.
  - The stamp file is written atomically with mode C(0600). It holds paths, stat data and
    digests, never a variable's value.
  - This is a cache. A stamp that is missing, unreadable or from another version means a full
    run, never an error.
author:
  - aiclipse team (@aiclipse)
options:
  path:
    description:
      - The stamp file. Missing parent directories are created (mode C(0700)).
    type: path
    required: true
  state:
    description:
      - V(verify) reports in RV(current) whether the stamp still describes this pod. It never
        writes anything.
      - V(present) records the stamp of the pod as it is now.
      - V(absent) removes the stamp, so the next start runs in full. Use it after a run that
        did not end clean, for example one where a custom node failed.
    type: str
    choices: [verify, present, absent]
    default: verify
  inputs:
    description:
      - A digest of everything the run is given, computed on the controller with the
        P(aiclipse.comfyui.start_inputs_digest#filter) filter. It covers the variables, the
        environment the roles read, the collection's code and the ansible-core version.
      - Required with O(state=verify) and O(state=present).
    type: str
  watch:
    description:
      - Paths whose C(lstat) must stay as recorded. For a file that is its size, mtime, inode,
        owner and mode, for a link its target. A directory only has to stay the same directory
        (inode, owner, mode), since outputs and logs come and go in the folders the roles only make
        sure exist. Missing is a state too, so a path that appears later means a full run.
    type: list
    elements: path
    default: []
  trees:
    description:
      - Directories whose every entry, at any depth, must stay as recorded. Meant for small
        trees like the template workflows. Links are not followed.
    type: list
    elements: path
    default: []
  contents:
    description:
      - Files read as data, whose C(lstat) says nothing (like C(/proc/1/environ)). Their sha256
        must stay as recorded.
    type: list
    elements: path
    default: []
  git:
    description:
      - Git checkouts whose HEAD and C(git status --porcelain --untracked-files=no) must stay as
        recorded. A checkout that is not healthy never counts as current.
    type: list
    elements: path
    default: []
  expected:
    description:
      - Files that must exist at the next O(state=verify), such as planned models. Those that
        exist now are also watched like O(watch).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: V(verify) only reads. V(present) and V(absent) report what they would do without writing.
  diff_mode:
    support: full
    details: The diff shows the stamp before and after (paths and stat data, no values).
  idempotent:
    support: full
    details: The stamp is rewritten only when an observation or the inputs digest changed.
notes:
  - Edits that keep size, mtime and inode, such as a C(touch -d) back to the old time after
    writing the same length, are not seen. Nothing in a pod does that.
  - C(aiclipse.comfyui.site) uses it around the roles. Set C(aiclipse_skip_unchanged_start=false)
    to run every role at every start.
seealso:
  - plugin: aiclipse.comfyui.start_inputs_digest
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Skip the roles when nothing changed since the last clean start
  aiclipse.comfyui.start_stamp:
    path: /workspace/aiclipse/.state/start-stamp.json
    inputs: "{{ aiclipse_start_inputs }}"
  register: stamp

- name: End this host's play early
  ansible.builtin.meta: end_host
  when: stamp.current

- name: Record what this clean run depended on
  aiclipse.comfyui.start_stamp:
    path: /workspace/aiclipse/.state/start-stamp.json
    state: present
    inputs: "{{ aiclipse_start_inputs }}"
    watch: [/etc/rp_environment, /root/.bashrc, /workspace/ComfyUI]
    git: [/workspace/aiclipse/ComfyUI]
    expected: [/workspace/aiclipse/models/checkpoints/sd_xl_base_1.0.safetensors]
"""

RETURN = r"""
current:
  description:
    - With O(state=verify), whether the stamp still describes this pod, so a full run would
      change nothing. Always false with the other states.
  returned: always
  type: bool
  sample: true
reasons:
  description: Why the stamp is not current, at most ten of them.
  returned: when O(state=verify)
  type: list
  elements: str
  sample: ["/workspace/aiclipse/models/vae/ae.safetensors: removed"]
observed:
  description: How many paths and checkouts the stamp covers.
  returned: when O(state=present)
  type: int
  sample: 240
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.start_stamp import (
    StartStamp,
    StartStampError,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["verify", "present", "absent"], default="verify"),
            inputs=dict(type="str", no_log=False),
            watch=dict(type="list", elements="path", default=[]),
            trees=dict(type="list", elements="path", default=[]),
            contents=dict(type="list", elements="path", default=[]),
            git=dict(type="list", elements="path", default=[]),
            expected=dict(type="list", elements="path", default=[]),
        ),
        required_if=[("state", "verify", ["inputs"]), ("state", "present", ["inputs"])],
        supports_check_mode=True,
    )
    params = module.params
    stamp = StartStamp(
        module,
        params["path"],
        inputs=params["inputs"],
        watch=params["watch"],
        trees=params["trees"],
        contents=params["contents"],
        git=params["git"],
        expected=params["expected"],
    )
    result = dict(changed=False, current=False, path=params["path"])
    try:
        if params["state"] == "verify":
            result["current"], result["reasons"] = stamp.verify()
        elif params["state"] == "present":
            result["changed"], before, after = stamp.record()
            result["observed"] = len(after["watch"]) + len(after["trees"]) + len(after["contents"]) + len(after["git"])
            if module._diff:
                result["diff"] = dict(before=_text(before), after=_text(after))
        else:
            result["changed"], before = stamp.remove()
            if module._diff:
                result["diff"] = dict(before=_text(before), after="")
    except StartStampError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


def _text(stamp):
    return json.dumps(stamp, indent=1, sort_keys=True) + "\n" if stamp else ""


if __name__ == "__main__":
    main()
