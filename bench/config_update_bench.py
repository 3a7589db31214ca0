"""Benchmark (not a test): what AUTO_UPDATE adds to a pod restart.

A provisioned pod (the warm-start bench's pod: ComfyUI stand-in, a venv, a custom node,
``--models`` models present) restarted by the real entrypoint, ``aiclipse-entrypoint true``
(the updater, site.yml, the updater's report, then ``true`` where ComfyUI would start). Its
settings live in ``inventories/local/group_vars/pods.yml`` of the playbook copy, the way a config
repository carries them. Two restarts, taken in turn:

- with ``CONFIG_REPO`` pointing at a git daemon on loopback that serves a copy of this collection
  whose commit the vault already holds (the updater asks ``git ls-remote`` and runs that copy);
- without ``CONFIG_REPO`` (the baked copy: the same files, not a git checkout).

Both must skip the roles (the start stamp finds nothing changed). Target: <= 1.2x. Beside it, the
updater alone both ways, a restart after a one-file commit (fetched into the vault's object store, checked out, syntax
checked), and what that commit cost on the wire against the first fetch.

    .venv/bin/python bench/config_update_bench.py              # 50 models, median of 5
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GIB, REPO, clock, run_alone, runs_text, side_by_side  # noqa: E402
from harness.git_servers import CountingProxy, GitDaemon  # noqa: E402
from harness.paths import VENV, VENV_BIN  # noqa: E402
import warm_start_bench  # noqa: E402

ENTRYPOINT = REPO / "roles" / "launcher" / "files" / "aiclipse-entrypoint"
UPDATER = REPO / "roles" / "launcher" / "files" / "aiclipse-config-update"
TARGET = 1.2
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def playbook_copy(dest, pod_vars):
    """This collection's committed files plus the pod's settings as a config repo carries them."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    group_vars = dest / "inventories" / "local" / "group_vars"
    group_vars.mkdir(parents=True, exist_ok=True)
    (group_vars / "pods.yml").write_text("---\n" + json.dumps(pod_vars, indent=2) + "\n")
    return dest


