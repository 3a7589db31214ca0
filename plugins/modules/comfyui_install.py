#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: comfyui_install
short_description: Install ComfyUI from git when missing or broken, and its requirements when they change
version_added: 0.1.0
description:
  - Makes sure O(dest) holds a working ComfyUI checkout (C(main.py) and a git checkout of its
    own whose C(HEAD) resolves), then installs its C(requirements.txt) into the pod's venv when
    the file differs from the one installed last time.
  - B(Missing) O(dest) is seeded by copying O(seed_from) (the copy baked into the image, a fast
    local copy) when that is a working checkout, otherwise cloned from O(repo_url) at O(version).
    The copy or clone is staged next to O(dest) and renamed into place, so a killed run never
    leaves half a ComfyUI at O(dest).
  - B(Healthy) O(dest) is left alone whatever version it has (people update ComfyUI themselves,
    for example with ComfyUI-Manager). Only a wrong C(origin) URL is set to O(repo_url); no file
    changes. The module never runs C(git reset) or C(git clean), so the C(models) link the
    workspace role puts in place keeps working.
  - B(Broken) O(dest) (no C(main.py), not a git checkout, no commit checked out, a dangling link)
    is renamed to C(<dest>.broken-<timestamp>), a fresh copy takes its place and the user's
    content (C(input) C(output) C(user) C(custom_nodes) C(models) C(extra_model_paths.yaml)) is
    moved back wherever the fresh copy has no file of that name. Nothing is deleted; what could
    not move back stays in the backup (RV(left_in_backup)); an emptied backup is removed.
  - B(Pinned) installs (a tag or a commit in O(version)) would leave a detached C(HEAD), where
    C(git pull) stops. C(HEAD) is put on a local branch named like origin's default branch
    (C(master)) at that very commit, tracking C(origin/master), so C(git pull), ComfyUI's
    C(update.py) and ComfyUI-Manager move it forward from the pin. This is also done for an
    existing checkout found detached, when its commit is on that remote branch and no local
    branch of that name points elsewhere; nothing else changes (RV(status=attached)).
  - B(Requirements) run through C(<venv>/bin/python -m pip install -r requirements.txt) under a
    constraints file pinning O(protected_packages) at the versions the venv has, so ComfyUI's
    requirements cannot replace the pod's torch. The sha256 of the installed file is recorded
    in C(<venv>/.aiclipse-state/comfyui.json); while it matches, pip is not run at all.
  - B(Offline) pods install from O(wheelhouse) (a folder of wheels the image may bake) and,
    with O(offline), from nothing else (C(--no-index)). With O(requirements_fail_on_error=false)
    a failed install is a warning (C(status) V(failed) in RV(requirements)) and the run goes on, so the
    pod still starts ComfyUI; nothing is recorded and the next run tries again.
author:
  - aiclipse team (@aiclipse)
