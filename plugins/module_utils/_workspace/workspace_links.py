# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make shortcut paths symbolic links to directories inside a vault, never losing data.

Every path is judged by what it resolves to (links, chains of links, and for folders device
and inode), never by how it is spelled. What is found at a shortcut decides the action:

=========================  ============================================================
found                      action
=========================  ============================================================
nothing                    ``created``: the link is made (parents too)
link with the right text   ``ok``: nothing
other or dangling link     ``relinked``: replaced atomically (the old link, never what it
                           points to)
real directory             ``on_conflict``: ``merged`` into the target (safe_merge rules),
                           ``backed_up`` (renamed ``<name>.backup-<stamp>``) or an error
real directory that the    ``adopted``: the vault's link to it goes, the folder itself moves
target links to            into the vault (a rename; a verified copy across filesystems)
                           and the shortcut becomes a link to it
file, socket, ...          ``backed_up`` (a file cannot be merged into a directory), or an
                           error with ``on_conflict=fail``
=========================  ============================================================

A target that is a link whose chain passes through a shortcut path that becomes a link
(``aiclipse/models -> /workspace/models -> /data/models``) is pointed straight at the folder it
shows (``/data/models``) first, so no loop is made. A target that resolves inside the folder
that would be merged into it, to a folder containing it, or to the vault itself, is refused.

