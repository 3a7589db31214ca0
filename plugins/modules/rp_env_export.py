#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rp_env_export
short_description: Export a pod's settings to a file that SSH sessions source
version_added: 0.1.0
description:
  - SSH sessions into a pod do not inherit the container's environment. This module writes the
    allow-listed variables that are set to a file (by default C(/etc/rp_environment)) as
    C(export NAME='value') lines, so a shell that sources the file sees the pod's settings.
  - Values are read from the module's own process environment, which is the pod's environment
    when the play runs on the pod (C(-c local)) plus anything the task's C(environment) keyword
    adds; or from O(environ_file), such as the pod's main process's C(/proc/1/environ) when the
    module runs in an SSH session. O(variables) gives values explicitly, for example from host
    variables of a fleet.
  - Every value comes back byte for byte when the file is sourced by C(bash) or C(dash); values are
    POSIX single-quoted, so spaces, quotes, C($), backticks, backslashes, newlines, unicode and
    empty strings are all safe. Unset variables are left out; lines are sorted by name.
  - The file is rewritten (atomically, already with its final mode) only when its content
    changes; there is no timestamp line, so RV(ignore:changed) is honest. Mode and owner drift
    on an otherwise correct file is fixed and reported as a change.
  - The file must be a regular file. A symbolic link at O(path) (say to a world-readable copy) is
    replaced by a regular file with the wanted mode, with a warning naming what it pointed to,
    which is left as it was. A directory or special file there fails the task.
  - Values are bytes. A value that is not UTF-8 (a pod name in Latin-1) is written byte for byte
    and shown in results and the diff with C(\xNN) escapes; RV(not_utf8) names them.
  - Secret values (names containing C(TOKEN), C(SECRET), C(KEY), C(PASSWORD), C(PASSWD) or
    C(CREDENTIAL), plus O(secret_names)) are replaced by C(********) in the diff and in every
    return value. The file itself is not readable by other users by default.
  - Hooking the file into shells is not this module's job; the role C(aiclipse.comfyui.pod_env)
    runs this module and M(aiclipse.comfyui.shell_hook), which adds exactly one hook line for
    interactive and non-interactive shells.
author:
  - aiclipse team (@aiclipse)
options:
  path:
    description:
      - The file to write. A missing parent directory is created (not in check mode).
    type: path
    default: /etc/rp_environment
  allow_list:
    description:
      - Names of the variables to export when they are set in the module's environment.
      - The default is what an SSH session needs of the pod's settings, C(COMFY_ARGS) and the
        download credentials included.
      - Names must be valid shell variable names (letters, digits, underscores, not starting
        with a digit); anything else fails the task before the file is touched.
    type: list
    elements: str
    default: [RUNPOD_POD_ID, RUNPOD_POD_NAME, RUNPOD_API_ENDPOINT, CUDA_VISIBLE_DEVICES,
              NVIDIA_VISIBLE_DEVICES, LD_LIBRARY_PATH, PATH, PYTHONPATH, TEMPLATE_TYPE,
              TEMPLATE_VERSION, GPU_TYPE, COMFY_ARGS, R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY,
              R2_ACCOUNT_ID, R2_BUCKET, HF_TOKEN, CIVITAI_TOKEN]
  environ_file:
    description:
      - Read the variables from this file of C(NAME=VALUE) entries separated by NUL bytes instead
        of the module's own environment.
      - V(/proc/1/environ) is the environment of the pod's main process, which holds the pod's
        settings even when the module runs in an SSH session (fleet provisioning).
    type: path
  variables:
    description:
      - Explicit values, exported whether or not they are in O(allow_list). They win over the
        environment.
      - A value of V(null) leaves the name out of the file even when the environment has it.
      - Values must be strings or numbers; quote booleans in YAML (V("true")).
      - Values whose names look secret are masked in the output, but give secrets through the
        environment where you can, so they never pass through task arguments at all.
    type: dict
    default: {}
  secret_names:
    description:
      - Further names whose values are secret and must be masked, in addition to every name
        containing C(TOKEN), C(SECRET), C(KEY), C(PASSWORD), C(PASSWD) or C(CREDENTIAL).
    type: list
    elements: str
    default: []
  mode:
    description:
      - Permissions of the file, octal (V("0600")) or symbolic (V(u=rw,g=,o=)).
      - The file holds secrets; keep it unreadable for other users.
    type: raw
    default: '0600'
  owner:
    description:
      - Owner of the file. When not given, a new file belongs to the user running the module and
        an existing file keeps its owner.
    type: str
  group:
    description:
      - Group of the file. When not given, a new file gets the user's group and an existing
        file keeps its group.
    type: str
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change, including the masked diff, without writing.
  diff_mode:
    support: full
    details: The diff shows the file before and after with secret values masked.
  idempotent:
    support: full
    details: The file is rewritten only when its content changes; it holds no timestamp.
