"""After one run of playbooks/fleet.yml over SSH with the pods RunPod's API (the world's
stand-in) lists: every healthy pod has its own template's models, nodes, settings and command
line; the broken, the unreachable and the skipped pod (no SSH port) are named in the fleet
summary and the retry file and did not stop the others; every pod contacted has its host key pinned."""

import json
import re
import shlex
import subprocess

import pytest

from harness.fleet_runs import fleet_summary

VAULT = "/workspace/aiclipse"
HEALTHY = ("pod-a", "pod-b", "pod-c")


def recap(output, name):
    match = re.search(rf"^{re.escape(name)}\s+:\s+(.*)$", output, re.M)
    assert match, f"{name} is not in the run's recap"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


# -- the inventory -------------------------------------------------------------------------


def test_ansible_inventory_graph_lists_the_pods_runpod_reports(fleet_graph):
    rc, output = fleet_graph
    assert rc == 0, output
    pods = re.search(r"@pods:\n((?:[ |]+--[^@\n]*\n)+)", output)
    assert pods, output
    assert sorted(re.findall(r"\|--(\S+)", pods.group(1))) == ["pod-a", "pod-b", "pod-broken", "pod-c", "pod-gone"]
    # The shipped keyed groups: by GPU and by the pod's own TEMPLATE_TYPE.
    assert "@gpu_RTX_A6000:" in output and "@template_flux_fleet:" in output
    # No SSH port: left out with a warning that names it; stopped: filtered out quietly.
    assert re.search(
        r"pod pod-nossh \(moleculenossh\) is left out of the inventory: it exposes no\s+22/tcp port", output
    )
    assert "pod-stopped" not in output


# -- the run -------------------------------------------------------------------------------


def test_run_failed_overall_because_of_the_two_bad_pods(fleet_run):
    rc, _output = fleet_run
    assert rc != 0


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_pod_finished_without_failures(fleet_run, name):
    stats = recap(fleet_run[1], name)
    assert stats["failed"] == 0 and stats["unreachable"] == 0
    assert stats["changed"] > 0


def test_fleet_summary_gives_each_pods_outcome(fleet_run):
    rows = fleet_summary(fleet_run[1])[1]
    assert sorted(rows) == ["pod-a", "pod-b", "pod-broken", "pod-c", "pod-gone", "pod-nossh"]
    for name in HEALTHY:
        assert rows[name][0] == "provisioned"
    outcome, detail = rows["pod-broken"]
    assert outcome == "failed"
    assert detail.startswith("aiclipse.comfyui.models : ")
    assert re.search(r"broken-fleet_models\.txt:2", detail)
    outcome, detail = rows["pod-gone"]
    assert outcome == "unreachable" and "Connection refused" in detail
    # Left out by the inventory (no SSH port): in the summary with the reason, not only a warning.
    outcome, detail = rows["pod-nossh"]
    assert outcome == "skipped" and "it exposes no 22/tcp port" in detail
    assert "6 pods: 3 provisioned, 1 failed, 1 unreachable, 1 skipped" in fleet_run[1]


def test_retry_file_lists_only_the_pods_that_did_not_finish(fleet_run, retry_file):
    assert retry_file == "pod-broken\npod-gone\npod-nossh\n"
    assert re.search(r"--limit @\S+/fleet\.retry", fleet_run[1])


def test_every_contacted_pod_has_its_host_key_pinned(world, pod_host):
    known_hosts = world["known_hosts"]
    for name in (*HEALTHY, "pod-broken"):
        address = f"[127.0.0.1]:{world['fleet_ports'][name]}"
        found = subprocess.run(
            ["ssh-keygen", "-F", address, "-f", known_hosts], capture_output=True, text=True, check=False
        )
        assert found.returncode == 0, f"{name}'s host key was not recorded in {known_hosts}"
        pinned = {line.split()[2] for line in found.stdout.splitlines() if line and not line.startswith("#")}
        served = {
            pod_host(name).file(f"/etc/ssh/ssh_host_{kind}_key.pub").content_string.split()[1]
            for kind in ("ed25519", "ecdsa", "rsa")
        }
        assert pinned and pinned <= served, f"{name}: the pinned key is not one the pod serves"
    gone = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{world['fleet_ports']['pod-gone']}", "-f", known_hosts],
        capture_output=True,
        check=False,
    )
    assert gone.returncode != 0


