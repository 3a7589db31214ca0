#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workspace_link
short_description: Make workspace shortcuts links into the persistent vault, never losing data
version_added: 0.1.0
description:
  - Makes each shortcut path under O(root) a symbolic link to a directory inside O(vault), the
    only storage that persists on a pod (for example C(/workspace/models) ->
    C(/workspace/aiclipse/models)).
  - A link that already points at the target is left alone. A link pointing elsewhere, or
    dangling, is replaced atomically; only the link is replaced, never anything it points to.
  - A real directory at a shortcut path is handled by O(on_conflict). C(merge) moves its contents
    into the target without overwriting anything, C(backup) renames it aside, C(fail) stops.
    A file at a shortcut path is always renamed aside (a file cannot be merged into a directory),
    unless O(on_conflict=fail).
  - Missing targets are created. Something that is not a directory where a target (or one of its
    parents inside the vault) must be is renamed aside first. A target that is a link to a
    directory (say a disk mounted elsewhere) is used as it is.
  - Every path is judged by what it resolves to (links, chains of links, and for folders their
    device and inode), never by its spelling, so a folder is never merged into itself.
  - "Adopted installs: when a target is a link to the shortcut's own real folder (C(aiclipse/models
    -> /workspace/models), or C(aiclipse/ComfyUI -> /workspace/ComfyUI)), the folder itself moves
    into the vault: the vault's link goes, the folder is renamed to the target (a verified copy
    across filesystems, the original removed only afterwards) and the shortcut becomes a link to
    it. A run killed at any step leaves every file reachable and the next run finishes the job."
  - A target that is a link whose chain passes through a shortcut path that is about to be
    relinked (C(aiclipse/models -> /workspace/models -> /data/models)) is pointed straight at the
    folder it shows (C(/data/models)) first, so no loop is made.
  - A target that resolves inside the folder that would be merged into it, to a folder that
    contains it, to the vault itself or through a link that would loop is refused, with what to
    do, before anything is touched.
  - Moves are crash-safe. On one filesystem entries are renamed or hard-linked, which never
    replaces an existing name. Across filesystems each file is copied to a hidden scratch name,
    flushed, compared with the original by SHA-256, published, and only then is the original
    deleted. A run killed half-way loses nothing and the next run finishes the job.
  - Scratch names (a partial copy C(.aiclipse-partial-*), a temporary link
    C(.<name>.aiclipse-link-*)) are recorded in C(<vault>/.state/workspace/scratch) before they
    are made; a later run removes only what is recorded there. A file of yours with such a name is
    never touched.
  - Every input of every shortcut is checked before anything is touched. Bad input, or a real
    directory with O(on_conflict=fail), leaves the disk exactly as it was.
  - A shortcut does not belong inside a git work tree that tracks files under it (git reports
    such paths as deleted once they are I(beyond a symbolic link), and C(git pull) stops). For
    ComfyUI, make the vault its C(--base-directory) instead (module
    M(aiclipse.comfyui.comfyui_layout)), so its checkout needs no link at all.
author:
  - aiclipse team (@aiclipse)
