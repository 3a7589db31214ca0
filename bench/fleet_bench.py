"""Benchmark (not a test): the fleet's scaling curve, fleet.yml over 1, 2, 4 and 8 pods.

Each pod is a podman container of the harness base image on the host network with sshd on its
own loopback port, its settings in its environment and a fresh /venv (harness.fleet_pods).
The pods are found as a user's are: the RunPod API stand-in lists them and the
aiclipse.comfyui.runpod inventory plugin reads it; host keys are pinned in a fresh known_hosts
(accept-new). The real playbooks/fleet.yml runs over SSH: ComfyUI cloned from a local stand-in
repository, one custom node, the layout, /etc/rp_environment and SSH setup, and ``--models``
small models per pod downloaded in the foreground from an nginx origin on loopback.

Per repetition, fresh pods (started and prepared untimed) are provisioned for each fleet size
in turn, then provisioned again with nothing changed (what a routine fleet run over healthy
pods costs). Measured per run: the wall time and the controller's CPU time (user + system of
ansible-playbook, its forks and the ssh clients, the ssh connection masters included; the
pods' own work runs in the containers and is not counted). The figures are medians over the
repetitions; the ratio N pods / 1 pod is the curve (the 4-pod one has the issue's target, <= 2),
and a least-squares line through controller CPU over fleet size gives the fixed cost of a run
and the cost of each more pod, which BENCHMARKS.md projects to 100 pods.

    .venv/bin/python bench/fleet_bench.py                     # 1 2 4 8 pods, median of 3
    .venv/bin/python bench/fleet_bench.py --pods 1,4 --strategy free --repeat 1
"""

import argparse
import os
import resource
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MIB, REPO, Table, median, runs_text  # noqa: E402
from harness import podman as podman_harness  # noqa: E402
from harness.ansible_run import run_playbook  # noqa: E402
from harness.fleet_pods import TEMPLATE, FleetContainer, FleetPod, FleetWorld  # noqa: E402
from harness.runpod_api import RunPodApi  # noqa: E402
from harness.ssh_pod import make_client_key  # noqa: E402

FLEET = REPO / "playbooks" / "fleet.yml"
KEY = "rpa_bench_key"
SIZES = (1, 2, 4, 8)


class BenchPod(FleetContainer):
    """A fleet pod under the benchmark's own label, so test sessions' sweeps leave it alone."""

    LABEL = "aiclipse-bench-pod"


