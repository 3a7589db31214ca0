#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_config
short_description: Write the command line that starts ComfyUI for the pod entrypoint
version_added: 0.1.0
description:
  - Builds ComfyUI's argv, C(<python> main.py --listen 0.0.0.0 --port 8188 --base-directory
    <vault>) followed by the words of O(comfy_args), and writes it with the ComfyUI directory to a
    small JSON launch file. The pod entrypoint C(aiclipse-entrypoint) reads that file after
    provisioning, starts the argv from the ComfyUI directory and passes a stop (SIGTERM, SIGINT)
    on to it.
  - With O(base_directory) ComfyUI reads models, custom nodes, input, output, temp and user data
    from that directory (the vault) and its git checkout holds code only. The launch file also
    names C(COMFYUI_PATH) and C(COMFYUI_FOLDERS_BASE_PATH) for ComfyUI-Manager's helpers; the
    entrypoint sets them unless the pod sets them itself.
  - O(comfy_args) is split the way a POSIX shell splits words (Python's C(shlex.split)). Quotes
    group words and are removed (V(--output-directory "/workspace/my outputs") is two words),
    backslashes escape the next character. Nothing is expanded or run; variables like C($HOME),
    globs like C(*) and command substitutions stay literal text, because no shell ever sees the
    value.
  - An unbalanced quote or a trailing lone backslash fails the task with a message that shows
    the value and what to fix; the launch file is left as it was.
  - C(--use-sage-attention) is added only when O(comfy_args) has no words (empty or blank) and
    O(enable_sage_attention) is true. When you set O(comfy_args) you own the whole list.
  - The file is rewritten atomically and only when its content differs, so RV(ignore:changed)
    is honest on every restart.
author:
  - aiclipse team (@aiclipse)
options:
  path:
    description:
      - The launch file to write. Missing parent directories are created (mode C(0700)).
    type: path
    required: true
  comfyui_dir:
    description:
      - The ComfyUI checkout the entrypoint changes into before running the argv (where
        C(main.py) is).
    type: path
    required: true
  python:
    description:
      - Absolute path of the Python interpreter that runs ComfyUI, normally the pod's venv.
    type: path
    required: true
  comfy_args:
    description:
      - Extra ComfyUI arguments as one string, usually the pod's C(COMFY_ARGS) setting.
    type: str
    default: ''
  enable_sage_attention:
    description:
      - Add C(--use-sage-attention) when O(comfy_args) is empty (the pod's
        C(ENABLE_SAGE_ATTENTION) setting).
    type: bool
    default: false
  listen:
    description:
      - Address ComfyUI listens on.
    type: str
    default: 0.0.0.0
  port:
    description:
      - Port ComfyUI listens on.
    type: int
    default: 8188
  base_directory:
    description:
      - ComfyUI's C(--base-directory), the vault. Empty leaves the flag out (ComfyUI then uses
        the folders inside its checkout). A C(--base-directory) in O(comfy_args) wins.
    type: path
  mode:
    description:
      - Permissions of the launch file.
    type: raw
    default: '0600'
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the launch file would change, with the diff, without writing.
  diff_mode:
    support: full
    details: The diff shows the launch file before and after.
  idempotent:
    support: full
    details: The file is rewritten only when the argv or directory changes.
seealso:
  - name: Python shlex.split
    description: The word splitting applied to O(comfy_args).
    link: https://docs.python.org/3/library/shlex.html#shlex.split
"""

EXAMPLES = r"""
- name: Launch ComfyUI with the pod's COMFY_ARGS
  aiclipse.comfyui.launch_config:
    path: /workspace/aiclipse/.state/launch.json
    comfyui_dir: /workspace/aiclipse/ComfyUI
    python: /venv/bin/python
    base_directory: /workspace/aiclipse
    comfy_args: "{{ lookup('ansible.builtin.env', 'COMFY_ARGS') }}"
    enable_sage_attention: "{{ lookup('ansible.builtin.env', 'ENABLE_SAGE_ATTENTION', default='false') }}"

- name: A fixed argument list with a path holding a space
  aiclipse.comfyui.launch_config:
    path: /workspace/aiclipse/.state/launch.json
    comfyui_dir: /workspace/aiclipse/ComfyUI
    python: /venv/bin/python
    comfy_args: --lowvram --output-directory "/workspace/my outputs"
    port: 3000
"""

RETURN = r"""
path:
  description: The launch file.
  returned: always
  type: str
  sample: /workspace/aiclipse/.state/launch.json
argv:
  description: The command line the entrypoint will run.
  returned: always
  type: list
  elements: str
  sample: [/venv/bin/python, main.py, --listen, 0.0.0.0, --port, '8188', --base-directory, /workspace/aiclipse, --lowvram]
cwd:
  description: The directory the command runs in.
  returned: always
  type: str
  sample: /workspace/aiclipse/ComfyUI
env:
  description: Variables the entrypoint sets for ComfyUI when the pod does not set them.
  returned: always
  type: dict
  sample: {COMFYUI_PATH: /workspace/aiclipse/ComfyUI, COMFYUI_FOLDERS_BASE_PATH: /workspace/aiclipse}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.launch_args import (
    LaunchArgsError,
    LaunchFile,
    build_argv,
    launch_env,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            comfyui_dir=dict(type="path", required=True),
            python=dict(type="path", required=True),
            comfy_args=dict(type="str", default=""),
            enable_sage_attention=dict(type="bool", default=False),
            listen=dict(type="str", default="0.0.0.0"),
            port=dict(type="int", default=8188),
            base_directory=dict(type="path"),
            mode=dict(type="raw", default="0600"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        argv = build_argv(
            params["python"],
            params["comfy_args"],
            params["enable_sage_attention"],
            listen=params["listen"],
            port=params["port"],
            base_directory=params["base_directory"],
        )
        env = launch_env(params["comfyui_dir"], params["base_directory"])
        result = LaunchFile(module, params["path"], argv, params["comfyui_dir"], mode=params["mode"], env=env).apply()
    except LaunchArgsError as exc:
        module.fail_json(msg=str(exc), path=params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