options:
  dest:
    description:
      - The ComfyUI directory, normally C(<vault>/ComfyUI) on the pod or the image's baked copy
        at build time.
    type: path
    required: true
  repo_url:
    description:
      - Git URL of ComfyUI (any URL git accepts).
      - A password or token in it (C(https://user:token@host/...)) is masked everywhere in the
        output, the echo of this option included. It never reaches git's command line or a
        file; git gets the URL without it (and stores that one as C(origin)) and the token
        from a credential helper that reads git's environment and answers for that host only
        (a redirect to another host does not get it). An C(origin) that still holds a token
        is rewritten without it. A password in an C(ssh://) or C(git://) URL is refused.
      - Ansible keeps a module's arguments in a temporary file while it runs; to keep a token
        out of it, give the URL without the token here and name the variable that holds the
        whole URL in O(repo_url_env).
    type: str
    default: https://github.com/comfyanonymous/ComfyUI.git
  repo_url_env:
    description:
      - Name of a variable holding ComfyUI's git URL I(with) its credentials, read where the
        module runs, from its environment, else from O(env_file). When its value names the same
        repository as O(repo_url) (the same URL once credentials are taken out), that value is
        used, so the token is never a module argument. A value naming another repository is
        ignored; O(repo_url) wins.
    type: str
  env_file:
    description:
      - The pod's environment file (C(export NAME='value') lines, as the pod_env role writes
        C(/etc/rp_environment)), read for O(repo_url_env) when the module's environment lacks
        it. It must be a regular file owned by the user running the module and not readable by
        others (0600); a missing file counts as empty.
    type: path
  version:
    description:
      - Branch, tag or commit (7 to 40 hex digits) to clone. Empty means the repository's
        default branch. Used only when O(dest) is installed or repaired, unless O(enforce_version).
    type: str
    default: ''
  enforce_version:
    description:
      - Also put an existing (or seeded) checkout on O(version) when that is a commit, as
        C(playbooks/site.yml) does when it provisions from a pod lock. The commit is fetched
        from O(repo_url) when the checkout lacks it; a checkout with local changes to tracked
        files is never moved. What stands in the way is returned in RV(not_at_version) and the
        task does not fail for it.
    type: bool
    default: false
  seed_from:
    description:
      - A working ComfyUI checkout to copy instead of cloning when O(dest) must be installed
        (the image's baked copy). Ignored when missing, broken or the same directory as O(dest).
    type: path
  venv:
    description:
      - The virtualenv ComfyUI runs in. Requirements are not handled when omitted.
    type: path
  pip_args:
    description:
      - Extra arguments for C(pip install), for example V([--no-index, --find-links, /wheels]) or
        an extra index for CUDA wheels.
    type: list
    elements: str
    default: []
  protected_packages:
    description:
      - Packages the requirements may not replace; each one installed in O(venv) is pinned at
        its current version in the constraints file.
    type: list
    elements: str
    default: [torch, torchvision, torchaudio, xformers]
  git_timeout:
    description:
      - Seconds one git network command (the clone) may take. When they pass, git and
        everything it started are killed and the task fails with "no answer from <host> within
        N s". git's low-speed limit (less than 1000 bytes/s for 30 s) ends a stalled HTTP
        transfer sooner.
    type: int
    default: 300
  wheelhouse:
    description:
      - A folder of wheels pip looks in first (C(--find-links)); ignored when it does not exist.
    type: path
  offline:
    description:
      - Install from O(wheelhouse) (and O(pip_args)) only, never from a package index (C(--no-index)).
    type: bool
    default: false
  requirements_fail_on_error:
    description:
      - Fail the task when the requirements cannot be installed. V(false) turns the failure into
        a warning, so a pod start goes on and ComfyUI starts with what the venv has.
    type: bool
    default: true
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be installed, repaired or pip-installed without changing anything.
  diff_mode:
    support: full
    details: The diff shows the checkout state and the recorded requirements hash before and after.
  idempotent:
    support: full
    details: A working checkout and unchanged requirements report RV(ignore:changed=false) without running pip.
notes:
  - Fixed modes, not file arguments - the checkout is git's (or the baked copy's) as it is; the
    requirements state the module keeps in the venv is C(0644).
seealso:
  - module: aiclipse.comfyui.custom_nodes
  - module: ansible.builtin.git
"""

EXAMPLES = r"""
- name: Pod start, ComfyUI in the vault, seeded from the image
  aiclipse.comfyui.comfyui_install:
    dest: /workspace/aiclipse/ComfyUI
    seed_from: /opt/aiclipse/ComfyUI
    repo_url: https://github.com/comfyanonymous/ComfyUI.git
    version: v0.3.40
    venv: /venv

- name: Image bake, a pinned commit with an offline wheelhouse
  aiclipse.comfyui.comfyui_install:
    dest: /opt/aiclipse/ComfyUI
    version: 5a0ba6d
    venv: /venv
    wheelhouse: /opt/aiclipse/wheels
    offline: true

- name: Pod start without a package index, a failed install only warns
  aiclipse.comfyui.comfyui_install:
    dest: /workspace/aiclipse/ComfyUI
    venv: /venv
    wheelhouse: /opt/aiclipse/wheels
    offline: true
    requirements_fail_on_error: false
"""

RETURN = r"""
dest:
  description: The ComfyUI directory.
  returned: always
  type: str
  sample: /workspace/aiclipse/ComfyUI
status:
  description:
    - V(present) (working checkout left alone), V(seeded) (copied from O(seed_from)),
      V(cloned), V(repaired) (a broken directory replaced, user content moved back),
      V(remote_fixed) (only the C(origin) URL changed), V(attached) (a detached C(HEAD) put on
      the local default branch at the same commit) or, with O(enforce_version), V(moved) (put on
      the commit of O(version); V(would_move) in check mode).
  returned: always
  type: str
  sample: seeded
reason:
  description: Why the checkout was installed or repaired (empty when present).
  returned: always
  type: str
  sample: main.py is missing
commit:
  description: The commit checked out (null in check mode before an install).
  returned: always
  type: str
  sample: 2f3a1c9e0d8b7a6f5e4d3c2b1a0f9e8d7c6b5a49
branch:
  description: The local branch C(HEAD) is on (null when detached or not installed yet).
  returned: always
  type: str
  sample: master
detached:
  description: Why C(HEAD) was left detached, when it was.
  returned: when HEAD stays detached
  type: str
not_at_version:
  description: With O(enforce_version), why the checkout is not at O(version) (local changes, a commit
    the repository does not have).
  returned: when the checkout could not be moved
  type: str
  sample: "cannot check out 0f1e2d3: fatal: reference is not a tree: 0f1e2d3"
kept_branch:
  description: With O(enforce_version), the branch made at the old tip of the local default branch
    when it held commits of yours (on neither the locked commit nor origin) before it was set to
    the locked commit; your commits stay on it.
  returned: when such commits were found
  type: str
  sample: master-before-lock-20260101-120000
backup:
  description: Where a broken directory was moved, when anything is left there.
  returned: always
  type: str
  sample: /workspace/aiclipse/ComfyUI.broken-20260101-120000
left_in_backup:
  description: User content that could not move back (the fresh copy has a file of that name).
  returned: always
  type: list
  elements: str
  sample: [/workspace/aiclipse/ComfyUI.broken-20260101-120000/models]
requirements:
  description:
    - C(status) is V(installed), V(unchanged) (recorded hash matches, pip not run), V(none) (no
      requirements.txt or no O(venv)), V(would_install) (check mode), V(unknown) (check mode,
      ComfyUI not cloned yet) or V(failed) (with O(requirements_fail_on_error=false); C(error)
      says why); C(sha256) of the file;
      C(protected) the pinned versions when pip ran.
      C(ledger) is the file in O(venv) that records what was installed (with O(venv) only).
  returned: always
  type: dict
  sample: {status: unchanged, sha256: 0f1e2d..., ledger: /venv/.aiclipse-state/comfyui.json}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfyui_install import (
    ComfyUIInstaller,
    InstallError,
    RequirementsInstaller,
    index_args,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import SecretsError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import (
    Git,
    GitError,
    credentials_problem,
    mask_url_credentials,
    repo_url_on_target,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.pip_requirements import PipError, VenvPip


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            repo_url=dict(type="str", default="https://github.com/comfyanonymous/ComfyUI.git"),
            repo_url_env=dict(type="str"),
            env_file=dict(type="path"),
            version=dict(type="str", default=""),
            enforce_version=dict(type="bool", default=False),
            seed_from=dict(type="path"),
            venv=dict(type="path"),
            pip_args=dict(type="list", elements="str", default=[]),
            protected_packages=dict(
                type="list", elements="str", default=["torch", "torchvision", "torchaudio", "xformers"]
            ),
            git_timeout=dict(type="int", default=300),
            wheelhouse=dict(type="path"),
            offline=dict(type="bool", default=False),
            requirements_fail_on_error=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        repo_url = repo_url_on_target(params["repo_url"], params["repo_url_env"], params["env_file"])
    except SecretsError as exc:
        module.fail_json(msg=f"repo_url_env: {exc}")
    mask_url_credentials(module, [params["repo_url"], repo_url])
    problem = credentials_problem(repo_url)
    if problem or params["git_timeout"] < 1:
        module.fail_json(
            msg=f"repo_url: {problem}"
            if problem
            else f"git_timeout must be at least 1 second, got {params['git_timeout']}"
        )
    installer = ComfyUIInstaller(
        module,
        Git(module, timeout=params["git_timeout"]),
        params["dest"],
        repo_url,
        params["version"],
        params["seed_from"],
    )
    before_problem = None
    requirements = {"status": "none", "changed": False, "sha256": None}
    try:
        before_problem = installer.problem()
        result = installer.ensure()
        if params["enforce_version"]:
            result = installer.move_to_version()
    except (InstallError, GitError, OSError) as exc:
        module.fail_json(msg=str(exc), **installer.result)
    if params["venv"]:
        extra, note = index_args(params["wheelhouse"], params["offline"])
        pip = VenvPip(module, params["venv"], params["pip_args"] + extra, params["protected_packages"])
        requirements_installer = RequirementsInstaller(module, pip)
        before_sha = requirements_installer.ledger.entries.get(RequirementsInstaller.LEDGER_KEY)
        try:
            if module.check_mode and result["status"] in ("cloned", "repaired") and result["changed"]:
                # Nothing to read before the clone: say so rather than guess.
                requirements = {"status": "unknown", "changed": False, "sha256": None}
            elif module.check_mode and result["status"] == "seeded":
                # The vault copy would get the baked copy's requirements.txt.
                requirements = requirements_installer.ensure(result["source"])
            else:
                requirements = requirements_installer.ensure(result["dest"])
        except (PipError, OSError) as exc:
            message = f"{exc}{'; ' + note if note else ''}"
            if params["requirements_fail_on_error"]:
                module.fail_json(msg=message, **installer.result)
            module.warn(
                f"ComfyUI's requirements were not installed; ComfyUI starts with what the venv has "
                f"and the next start tries again. Put the wheels it needs into the wheelhouse "
                f"({params['wheelhouse'] or 'none set'}) or give the pod a package index. {message}"
            )
            requirements = {"status": "failed", "changed": False, "sha256": None, "error": message}
        requirements["recorded_before"] = before_sha
        requirements["ledger"] = requirements_installer.ledger.path
    checkout_changed = result.pop("changed")
    requirements_changed = requirements.pop("changed")
    recorded_before = requirements.pop("recorded_before", None)
    before = f"checkout: {before_problem or 'working'}\nrequirements: {recorded_before}\n"
    after = f"checkout: working ({result['status']})\nrequirements: {requirements.get('sha256')}\n"
    output = dict(result, requirements=requirements, diff={"before": before, "after": after})
    output["changed"] = checkout_changed or requirements_changed
    module.exit_json(**output)


if __name__ == "__main__":
    main()
