# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make shortcut paths symbolic links to directories inside a vault, never losing data.

What is found at a shortcut decides the action:

=========================  ============================================================
found                      action
=========================  ============================================================
nothing                    ``created``: the link is made (parents too)
link with the right text   ``ok``: nothing
other or dangling link     ``relinked``: replaced atomically (the old link, never what it
                           points to)
real directory             ``on_conflict``: ``merged`` into the target (safe_merge rules),
                           ``backed_up`` (renamed ``<name>.backup-<stamp>``) or an error
file, socket, ...          ``backed_up`` (a file cannot be merged into a directory), or an
                           error with ``on_conflict=fail``
=========================  ============================================================

Every input is validated, for every shortcut, before anything is touched, so bad input or
``on_conflict=fail`` leaves the disk exactly as it was.
"""

from __future__ import annotations

import os
import time

from ansible_collections.aiclipse.comfyui.plugins.module_utils.git_link_guard import GitGuardError, GitLinkGuard
from ansible_collections.aiclipse.comfyui.plugins.module_utils.safe_merge import (
    MergeError, MergePlan, apply_plan, clash_name, entry_kind, preflight,
)

ON_CONFLICT_CHOICES = ('merge', 'backup', 'fail')


class WorkspaceLinkError(Exception):
    """Bad input or an unsafe situation; the message names the path and what to do."""


class Shortcut:
    """One shortcut: its name (relative to root), absolute path, and target inside the vault."""

    def __init__(self, name, path, target):
        self.name = name
        self.path = path
        self.target = target
        self.git_state = None


def _is_inside(path, parent):
    return path.startswith(parent.rstrip(os.sep) + os.sep)


def describe(path):
    """One line saying what is at `path` now, for diffs and results."""
    kind = entry_kind(path)
    if kind == 'link':
        text = os.readlink(path)
        return '%s -> %s%s' % (path, text, '' if os.path.exists(path) else ' (dangling)')
    if kind == 'dir':
        return '%s: directory with %d entries' % (path, len(os.listdir(path)))
    if kind == 'file':
        return '%s: file of %d bytes' % (path, os.lstat(path).st_size)
    if kind == 'other':
        return '%s: special file' % path
    return '%s: absent' % path


class WorkspaceLinks:
    """Validate, then apply (or, in check mode, only report) a set of shortcuts."""

    def __init__(self, root, vault, links, on_conflict='merge', protect_git=True, check_mode=False,
                 run_command=None, git_bin=None, stamp=None, directories=None):
        self.root = root
        self.vault = vault
        self.links = links
        self.directories = list(directories or [])
        self.directory_paths = []
        self.on_conflict = on_conflict
        self.check_mode = check_mode
        self.stamp = stamp or time.strftime('%Y%m%d-%H%M%S')
        self.git = GitLinkGuard(run_command, git_bin, self.stamp) if protect_git and run_command else None
        self.shortcuts = []

    # -- validation: nothing is touched here -------------------------------------------------

    def validate(self):
        errors = []
        for label, value in (('root', self.root), ('vault', self.vault)):
            if not isinstance(value, str) or not os.path.isabs(value):
                errors.append('%s must be an absolute path, got %r' % (label, value))
        if errors:
            raise WorkspaceLinkError('; '.join(errors))
        self.root = os.path.normpath(self.root)
        self.vault = os.path.normpath(self.vault)
        if self.vault == os.sep:
            raise WorkspaceLinkError('vault must not be the filesystem root /')
        if os.path.lexists(self.vault) and not os.path.isdir(self.vault):
            raise WorkspaceLinkError('vault %s exists but is not a directory; move it away or point vault '
                                     'elsewhere' % self.vault)
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            raise WorkspaceLinkError('on_conflict must be one of %s, got %r' % (', '.join(ON_CONFLICT_CHOICES), self.on_conflict))
        if not isinstance(self.links, dict) or not self.links:
            raise WorkspaceLinkError('links must be a non-empty mapping of shortcut name -> target in the vault')

        shortcuts = []
        for name, target in self.links.items():
            shortcut, error = self._parse(name, target)
            if error:
                errors.append(error)
            else:
                shortcuts.append(shortcut)
        for shortcut in shortcuts:
            errors.extend(self._check_against_others(shortcut, shortcuts))
            errors.extend(self._check_on_disk(shortcut))
        directory_paths = []
        for directory in self.directories:
            path, error = self._parse_directory(directory, shortcuts)
            if error:
                errors.append(error)
            else:
                directory_paths.append(path)
        if errors:
            raise WorkspaceLinkError('nothing was changed: ' + '; '.join(errors))
        self.shortcuts = shortcuts
        self.directory_paths = directory_paths
        return shortcuts

    def _parse_directory(self, directory, shortcuts):
        if not isinstance(directory, str) or not directory.strip() or '..' in directory.split('/'):
            return None, 'directories must be paths inside the vault without "..", got %r' % (directory,)
        path = os.path.normpath(directory if os.path.isabs(directory) else os.path.join(self.vault, directory))
        if not _is_inside(path, self.vault):
            return None, 'directory %r resolves to %s, outside the vault %s' % (directory, path, self.vault)
        for shortcut in shortcuts:
            if path == shortcut.path or _is_inside(path, shortcut.path):
                return None, ('directory %r lies at or inside shortcut %r, which becomes a link; name it '
                              'through the link target instead' % (directory, shortcut.name))
        return path, None

    def _parse(self, name, target):
        if not isinstance(name, str) or not name.strip():
            return None, 'shortcut names must be non-empty strings, got %r' % (name,)
        if os.path.isabs(name):
            return None, ('shortcut %r must be relative to root %s (it is joined to root); use a name '
                          'such as "models"' % (name, self.root))
        if '..' in name.split('/') or os.path.normpath(name) == '.':
            return None, 'shortcut %r must name a path below root %s, without ".."' % (name, self.root)
        if not isinstance(target, str) or not target.strip():
            return None, 'target of shortcut %r must be a non-empty path inside the vault' % name
        path = os.path.join(self.root, os.path.normpath(name))
        target_path = os.path.normpath(target if os.path.isabs(target) else os.path.join(self.vault, target))
        if target_path != self.vault and not _is_inside(target_path, self.vault):
            return None, ('target %r of shortcut %r resolves to %s, outside the vault %s; targets must be '
                          'inside the vault' % (target, name, target_path, self.vault))
        if path == self.vault:
            return None, 'shortcut %r is the vault itself (%s); the vault is never replaced by a link' % (name, path)
        if _is_inside(self.vault, path):
            return None, ('shortcut %r (%s) contains the vault %s; replacing it by a link would hide the '
                          'vault' % (name, path, self.vault))
        if target_path == path or _is_inside(target_path, path) or _is_inside(path, target_path):
            return None, ('shortcut %r (%s) and its target %s contain one another; a link there would '
                          'loop or hide its own target' % (name, path, target_path))
        return Shortcut(name, path, target_path), None

    @staticmethod
    def _check_against_others(shortcut, shortcuts):
        errors = []
        position = shortcuts.index(shortcut)
        for index, other in enumerate(shortcuts):
            if index == position:
                continue
            if other.path == shortcut.path and index < position:
                errors.append('shortcuts %r and %r are the same path %s' % (other.name, shortcut.name, shortcut.path))
            if _is_inside(other.path, shortcut.path):
                errors.append('shortcut %r lies inside shortcut %r; it would be created through a link'
                              % (other.name, shortcut.name))
            if other.target == shortcut.path or _is_inside(other.target, shortcut.path):
                errors.append('target %s of shortcut %r lies inside shortcut %r, which becomes a link'
                              % (other.target, other.name, shortcut.name))
        return errors

    def _check_on_disk(self, shortcut):
        errors = []
        path = shortcut.path
        kind = entry_kind(path)
        if kind in ('dir', 'file', 'other') and os.path.ismount(path):
            errors.append('%s is a mount point; a mount is never replaced by a link. Unmount it, or '
                          'mount the volume at the vault instead' % path)
            return errors
        parent = os.path.dirname(path)
        while parent != self.root and len(parent) > len(self.root) and not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if os.path.lexists(parent) and not os.path.isdir(parent):
            errors.append('%s cannot be created: %s is not a directory' % (path, parent))
        if kind in ('file', 'other', 'dir') and self.on_conflict == 'fail':
            errors.append('%s is a real %s, not a link, and on_conflict=fail leaves it alone; move it '
                          'away, or use on_conflict=merge or backup' % (path, 'directory' if kind == 'dir' else 'file'))
        if kind == 'dir' and self.on_conflict == 'merge':
            try:
                preflight(path, shortcut.target)
            except MergeError as exc:
                errors.append(str(exc))
        if self.git is not None:
            try:
                shortcut.git_state = self.git.inspect(path)
                if shortcut.git_state is not None:
                    self.git.pending(shortcut.git_state)
            except GitGuardError as exc:
                errors.append(str(exc))
        return errors

    # -- applying ------------------------------------------------------------------------------

    def run(self):
        if not self.shortcuts:
            self.validate()
        results = []
        before, after = [], []
        changed = False
        if not os.path.isdir(self.vault):
            changed = True
            before.append(describe(self.vault))
            after.append('%s: directory' % self.vault)
            if not self.check_mode:
                os.makedirs(self.vault)
        directories = []
        for path in self.directory_paths:
            created, backup, moved_note = self._ensure_directory(path)
            directories.append({'path': path, 'created': created, 'backup': backup})
            if created:
                changed = True
                before.append(describe(path))
                after.append('%s: directory' % path)
                after.extend([moved_note] if moved_note else [])
        for shortcut in self.shortcuts:
            record = self._one(shortcut)
            results.append(record)
            changed = changed or record['changed']
            if record['changed']:
                before.append(record['before'])
                after.extend(record['after_lines'])
            del record['after_lines']
        diff = {'before': ''.join(line + '\n' for line in before),
                'after': ''.join(line + '\n' for line in after)}
        return {'changed': changed, 'links': results, 'directories': directories, 'diff': diff}

    def _one(self, shortcut):
        path, target = shortcut.path, shortcut.target
        record = {'name': shortcut.name, 'path': path, 'target': target, 'before': describe(path),
                  'action': 'ok', 'changed': False, 'target_created': False, 'target_backup': None,
                  'backup': None, 'merged': None, 'git': [], 'seeded': [], 'leftover_links_removed': []}
        after = []
        record['after_lines'] = after

        target_notes = self._ensure_target(shortcut, record)
        after.extend(target_notes)
        if shortcut.git_state is not None:
            record['git'] = self.git.pending(shortcut.git_state)
            if record['git'] and not self.check_mode:
                self.git.apply(shortcut.git_state)
            after.extend('  git: %s' % note for note in record['git'])

        leftovers = leftover_links(path)
        if leftovers:
            record['leftover_links_removed'] = leftovers
            after.extend('  removed temporary link %s left by an interrupted run' % p for p in leftovers)
            if not self.check_mode:
                for leftover in leftovers:
                    os.unlink(leftover)

        kind = entry_kind(path)
        if kind == 'link' and os.readlink(path) == target:
            pass
        elif kind == 'link':
            record['action'] = 'relinked'
            if not self.check_mode:
                _replace_link(path, target)
        elif kind == 'absent':
            record['action'] = 'created'
            if not self.check_mode:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _replace_link(path, target)
        elif kind == 'dir' and self.on_conflict == 'merge':
            record['action'] = 'merged'
            plan = MergePlan(path, target, self.stamp)
            record['merged'] = {'moved': plan.count('move'), 'renamed': plan.renamed,
                                'dropped_identical': plan.count('drop'),
                                'discarded_partials': plan.count('discard_partial')}
            after.append('  merged %s into %s: %d moved, %d identical dropped, %d kept under a new name'
                         % (path, target, plan.count('move'), plan.count('drop'), len(plan.renamed)))
            after.extend('  kept both: %s -> %s' % (item['from'], item['to']) for item in plan.renamed)
            if not self.check_mode:
                apply_plan(plan)
                _replace_link(path, target)
        else:
            record['action'] = 'backed_up'
            record['backup'] = clash_name(path, self.stamp, 'backup')
            after.append('  moved %s aside to %s' % (path, record['backup']))
            if not self.check_mode:
                os.rename(path, record['backup'])
                _replace_link(path, target)

        if shortcut.git_state is not None:
            incoming = path if self.check_mode and record['action'] == 'merged' else None
            missing = self.git.missing_placeholders(shortcut.git_state, target, incoming)
            record['seeded'] = [dest for dest, dummy, dummy2 in missing]
            after.extend('  seeded tracked placeholder %s' % dest for dest in record['seeded'])
            if missing and not self.check_mode:
                self.git.seed(shortcut.git_state, missing)

        record['changed'] = (record['action'] != 'ok' or record['target_created'] or bool(record['git'])
                             or bool(record['seeded']) or bool(record['leftover_links_removed']))
        after.insert(0, '%s -> %s' % (path, target))
        return record

    def _ensure_target(self, shortcut, record):
        created, backup, moved_note = self._ensure_directory(shortcut.target)
        record['target_created'] = created
        record['target_backup'] = backup
        notes = [moved_note] if moved_note else []
        if created:
            notes.append('  created directory %s' % shortcut.target)
        return notes

    def _ensure_directory(self, path):
        """Make `path` (inside the vault) a directory, moving aside anything in its way.

        Returns (created, backup path or None, diff note about the backup or None). Nothing
        is ever deleted.
        """
        created, backup, moved_note = False, None, None
        relative = os.path.relpath(path, self.vault)
        current = self.vault
        parts = [] if relative == '.' else relative.split(os.sep)
        for part in parts:
            current = os.path.join(current, part)
            if os.path.isdir(current):
                continue  # a directory, or a link to one (a volume mounted elsewhere is fine)
            if os.path.lexists(current):
                backup = clash_name(current, self.stamp, 'backup')
                moved_note = '  moved %s aside to %s (a directory is needed there)' % (describe(current), backup)
                if not self.check_mode:
                    os.rename(current, backup)
            created = True
            if not self.check_mode:
                os.mkdir(current)
        return created, backup, moved_note


LINK_TMP_MARK = '.aiclipse-link-'


def _replace_link(path, text):
    """Point `path` at `text` atomically: a new link under a hidden name renamed over `path`.

    rename() replaces a link itself, never what it points to; `path` is a link or absent here.
    """
    parent, name = os.path.split(path)
    for attempt in range(100):
        tmp = os.path.join(parent, '.%s%s%d-%d' % (name, LINK_TMP_MARK, os.getpid(), attempt))
        try:
            os.symlink(text, tmp)
            break
        except FileExistsError:
            continue
    else:
        raise WorkspaceLinkError('could not find a free temporary name beside %s' % path)
    try:
        os.rename(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def leftover_links(path):
    """Temporary links a killed run left beside `path` (links only: removing them loses no data)."""
    parent, name = os.path.split(path)
    prefix = '.%s%s' % (name, LINK_TMP_MARK)
    try:
        names = os.listdir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [os.path.join(parent, n) for n in sorted(names)
            if n.startswith(prefix) and entry_kind(os.path.join(parent, n)) == 'link']