notes:
  - On a fleet provisioned over SSH, the module's environment is the SSH session's, not the
    pod's; read the pod's with O(environ_file=/proc/1/environ) or pass the settings with
    O(variables) (for example from C(host_vars)).
"""

EXAMPLES = r"""
- name: Export the pod's settings for SSH sessions (default allow-list, /etc/rp_environment)
  aiclipse.comfyui.rp_env_export:

- name: Export settings a fleet's host_vars define, plus one more allow-listed variable
  aiclipse.comfyui.rp_env_export:
    allow_list: "{{ ['MY_SETTING'] + pod_env_default_allow_list }}"
    variables:
      COMFY_ARGS: "{{ comfy_args }}"
      TEMPLATE_TYPE: flux

- name: Over SSH (fleet), export the settings of the pod's main process, not of the SSH session
  aiclipse.comfyui.rp_env_export:
    environ_file: /proc/1/environ

- name: Mask a secret whose name does not look secret
  aiclipse.comfyui.rp_env_export:
    path: /etc/rp_environment
    secret_names: [WEBHOOK_URL]
    allow_list: [COMFY_ARGS, WEBHOOK_URL]

- name: Write somewhere else, readable by a group
  aiclipse.comfyui.rp_env_export:
    path: /srv/pod/rp_environment
    mode: '0640'
    group: comfy
"""

RETURN = r"""
path:
  description: The file written.
  returned: always
  type: str
  sample: /etc/rp_environment
exported:
  description: Names written to the file, in file order (sorted).
  returned: always
  type: list
  elements: str
  sample: [COMFY_ARGS, HF_TOKEN, PATH]
missing:
  description: Allow-listed names that were not set and so were left out.
  returned: always
  type: list
  elements: str
  sample: [RUNPOD_POD_ID, CIVITAI_TOKEN]
secret_names:
  description: Exported names whose values are masked in this result and in the diff.
  returned: always
  type: list
  elements: str
  sample: [HF_TOKEN]
variables:
  description: The exported values by name, secret ones replaced by C(********).
  returned: always
  type: dict
  sample: {COMFY_ARGS: "--lowvram --preview-method auto", HF_TOKEN: "********"}
not_utf8:
  description: Exported names whose values are not UTF-8; the file holds their exact bytes,
    results show them with C(\xNN) escapes.
  returned: always
  type: list
  elements: str
  sample: [RUNPOD_POD_NAME]
replaced_link:
  description: The text of the symbolic link found at O(path) and replaced by a regular file (or
    that would be, in check mode); null when there was none.
  returned: always
  type: str
  sample: /workspace/rp_environment.copy
content_changed:
  description: Whether the file's content changed (or would change in check mode), as opposed to
    only its mode or owner.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment.env_export import (
    DEFAULT_ALLOW_LIST,
    EnvExportError,
    EnvFile,
    explicit_secret_values,
    read_environ_file,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/rp_environment"),
            allow_list=dict(type="list", elements="str", default=list(DEFAULT_ALLOW_LIST)),
            environ_file=dict(type="path"),
            variables=dict(type="dict", default={}),
            secret_names=dict(type="list", elements="str", default=[], no_log=False),
            mode=dict(type="raw", default="0600"),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    # Scrubbed from everything Ansible prints, the invocation and error results included.
    module.no_log_values.update(explicit_secret_values(params["variables"], params["secret_names"]))
    try:
        environ = read_environ_file(params["environ_file"]) if params["environ_file"] else None
        env_file = EnvFile(
            module,
            params["path"],
            params["allow_list"],
            variables=params["variables"],
            environ=environ,
            mode=params["mode"],
            owner=params["owner"],
            group=params["group"],
            secret_names=params["secret_names"],
        )
        # Secret values are also scrubbed from anything else Ansible prints (the invocation).
        module.no_log_values.update(env_file.secret_values())
        result = env_file.apply()
    except EnvExportError as exc:
        module.fail_json(msg=str(exc), path=params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
