#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: comfyui_layout
short_description: Keep ComfyUI's git checkout pristine, with the vault as its base directory
version_added: 0.1.0
description:
  - ComfyUI runs with C(--base-directory <vault>) (see M(aiclipse.comfyui.launch_config)), so it
    reads C(models), C(custom_nodes), C(input), C(output), C(temp) and C(user) from the vault and
    its git checkout holds code only. Every updater (C(git pull), ComfyUI's own pygit2
    C(update.py), ComfyUI-Manager's update) then finds the checkout exactly as git left it.
  - This module keeps the checkout that way at every start and migrates vaults of the older
    layout, where C(ComfyUI/models) was a link into the vault hidden from git, and custom nodes,
    input, output and user data lived inside the checkout.
  - A link at C(ComfyUI/<folder>) that leads to the vault's folder, or nowhere, is removed (it
    is only a link). A link that leads anywhere else stops the module, with what to do.
  - A mount point at or under C(ComfyUI/<folder>) (a volume mounted into the checkout) stops the
    module before anything moves, with what to do; its files would otherwise be moved off the
    volume into the vault.
  - The git settings the older layout made are undone, and only those, the
    C(!/<folder>/) sparse-checkout pattern (the sparse checkout is switched off when it held
    nothing else), C(sparse.expectFilesOutsideOfPatterns), the C(/<folder>) line of
    C(info/exclude) and the skip-worktree bits under the folders.
  - Tracked files missing under the folders (the placeholders the older layout moved into the
    vault) are written back from git's object store, never over an existing file.
  - Everything under C(ComfyUI/<folder>) that git does not track moves into C(<vault>/<folder>)
    with the merge rules of M(aiclipse.comfyui.workspace_link), nothing overwritten, identical
    files kept once, a clash kept under a new name C(<name>.merged-<time>.<ext>). Files ComfyUI
    keeps in its own folder whatever the base directory (O(keep)) stay.
  - The folders and files git tracks under C(ComfyUI/models) are copied into C(<vault>/models)
    where missing, so a model folder a ComfyUI update adds shows up in the vault.
  - With O(extra_model_paths), C(ComfyUI/extra_model_paths.yaml) (ignored by ComfyUI's own
    C(.gitignore)) points ComfyUI at the vault's model folders, for a C(main.py) started by hand
    without C(--base-directory). A file of that name without this module's first line is yours
    and is never replaced.
  - O(vault_links) makes paths of the older layout inside the vault links to where ComfyUI reads
    now (C(workflows -> user/default/workflows)) with the rules of
    M(aiclipse.comfyui.workspace_link); a real folder found there (the older second workflows
    folder) is merged into the target first, clashes kept under a new name.
  - Temporary files (a tracked file written back, a placeholder copied, a small file rewritten)
    are recorded in C(<vault>/.state/layout) before they are made, and only what is recorded
    there is ever cleaned up; a file of yours named like one is never touched.
  - Names that are not UTF-8 are handled as the bytes they are; results and messages show those
    bytes as C(\xNN) escapes.
  - Each step is idempotent and crash-safe. Untracked entries are first renamed into
    C(ComfyUI/<folder>/.aiclipse-sweep) and merged from there, so a run killed at any point is
    finished by the next one and no byte is lost.
author:
  - aiclipse team (@aiclipse)
options:
  comfyui_dir:
    description:
      - The ComfyUI git checkout. A missing one, or one that is not a git checkout of its own, is
        left alone (M(aiclipse.comfyui.comfyui_install) installs or repairs it first).
    type: path
    required: true
  vault:
    description:
      - The vault, which is ComfyUI's base directory. The folders are created in it when missing.
    type: path
    required: true
  folders:
    description:
      - Folders of the checkout whose untracked content belongs in the vault (plain names).
    type: list
    elements: str
    default: [models, custom_nodes, input, output, user]
  keep:
    description:
      - Shell patterns, relative to the checkout, of untracked files that stay in it because
        ComfyUI writes them there whatever the base directory (its database).
    type: list
    elements: str
    default: [user/comfyui.db, user/comfyui.db-*]
  model_folders:
    description:
      - Model folder names listed in the written C(extra_model_paths.yaml).
    type: list
    elements: str
    default: []
  extra_model_paths:
    description:
      - Write C(<comfyui_dir>/extra_model_paths.yaml) for a C(main.py) started by hand.
    type: bool
    default: true
  vault_links:
    description:
      - Links inside the vault, name -> target (both relative to the vault), for paths of the
        older layout. A real folder at a name is merged into its target, then replaced by the link
        (O(on_conflict)).
    type: dict
    default: {}
  on_conflict:
    description:
      - What a real folder at a O(vault_links) name gets, as for M(aiclipse.comfyui.workspace_link);
        C(merge) into its target, C(backup) (renamed aside) or C(fail) (the module stops before it
        changes anything, naming the folder).
    type: str
    choices: [merge, backup, fail]
    default: merge
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Lists every link, git setting, move, clash and file it would change, and changes none.
  diff_mode:
    support: full
    details: The diff lists each change as a line of the after side.
  idempotent:
    support: full
    details: A second run finds a pristine checkout and reports RV(ignore:changed=false).