Every input is validated, for every shortcut, before anything is touched, so bad input or
``on_conflict=fail`` leaves the disk exactly as it was. Scratch names (temporary links, partial
copies) are recorded in ``<vault>/.state/workspace/scratch`` before they are made; a later run
removes only what is recorded there.
"""

from __future__ import annotations

import collections
import os
import stat
import time

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.printable import printable
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import (
    LINK_TMP_MARK,
    MergeError,
    MergePlan,
    Scratch,
    apply_plan,
    clash_name,
    entry_kind,
    nearest_existing,
    preflight,
)

ON_CONFLICT_CHOICES = ("merge", "backup", "fail")
STATE_DIR = os.path.join(".state", "workspace")
# Links followed while resolving one path before it counts as a loop (Linux gives up at 40).
MAX_LINK_HOPS = 40


class WorkspaceLinkError(Exception):
    """Bad input or an unsafe situation; the message names the path and what to do."""


class Shortcut:
    """One shortcut: its name (relative to root), absolute path, and target inside the vault."""

    def __init__(self, name, path, target):
        self.name = name
        self.path = path
        self.target = target
        # 'renamed' or 'copied' when the target is a link to this shortcut's own folder.
        self.adopt = None
        # (old link text, folder) when the target is a link through a shortcut that changes.
        self.retarget = None


def _is_inside(path, parent):
    return path.startswith(parent.rstrip(os.sep) + os.sep)


def _at_or_inside(path, parent):
    return path == parent or _is_inside(path, parent)


def resolve(path, overrides=None):
    """Follow every link in absolute `path`, as the kernel would; (resolved path, links followed).

    `overrides` maps absolute paths to what will be there instead of what is there now:
    ``('link', text)`` or ``('dir',)``. The resolved path is None when the links loop.
    Components that do not exist are kept as written (like ``os.path.realpath``).
    """
    overrides = overrides or {}
    followed = []
    remaining = collections.deque(path.split(os.sep))
    current = os.sep
    hops = 0
    while remaining:
        part = remaining.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        found = overrides.get(candidate)
        if found is None:
            try:
                found = ("link", os.readlink(candidate)) if os.path.islink(candidate) else ("other",)
            except OSError:
                found = ("other",)
        if found[0] != "link":
            current = candidate
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return None, followed
        followed.append(candidate)
        text = found[1]
        if text.startswith(os.sep):
            current = os.sep
        remaining.extendleft(reversed(text.split(os.sep)))
    return current, followed


def canonical(path):
    """`path` with its parent folders resolved (the path itself is not followed).

    ``resolve`` names every link it follows this way, so a shortcut is recognised on a chain
    even when the root above it is itself a link.
    """
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name)


def describe(path):
    """One line saying what is at `path` now, for diffs and results."""
    kind = entry_kind(path)
    if kind == "link":
        text = os.readlink(path)
        return f"{path} -> {text}{('' if os.path.exists(path) else ' (dangling)')}"
    if kind == "dir":
        return f"{path}: directory with {len(os.listdir(path))} entries"
    if kind == "file":
        return f"{path}: file of {os.lstat(path).st_size} bytes"
    if kind == "other":
        return f"{path}: special file"
    return f"{path}: absent"


class WorkspaceLinks:
    """Validate, then apply (or, in check mode, only report) a set of shortcuts."""

    def __init__(
        self,
        root,
        vault,
        links,
        on_conflict="merge",
        check_mode=False,
        stamp=None,
        directories=None,
        state_dir=None,
        adopt_only=False,
    ):
        self.root = root
        # Only adopt: a real folder at a shortcut moves into the vault whole when the vault has
        # nothing at its target (or only a link to it); every other shape is left as it is.
        self.adopt_only = adopt_only
        self.vault = vault
        self.links = links
        self.directories = list(directories or [])
        self.directory_paths = []
        self.on_conflict = on_conflict
        self.check_mode = check_mode
        self.stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
        self.state_dir = state_dir
        self.scratch = None
        self.shortcuts = []

    # -- validation: nothing is touched here -------------------------------------------------

    def validate(self):
        errors = []
        for label, value in (("root", self.root), ("vault", self.vault)):
            if not isinstance(value, str) or not os.path.isabs(value):
                errors.append(f"{label} must be an absolute path, got {value!r}")
        if errors:
            raise WorkspaceLinkError("; ".join(errors))
        self.root = os.path.normpath(self.root)
        self.vault = os.path.normpath(self.vault)
        if self.vault == os.sep:
            raise WorkspaceLinkError("vault must not be the filesystem root /")
        if os.path.lexists(self.vault) and not os.path.isdir(self.vault):
            raise WorkspaceLinkError(
                f"vault {self.vault} exists but is not a directory; move it away or point vault elsewhere"
            )
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            raise WorkspaceLinkError(
                f"on_conflict must be one of {', '.join(ON_CONFLICT_CHOICES)}, got {self.on_conflict!r}"
            )
        if not isinstance(self.links, dict) or not self.links:
            raise WorkspaceLinkError("links must be a non-empty mapping of shortcut name -> target in the vault")
        self.state_dir = os.path.normpath(self.state_dir or os.path.join(self.vault, STATE_DIR))
        self.scratch = Scratch(self.state_dir)

        shortcuts = []
        for name, target in self.links.items():
            shortcut, error = self._parse(name, target)
            if error:
                errors.append(error)
            else:
                shortcuts.append(shortcut)
        for shortcut in shortcuts:
            errors.extend(self._check_against_others(shortcut, shortcuts))
        if not errors:
            errors.extend(self._judge_resolution(shortcuts))
        for shortcut in shortcuts:
            errors.extend(self._check_on_disk(shortcut))
        directory_paths = []
        for directory in self.directories:
            path, error = self._parse_directory(directory, shortcuts)
            if error:
                errors.append(error)
            else:
                directory_paths.append(path)
        if errors:
            raise WorkspaceLinkError("nothing was changed: " + "; ".join(dict.fromkeys(errors)))
        self.shortcuts = shortcuts
        self.directory_paths = directory_paths
        return shortcuts

    def _in_state_dir(self, path):
        return _at_or_inside(path, os.path.join(self.vault, ".state"))

    def _parse_directory(self, directory, shortcuts):
        if not isinstance(directory, str) or not directory.strip() or ".." in directory.split("/"):
            return None, f'directories must be paths inside the vault without "..", got {directory!r}'
        path = os.path.normpath(directory if os.path.isabs(directory) else os.path.join(self.vault, directory))
        if not _is_inside(path, self.vault):
            return None, f"directory {directory!r} resolves to {path}, outside the vault {self.vault}"
        if self._in_state_dir(path):
            return None, f"directory {directory!r} lies in the vault's state folder {self.vault}/.state"
        for shortcut in shortcuts:
            if path == shortcut.path or _is_inside(path, shortcut.path):
                return None, (
                    f"directory {directory!r} lies at or inside shortcut {shortcut.name!r}, which becomes a link; name it "
                    "through the link target instead"
                )
        return path, None

    def _parse(self, name, target):
        if not isinstance(name, str) or not name.strip():
            return None, f"shortcut names must be non-empty strings, got {name!r}"
        if os.path.isabs(name):
            return None, (
                f"shortcut {name!r} must be relative to root {self.root} (it is joined to root); use a name "
                'such as "models"'
            )
        if ".." in name.split("/") or os.path.normpath(name) == ".":
            return None, f'shortcut {name!r} must name a path below root {self.root}, without ".."'
        if not isinstance(target, str) or not target.strip():
            return None, f"target of shortcut {name!r} must be a non-empty path inside the vault"
        path = os.path.join(self.root, os.path.normpath(name))
        target_path = os.path.normpath(target if os.path.isabs(target) else os.path.join(self.vault, target))
        if target_path != self.vault and not _is_inside(target_path, self.vault):
            return None, (
                f"target {target!r} of shortcut {name!r} resolves to {target_path}, outside the vault {self.vault}; targets must be "
                "inside the vault"
            )
        if self._in_state_dir(target_path):
            return None, (
                f"target {target!r} of shortcut {name!r} lies in the vault's state folder {self.vault}/.state, which is "
                "the collection's own"
            )
        if path == self.vault:
            return None, f"shortcut {name!r} is the vault itself ({path}); the vault is never replaced by a link"
        if _is_inside(self.vault, path):
            return None, (
                f"shortcut {name!r} ({path}) contains the vault {self.vault}; replacing it by a link would hide the "
                "vault"
            )
        if target_path == path or _is_inside(target_path, path) or _is_inside(path, target_path):
            return None, (
                f"shortcut {name!r} ({path}) and its target {target_path} contain one another; a link there would "
                "loop or hide its own target"
            )
        return Shortcut(name, path, target_path), None

    @staticmethod
    def _check_against_others(shortcut, shortcuts):
        errors = []
        position = shortcuts.index(shortcut)
        for index, other in enumerate(shortcuts):
            if index == position:
                continue
            if other.path == shortcut.path and index < position:
                errors.append(f"shortcuts {other.name!r} and {shortcut.name!r} are the same path {shortcut.path}")
            if _is_inside(other.path, shortcut.path):
                errors.append(
                    f"shortcut {other.name!r} lies inside shortcut {shortcut.name!r}; it would be created through a link"
                )
            if other.target == shortcut.path or _is_inside(other.target, shortcut.path):
                errors.append(
                    f"target {other.target} of shortcut {other.name!r} lies inside shortcut {shortcut.name!r}, which becomes a link"
                )
        return errors

    # -- what each path resolves to, now and after the run ------------------------------------

    def _judge_resolution(self, shortcuts):
        """Decide adoptions and retargets, and refuse what resolves into the wrong place.

        Works on what each target resolves to now (``resolve``) and, for loops, on what it will
        resolve to once every shortcut is a link (the same walk with the planned changes as
        overrides).
        """
        errors = []
        real_vault = os.path.realpath(self.vault)
        changing_links = set(
            canonical(s.path) for s in shortcuts if entry_kind(s.path) == "link" and os.readlink(s.path) != s.target
        )
        for shortcut in shortcuts:
            errors.extend(self._judge_one(shortcut, real_vault, changing_links))
        if errors:
            return errors
        overrides = {}
        for shortcut in shortcuts:
            key = canonical(shortcut.target)
            if shortcut.adopt:
                overrides[key] = ("dir",)
            elif shortcut.retarget:
                overrides[key] = ("link", shortcut.retarget[1])
            elif not os.path.isdir(shortcut.target):
                overrides[key] = ("dir",)  # made a directory (what is there is moved aside)
        # Last, so they win: whatever a target's parents lead to, a shortcut path ends as a link.
        for shortcut in shortcuts:
            overrides[canonical(shortcut.path)] = ("link", shortcut.target)
        for shortcut in shortcuts:
            final, followed = resolve(shortcut.target, overrides)
            if final is None:
                errors.append(
                    f"the links on the way to {shortcut.target} ({' -> '.join(followed[:6])}) would form a loop once {shortcut.path} links to it; "
                    "point one of them at a real folder"
                )
        return errors

    def _judge_one(self, shortcut, real_vault, changing_links):
        path, target = shortcut.path, shortcut.target
        now, followed = resolve(target)
        if now is None:
            return []  # a loop with no folder at its end holds no data: moved aside like any link
        if _at_or_inside(real_vault, now):
            return [
                f"target {target} resolves to {now}, "
                f"{'the vault itself' if now == real_vault else 'which contains the vault'}; "
                "point it at a folder of its own inside the vault"
            ]
        if _is_inside(now, os.path.join(real_vault, ".state")) or now == os.path.join(real_vault, ".state"):
            return [f"target {target} resolves to {now}, in the vault's state folder; point it elsewhere"]
        through = [link for link in followed if link in changing_links]
        # The target's own entry is a link (not a path that only leads through one above it).
        own_link = entry_kind(target) == "link" and _at_or_inside(os.path.realpath(os.path.dirname(target)), real_vault)
        if through and not own_link:
            return [
                f"{target} reaches {now} through the link {followed[0]}, and {through[0]} will become a link to {target}: the links would "
                f"loop. Replace {followed[0]} by a real folder or point it at {now} directly"
            ]
        if through and os.path.isdir(now):
            # The vault folder keeps showing the same folder; only the hop through the shortcut
            # (which becomes a link to the target) goes. A dangling one is moved aside instead.
            shortcut.retarget = (os.readlink(target), now)
        if entry_kind(path) != "dir":
            return []
        if self.adopt_only and not os.path.lexists(target):
            return self._judge_missing_target(shortcut)
        real_path = os.path.realpath(path)
        if now == real_path or (os.path.exists(target) and os.path.samestat(os.stat(target), os.lstat(path))):
            return self._judge_adoption(shortcut, followed)
        if _is_inside(now, real_path):
            return [
                f"target {target} resolves to {now}, inside {path}, the folder that would be merged into it: a folder "
                "cannot be merged into its own subfolder. Move that folder into the vault yourself "
                f"(rm {target} && mv {now} {target}) and run again"
            ]
        if _is_inside(real_path, now):
            return [
                f"target {target} resolves to {now}, which contains {path}: merging it there would move a folder into "
                f"its own parent. Point {target} at a folder of its own"
            ]
        return []

    def _judge_adoption(self, shortcut, followed):
        """The target is the shortcut's own folder: adopt it, or say why not and what to do."""
        path, target = shortcut.path, shortcut.target
        real_path = os.path.realpath(path)
        parent = os.path.realpath(os.path.dirname(target))
        if (
            entry_kind(target) != "link"
            or _at_or_inside(parent, real_path)
            or not _at_or_inside(parent, os.path.realpath(self.vault))
        ):
            hop = followed[0] if followed else target
            return [
                f"{target} is the folder {path} itself, through the link {hop}, which is not the target: a folder "
                f"cannot be moved into itself. Replace {hop} by a real folder (or remove it) and run again"
            ]
        if self.on_conflict == "fail":
            if self.adopt_only:
                return []  # left as it is; the full run says what to do
            return [
                f"{path} is a real directory and the vault's {target} links to it; on_conflict=fail leaves it alone. "
                "Use on_conflict=merge or backup to move it into the vault, or move it there yourself "
                f"(rm {target} && mv {path} {target})"
            ]
        same_fs = os.lstat(path).st_dev == os.stat(parent).st_dev
        shortcut.adopt = "renamed" if same_fs else "copied"
        return []

    def _judge_missing_target(self, shortcut):
        """The vault has nothing at the target and the shortcut is a real folder: it moves in whole."""
        path, target = shortcut.path, shortcut.target
        if self.on_conflict == "fail" or os.path.ismount(path):
            return []  # left alone here; the full run says what to do
        parent = os.path.dirname(target)
        real_path = os.path.realpath(path)
        if _at_or_inside(os.path.realpath(nearest_existing(parent)), real_path):
            return [
                f"{target} lies inside {path}, the folder that would move there: a folder cannot be moved into "
                "itself. Point the vault elsewhere"
            ]
        same_fs = os.lstat(path).st_dev == os.stat(nearest_existing(parent)).st_dev
        shortcut.adopt = "renamed" if same_fs else "copied"
        return []

    def _check_on_disk(self, shortcut):
        if self.adopt_only and not shortcut.adopt:
            return []  # left as it is
        errors = []
        path = shortcut.path
        kind = entry_kind(path)
        if kind in ("dir", "file", "other") and os.path.ismount(path):
            errors.append(
                f"{path} is a mount point; a mount is never replaced by a link. Unmount it, or "
                "mount the volume at the vault instead"
            )
            return errors
        parent = os.path.dirname(path)
        while parent != self.root and len(parent) > len(self.root) and not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if os.path.lexists(parent) and not os.path.isdir(parent):
            errors.append(f"{path} cannot be created: {parent} is not a directory")
        if shortcut.adopt:
            try:
                # The folder moves whole: only what a copy across filesystems cannot take matters.
                preflight(path, os.path.dirname(shortcut.target), identity=False)
            except MergeError as exc:
                errors.append(str(exc))
        elif kind in ("file", "other", "dir") and self.on_conflict == "fail":
            errors.append(
                f"{path} is a real {('directory' if kind == 'dir' else 'file')}, not a link, and on_conflict=fail leaves it alone; move it "
                "away, or use on_conflict=merge or backup"
            )
        elif kind == "dir" and self.on_conflict == "merge":
            try:
                preflight(path, shortcut.target)
            except MergeError as exc:
                errors.append(str(exc))
        return errors

    # -- applying ------------------------------------------------------------------------------

    def run(self):
        if not self.shortcuts:
            self.validate()
        results = []
        before, after = [], []
        changed = False
        if self.adopt_only:
            return self._run_adoptions()
        if not os.path.isdir(self.vault):
            changed = True
            before.append(describe(self.vault))
            after.append(f"{self.vault}: directory")
            if not self.check_mode:
                os.makedirs(self.vault)
        swept = self.scratch.sweep(self.check_mode)
        if swept:
            changed = True
            after.extend(f"  removed {p}, left by an interrupted run" for p in swept)
        # Vault folders first: adopted folders move in and links through a shortcut are
        # straightened before anything is created inside them.
        vault_side = {}
        for shortcut in self.shortcuts:
            fields, notes, steps = self._plan_vault_side(shortcut)
            self._apply(steps)
            vault_side[shortcut.name] = fields, notes
        directories = []
        for path in self.directory_paths:
            steps, created, backup, moved_note = self._plan_directory(path)
            self._apply(steps)
            directories.append({"path": path, "created": created, "backup": backup})
            if created:
                changed = True
                before.append(describe(path))
                after.append(f"{path}: directory")
                after.extend([moved_note] if moved_note else [])
        for shortcut in self.shortcuts:
            record, steps = self._plan_one(shortcut, vault_side[shortcut.name], swept)
            self._apply(steps)
            results.append(record)
            changed = changed or record["changed"]
            if record["changed"]:
                before.append(record["before"])
                after.extend(record["after_lines"])
            del record["after_lines"]
        diff = {"before": "".join(line + "\n" for line in before), "after": "".join(line + "\n" for line in after)}
        return printable(
            {"changed": changed, "links": results, "directories": directories, "diff": diff, "scratch_removed": swept}
        )

    def _run_adoptions(self):
        """Adopt-only run: each shortcut's real folder that the vault lacks moves in; nothing else."""
        results, before, after = [], [], []
        for shortcut in self.shortcuts:
            record = {"name": shortcut.name, "path": shortcut.path, "target": shortcut.target, "action": "ok"}
            record["changed"] = bool(shortcut.adopt)
            record["adopted"] = None
            if shortcut.adopt:
                fields, notes, steps = self._plan_vault_side(shortcut)
                before.append(fields["before"])
                after.append(f"{shortcut.path} -> {shortcut.target}")
                after.extend(notes)
                if not self.check_mode and not os.path.isdir(self.vault):
                    os.makedirs(self.vault)
                self._apply(steps)
                record.update(action="adopted", adopted=fields["adopted"])
            results.append(record)
        diff = {"before": "".join(line + "\n" for line in before), "after": "".join(line + "\n" for line in after)}
        changed = any(record["changed"] for record in results)
        return printable({"changed": changed, "links": results, "directories": [], "diff": diff, "scratch_removed": []})

    def _plan_vault_side(self, shortcut):
        """Adopt the shortcut's folder, or straighten the target's link: (record fields, notes, steps)."""
        fields = {"before": describe(shortcut.path), "adopted": None, "target_relinked": None}
        notes, steps = [], []
        if shortcut.retarget:
            was, now = shortcut.retarget
            fields["target_relinked"] = {"was": was, "now": now}
            notes.append(f"  {shortcut.target} now links straight to {now} (was {was}, through a shortcut)")
            steps.append(("link", shortcut.target, now))
        elif shortcut.adopt:
            fields["adopted"] = {"from": shortcut.path, "to": shortcut.target, "how": shortcut.adopt}
            notes.append(
                f"  adopted {shortcut.path}: the folder itself moved into the vault as {shortcut.target} ({shortcut.adopt})"
            )
            steps.append(("adopt", shortcut))
        return fields, notes, steps

    def _apply(self, steps):
        """Carry out planned steps, in order; in check mode, none."""
        if self.check_mode:
            return
        for step in steps:
            action = step[0]
            if action == "mkdir":
                os.mkdir(step[1])
            elif action == "makedirs":
                os.makedirs(step[1], exist_ok=True)
            elif action == "rename":
                os.rename(step[1], step[2])
            elif action == "link":
                self._replace_link(step[1], step[2])
            elif action == "merge":
                apply_plan(step[1])
            elif action == "adopt":
                self._adopt(step[1])
            else:
                raise ValueError(f"unknown step {step!r}")

    def _adopt(self, shortcut):
        """Move the shortcut's real folder into the vault in place of the vault's link to it.

        Each step leaves a state the next run recognises: after the link goes, the folder at
        the shortcut is merged into a new target (the plain merge); after the rename, only the
        shortcut's link is missing (it is created).
        """
        path, target = shortcut.path, shortcut.target
        if entry_kind(target) == "link":
            os.unlink(target)  # only a link: the folder it showed is `path`
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        if shortcut.adopt == "renamed":
            os.rename(path, target)
        else:
            st = os.lstat(path)
            os.mkdir(target)
            os.chmod(target, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)  # exact mode once filled
            try:
                os.chown(target, st.st_uid, st.st_gid)
            except PermissionError:
                pass
            apply_plan(MergePlan(path, target, self.stamp, self.state_dir))
            os.chmod(target, stat.S_IMODE(st.st_mode))
        self._replace_link(path, target)

    def _plan_one(self, shortcut, vault_side, swept):
        """What making one shortcut right takes, decided before anything changes: (record, steps).

        The steps are the ones check mode reports; run() carries them out afterwards.
        """
        path, target = shortcut.path, shortcut.target
        fields, notes = vault_side
        record = {
            "name": shortcut.name,
            "path": path,
            "target": target,
            "before": fields["before"],
            "action": "ok",
            "changed": False,
            "target_created": False,
            "target_backup": None,
            "backup": None,
            "merged": None,
            "adopted": fields["adopted"],
            "target_relinked": fields["target_relinked"],
            "leftover_links_removed": [
                p
                for p in swept
                if os.path.dirname(p) == os.path.dirname(path)
                and os.path.basename(p).startswith(f".{os.path.basename(path)}{LINK_TMP_MARK}")
            ],
        }
        after = list(notes)
        steps = []

        if not shortcut.adopt:
            target_steps, record["target_created"], record["target_backup"], moved_note = self._plan_directory(target)
            steps.extend(target_steps)
            after.extend([moved_note] if moved_note else [])
            if record["target_created"]:
                after.append(f"  created directory {target}")

        kind = entry_kind(path)
        if shortcut.adopt:
            record["action"] = "adopted"
        elif kind == "link" and os.readlink(path) == target:
            pass
        elif kind == "link":
            record["action"] = "relinked"
            steps.append(("link", path, target))
        elif kind == "absent":
            record["action"] = "created"
            steps += [("makedirs", os.path.dirname(path)), ("link", path, target)]
        elif kind == "dir" and self.on_conflict == "merge":
            record["action"] = "merged"
            plan = MergePlan(path, target, self.stamp, self.state_dir)
            kept_both = plan.renamed_entries
            record["merged"] = {
                "moved": plan.count("move"),
                "renamed": kept_both,
                "dropped_identical": plan.count("drop"),
                "discarded_partials": sum(1 for p in swept if _is_inside(p, target)),
            }
            after.append(
                f"  merged {path} into {target}: {plan.count('move')} moved, {plan.count('drop')} identical dropped, {len(kept_both)} kept under a new name"
            )
            after.extend(f"  kept both: {item['from']} -> {item['to']}" for item in kept_both)
            steps += [("merge", plan), ("link", path, target)]
        else:
            record["action"] = "backed_up"
            record["backup"] = clash_name(path, self.stamp, "backup")
            after.append(f"  moved {path} aside to {record['backup']}")
            steps += [("rename", path, record["backup"]), ("link", path, target)]

        record["changed"] = (
            record["action"] != "ok"
            or record["target_created"]
            or bool(record["leftover_links_removed"])
            or bool(record["target_relinked"])
        )
        after.insert(0, f"{path} -> {target}")
        record["after_lines"] = after
        return record, steps

    def _plan_directory(self, path):
        """The steps that make `path` (inside the vault) a directory, moving aside anything in its way.

        A component that is a link to a directory is kept (a volume mounted elsewhere); the
        links that would make a merge go into its own source were refused by validate().
        Returns (steps, created, backup path or None, diff note about the backup or None).
        Nothing is ever deleted.
        """
        steps, created, backup, moved_note = [], False, None, None
        relative = os.path.relpath(path, self.vault)
        current = self.vault
        parts = [] if relative == "." else relative.split(os.sep)
        for part in parts:
            current = os.path.join(current, part)
            # Below a component this plan creates, nothing exists yet: each is created too.
            if not created and os.path.isdir(current):
                continue
            if not created and os.path.lexists(current):
                backup = clash_name(current, self.stamp, "backup")
                moved_note = f"  moved {describe(current)} aside to {backup} (a directory is needed there)"
                steps.append(("rename", current, backup))
            created = True
            steps.append(("mkdir", current))
        return steps, created, backup, moved_note

    def _replace_link(self, path, text):
        """Point `path` at `text` atomically: a recorded scratch link renamed over `path`.

        rename() replaces a link itself, never what it points to; `path` is a link or absent here.
        """
        tmp, token = self.scratch.new_link(path, text)
        try:
            os.rename(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            self.scratch.forget(token)