def test_no_secret_in_the_runs_output(world, fleet_run, fleet_graph):
    for output in (fleet_run[1], fleet_graph[1]):
        assert world["runpod_key"] not in output
        assert world["fleet_pod_secret"] not in output


def test_broken_pod_failure_names_the_manifest_line(fleet_run):
    assert re.search(r"broken-fleet_models\.txt:2", fleet_run[1])


def test_broken_pod_got_no_command_line(pod_host):
    # The play stopped at its models role: the launcher never wrote a launch file.
    assert not pod_host("pod-broken").file(f"{VAULT}/.state/launch.json").exists


# -- each healthy pod ----------------------------------------------------------------------


@pytest.mark.parametrize("name", HEALTHY)
def test_pod_has_its_own_models_with_the_right_sha256(pod_host, world, name):
    pod = pod_host(name)
    for model in world["pods"][name]["models"]:
        path = f"{VAULT}/models/{model['path']}"
        assert pod.file(path).sha256sum == model["sha256"], path
    others = [m["path"] for other in HEALTHY if other != name for m in world["pods"][other]["models"]]
    for path in others:
        assert not pod.file(f"{VAULT}/models/{path}").exists, f"{name} got {path} of another pod"
    leftovers = pod.check_output(f"find {VAULT}/models {VAULT}/.state/models -path '*/staging/*' -type f")
    assert leftovers == ""


@pytest.mark.parametrize("name", HEALTHY)
def test_pod_has_its_own_template_node(pod_host, world, name):
    pod = pod_host(name)
    nodes = pod.check_output(f"ls {VAULT}/custom_nodes").split()
    assert world["pods"][name]["node"] in nodes
    for other in HEALTHY:
        if other != name:
            assert world["pods"][other]["node"] not in nodes


@pytest.mark.parametrize("name", HEALTHY)
def test_ssh_session_sees_the_pods_own_settings(pod_host, ssh, world, name):
    settings = world["fleet_settings"][name]
    proc = ssh(name, 'printf "%s\\n%s" "$TEMPLATE_TYPE" "$COMFY_ARGS"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n", 1) == [settings["TEMPLATE_TYPE"], settings["COMFY_ARGS"]]
    assert pod_host(name).file("/etc/rp_environment").mode == 0o600


@pytest.mark.parametrize("name", HEALTHY)
def test_pod_command_line_has_its_own_comfy_args(pod_host, world, name):
    launch = json.loads(pod_host(name).file(f"{VAULT}/.state/launch.json").content_string)
    assert launch["argv"][6:8] == ["--base-directory", VAULT]
    assert launch["argv"][8:] == shlex.split(world["fleet_settings"][name]["COMFY_ARGS"])


@pytest.mark.parametrize("name", HEALTHY)
def test_run_key_is_authorized_exactly_once(pod_host, world, name):
    key = open(world["fleet_key"] + ".pub", encoding="utf-8").read().strip()
    keys = pod_host(name).file("/root/.ssh/authorized_keys").content_string.splitlines()
    assert keys.count(key) == 1


@pytest.mark.parametrize("name", HEALTHY)
def test_workspace_shortcuts_and_workflows(pod_host, name):
    pod = pod_host(name)
    assert pod.check_output("readlink -f /workspace/models") == f"{VAULT}/models"
    assert pod.check_output("readlink -f /workspace/workflows") == f"{VAULT}/user/default/workflows"
    assert pod.file(f"{VAULT}/user/default/workflows/txt2img.json").is_file
