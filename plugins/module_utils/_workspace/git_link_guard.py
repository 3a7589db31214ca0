# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep ``git pull`` working when a tracked directory of a work tree becomes a symbolic link.

ComfyUI tracks placeholder files such as ``models/checkpoints/put_checkpoints_here``. Once
``models`` is a link, git sees those paths "beyond a symbolic link": it reports them deleted
and the link as untracked, and ``git pull`` aborts as soon as upstream touches anything under
``models/`` ("local changes would be overwritten", "untracked working tree files would be
overwritten"). Worse, a checkout that did write there would replace the link by a directory.

The fix, tried against git's own behaviour (see tests/integration/test_workspace_link_git.py):

* a non-cone sparse checkout of ``/*`` minus ``!/<dir>/`` tells git never to write under the
  directory, including files upstream adds there later;
* the skip-worktree bit on every tracked entry under it stops git from looking at the
  working-tree copies, which now live behind the link;
* ``sparse.expectFilesOutsideOfPatterns=true`` stops git (2.37+) from clearing those bits
  when it finds the files present through the link, which would bring the trap back;
* ``/<dir>`` in ``info/exclude`` keeps ``git status`` clean, so updaters that refuse a dirty
  tree still run.

The tracked placeholder files are also seeded into the link's target when missing, so a
folder upstream adds later still shows up in the vault.
"""

from __future__ import annotations

import os
import tempfile

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import (
    PARTIAL_PREFIX, MergeError, clash_name, publish_no_clobber,
)


class GitGuardError(Exception):
    """git refused or the repository is set up in a way we must not change; says what to do."""


class GitState:
    """What git knows about the tracked paths under one directory of a work tree."""

    def __init__(self, top, rel, entries, sparse_enabled, cone, expect_outside, sparse_file,
                 sparse_lines, exclude_file, exclude_lines):
        self.top = top
        self.rel = rel
        self.entries = entries          # list of (tag, mode, sha, path)
        self.sparse_enabled = sparse_enabled
        self.cone = cone
        self.expect_outside = expect_outside
        self.sparse_file = sparse_file
        self.sparse_lines = sparse_lines
        self.exclude_file = exclude_file
        self.exclude_lines = exclude_lines

    @property
    def sparse_pattern(self):
        return '!/%s/' % self.rel

    @property
    def exclude_pattern(self):
        return '/%s' % self.rel

    @property
    def unflagged(self):
        return [path for tag, dummy, dummy2, path in self.entries if tag != 'S']


def find_git_dir(start):
    """The nearest directory at or above `start` holding a ``.git`` entry, or None."""
    current = os.path.abspath(start)
    while True:
        if os.path.lexists(os.path.join(current, '.git')):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


class GitLinkGuard:
    """Inspect and fix a work tree so a tracked directory can be a link (see module docstring)."""

    def __init__(self, run_command, git_bin, stamp):
        self._run = run_command
        self._git = git_bin
        self._stamp = stamp
        self._trusted = []

    def _git_cmd(self, top, args, data=None, check=True):
        # The work tree may belong to another uid (a volume made elsewhere); git would then
        # refuse it as "dubious ownership". We manage this very checkout, so trust it by name.
        trust = []
        for path in self._trusted:
            trust += ['-c', 'safe.directory=%s' % path]
        rc, out, err = self._run([self._git] + trust + ['-C', top] + args, data=data)
        if check and rc != 0:
            raise GitGuardError('git %s in %s failed (rc=%s): %s' % (' '.join(args[:2]), top, rc, (err or out).strip()))
        return rc, out

    def _config(self, top, name):
        rc, out = self._git_cmd(top, ['config', '--get', name], check=False)
        return out.strip().lower() if rc == 0 else ''

    def inspect(self, link_path):
        """GitState for `link_path` when it lies in a work tree that tracks files under it, else None."""
        parent = os.path.dirname(link_path)
        work_tree = find_git_dir(parent) if os.path.isdir(parent) else None
        if work_tree is None:
            return None
        self._trusted = sorted({work_tree, os.path.realpath(work_tree)})
        if self._git is None:
            raise GitGuardError('%s is inside a git work tree but git is not installed; install git or set '
                                'protect_git=false' % link_path)
        dummy, top = self._git_cmd(parent, ['rev-parse', '--show-toplevel'])
        top = top.strip()
        rel = os.path.relpath(os.path.join(os.path.realpath(parent), os.path.basename(link_path)), top)
        if rel.startswith('..'):
            return None
        dummy, listing = self._git_cmd(top, ['ls-files', '-z', '-s', '-v', '--', rel + '/'])
        entries = []
        for record in listing.split('\0'):
            if not record:
                continue
            meta, path = record.split('\t', 1)
            tag, mode, sha = meta.split()[:3]
            entries.append((tag, mode, sha, path))
        if not entries:
            return None
        dummy, sparse_file = self._git_cmd(top, ['rev-parse', '--git-path', 'info/sparse-checkout'])
        dummy, exclude_file = self._git_cmd(top, ['rev-parse', '--git-path', 'info/exclude'])
        sparse_file = os.path.join(top, sparse_file.strip())
        exclude_file = os.path.join(top, exclude_file.strip())
        return GitState(top, rel, entries,
                        sparse_enabled=self._config(top, 'core.sparseCheckout') == 'true',
                        cone=self._config(top, 'core.sparseCheckoutCone') == 'true',
                        expect_outside=self._config(top, 'sparse.expectFilesOutsideOfPatterns') == 'true',
                        sparse_file=sparse_file, sparse_lines=_read_lines(sparse_file),
                        exclude_file=exclude_file, exclude_lines=_read_lines(exclude_file))

    @staticmethod
    def pending(state):
        """Human-readable list of what apply() would change; empty when git is already set up."""
        todo = []
        if state.sparse_enabled and state.cone:
            raise GitGuardError('%s uses a cone-mode sparse checkout, which cannot exclude %s/; run '
                                '"git sparse-checkout disable" there or set protect_git=false'
                                % (state.top, state.rel))
        if not state.sparse_enabled:
            todo.append('enable a non-cone sparse checkout in %s' % state.top)
        if state.sparse_pattern not in state.sparse_lines or (not state.sparse_enabled and '/*' not in state.sparse_lines):
            todo.append('add %s to %s' % (state.sparse_pattern, state.sparse_file))
        if not state.expect_outside:
            todo.append('set sparse.expectFilesOutsideOfPatterns=true in %s' % state.top)
        if state.exclude_pattern not in state.exclude_lines:
            todo.append('add %s to %s' % (state.exclude_pattern, state.exclude_file))
        if state.unflagged:
            todo.append('mark %d tracked path(s) under %s/ skip-worktree' % (len(state.unflagged), state.rel))
        return todo

    def apply(self, state):
        """Set git up as pending() describes. Each step is idempotent, so a crash is harmless."""
        top = state.top
        if not state.sparse_enabled:
            # An inactive sparse-checkout file may hold stale patterns that would now take
            # effect; keep it under a backup name and start from "everything but the link".
            if state.sparse_lines and state.sparse_lines != ['/*', state.sparse_pattern]:
                os.rename(state.sparse_file, clash_name(state.sparse_file, self._stamp, 'backup'))
                state.sparse_lines = []
            if '/*' not in state.sparse_lines:
                _append_lines(state.sparse_file, ['/*'])
                state.sparse_lines.append('/*')
        if state.sparse_pattern not in state.sparse_lines:
            _append_lines(state.sparse_file, [state.sparse_pattern])
        if state.exclude_pattern not in state.exclude_lines:
            _append_lines(state.exclude_file, [state.exclude_pattern])
        if not state.expect_outside:
            self._git_cmd(top, ['config', 'sparse.expectFilesOutsideOfPatterns', 'true'])
        if not state.sparse_enabled:
            self._git_cmd(top, ['config', 'core.sparseCheckoutCone', 'false'])
            self._git_cmd(top, ['config', 'core.sparseCheckout', 'true'])
        if state.unflagged:
            self._git_cmd(top, ['update-index', '-z', '--skip-worktree', '--stdin'],
                          data='\0'.join(state.unflagged) + '\0')

    def missing_placeholders(self, state, target, incoming=None):
        """Tracked regular files under the link that the target lacks: (dest, sha, mode).

        `incoming` is a real directory about to be merged into the target (check mode): what it
        holds will arrive by the merge, so it is not counted as missing.
        """
        missing = []
        prefix = state.rel + '/'
        for dummy, mode, sha, path in state.entries:
            if mode not in ('100644', '100755'):
                continue
            relative = path[len(prefix):]
            dest = os.path.join(target, relative)
            if incoming and os.path.lexists(os.path.join(incoming, relative)):
                continue
            if not os.path.lexists(dest) and _parents_are_dirs(target, dest):
                missing.append((dest, sha, mode))
        return missing

    def seed(self, state, missing):
        """Write the missing placeholder files from git's object store, never overwriting."""
        for dest, sha, mode in missing:
            dummy, content = self._git_cmd(state.top, ['cat-file', 'blob', sha])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=os.path.dirname(dest))
            try:
                with os.fdopen(fd, 'wb') as handle:
                    # run_command decodes with surrogateescape; this gives back git's bytes.
                    handle.write(content.encode('utf-8', 'surrogateescape'))
                os.chmod(tmp, 0o755 if mode == '100755' else 0o644)
                try:
                    publish_no_clobber(tmp, dest)
                except MergeError:
                    pass  # someone created it meanwhile: theirs wins, ours was only a placeholder
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)


def _parents_are_dirs(top, path):
    """True when every existing directory between `top` and `path` is a directory (or a link to one)."""
    current = os.path.dirname(path)
    while len(current) > len(top):
        if os.path.lexists(current) and not os.path.isdir(current):
            return False
        current = os.path.dirname(current)
    return True


def _read_lines(path):
    try:
        with open(path) as handle:
            return [line.strip() for line in handle.read().splitlines()]
    except FileNotFoundError:
        return []


def _append_lines(path, lines):
    """Append lines to a small git control file atomically (temp file + rename in its directory)."""
    current = ''
    if os.path.exists(path):
        with open(path) as handle:
            current = handle.read()
    if current and not current.endswith('\n'):
        current += '\n'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path))
    with os.fdopen(fd, 'w') as handle:
        handle.write(current + ''.join(line + '\n' for line in lines))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