options:
  root:
    description:
      - Absolute directory the shortcut names are relative to (on a pod C(/workspace)).
    type: path
    required: true
  vault:
    description:
      - Absolute directory of the real storage (on a pod C(/workspace/aiclipse)). Every target
        must be inside it. It is created when missing and never replaced by a link.
    type: path
    required: true
  links:
    description:
      - Mapping of shortcut name to target.
      - A shortcut name is a path relative to O(root) without C(..); it must not be the vault,
        contain the vault, be a mount point, or contain another shortcut.
      - A target is a path relative to O(vault), or an absolute path inside it. It must not
        contain its shortcut or lie inside it.
      - Links are written with the absolute target path as their text.
    type: dict
    required: true
  directories:
    description:
      - Directories inside the vault that must exist (relative to O(vault), or absolute inside
        it), for the vault's layout. Created, with their parents, before the links; anything
        that is not a directory in their way is renamed aside, as for targets.
      - None may lie at or inside a shortcut path.
    type: list
    elements: str
    default: []
  on_conflict:
    description:
      - What to do with a real directory (not a link) found at a shortcut path.
      - C(merge) moves its contents into the target. An entry whose name is free in the target is
        moved; directories present on both sides are merged recursively; a file with the same
        bytes as the one in the target is dropped (its bytes are already there); any other
        clash keeps both, the incoming entry renamed C(<stem>.merged-<timestamp><suffix>).
      - A C(.git) directory present on both sides is never merged file by file (that would
        corrupt both repositories); the incoming one is kept whole as C(.git.merged-<timestamp>).
      - C(backup) renames the directory to C(<name>.backup-<timestamp>) beside the shortcut.
      - C(fail) stops with an error naming the path; nothing at all is changed. This includes a
        real directory that its target links to (an adopted install); C(merge) and C(backup)
        both adopt it (the folder is the vault's, there is nothing to merge or keep aside).
    type: str
    choices: [merge, backup, fail]
    default: merge
  adopt_only:
    description:
      - Only adopt installs, change nothing else. A shortcut that is a real folder while the vault
        has nothing at its target (or only a link to that folder) moves into the vault whole (a
        rename; a verified copy across filesystems) and becomes a link to it; every other
        shortcut, and the vault's layout, are left as they are. With O(on_conflict=fail) a folder
        the vault lacks is left alone too.
      - For example a ComfyUI clone another template left at C(/workspace/ComfyUI), adopted before
        a fresh one would be installed in the vault (role M(aiclipse.comfyui.workspace) does this
        at the start of a pod).
    type: bool
    default: false
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Reports every action, move and rename it would make, and makes none.
  diff_mode:
    support: full
    details: Before is what each changed shortcut path held; after is the link and what was moved.
  idempotent:
    support: full
    details: A second run with the same arguments reports C(changed=false).
notes:
  - Timestamps in backup and clash names are the time of the run, C(YYYYmmdd-HHMMSS); a counter is
    added when the name is taken.
  - Nothing is ever deleted except a source directory that the merge has emptied, a file whose
    identical bytes are already at the target under another name (another folder, or another
    hard link of the same file), a link that an adoption replaces by the folder it pointed to,
    recorded scratch entries and, across filesystems, an original after its verified copy is in
    place.
  - Names and link texts that are not UTF-8 are handled as the bytes they are; results show
    those bytes as C(\xNN) escapes.
seealso:
  - module: ansible.builtin.file
    description: Plain links, without the merge and backup handling.
"""

EXAMPLES = r"""
- name: Shortcuts of the pod workspace
  aiclipse.comfyui.workspace_link:
    root: /workspace
    vault: /workspace/aiclipse
    links:
      ComfyUI: ComfyUI
      models: models
      workflows: workflows
      input: ComfyUI/input
      output: ComfyUI/output
      logs: logs
      custom_nodes: ComfyUI/custom_nodes

- name: The vault layout, with ComfyUI's standard model folders
  aiclipse.comfyui.workspace_link:
    root: /workspace
    vault: /workspace/aiclipse
    links:
      models: models
    directories:
      - ComfyUI/user/default/workflows
      - models/checkpoints
      - models/loras

- name: Keep an old layout aside instead of merging it
  aiclipse.comfyui.workspace_link:
    root: /workspace
    vault: /workspace/aiclipse
    links:
      models: models
    on_conflict: backup
"""

RETURN = r"""
directories:
  description: One entry per item of O(directories).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Absolute path of the directory.
      type: str
    created:
      description: Whether it (or a parent inside the vault) was created.
      type: bool
    backup:
      description: Where something in its way was moved, when something was.
      type: str
links:
  description: One entry per shortcut, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The shortcut name as given.
      type: str
      sample: models
    path:
      description: Absolute shortcut path.
      type: str
      sample: /workspace/models
    target:
      description: Absolute target path (also the link text).
      type: str
      sample: /workspace/aiclipse/models
    action:
      description: What was (in check mode, would be) done at the shortcut path.
      type: str
      choices: [ok, created, relinked, merged, backed_up, adopted]
      sample: merged
    changed:
      description: Whether anything changed for this shortcut (its link or its target).
      type: bool
    before:
      description: What was at the shortcut path before the run.
      type: str
      sample: "/workspace/models: directory with 3 entries"
    backup:
      description: Where the directory or file found at the shortcut path was moved, when it was.
      type: str
      sample: /workspace/models.backup-20261128-164400
    merged:
      description: Counts of a merge; null when there was none.
      type: dict
      contains:
        moved:
          description: Entries moved to a free name in the target (a whole subtree counts once).
          type: int
        dropped_identical:
          description: Files dropped because the same bytes were already at the target.
          type: int
        renamed:
          description: Clashes kept under a new name, as from/to pairs.
          type: list
          elements: dict
        discarded_partials:
          description: Recorded scratch copies that a killed run left in the target, removed;
            their originals were still in place.
          type: int
    adopted:
      description: When the target was a link to the shortcut's own folder, how that folder
        moved into the vault; null otherwise.
      type: dict
      contains:
        from:
          description: The shortcut path the folder was at.
          type: str
        to:
          description: The target it is now.
          type: str
        how:
          description: C(renamed) on one filesystem, C(copied) (verified) across filesystems.
          type: str
    target_relinked:
      description: When the target was a link through a shortcut that changed, its old text and
        the folder it now links to directly; null otherwise.
      type: dict
      contains:
        was:
          description: The old link text.
          type: str
        now:
          description: The folder it showed, and now links to.
          type: str
    target_created:
      description: Whether the target directory (or a parent inside the vault) was created.
      type: bool
    target_backup:
      description: Where a non-directory in the way of the target was moved, when one was.
      type: str
    leftover_links_removed:
      description: Recorded temporary links that a killed run left beside the shortcut, removed.
      type: list
      elements: str
scratch_removed:
  description: Every recorded scratch entry (partial copy or temporary link) a killed run left,
    removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.printable import escape_text
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import MergeError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import (
    ON_CONFLICT_CHOICES,
    WorkspaceLinkError,
    WorkspaceLinks,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            vault=dict(type="path", required=True),
            links=dict(type="dict", required=True),
            directories=dict(type="list", elements="str", default=[]),
            on_conflict=dict(type="str", default="merge", choices=list(ON_CONFLICT_CHOICES)),
            adopt_only=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    # type=path expands ~ and variables but keeps relative paths relative: they are rejected.
    workspace = WorkspaceLinks(
        root=params["root"],
        vault=params["vault"],
        links=params["links"],
        directories=params["directories"],
        on_conflict=params["on_conflict"],
        check_mode=module.check_mode,
        adopt_only=params["adopt_only"],
    )
    try:
        workspace.validate()
        result = workspace.run()
    except (WorkspaceLinkError, MergeError) as exc:
        module.fail_json(msg=escape_text(str(exc)))
    except OSError as exc:
        module.fail_json(
            msg=escape_text(
                f"{exc.filename or ''}: {exc.strerror}; whatever was already moved is in place, nothing was deleted, "
                "fix the cause and run again"
            )
        )
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