class Restart:
    """The entrypoint's restart of one pod, with or without a config repository."""

    def __init__(self, run_dir, pod_vars):
        self.run_dir = run_dir
        self.bin = run_dir / "bin-updater"
        self.bin.mkdir()
        (self.bin / "aiclipse-config-update").symlink_to(UPDATER)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CONFIG_", "AICLIPSE_", "ANSIBLE_", "GIT_"))
        }
        self.env.update(
            {
                "PATH": f"{self.bin}:{VENV_BIN}:{os.environ['PATH']}",
                "AUTO_UPDATE": "true",
                "AICLIPSE_ROOT": pod_vars["aiclipse_root"],
                "AICLIPSE_VENV": str(VENV),
                "AICLIPSE_CONFIG_DIR": str(playbook_copy(run_dir / "baked", pod_vars)),
            }
        )

    def __call__(self, config_repo=None, expect_skip=True):
        env = dict(self.env, CONFIG_REPO=config_repo) if config_repo else self.env
        seconds, proc = clock(
            subprocess.run, ["bash", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or "PROVISIONING FAILED" in proc.stderr:
            raise SystemExit(f"restart failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        if expect_skip and "Full start:" in proc.stdout:
            raise SystemExit("the restart ran the roles (the start stamp saw a change):\n" + proc.stdout[-3000:])
        if config_repo and "aiclipse-config-update: running git://" not in proc.stderr:
            raise SystemExit("the config repository's copy did not run:\n" + proc.stderr[-3000:])
        return seconds, proc.stderr


def run_updater(env):
    seconds, proc = clock(subprocess.run, [str(UPDATER)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("aiclipse-config-update failed:\n" + proc.stderr)
    return seconds


def measure(table, repeat=5, models=50, workdir=None):
    """Add the AUTO_UPDATE restart rows to table; returns (with repo seconds, without seconds)."""
    from common import workdir as make_workdir

    run_dir = Path(workdir) if workdir else make_workdir("config-update-")
    try:
        pod_vars = warm_start_bench.build_pod(run_dir, models, GIB)
        restart = Restart(run_dir, pod_vars)
        work = playbook_copy(run_dir / "config-work", pod_vars)
        git("init", "-q", "-b", "main", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "config", cwd=work)
        served = run_dir / "served"
        served.mkdir()
        git("clone", "-q", "--bare", str(work), str(served / "config.git"), cwd=run_dir)
        git("remote", "add", "origin", str(served / "config.git"), cwd=work)
        with GitDaemon(served) as daemon:
            proxy = CountingProxy(daemon.port)
            try:
                url = f"git://127.0.0.1:{proxy.port}/config.git"
                # First boot: fetch, check, provision everything, stamp. Then both restarts skip.
                restart(url, expect_skip=False)
                first_bytes = proxy.downstream
                restart()
                restart(url)
                with_s, without_s, all_with, all_without = side_by_side(
                    repeat, lambda: restart(url)[0], lambda: restart()[0]
                )

                def new_commit_restart():
                    # A file outside the code directories: the roles still skip, the updater fetches.
                    (work / "NOTES.md").write_text(f"pushed at {time.time()}\n")
                    git("add", "-A", cwd=work)
                    git("commit", "-q", "-m", "notes", cwd=work)
                    git("push", "-q", "origin", "main", cwd=work)
                    proxy.reset()
                    seconds, err = restart(url)
                    if "(updated from " not in err:
                        raise SystemExit("the new commit was not fetched:\n" + err)
                    delta_bytes.append(proxy.downstream)
                    return seconds

                # The updater alone (what the entrypoint asks before site.yml), both ways.
                updater_env = dict(restart.env, AICLIPSE_VAULT=pod_vars["aiclipse_root"] + "/aiclipse")
                alone_s, alone_without_s, _all1, _all2 = side_by_side(
                    repeat, lambda: run_updater(dict(updater_env, CONFIG_REPO=url)), lambda: run_updater(updater_env)
                )
                delta_bytes = []
                new_s, without2_s, all_new, all_without2 = side_by_side(
                    repeat, new_commit_restart, lambda: restart()[0]
                )
            finally:
                proxy.close()
        ratio = with_s / without_s
        table.add(
            "restart: entrypoint, CONFIG_REPO unchanged (git daemon) / no CONFIG_REPO",
            f"{with_s:.2f} s",
            f"{without_s:.2f} s",
            ratio,
            f"<= {TARGET:.1f}",
            ratio <= TARGET,
        )
        table.add(
            "  aiclipse-config-update alone: unchanged commit (ls-remote) / no CONFIG_REPO",
            f"{alone_s:.3f} s",
            f"{alone_without_s:.3f} s",
            alone_s / alone_without_s,
        )
        table.add(
            "  the same after a one-file commit (fetch, checkout, syntax check)",
            f"{new_s:.2f} s",
            f"{without2_s:.2f} s",
            new_s / without2_s,
        )
        table.add(
            "  bytes on the wire: the one-file commit / the first fetch",
            "%s KiB" % (max(delta_bytes) // 1024),
            "%s KiB" % (first_bytes // 1024),
            max(delta_bytes) / first_bytes,
        )
        table.note(
            f"restart runs (s): unchanged config repo {runs_text(all_with, 2)}; no CONFIG_REPO {runs_text(all_without, 2)}"
        )
        table.note(
            f"restart after a new commit, runs (s): {runs_text(all_new, 2)}; no CONFIG_REPO {runs_text(all_without2, 2)}"
        )
        return with_s, without_s
    finally:
        if not workdir:
            shutil.rmtree(run_dir, ignore_errors=True)


def main():
    run_alone(__doc__, measure, repeat=5, models=50)


if __name__ == "__main__":
    main()