def ssh_masters(control_dir):
    """{pid: cpu seconds} of the ssh connection masters (ControlPersist) under control_dir:
    they outlive the run, so their CPU is not in the run's rusage."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not cmdline.startswith("ssh") or str(control_dir) not in cmdline:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return found


def pod_cpu_seconds(pods):
    """CPU time the pods' containers have used so far (cgroup cpuacct): sshd, the modules, git,
    pip, downloads. On RunPod this runs on the pods' own CPUs; here on the controller's."""
    total = 0.0
    for pod in pods:
        cid = podman_harness.podman("inspect", "--format", "{{.Id}}", pod.container.name).stdout.strip()
        usage = next(Path("/sys/fs/cgroup").glob(f"cpuacct/**/libpod-{cid}*/cpuacct.usage"), None)
        if usage is None:
            return float("nan")
        total += int(usage.read_text()) / 1e9
    return total


def timed_run(inventory, env, control_dir, pods):
    """(wall seconds, controller CPU seconds, pods' CPU seconds) of one fleet.yml run; fails
    loudly when the run failed."""
    count = len(pods)
    pods_before = pod_cpu_seconds(pods)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    run = run_playbook(FLEET, inventory=inventory, env=env, json_output=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    pods_cpu = pod_cpu_seconds(pods) - pods_before
    masters = ssh_masters(control_dir)
    for pid in masters:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if run.rc != 0 or run.failed:
        raise SystemExit(
            f"fleet.yml over {count} pods failed (rc {run.rc}):\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) + sum(masters.values())
    return seconds, cpu, pods_cpu


def provision(root, image, world, key, key_line, count, strategy):
    """Start `count` fresh pods (untimed, in parallel), time fleet.yml over them (first boot),
    then again with nothing changed; returns ((wall, cpu) first, (wall, cpu) again)."""
    settings = {"TEMPLATE_TYPE": TEMPLATE}
    with ThreadPoolExecutor(max_workers=count) as pool:
        pods = list(pool.map(lambda _n: FleetPod.start(image, world, key_line, settings, BenchPod), range(count)))
    run_dir = root / f"run-{count}-{time.monotonic_ns()}"
    control_dir = run_dir / "cp"
    control_dir.mkdir(parents=True)
    try:
        records = [pod.api_record(f"pod-{number}", settings) for number, pod in enumerate(pods)]
        with RunPodApi(KEY, records) as api:
            inventory = world.inventory(run_dir / "inventory", api.url, key, run_dir / "known_hosts")
            env = {
                "RUNPOD_API_KEY": KEY,
                "AICLIPSE_FLEET_RETRY_FILE": str(run_dir / "fleet.retry"),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
                "ANSIBLE_STRATEGY": strategy,
            }
            first = timed_run(inventory, env, control_dir, pods)
            for pod in pods:
                pod.container.sh("test -L /workspace/models && test -s /workspace/aiclipse/.state/launch.json")
            again = timed_run(inventory, env, control_dir, pods)
        return first, again
    finally:
        for pod in pods:
            pod.remove()


def measure(table, repeat=3, sizes=SIZES, models=2, model_size=8 * MIB, strategy="linear", workdir=None):
    from common import workdir as make_workdir

    root = Path(workdir) if workdir else make_workdir("fleet-")
    podman_harness.remove_leftovers(BenchPod.LABEL)
    load = os.getloadavg()[0]
    try:
        image = podman_harness.base_image()
        world = FleetWorld(root / "world").build(models, model_size)
        key, key_line = make_client_key(root)
        runs = {count: [] for count in sizes}
        with world.serving():
            for _round in range(repeat):
                for count in sizes:
                    runs[count].append(provision(root, image, world, key, key_line, count, strategy))
        wall = {count: median([first[0] for first, _again in runs[count]]) for count in sizes}
        cpu = {count: median([first[1] for first, _again in runs[count]]) for count in sizes}
        again_wall = {count: median([again[0] for _first, again in runs[count]]) for count in sizes}
        again_cpu = {count: median([again[1] for _first, again in runs[count]]) for count in sizes}
        base = sizes[0]
        for count in sizes:
            label = f"fleet: {count} pod{('' if count == 1 else 's')}, fleet.yml over SSH ({strategy}, first boot)"
            if count == base:
                table.add(label, f"{wall[count]:.1f} s")
            else:
                target = "<= 2" if count == 4 else ""
                table.add(
                    f"{label} / {base}",
                    f"{wall[count]:.1f} s",
                    f"{wall[base]:.1f} s",
                    wall[count] / wall[base],
                    target,
                    (wall[count] / wall[base] <= 2) if count == 4 else None,
                )
        for count in sizes:
            table.add(
                f"  controller CPU per pod at {count} pod{('' if count == 1 else 's')}",
                "%.2f s" % (cpu[count] / count),
            )
        pods_cpu = {count: median([first[2] for first, _again in runs[count]]) for count in sizes}
        for count in sizes:
            table.add(
                f"  pods' own CPU per pod at {count} pod{('' if count == 1 else 's')} (on RunPod: the pods' CPUs)",
                "%.2f s" % (pods_cpu[count] / count),
            )
        for count in sizes:
            table.add(
                f"  the same again, nothing changed: wall / CPU per pod at {count} pod{('' if count == 1 else 's')}",
                f"{again_wall[count]:.1f} s / {again_cpu[count] / count:.2f} s",
            )
        per_pod, fixed = _fit(sizes, cpu)
        table.add(
            f"  controller CPU, first boot: fixed + per pod (least squares over {','.join(map(str, sizes))} pods)",
            f"{fixed:.1f} s + {per_pod:.2f} s/pod",
        )
        table.note(
            "fleet runs, first boot, wall (s): "
            + "; ".join(f"{count} pods {runs_text(first[0] for first, _a in runs[count])}" for count in sizes)
        )
        table.note(
            "fleet runs, first boot, controller CPU (s): "
            + "; ".join(f"{count} pods {runs_text(first[1] for first, _a in runs[count])}" for count in sizes)
        )
        table.note(
            f"fleet: strategy {strategy}, forks {_forks()}, pipelining on, {models} model(s) of {model_size // MIB} MiB "
            f"per pod; load {load:.1f} at the fleet section's start, {os.getloadavg()[0]:.1f} at its end"
        )
        return wall, cpu, again_wall, again_cpu
    finally:
        podman_harness.remove_leftovers(BenchPod.LABEL, own=True)
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)


def _fit(sizes, cpu):
    """(slope, intercept) of controller CPU over fleet size: the cost of one more pod and the fixed part."""
    if len(sizes) < 2:
        return cpu[sizes[0]], 0.0
    mean_n = sum(sizes) / len(sizes)
    mean_c = sum(cpu[n] for n in sizes) / len(sizes)
    slope = sum((n - mean_n) * (cpu[n] - mean_c) for n in sizes) / sum((n - mean_n) ** 2 for n in sizes)
    return slope, mean_c - slope * mean_n


def _forks():
    for line in (REPO / "ansible.cfg").read_text().splitlines():
        if line.strip().startswith("forks"):
            return line.split("=", 1)[1].strip()
    return "5 (ansible's default)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pods", default=",".join(str(n) for n in SIZES), help="fleet sizes, comma-separated")
    parser.add_argument("--strategy", default="linear", choices=["linear", "free"])
    parser.add_argument("--models", type=int, default=2)
    opts = parser.parse_args()
    table = Table()
    measure(table, opts.repeat, tuple(int(n) for n in opts.pods.split(",")), opts.models, strategy=opts.strategy)
    print(table.render())


if __name__ == "__main__":
    main()
