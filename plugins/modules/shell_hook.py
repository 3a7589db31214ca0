#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shell_hook
short_description: Keep one line that sources the pod's environment file first in shell startup files
version_added: 0.1.0
description:
  - Puts exactly one hook line, C(if [ -r FILE ]; then . FILE; fi) followed by the marker
    comment C(aiclipse.comfyui pod_env hook), as the first line of each of O(files), so bash loads the pod's settings written by
    M(aiclipse.comfyui.rp_env_export) for interactive logins and for non-interactive
    C(ssh pod 'cmd') alike.
  - The hook must be first because the C(~/.bashrc) of Debian and Ubuntu C(return) early for
    non-interactive shells; a hook below that line never runs.
  - Hook lines found anywhere else (found by the marker comment at their end), copies of it,
    and plain C(source /etc/rp_environment) lines that earlier images appended at every boot,
    are removed. Every other line is kept as it was.
  - Optionally writes a profile.d script holding the same line, for login shells whose
    C(~/.profile) does not read C(~/.bashrc).
  - Files and their parent directories are created when missing. Existing files are rewritten
    atomically, keeping their mode and owner, and only when their content changes.
  - Every file written is a regular file. A symbolic link at one of O(files) is replaced by a
    regular file holding what the link showed plus the hook; a link at O(profile_script) is
    replaced by the script. What a link pointed to is left as it was, and a warning names it. A
    directory or special file in their place fails the task. Bytes that are not UTF-8 are kept
    exactly, and shown with C(\xNN) escapes in the diff.
  - Does in one module run what took several C(lineinfile) tasks, so a pod start stays fast.
author:
  - aiclipse team (@aiclipse)
options:
  files:
    description:
      - Shell startup files (typically C(/root/.bashrc)) that get the hook as their first line.
      - A missing file is created (mode 0644) holding only the hook.
    type: list
    elements: path
    default: [/root/.bashrc]
  env_file:
    description:
      - The environment file the hook sources.
      - The hook is quiet for users who may not read it.
    type: path
    default: /etc/rp_environment
  profile_script:
    description:
      - A profile.d script to write with the hook line as its only content, mode O(profile_mode).
      - Leave unset or empty to write none.
    type: path
  profile_mode:
    description:
      - Mode of O(profile_script), octal (V("0644")) or symbolic; login shells of every user read it.
    type: raw
    default: '0644'
  legacy_sources:
    description:
      - Files whose C(source FILE) and C(. FILE) lines (alone on a line) are removed from O(files).
      - O(env_file) is always included, so a plain C(source) of it never doubles the hook.
    type: list
    elements: path
    default: [/etc/rp_environment]
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports the files that would change, with the diff, and creates no file or directory.
  diff_mode:
    support: full
    details: One diff per changed file, the whole file before and after (startup files hold no secrets).
  idempotent:
    support: full
notes:
  - The marker comment is how the hook is recognised; do not edit it out, or the next run adds
    a second hook.
seealso:
  - module: aiclipse.comfyui.rp_env_export
"""

EXAMPLES = r"""
- name: Hook /etc/rp_environment into root's bashrc and login shells
  aiclipse.comfyui.shell_hook:
    files: [/root/.bashrc]
    profile_script: /etc/profile.d/rp_environment.sh

- name: Hook a settings file elsewhere into two users' shells, no profile.d script
  aiclipse.comfyui.shell_hook:
    env_file: /srv/pod/rp_environment
    files:
      - /root/.bashrc
      - /home/comfy/.bashrc
"""

RETURN = r"""
line:
  description: The hook line placed first in every file.
  returned: always
  type: str
  sample: "if [ -r /etc/rp_environment ]; then . /etc/rp_environment; fi  # aiclipse.comfyui pod_env hook"
changed_files:
  description: Files that were (or in check mode would be) written or had their mode fixed.
  returned: always
  type: list
  elements: str
  sample: [/root/.bashrc]
replaced_links:
  description: Paths that were symbolic links and are now regular files (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/root/.bashrc]
created_dirs:
  description: Parent directories that were created (none in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/profile.d]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment.shell_hook import (
    LEGACY_SOURCES,
    ShellHook,
    ShellHookError,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="path", default=["/root/.bashrc"]),
            env_file=dict(type="path", default="/etc/rp_environment"),
            profile_script=dict(type="path"),
            profile_mode=dict(type="raw", default="0644"),
            legacy_sources=dict(type="list", elements="path", default=list(LEGACY_SOURCES)),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = ShellHook(
            module,
            params["files"],
            params["env_file"],
            profile_script=params["profile_script"],
            legacy_sources=params["legacy_sources"],
            profile_mode=params["profile_mode"],
        ).apply()
    except ShellHookError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
