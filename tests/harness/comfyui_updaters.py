"""Stand-ins for the updaters people run on a ComfyUI checkout, written for these tests.

Each one makes the same git library calls, in the same order, as the tool it plays:

``pygit2_update(path)``
    ComfyUI's own updater, ``.ci/update_windows/update.py`` (libgit2 through pygit2): owner
    validation off, stash whatever is dirty (``KeyError`` = nothing to stash), a
    ``backup_branch_<date>`` at HEAD, check out the local ``master`` (made from
    ``origin/master`` when missing), fetch ``origin``, then fast-forward (``checkout_tree`` +
    moving the refs) or merge. ``stable=True`` then checks out the newest ``v*`` tag.
``manager_update(path)``
    ComfyUI-Manager's "Update ComfyUI" (``update_path`` + ``git_pull`` in glob/manager_core.py,
    GitPython): switch a detached HEAD to the default branch, fetch the tracking remote, and
    when the remote branch moved: stash a dirty tree, ``git pull --ff-only``, or on failure a
    ``backup_<time>`` branch plus ``reset --hard`` to the remote branch, then the submodules.
    The requirements install that follows in the real tool is not played here.

Both return a small report (what HEAD is now, whether a stash or a branch was made) so tests
can assert on side effects. Run as a script inside a container:
``python comfyui_updaters.py pygit2|pygit2-stable|manager PATH`` prints the report as JSON.
"""

import json
import os
import sys
import time
from datetime import datetime

DEFAULT_BRANCH = "master"  # update.py names ComfyUI's default branch outright


class UpdaterFailed(RuntimeError):
    """The stand-in hit the point where the real tool stops with an error."""


def _pygit2_pull(pygit2, repo, remote_name="origin", branch=DEFAULT_BRANCH):
    """update.py's pull(): fetch, then up to date / fast-forward / merge."""
    for remote in repo.remotes:
        if remote.name != remote_name:
            continue
        remote.fetch()
        target = repo.lookup_reference(f"refs/remotes/origin/{branch}").target
        analysis, dummy = repo.merge_analysis(target)
        if analysis & pygit2.GIT_MERGE_ANALYSIS_UP_TO_DATE:
            return "up_to_date"
        if analysis & pygit2.GIT_MERGE_ANALYSIS_FASTFORWARD:
            repo.checkout_tree(repo.get(target))
            try:
                repo.lookup_reference(f"refs/heads/{branch}").set_target(target)
            except KeyError:
                repo.create_branch(branch, repo.get(target))
            repo.head.set_target(target)
            return "fast_forward"
        if analysis & pygit2.GIT_MERGE_ANALYSIS_NORMAL:
            repo.merge(target)
            if repo.index.conflicts is not None:
                paths = [conflict[0].path for conflict in repo.index.conflicts]
                raise UpdaterFailed(f"merge conflicts in {paths}")
            who = repo.default_signature
            tree = repo.index.write_tree()
            repo.create_commit("HEAD", who, who, "Merge!", tree, [repo.head.target, target])
            repo.state_cleanup()
            return "merged"
        raise UpdaterFailed("unknown merge analysis result")
    return "no_remote"


def pygit2_update(path, stable=False):
    """Play ComfyUI's update.py on the checkout at path; return the report."""
    import pygit2  # only the tests that play this updater need it

    report = {"updater": "pygit2", "stash": False, "backup_branch": None}
    pygit2.option(pygit2.GIT_OPT_SET_OWNER_VALIDATION, 0)
    repo = pygit2.Repository(str(path))
    ident = pygit2.Signature("comfyui", "comfy@ui")
    try:
        repo.stash(ident)
        report["stash"] = True
    except KeyError:
        pass  # "nothing to stash"
    backup = f"backup_branch_{datetime.today().strftime('%Y-%m-%d_%H_%M_%S')}"
    try:
        repo.branches.local.create(backup, repo.head.peel())
        report["backup_branch"] = backup
    except Exception:  # pylint: disable=broad-except  # update.py ignores any failure here
        pass
    branch = repo.lookup_branch(DEFAULT_BRANCH)
    if branch is None:
        ref = repo.lookup_reference(f"refs/remotes/origin/{DEFAULT_BRANCH}")
        repo.checkout(ref)
        if repo.lookup_branch(DEFAULT_BRANCH) is None:
            repo.create_branch(DEFAULT_BRANCH, repo.get(ref.target))
    else:
        repo.checkout(repo.lookup_reference(branch.name))
    report["pull"] = _pygit2_pull(pygit2, repo)
    if stable:
        tags = []
        for name in repo.references:
            if name.startswith("refs/tags/v"):
                try:
                    major, minor, patch = (int(part) for part in name[len("refs/tags/v") :].split("."))
                except ValueError:
                    continue
                tags.append(((major, minor, patch), name))
        if tags:
            repo.checkout(max(tags)[1])
            report["stable_tag"] = max(tags)[1]
    report["head"] = str(repo.head.target)
    report["detached"] = repo.head_is_detached
    return report


