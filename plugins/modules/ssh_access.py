#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssh_access
short_description: Add public keys to authorized_keys once and make missing SSH host keys
version_added: 0.1.0
description:
  - Adds each line of O(keys) that is not already there to O(authorized_keys), appending. Lines
    already in the file, other keys and comments among them, are kept as they are. A pod's
    C(PUBLIC_KEY) is added once, however often the pod restarts.
  - The file is rewritten through a temporary file and a rename, so it is never half-written.
    Its folder is created with mode C(0700) when missing. The folder and file get modes
    C(0700) and C(0600), which sshd requires.
  - Makes each host key of O(host_key_types) missing from O(host_key_dir) with C(ssh-keygen),
    so sshd can start in a container whose image carries no host keys. Existing working keys
    are never replaced, so clients keep trusting the pod.
  - An existing host key that sshd could not load is made anew, with a warning naming it and
    why. An empty file is removed; a corrupt or passphrase-protected key, a dangling link or
    something that is not a file is moved aside to C(<name>.invalid-<time>) with its C(.pub).
    The check is C(ssh-keygen -y), which reads the private key itself (C(ssh-keygen -l) would
    read the C(.pub) beside a corrupt key and pass it). A key readable by others is made
    private first (sshd ignores such a key). A host key that is a link to a good key is kept.
  - O(authorized_keys) must be a regular file. A symbolic link there is replaced by a regular
    file of mode C(0600) holding the keys it showed, with a warning naming what it pointed to,
    which is left as it was. A directory or special file there fails the task.
  - Does in one module run what took a C(file), a C(lineinfile) and a C(command) task, so a pod
    start stays fast.
author:
  - aiclipse team (@aiclipse)
options:
  authorized_keys:
    description:
      - The authorized_keys file, such as C(/root/.ssh/authorized_keys).
      - Left alone when O(keys) holds no key.
    type: path
  keys:
    description:
      - Public keys, one per line. An item may hold several lines, as C(PUBLIC_KEY) does. Blank
        lines and C(#) comments are skipped, and surrounding spaces trimmed.
    type: list
    elements: str
    default: []
  host_key_dir:
    description:
      - Where the host keys are, C(ssh_host_<type>_key). Missing parent folders are created.
      - Leave unset to make no host keys.
    type: path
  host_key_types:
    description:
      - The key types C(ssh-keygen -t) makes when missing.
    type: list
    elements: str
    default: [rsa, ecdsa, ed25519]
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports the keys it would add and the host keys it would make, without writing.
  diff_mode:
    support: full
    details: The diff shows authorized_keys before and after, and the host keys to make.
  idempotent:
    support: full
    details: A key already present is not added again; an existing host key is never replaced.
notes:
  - Public keys are not secrets. They are shown in the diff and in RV(added) as given.
requirements:
  - C(ssh-keygen) (OpenSSH) on the target, when a host key is missing.
"""

EXAMPLES = r"""
- name: Let the pod's PUBLIC_KEY in and give sshd its host keys
  aiclipse.comfyui.ssh_access:
    authorized_keys: /root/.ssh/authorized_keys
    keys: ["{{ lookup('ansible.builtin.env', 'PUBLIC_KEY') }}"]
    host_key_dir: /etc/ssh

- name: Only the host keys, ed25519 alone
  aiclipse.comfyui.ssh_access:
    host_key_dir: /etc/ssh
    host_key_types: [ed25519]
"""

RETURN = r"""
added:
  description: The key lines appended to O(authorized_keys) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB... me@laptop"]
modes_fixed:
  description: The folder or files (authorized_keys, host keys readable by others) whose mode was set to C(0700) or C(0600).
  returned: always
  type: list
  elements: str
  sample: [/root/.ssh]
host_keys_made:
  description: The types of the host keys made, missing or unusable (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [rsa, ecdsa, ed25519]
host_keys_invalid:
  description: Existing host keys sshd could not load, each made anew.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: The key type.
      type: str
      sample: ed25519
    path:
      description: The key file.
      type: str
      sample: /etc/ssh/ssh_host_ed25519_key
    problem:
      description: Why it was unusable.
      type: str
      sample: empty
    moved_to:
      description: Where it was moved (with its C(.pub)); null when it was empty and removed, or in check mode.
      type: str
replaced_link:
  description: The text of the symbolic link found at O(authorized_keys) and replaced by a regular
    file (or that would be, in check mode); null when there was none.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment.ssh_access import SSHAccess, SSHAccessError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            authorized_keys=dict(type="path"),
            keys=dict(type="list", elements="str", default=[], no_log=False),
            host_key_dir=dict(type="path"),
            host_key_types=dict(type="list", elements="str", default=["rsa", "ecdsa", "ed25519"], no_log=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    access = SSHAccess(
        module, params["authorized_keys"], params["keys"], params["host_key_dir"], params["host_key_types"]
    )
    if access.keys and not params["authorized_keys"]:
        module.fail_json(msg="keys given but no authorized_keys file to add them to: set authorized_keys")
    try:
        added, fixed, before, after = access.authorize()
        made = access.make_host_keys()
    except SSHAccessError as exc:
        module.fail_json(msg=str(exc))
    fixed = fixed + access.host_key_modes_fixed
    result = dict(
        changed=bool(added or fixed or made or access.replaced_link is not None),
        added=added,
        modes_fixed=fixed,
        host_keys_made=made,
        host_keys_invalid=access.invalid_host_keys,
        replaced_link=access.replaced_link,
    )
    if module._diff:
        result["diff"] = [
            dict(
                before_header=params["authorized_keys"] or "",
                after_header=params["authorized_keys"] or "",
                before=before,
                after=after,
            ),
            dict(
                before_header="host keys",
                after_header="host keys",
                before="",
                after="".join(f"{params['host_key_dir']}/ssh_host_{kind}_key\n" for kind in made),
            ),
        ]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
