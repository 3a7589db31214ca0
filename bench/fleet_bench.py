"""Benchmark (not a test): provisioning 4 pods at once over SSH against provisioning one.

Each pod is a podman container of the harness base image on the host network with sshd on
its own loopback port (harness.ssh_pod), a fresh /venv (the image's venv) and nothing else.
The real playbooks/fleet.yml runs over SSH: ComfyUI cloned from a local stand-in repository,
one custom node, the layout, /etc/rp_environment and SSH setup, and ``--models`` small models
per pod downloaded in the foreground from an nginx origin on loopback. Per repetition, a fresh
single pod and four fresh pods (started and prepared untimed) are provisioned one after the
other; the figure is the median wall time of the 4-pod run over the 1-pod run.

    .venv/bin/python bench/fleet_bench.py             # 4 pods vs 1, median of 3
"""
import argparse
import json
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MIB, REPO, Table, median, time_playbook  # noqa: E402
from harness import podman as podman_harness  # noqa: E402
from harness.git_repos import make_comfyui_repo, make_node_repo  # noqa: E402
from harness.nginx import NginxOrigin, write_file  # noqa: E402
from harness.ssh_pod import SshPod, make_client_key  # noqa: E402

FLEET = REPO / "playbooks" / "fleet.yml"
TEMPLATE = "bench"


class BenchPod(podman_harness.Container):
    """A fleet pod under the benchmark's own label, so test sessions' sweeps leave it alone."""

    LABEL = "aiclipse-bench-pod"


def build_world(root, models, model_size):
    """What every pod reads (mounted read-only at the same path): repos and manifests."""
    make_comfyui_repo(root / "upstream/ComfyUI")
    node = make_node_repo(root / "upstream/ComfyUI-Bench-Node")
    manifests = root / "manifests"
    manifests.mkdir(parents=True)
    (manifests / f"{TEMPLATE}_nodes.txt").write_text(f"{node.url}|main|bench|a custom node\n")
    served = root / "served"
    lines = []
    for number in range(models):
        name = "fleet-%d.safetensors" % number
        lines.append((name, write_file(served / name, model_size, seed=number)))
    return manifests, served, lines


def inventory(root, pods, key, world_vars):
    hosts = {pod.name: {"ansible_host": "127.0.0.1", "ansible_port": ssh.port} for pod, ssh in pods}
    doc = {"pods": {"hosts": hosts, "vars": {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
        **world_vars}}}
    path = root / ("inventory-%d.yml" % len(pods))
    path.write_text(json.dumps(doc))
    return path


def start_pod(image, world, key_line):
    pod = BenchPod(image, name="aiclipse-bench-%s" % uuid.uuid4().hex[:8],
                   extra_args=["-v", "%s:%s:ro" % (world, world)]).start()
    try:
        pod.sh("ssh-keygen -A >/dev/null && mkdir -p /root/.ssh && chmod 700 /root/.ssh && "
               "printf '%%s\\n' '%s' > /root/.ssh/authorized_keys && python3 -m venv /venv" % key_line)
        ssh = SshPod(pod, None).start()
    except BaseException:
        pod.remove()
        raise
    return pod, ssh


def provision(root, image, world, key, key_line, world_vars, count):
    """Start `count` fresh pods (untimed, in parallel), time fleet.yml over them, remove them."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        pods = list(pool.map(lambda _n: start_pod(image, world, key_line), range(count)))
    try:
        seconds = time_playbook(FLEET, inventory=inventory(root, pods, key, world_vars))
        for pod, _ssh in pods:
            pod.sh("test -L /workspace/models && test -s /workspace/aiclipse/.state/launch.json")
        return seconds
    finally:
        for pod, _ssh in pods:
            pod.remove()


def measure(table, repeat=3, pods=4, models=2, model_size=8 * MIB, workdir=None):
    from common import workdir as make_workdir
    root = Path(workdir) if workdir else make_workdir("fleet-")
    podman_harness.remove_leftovers(BenchPod.LABEL)
    try:
        image = podman_harness.base_image()
        world = root / "world"
        manifests, served, files = build_world(world, models, model_size)
        key, key_line = make_client_key(root)
        with NginxOrigin(served) as origin:
            (manifests / f"{TEMPLATE}_models.txt").write_text("".join(
                f"url|{origin.url}/public/{name}|{name}|checkpoints|{sha}\n" for name, sha in files))
            world_vars = {
                "models_manifests_dir": str(manifests), "models_template_type": TEMPLATE, "models_foreground": True,
                "custom_nodes_manifests_dir": str(manifests), "custom_nodes_template_type": TEMPLATE,
                "comfyui_repo_url": str(world / "upstream/ComfyUI"), "comfyui_baked_dir": "", "comfyui_venv": "/venv",
                "launcher_comfy_args": "--preview-method auto"}
            one, many = [], []
            for _round in range(repeat):
                one.append(provision(root, image, world, key, key_line, world_vars, 1))
                many.append(provision(root, image, world, key, key_line, world_vars, pods))
        one_s, many_s = median(one), median(many)
        table.add("fleet: %d pods in parallel / 1 pod (fleet.yml over SSH, first boot)" % pods,
                  "%.1f s" % many_s, "%.1f s" % one_s, many_s / one_s, "<= 2", many_s / one_s <= 2)
        table.note("fleet runs (s): 1 pod %s; %d pods %s" % (
            " ".join("%.1f" % s for s in one), pods, " ".join("%.1f" % s for s in many)))
        return one_s, many_s
    finally:
        podman_harness.remove_leftovers(BenchPod.LABEL, own=True)
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pods", type=int, default=4)
    opts = parser.parse_args()
    table = Table()
    measure(table, opts.repeat, opts.pods)
    print(table.render())


if __name__ == "__main__":
    main()