def _manager_switch_to_default_branch(repo):
    """ComfyUI-Manager's switch_to_default_branch(): origin/HEAD's branch, else master/main."""
    remote = _manager_remote_name(repo)
    try:
        if remote is None:
            return False
        default = repo.git.symbolic_ref(f"refs/remotes/{remote}/HEAD").replace(f"refs/remotes/{remote}/", "")
        repo.git.checkout(default)
        return True
    except Exception:  # pylint: disable=broad-except  # the real tool falls back the same way
        for attempt in (
            lambda: repo.git.checkout(repo.heads.master),
            lambda: repo.git.checkout("-b", "master", f"{remote}/master"),
            lambda: repo.git.checkout(repo.heads.main),
            lambda: repo.git.checkout("-b", "main", f"{remote}/main"),
        ):
            try:
                attempt()
                return True
            except Exception:  # pylint: disable=broad-except
                continue
    return False


def _manager_remote_name(repo):
    names = [remote.name for remote in repo.remotes]
    for preferred in ("origin", "upstream"):
        if preferred in names:
            return preferred
    return names[0] if names else None


def _manager_git_pull(git, path, report):
    """ComfyUI-Manager's git_pull() on Linux."""
    repo = git.Repo(path)
    if repo.is_dirty():
        repo.git.stash()
        report["stash"] = True
    if repo.head.is_detached and not _manager_switch_to_default_branch(repo):
        raise UpdaterFailed(f"Failed to switch to default branch while pulling: {path}")
    branch = repo.active_branch
    remote_name = branch.tracking_branch().remote_name
    try:
        repo.git.pull("--ff-only")
    except git.GitCommandError:
        backup = f"backup_{time.strftime('%Y%m%d_%H%M%S')}"
        repo.create_head(backup)
        report["backup_branch"] = backup
        repo.git.reset("--hard", f"{remote_name}/{branch.name}")
        report["reset_hard"] = True
    repo.git.submodule("update", "--init", "--recursive")
    repo.close()


def manager_update(path):
    """Play ComfyUI-Manager's "Update ComfyUI" (update_path) on the checkout at path."""
    import git  # GitPython, only the tests that play this updater need it

    path = str(path)
    report = {"updater": "manager", "stash": False, "backup_branch": None, "reset_hard": False}
    if not os.path.exists(os.path.join(path, ".git")):
        raise UpdaterFailed(f"{path} is not a git checkout")
    repo = git.Repo(path)
    switched = False
    if repo.head.is_detached:
        if not _manager_switch_to_default_branch(repo):
            raise UpdaterFailed("Failed to switch to the default branch")
        switched = True
    branch = repo.active_branch
    tracking = branch.tracking_branch()
    remote_name = tracking.remote_name if tracking is not None else _manager_remote_name(repo)
    repo.remote(name=remote_name).fetch()
    here = repo.head.commit.hexsha
    remote_ref = f"{remote_name}/{branch.name}"
    if remote_ref not in repo.refs:
        raise UpdaterFailed(f"no {remote_ref}")
    if here != repo.refs[remote_ref].object.hexsha:
        _manager_git_pull(git, path, report)
        report["result"] = "updated"
    else:
        report["result"] = "updated" if switched else "skipped"
    repo = git.Repo(path)
    report["head"] = repo.head.commit.hexsha
    report["detached"] = repo.head.is_detached
    return report


UPDATERS = {
    "pygit2": pygit2_update,
    "pygit2-stable": lambda path: pygit2_update(path, stable=True),
    "manager": manager_update,
}


def main(argv):
    if len(argv) != 2 or argv[0] not in UPDATERS:
        print(f"usage: comfyui_updaters.py {'|'.join(UPDATERS)} PATH", file=sys.stderr)
        return 2
    try:
        report = UPDATERS[argv[0]](argv[1])
    except Exception as exc:  # pylint: disable=broad-except  # reported, like the real tools print it
        print(json.dumps({"updater": argv[0], "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
