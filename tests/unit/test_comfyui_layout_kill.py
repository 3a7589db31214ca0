"""The migration of an older vault survives SIGKILL at any step: the next start finishes it.

An older-layout vault (tests/harness/old_layout.py) is migrated by the same steps a pod start
runs (comfyui_layout with the vault's links, then the shortcuts, through their module_utils) in a
forked child that SIGKILLs itself right before its N-th filesystem change or git command, for
every N until a run gets through. After each kill a full migration runs; then no byte of the
user's may be missing, the checkout must be pristine, and one more run must change nothing.
"""

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from harness.git_repos import make_comfyui_repo
from harness.layout import SHORTCUTS
from harness.old_layout import file_contents, git_is_pristine, make_old_vault
from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.comfyui_layout import (  # noqa: E402
    ComfyUILayout,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.workspace_links import (  # noqa: E402
    WorkspaceLinks,
)

MUTATIONS = ("rename", "replace", "link", "unlink", "rmdir", "mkdir", "symlink", "chmod")


def run_command(args, data=None):
    proc = subprocess.run(
        args,
        input=data.encode("utf-8", "surrogateescape") if data is not None else None,
        capture_output=True,
        check=False,
    )
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "surrogateescape"),
        proc.stderr.decode("utf-8", "surrogateescape"),
    )


def start(root, runner=run_command):
    """What the workspace role does at a start, in order; returns the layout's result."""
    vault = os.path.join(root, "aiclipse")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = ComfyUILayout(
        os.path.join(vault, "ComfyUI"),
        vault,
        runner,
        "/usr/bin/git",
        stamp,
        model_folders=["checkpoints", "loras"],
        vault_links={"workflows": "user/default/workflows"},
    ).run()
    links_run = WorkspaceLinks(str(root), vault, SHORTCUTS, stamp=stamp)
    links_run.validate()
    links_run.run()
    return result


def killed_at(root, limit):
    """Run start() in a child that SIGKILLs itself before its limit-th change; True if it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: count the changes, die at the limit
        count = [0]

        def tick():
            count[0] += 1
            if count[0] >= limit:
                os.kill(os.getpid(), signal.SIGKILL)

        for name in MUTATIONS:
            real = getattr(os, name)

            def counted(*args, _real=real, **kwargs):
                tick()
                return _real(*args, **kwargs)

            setattr(os, name, counted)

        def counted_command(args, data=None):
            tick()
            return run_command(args, data)

        try:
            start(root, counted_command)
        except BaseException:  # pylint: disable=broad-except  # a failure is a status, not a kill
            os._exit(3)
        os._exit(0)
    dummy, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, f"the run failed (not killed) at limit {limit}"
    return False


@pytest.mark.slow
def test_a_migration_killed_at_any_step_is_finished_by_the_next_start(tmp_path):
    # Three placeholder folders instead of ComfyUI's twenty: the same steps, fewer kill points.
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI", model_folders=("checkpoints", "loras", "vae"))
    root = tmp_path / "pod"
    make_old_vault(root, upstream)
    before = file_contents(root)
    # The same pod at the same path for every attempt (its links are absolute): a tar of it.
    snapshot = tmp_path / "pod.tar"
    with tarfile.open(snapshot, "w") as tar:
        tar.add(root, arcname="pod")
    limit = 1
    while True:
        shutil.rmtree(root)
        with tarfile.open(snapshot) as tar:
            tar.extractall(tmp_path, filter="tar")
        was_killed = killed_at(root, limit)
        start(root)  # the next pod start
        checkout = root / "aiclipse" / "ComfyUI"
        missing = before - file_contents(root)
        assert not missing, f"killed before change {limit}: lost {sorted(missing)[:3]}"
        pristine, details = git_is_pristine(checkout)
        assert pristine, (limit, details)
        again = start(root)
        assert again["changed"] is False, (limit, again)
        assert (root / "aiclipse" / "user" / "default" / "workflows" / "ui-only.json").is_file()
        if not was_killed:
            break
        limit += 1
    # The steps really were many: the loop killed the migration at each of them.
    assert limit > 40, limit
