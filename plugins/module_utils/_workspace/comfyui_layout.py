# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ComfyUI's checkout holds code only; the vault is ComfyUI's base directory.

ComfyUI is started with ``--base-directory <vault>``: its ``folder_paths`` then reads models,
custom nodes, input, output, temp and user data from the vault, and the git checkout stays
exactly as git made it. Every updater (``git pull``, ComfyUI's pygit2 ``update.py``,
ComfyUI-Manager) then works on a checkout it understands, by construction.

This module keeps it that way at every start, and migrates vaults of the older layout, where
``ComfyUI/models`` was a link into the vault hidden from git by a sparse checkout,
skip-worktree bits and ``info/exclude``, and custom nodes, input, output and user data lived
inside the checkout. In order, each step idempotent so a run killed at any point is finished
by the next one:

1. a link at ``ComfyUI/<folder>`` that leads to the vault's folder (or nowhere) is removed: it
   is only a link, what it showed is in the vault;
2. the git settings the older layout made are undone: the ``!/<folder>/`` sparse pattern (the
   sparse checkout is switched off when nothing else is in it),
   ``sparse.expectFilesOutsideOfPatterns``, the ``/<folder>`` line of ``info/exclude`` and the
   skip-worktree bits under the folders;
3. tracked files missing from the work tree under the folders are written back from git's
   object store (temporary file + no-clobber link, never over an existing file);
4. everything under ``ComfyUI/<folder>`` that git does not track (except what ComfyUI keeps
   there itself, such as its ``user/comfyui.db``) moves into ``<vault>/<folder>`` with the
   merge rules of safe_merge: nothing is overwritten, identical files are kept once, a clash
   keeps both (the incoming one renamed). The entries are first renamed into a staging folder
   ``ComfyUI/<folder>/.aiclipse-sweep`` (same filesystem), then merged from there, so a killed
   run leaves them in one place the next run finishes from;
5. the folders and files git tracks under ``ComfyUI/models`` (placeholders, configs) are copied
   into ``<vault>/models`` where missing, so a model folder upstream adds shows up in the vault;