notes:
  - Fixed modes, not file arguments - C(extra_model_paths.yaml) C(0644); files copied from what git
    tracks keep git's mode (C(0644), or C(0755) when executable); moved entries keep theirs.
  - ComfyUI has had C(--base-directory) since January 2025; a checkout older than that must be
    updated before it starts with it.
seealso:
  - module: aiclipse.comfyui.workspace_link
  - module: aiclipse.comfyui.launch_config
"""

EXAMPLES = r"""
- name: ComfyUI's checkout holds code only, the vault holds everything else
  aiclipse.comfyui.comfyui_layout:
    comfyui_dir: /workspace/aiclipse/ComfyUI
    vault: /workspace/aiclipse
    model_folders: [checkpoints, loras, vae, text_encoders, diffusion_models]
    vault_links:
      workflows: user/default/workflows
"""

RETURN = r"""
checkout_state:
  description: V(git) (handled), V(missing) or V(not a git checkout) (left alone).
  returned: always
  type: str
  sample: git
pristine:
  description: Whether C(git status) shows nothing at all afterwards (null in check mode or
    without a checkout).
  returned: always
  type: bool
  sample: true
status:
  description: The first lines of C(git status --porcelain) afterwards, when it is not empty.
  returned: when the checkout was handled outside check mode
  type: list
  elements: str
links_removed:
  description: Links removed from the checkout.
  returned: always
  type: list
  elements: str
  sample: [/workspace/aiclipse/ComfyUI/models]
git:
  description: Git settings of the older layout that were undone.
  returned: always
  type: list
  elements: str
  sample: ["clear the skip-worktree bit of 28 tracked file(s)"]
restored:
  description: Tracked files written back into the checkout.
  returned: always
  type: list
  elements: str
swept:
  description: Untracked entries moved from the checkout into the vault (C(from), C(to), C(clash)).
  returned: always
  type: list
  elements: dict
renamed:
  description: Clashes kept under a new name in the vault, as from/to pairs.
  returned: always
  type: list
  elements: dict
seeded:
  description: Tracked files under C(ComfyUI/models) copied into the vault's C(models).
  returned: always
  type: list
  elements: str
extra_model_paths:
  description: V(written), V(ok), V(yours) (a file of the user's, left alone) or V(skipped).
  returned: always
  type: str
  sample: ok
vault_links:
  description: One entry per O(vault_links) link (C(path), C(target), C(action) as
    M(aiclipse.comfyui.workspace_link) reports it, C(merged) counts or null).
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.printable import escape_text, printable
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.comfyui_layout import (
    FOLDERS,
    KEEP,
    ComfyUILayout,
    LayoutError,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import MergeError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import WorkspaceLinkError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            comfyui_dir=dict(type="path", required=True),
            vault=dict(type="path", required=True),
            folders=dict(type="list", elements="str", default=list(FOLDERS)),
            keep=dict(type="list", elements="str", default=list(KEEP)),
            model_folders=dict(type="list", elements="str", default=[]),
            extra_model_paths=dict(type="bool", default=True),
            vault_links=dict(type="dict", default={}),
            on_conflict=dict(type="str", default="merge", choices=["merge", "backup", "fail"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    layout = ComfyUILayout(
        params["comfyui_dir"],
        params["vault"],
        # binary_data: git reads NUL-separated paths on stdin, a trailing newline would be a path.
        run_command=lambda args, data=None: module.run_command(args, data=data, binary_data=data is not None),
        git_bin=module.get_bin_path("git"),
        stamp=time.strftime("%Y%m%d-%H%M%S"),
        check_mode=module.check_mode,
        folders=params["folders"],
        keep=params["keep"],
        model_folders=params["model_folders"],
        extra_model_paths=params["extra_model_paths"],
        vault_links=params["vault_links"],
        on_conflict=params["on_conflict"],
    )
    try:
        result = layout.run()
    except (LayoutError, MergeError, WorkspaceLinkError) as exc:
        module.fail_json(msg=escape_text(str(exc)), **printable(layout.result))
    except OSError as exc:
        module.fail_json(
            msg=escape_text(
                f"{exc.filename or ''}: {exc.strerror}; whatever was already moved is in the vault, nothing was deleted, fix "
                "the cause and start again"
            ),
            **printable(layout.result),
        )
    if module._diff:
        result["diff"] = {"before": "", "after": "".join(note + "\n" for note in layout.notes)}
    module.exit_json(**printable(result))


if __name__ == "__main__":
    main()
