"""Benchmark (not a test): what a restart of a fully provisioned pod costs over ansible's own
start-up.

A pod directory like a real one after its first boot: ComfyUI cloned from a local stand-in,
a venv, one custom node, template workflows, /etc/rp_environment and shell hook (under the
bench directory, never this machine's), and ``--models`` manifest entries present as sparse
files and recorded in the model ledger. Then the real site.yml runs ``--repeat`` times against
it, each time next to a one-task no-op playbook on the same host; both must report changed=0.
That is the pod's restart: the start stamp finds nothing changed and the roles are skipped.
The second row runs it with ``aiclipse_skip_unchanged_start=false``, every role checking
everything (downloads in the foreground, so the models' skip check is inside the time).

    .venv/bin/python bench/warm_start_bench.py            # 200 models, median of 5
    .venv/bin/python bench/warm_start_bench.py --profile  # + per-task times (profile_tasks)
"""

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    GIB,
    REPO,
    noop_playbook,
    record_farm,
    run_alone,
    runs_text,
    side_by_side,  # noqa: E402
    sparse_farm,
    time_playbook,
)
from harness.git_repos import make_comfyui_repo, make_node_repo  # noqa: E402
from harness.net import free_port  # noqa: E402
from harness.site_pod import site_vars  # noqa: E402

SITE = REPO / "site.yml"
TEMPLATE = "bench"


def build_pod(run_dir, models, model_size):
    """Everything a provisioned pod has; returns the site.yml variables for it."""
    make_comfyui_repo(run_dir / "upstream/ComfyUI")
    node = make_node_repo(run_dir / "upstream/ComfyUI-Bench-Node")
    subprocess.run(["python3", "-m", "venv", str(run_dir / "venv")], check=True, capture_output=True)
    (run_dir / "workflows").mkdir(parents=True)
    (run_dir / "workflows/txt2img.json").write_text('{"nodes": []}\n')
    manifests = run_dir / "manifests"
    manifests.mkdir()
    (manifests / f"{TEMPLATE}_nodes.txt").write_text(f"{node.url}|main|bench|a custom node\n")
    vault = run_dir / "workspace/aiclipse"
    farm = sparse_farm(vault / "models", models, model_size)
    record_farm(vault / ".state/models", farm)
    # Nothing listens here: were a model not taken as present, its download would fail the run.
    origin = f"http://127.0.0.1:{free_port()}/public"
    (manifests / f"{TEMPLATE}_models.txt").write_text(
        "# the bench template\n"
        + "".join(f"url|{origin}/{filename}|{filename}|{subdir}|{sha}\n" for subdir, filename, _dest, sha in farm)
    )
    return dict(site_vars(run_dir, TEMPLATE), launcher_comfy_args="--preview-method auto")


def measure(table, repeat=5, models=200, model_size=GIB, profile=False, workdir=None):
    """Add the warm-start row to table; returns (site seconds, noop seconds)."""
    from common import workdir as make_workdir

    run_dir = Path(workdir) if workdir else make_workdir("warm-start-")
    try:
        pod = build_pod(run_dir, models, model_size)
        noop = noop_playbook(run_dir)
        # The first boot provisions (ComfyUI, node, layout, env file); the second must change nothing.
        time_playbook(SITE, pod)
        time_playbook(SITE, pod, expect_changed=0)
        # The same start with the stamp switched off: every role checks everything.
        full = dict(pod, aiclipse_skip_unchanged_start=False)
        site_s, noop_s, all_site, all_noop = side_by_side(
            repeat, lambda: time_playbook(SITE, pod, expect_changed=0), lambda: time_playbook(noop, expect_changed=0)
        )
        full_s, noop2_s, all_full, all_noop2 = side_by_side(
            repeat, lambda: time_playbook(SITE, full, expect_changed=0), lambda: time_playbook(noop, expect_changed=0)
        )
        table.add(
            f"warm start: site.yml, {models} models present / 1-task playbook",
            f"{site_s:.2f} s",
            f"{noop_s:.2f} s",
            site_s / noop_s,
            "<= 2.5",
            site_s / noop_s <= 2.5,
        )
        table.add(
            "  the same with every role checking (aiclipse_skip_unchanged_start=false)",
            f"{full_s:.2f} s",
            f"{noop2_s:.2f} s",
            full_s / noop2_s,
        )
        table.note(f"warm start runs (s): site.yml {runs_text(all_site, 2)}; no-op {runs_text(all_noop, 2)}")
        table.note(
            f"warm start, every role checking, runs (s): site.yml {runs_text(all_full, 2)}; no-op {runs_text(all_noop2, 2)}"
        )
        for label, variables in (("warm start", pod), ("every role checking", full)):
            runs, by_role = module_runs(variables)
            roles = ", ".join(f"{name} {count}" for name, count in sorted(by_role.items(), key=lambda kv: -kv[1]))
            table.note(f"{label}: {runs} module tasks in site.yml ({roles}); each costs ansible's per-task overhead")
        if profile:
            print_profile(pod)
            print_profile(full)
        return site_s, noop_s
    finally:
        if not workdir:
            shutil.rmtree(run_dir, ignore_errors=True)


# Actions that run on the controller only (no module is shipped to the host).
CONTROLLER_ACTIONS = {
    "debug",
    "set_fact",
    "assert",
    "fail",
    "include_tasks",
    "import_tasks",
    "include_role",
    "validate_argument_spec",
    "meta",
    "include_vars",
    "add_host",
    "group_by",
}


def module_runs(pod):
    """How many tasks of one warm site.yml run ship a module to the host (each loop item counts
    once; copy and template tasks run two modules, stat first), by role."""
    import json
    from harness.ansible_run import run_playbook

    run = run_playbook(SITE, pod, env={"ANSIBLE_CALLBACK_FORMAT_PRETTY": "0"})
    doc = json.loads(run.stdout[run.stdout.index("{") :])
    total, by_role = 0, {}
    for play in doc["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                action = result.get("action", "").rsplit(".", 1)[-1]
                if action in CONTROLLER_ACTIONS or result.get("skipped"):
                    continue
                items = [result]
                if isinstance(result.get("results"), list) and all(
                    isinstance(item, dict) and "ansible_loop_var" in item for item in result["results"]
                ):
                    items = [item for item in result["results"] if not item.get("skipped")]
                role = task["task"]["name"].split(" : ")[0] if " : " in task["task"]["name"] else "play"
                role = task.get("role", {}).get("name", role) if isinstance(task.get("role"), dict) else role
                by_role[role.rsplit(".", 1)[-1]] = by_role.get(role.rsplit(".", 1)[-1], 0) + len(items)
                total += len(items)
    return total, by_role


def print_profile(pod):
    """One more warm run with profile_tasks: where the time goes, task by task."""
    from harness.ansible_run import run_playbook

    run = run_playbook(
        SITE,
        pod,
        json_output=False,
        env={
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
            "PROFILE_TASKS_SORT_ORDER": "descending",
        },
    )
    lines = run.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    print("\n".join(lines[start:]))


def main():
    run_alone(__doc__, measure, repeat=5, models=200, profile=False)


if __name__ == "__main__":
    main()