6. optionally ``ComfyUI/extra_model_paths.yaml`` (ignored by ComfyUI's own ``.gitignore``) is
   written so that a ``main.py`` started by hand, without ``--base-directory``, still finds the
   vault's models; a file of that name the user wrote is never replaced;
7. links inside the vault for paths of the older layout (``aiclipse/workflows`` ->
   ``user/default/workflows``) are made with workspace_link's rules: a real folder there is
   merged into the target first (the older layout's second workflows folder), nothing lost.
"""

from __future__ import annotations

import fnmatch
import os
import stat

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import git_argv
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import (
    MergeError,
    MergePlan,
    Scratch,
    apply_plan,
    clash_name,
    entry_kind,
    preflight,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import WorkspaceLinks

FOLDERS = ("models", "custom_nodes", "input", "output", "user")
# Files ComfyUI writes into its own directory whatever the base directory: its database
# (comfy/cli_args.py defaults --database-url to <ComfyUI>/user/comfyui.db).
KEEP = ("user/comfyui.db", "user/comfyui.db-*")
STAGE_NAME = ".aiclipse-sweep"
# The journal of this module's temporary files (restored tracked files, seeded model files, the
# small files rewritten in place): each is recorded here before it exists, and a later run
# removes only what is recorded. A user's file is never taken for one by its name.
STATE_DIR = os.path.join(".state", "layout")
MANAGED_MARK = "# Written by aiclipse.comfyui (comfyui_layout); delete this line to keep your own edits."


class LayoutError(Exception):
    """A state that cannot be handled safely; the message names the path and what to do."""


def _inside(path, parent):
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def render_extra_model_paths(vault, model_folders):
    """ComfyUI's extra_model_paths.yaml pointing every model folder at the vault (is_default)."""
    lines = [
        MANAGED_MARK,
        "# A main.py started by hand without --base-directory sees the vault's models too.",
        "aiclipse_vault:",
        f"    base_path: {os.path.join(vault, 'models')}",
        "    is_default: true",
    ]
    lines.extend(f"    {name}: {name}/" for name in sorted(set(model_folders)))
    return "\n".join(lines) + "\n"


class ComfyUILayout:
    """Plan and apply the steps of the module docstring for one checkout and one vault.

    ``run_command(args, data=None)`` runs a command and returns ``(rc, stdout, stderr)``
    (AnsibleModule.run_command with binary stdin); ``git_bin`` is git's path or None.
    """

    def __init__(
        self,
        checkout,
        vault,
        run_command,
        git_bin,
        stamp,
        check_mode=False,
        folders=FOLDERS,
        keep=KEEP,
        model_folders=(),
        extra_model_paths=True,
        vault_links=None,
        on_conflict="merge",
    ):
        self.checkout = checkout
        self.vault = vault
        self._run = run_command
        self._git_bin = git_bin
        self.stamp = stamp
        self.check_mode = check_mode
        self.folders = list(folders)
        self.keep = list(keep)
        self.model_folders = list(model_folders)
        self.extra_model_paths = extra_model_paths
        self.vault_links = dict(vault_links or {})
        self.on_conflict = on_conflict
        self.scratch = None
        self.notes = []
        self.result = {
            "changed": False,
            "checkout": checkout,
            "vault": vault,
            "links_removed": [],
            "git": [],
            "restored": [],
            "swept": [],
            "renamed": [],
            "seeded": [],
            "extra_model_paths": "skipped",
            "pristine": None,
            "vault_links": [],
        }

    # -- helpers ---------------------------------------------------------------------------

    def _git(self, *args, data=None, check=True):
        cmd = git_argv(self._git_bin, self.checkout, "core.quotepath=false")
        rc, out, err = self._run(cmd + list(args), data=data)
        if check and rc != 0:
            detail = (err or out).strip()
            raise LayoutError(f"git {' '.join(args[:2])} in {self.checkout} failed (rc={rc}): {detail}")
        return rc, out

    def _config(self, name):
        rc, out = self._git("config", "--get", name, check=False)
        return out.strip().lower() if rc == 0 else None

    def _git_path(self, name):
        dummy, out = self._git("rev-parse", "--git-path", name)
        path = out.strip()
        return path if os.path.isabs(path) else os.path.join(self.checkout, path)

    def _note(self, key, text):
        self.result[key].append(text)
        self.notes.append(text)
        self.result["changed"] = True

    def _is_work_tree(self):
        if not os.path.isfile(os.path.join(self.checkout, "main.py")) or self._git_bin is None:
            return False
        rc, out = self._git("rev-parse", "--show-toplevel", check=False)
        return rc == 0 and os.path.realpath(out.strip()) == os.path.realpath(self.checkout)

    def _tracked(self):
        """{relative path: (mode, sha)} of the index entries under the folders."""
        dummy, out = self._git("ls-files", "-z", "-s", "--", *[f + "/" for f in self.folders])
        entries = {}
        for record in out.split("\0"):
            if record:
                meta, path = record.split("\t", 1)
                mode, sha = meta.split()[:2]
                entries[path] = (mode, sha)
        return entries

    # -- validation ------------------------------------------------------------------------

    def validate(self):
        for label, value in (("comfyui_dir", self.checkout), ("vault", self.vault)):
            if not isinstance(value, str) or not os.path.isabs(value):
                raise LayoutError(f"{label} must be an absolute path, got {value!r}")
        self.checkout = os.path.normpath(self.checkout)
        self.vault = os.path.normpath(self.vault)
        self.scratch = Scratch(os.path.join(self.vault, STATE_DIR))
        for folder in self.folders:
            if not folder or "/" in folder or folder in (".", ".."):
                raise LayoutError(f'folders must be plain names such as "models", got {folder!r}')
        real_checkout = os.path.realpath(self.checkout)
        if _inside(os.path.realpath(self.vault), real_checkout):
            raise LayoutError(
                f"the vault {self.vault} is inside the ComfyUI checkout {self.checkout}; the checkout must be a folder "
                "of the vault, not the other way round"
            )
        for folder in self.folders:
            target = os.path.realpath(os.path.join(self.vault, folder))
            if _inside(target, real_checkout):
                raise LayoutError(
                    f"{os.path.join(self.vault, folder)} resolves to {target}, inside the ComfyUI checkout; "
                    f"make {os.path.join(self.vault, folder)} a real folder of "
                    "the vault (move what it holds there first)"
                )
            path = os.path.join(self.checkout, folder)
            if (
                entry_kind(path) == "link"
                and os.path.exists(path)
                and os.path.realpath(path) != os.path.realpath(os.path.join(self.vault, folder))
            ):
                raise LayoutError(
                    f"{path} is a link to {os.path.realpath(path)}, not to the vault's {folder}; "
                    f"ComfyUI reads {os.path.join(self.vault, folder)} now. Move what the link "
                    f"shows into {os.path.join(self.vault, folder)} (or make {os.path.join(self.vault, folder)} itself that link), then remove the link"
                )

        self._refuse_mounts()

    def _refuse_mounts(self):
        """A volume mounted at or under ``ComfyUI/<folder>`` is refused before anything moves.

        Sweeping it would move the volume's files off it into the vault (and fill it with
        placeholders); a bind mount of the vault's own folder would be swept into itself.
        """
        if entry_kind(self.checkout) != "dir":
            return
        mounts = _mount_points()
        device = os.stat(self.checkout).st_dev
        for folder in self.folders:
            top = os.path.join(self.checkout, folder)
            if entry_kind(top) != "dir":
                continue
            pending = [top]
            while pending:
                current = pending.pop()
                if os.lstat(current).st_dev != device or os.path.ismount(current) or current in mounts:
                    vault_folder = os.path.join(self.vault, os.path.relpath(current, self.checkout).split(os.sep, 1)[0])
                    raise LayoutError(
                        f"{current} is a mount point inside ComfyUI's checkout; nothing was moved. ComfyUI reads "
                        f"{vault_folder} now (the vault is its base directory), so files there would be moved off "
                        f"the volume. Unmount it and mount the volume at "
                        f"{os.path.join(self.vault, os.path.relpath(current, self.checkout))} instead (or copy what it "
                        "holds there), then start again"
                    )
                try:
                    names = os.listdir(current)
                except OSError:
                    continue
                pending.extend(
                    os.path.join(current, name) for name in names if entry_kind(os.path.join(current, name)) == "dir"
                )

    # -- the steps -------------------------------------------------------------------------

    def run(self):
        self.validate()
        links = None
        if self.vault_links:
            # Validated before anything is touched: bad input changes nothing.
            links = WorkspaceLinks(
                self.vault,
                self.vault,
                self.vault_links,
                on_conflict=self.on_conflict,
                check_mode=self.check_mode,
                stamp=self.stamp,
            )
            links.validate()
        if not os.path.isdir(self.checkout) or not self._is_work_tree():
            self.result["checkout_state"] = "missing" if not os.path.lexists(self.checkout) else "not a git checkout"
            self._ensure_vault_folders()
            self._link_vault(links)
            return self.result
        self.result["checkout_state"] = "git"
        self._remove_links()
        self._undo_git_settings()
        tracked = self._tracked()
        self._remove_leftovers()
        self._ensure_vault_folders()
        for folder in self.folders:
            self._sweep(folder, tracked)
        self._restore_missing(tracked)
        self._seed_models(tracked)
        if self.extra_model_paths:
            self._write_extra_model_paths()
        self._link_vault(links)
        if not self.check_mode:
            dummy, status = self._git("status", "--porcelain", "--untracked-files=normal")
            self.result["pristine"] = status.strip() == ""
            self.result["status"] = status.splitlines()[:20]
        return self.result

    def _link_vault(self, links):
        """The older layout's vault paths as links to where ComfyUI reads (a real folder merged first)."""
        if links is None:
            return
        outcome = links.run()
        for record in outcome["links"]:
            self.result["vault_links"].append({key: record[key] for key in ("path", "target", "action", "merged")})
            if record["merged"]:
                self.result["renamed"].extend(record["merged"]["renamed"])
        if outcome["changed"]:
            self.result["changed"] = True
            self.notes.extend(line for line in outcome["diff"]["after"].splitlines() if line)

    def _remove_links(self):
        for folder in self.folders:
            path = os.path.join(self.checkout, folder)
            if entry_kind(path) != "link":
                continue
            self._note("links_removed", path)
            if not self.check_mode:
                os.unlink(path)

    def _undo_git_settings(self):
        exclude_file = self._git_path("info/exclude")
        ours = [f"/{f}" for f in self.folders]
        lines = _read_lines(exclude_file)
        found = [line.strip() for line in lines if line.strip() in ours]
        if found:
            self._note("git", f"remove {', '.join(found)} from {exclude_file}")
            if not self.check_mode:
                self._write_lines(exclude_file, [line for line in lines if line.strip() not in ours])

        sparse_file = self._git_path("info/sparse-checkout")
        patterns = [f"!/{f}/" for f in self.folders]
        lines = _read_lines(sparse_file)
        ours_found = [line.strip() for line in lines if line.strip() in patterns]
        kept = [line for line in lines if line.strip() not in patterns]
        # The older layout wrote "/*" plus its own patterns; anything else is the user's own.
        only_everything = all(not line.strip() or line.strip() == "/*" or line.strip().startswith("#") for line in kept)
        sparse_on = self._config("core.sparsecheckout") == "true"
        switch_off = sparse_on and only_everything
        if ours_found:
            self._note("git", f"remove {', '.join(ours_found)} from {sparse_file}")
        if switch_off:
            self._note("git", f"switch the sparse checkout off in {self.checkout} (it only hid ComfyUI folders)")
        if not self.check_mode:
            # Config first: git must never act on a half-edited pattern file.
            if switch_off:
                self._git("config", "--unset-all", "core.sparseCheckout", check=False)
                if self._config("core.sparsecheckoutcone") == "false":
                    self._git("config", "--unset-all", "core.sparseCheckoutCone", check=False)
            if ours_found and only_everything and not sparse_on or switch_off and os.path.lexists(sparse_file):
                os.unlink(sparse_file)
            elif ours_found:
                self._write_lines(sparse_file, kept)
        if self._config("sparse.expectfilesoutsideofpatterns") is not None:
            self._note("git", f"unset sparse.expectFilesOutsideOfPatterns in {self.checkout}")
            if not self.check_mode:
                self._git("config", "--unset-all", "sparse.expectFilesOutsideOfPatterns", check=False)

        dummy, listing = self._git("ls-files", "-z", "-v", "--", *[f + "/" for f in self.folders])
        flagged = [record[2:] for record in listing.split("\0") if record[:2] == "S "]
        if flagged:
            self._note("git", f"clear the skip-worktree bit of {len(flagged)} tracked file(s)")
            if not self.check_mode:
                self._git("update-index", "-z", "--no-skip-worktree", "--stdin", data="\0".join(flagged) + "\0")

    def _remove_leftovers(self):
        """Temporary files of a write killed half-way, as the journal records them (nothing else)."""
        if self.scratch.sweep(self.check_mode):
            self.result["changed"] = True

    def _write(self, path, data, **options):
        """write_file_atomic with its temporary file recorded in the journal before it exists."""
        tokens = []

        def make_temp(directory):
            fd, tmp, token = self.scratch.new_file(directory)
            tokens.append(token)
            return fd, tmp

        try:
            return write_file_atomic(path, data, make_temp=make_temp, **options)
        finally:
            for token in tokens:
                self.scratch.forget(token)

    def _write_new(self, dest, content, git_mode):
        """Write a tracked file that must not exist yet, with git's mode for it (never clobbers:
        a file that appeared meanwhile wins)."""
        self._write(dest, content, mode=0o755 if git_mode == "100755" else 0o644, replace=False)

    def _write_lines(self, path, lines):
        """Rewrite a small git control file atomically, keeping its mode and owner."""
        self._write(path, "".join(line + "\n" for line in lines), new_file_mode=0o644)

    def _restore_missing(self, tracked):
        unlinked = {os.path.basename(path) for path in self.result["links_removed"]}
        missing = []
        for rel, (mode, sha) in sorted(tracked.items()):
            dest = os.path.join(self.checkout, rel)
            if mode not in ("100644", "100755"):
                continue
            # In check mode a link that would be removed still shows the vault's copy.
            if os.path.lexists(dest) and not (self.check_mode and rel.split("/")[0] in unlinked):
                continue
            if not _parents_are_dirs(self.checkout, dest):
                raise LayoutError(
                    f"cannot put back the tracked file {dest}: something that is not a folder is in "
                    "its way; move it aside and start again"
                )
            self._note("restored", dest)
            missing.append((dest, mode, sha))
        if not missing or self.check_mode:
            return
        contents = self._blobs([sha for dummy, dummy2, sha in missing])
        for dest, mode, sha in missing:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            self._write_new(dest, contents[sha], mode)

    def _blobs(self, shas):
        """{sha: bytes} of git objects, read in one ``git cat-file --batch``."""
        unique = sorted(set(shas))
        dummy, out = self._git("cat-file", "--batch", data="".join(sha + "\n" for sha in unique))
        # run_command decodes with surrogateescape; this gives back git's bytes.
        raw = out.encode("utf-8", "surrogateescape")
        blobs, position = {}, 0
        for sha in unique:
            end = raw.index(b"\n", position)
            header = raw[position:end].split()
            if len(header) != 3 or header[1] != b"blob":
                raise LayoutError(
                    f"git has no blob {sha} in {self.checkout} ({raw[position:end].decode('utf-8', 'replace')}); the checkout is damaged, remove it and start "
                    "again to get a fresh one"
                )
            size = int(header[2])
            blobs[sha] = raw[end + 1 : end + 1 + size]
            position = end + 1 + size + 1
        return blobs

    def _ensure_vault_folders(self):
        if not self.check_mode and os.path.isdir(self.vault):
            # The state folder holds the journals (this module's, and git's staging directories).
            os.makedirs(os.path.join(self.vault, ".state"), exist_ok=True)
        for folder in self.folders:
            path = os.path.join(self.vault, folder)
            if os.path.isdir(path):
                continue
            if os.path.lexists(path):
                raise LayoutError(
                    f"{describe_kind(path)} is in the way of the vault folder {path} (it is not a folder); move it aside "
                    "and start again"
                )
            self.result["changed"] = True
            self.notes.append(f"create {path}")
            if not self.check_mode:
                os.makedirs(path)

    def _untracked(self, folder, tracked):
        """Paths (relative to the folder) of what git does not track there, outermost only."""
        base = os.path.join(self.checkout, folder)
        tracked_dirs = set()
        tracked_files = set()
        for rel in tracked:
            if rel.startswith(folder + "/"):
                inner = rel[len(folder) + 1 :]
                tracked_files.add(inner)
                parts = inner.split("/")
                for depth in range(1, len(parts)):
                    tracked_dirs.add("/".join(parts[:depth]))
        found = []
        pending = [""]
        while pending:
            current = pending.pop()
            directory = os.path.join(base, current) if current else base
            for name in sorted(os.listdir(directory)):
                rel = f"{current}/{name}" if current else name
                if not current and name == STAGE_NAME:
                    continue
                if rel in tracked_files:
                    continue
                if rel in tracked_dirs and entry_kind(os.path.join(base, rel)) == "dir":
                    pending.append(rel)
                    continue
                if any(fnmatch.fnmatchcase(f"{folder}/{rel}", pattern) for pattern in self.keep):
                    continue
                found.append(rel)
        return sorted(found)

    def _sweep(self, folder, tracked):
        base = os.path.join(self.checkout, folder)
        target = os.path.join(self.vault, folder)
        if entry_kind(base) != "dir":
            return
        stage = os.path.join(base, STAGE_NAME)
        entries = self._untracked(folder, tracked)
        staged_before = entry_kind(stage) == "dir"
        if not entries and not staged_before:
            return
        device = os.lstat(base).st_dev
        for rel in entries:
            if entry_kind(os.path.join(base, rel)) == "dir" and os.lstat(os.path.join(base, rel)).st_dev != device:
                raise LayoutError(
                    f"{os.path.join(base, rel)} is a mount point inside the ComfyUI checkout; unmount it (or mount it at {os.path.join(target, rel)} "
                    "instead), a mount cannot be moved"
                )
        self.result["changed"] = True
        if self.check_mode:
            for rel in entries:
                dest = os.path.join(target, rel)
                clash = os.path.lexists(dest) and not (
                    os.path.isdir(dest) and entry_kind(os.path.join(base, rel)) == "dir"
                )
                self.result["swept"].append({"from": os.path.join(base, rel), "to": dest, "clash": clash})
                self.notes.append(
                    f"move {os.path.join(base, rel)} into {dest}{(' (a clash: kept under a new name)' if clash else '')}"
                )
            if staged_before:
                self.notes.append(f"finish merging {stage} into {target} (left by an interrupted run)")
            return
        if not staged_before:
            os.mkdir(stage, 0o700)
        records = []
        for rel in entries:
            source = os.path.join(base, rel)
            staged = os.path.join(stage, rel)
            _mirror_dirs(base, stage, os.path.dirname(rel))
            if os.path.lexists(staged):
                staged = clash_name(staged, self.stamp)
            os.rename(source, staged)
            records.append({"from": source, "to": os.path.join(target, rel), "clash": False, "staged": staged})
        try:
            preflight(stage, target)
            plan = MergePlan(stage, target, self.stamp, self.scratch.state_dir)
            renamed = {item["from"]: item["to"] for item in plan.renamed_entries}
            for record in records:
                staged = record.pop("staged")
                if staged in renamed:
                    record.update(clash=True, to=renamed[staged])
            self.result["swept"].extend(records)
            self.result["renamed"].extend(plan.renamed_entries)
            apply_plan(plan)
        except MergeError as exc:
            raise LayoutError(f"moving {base} into {target} stopped: {exc}") from None
        self.notes.append(f"moved what git does not track in {base} into {target}")

    def _seed_models(self, tracked):
        if "models" not in self.folders:
            return
        target_root = os.path.join(self.vault, "models")
        for rel, (mode, _dummy) in sorted(tracked.items()):
            if not rel.startswith("models/") or mode not in ("100644", "100755"):
                continue
            dest = os.path.join(target_root, rel[len("models/") :])
            if os.path.lexists(dest) or not _parents_are_dirs(target_root, dest):
                continue
            self._note("seeded", dest)
            if not self.check_mode:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(os.path.join(self.checkout, rel), "rb") as handle:
                    content = handle.read()
                self._write_new(dest, content, mode)

    def _write_extra_model_paths(self):
        path = os.path.join(self.checkout, "extra_model_paths.yaml")
        wanted = render_extra_model_paths(self.vault, self.model_folders)
        kind = entry_kind(path)
        if kind == "absent":
            current = None
        elif kind == "file":
            with open(path, "rb") as handle:
                current = handle.read().decode("utf-8", "replace")
            if not current.startswith(MANAGED_MARK):
                self.result["extra_model_paths"] = "yours"
                return
        else:
            self.result["extra_model_paths"] = "yours"
            return
        if current == wanted:
            self.result["extra_model_paths"] = "ok"
            return
        self.result["extra_model_paths"] = "written"
        self.result["changed"] = True
        self.notes.append(f"write {path}")
        if not self.check_mode:
            self._write(path, wanted, mode=0o644)


def _mount_points():
    """The mount points of this process's mount namespace (bind mounts of one filesystem too)."""
    found = set()
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            for line in handle:
                fields = line.split(b" ")
                if len(fields) > 4:
                    # Octal escapes (\040 for a space) as the kernel writes them.
                    point = fields[4].decode("unicode_escape").encode("latin-1")
                    found.add(os.fsdecode(point))
    except OSError:
        pass
    return found


def _mirror_dirs(base, stage, rel_dir):
    """Make stage/rel_dir, each new folder with the mode of its counterpart under base."""
    current = ""
    for part in [p for p in rel_dir.split("/") if p]:
        current = os.path.join(current, part)
        made = os.path.join(stage, current)
        if not os.path.isdir(made):
            os.mkdir(made)
            os.chmod(made, stat.S_IMODE(os.stat(os.path.join(base, current)).st_mode))


def describe_kind(path):
    kind = entry_kind(path)
    return {"file": "the file %s", "link": "the link %s", "other": "the special file %s"}.get(kind, "%s") % path


def _parents_are_dirs(top, path):
    current = os.path.dirname(path)
    while len(current) > len(top):
        if os.path.lexists(current) and not os.path.isdir(current):
            return False
        current = os.path.dirname(current)
    return True


def _read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []
