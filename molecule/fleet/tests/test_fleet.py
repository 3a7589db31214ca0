"""After one run of playbooks/fleet.yml over SSH: every healthy pod has its own template's
models, nodes, settings and command line; the broken and the unreachable pod are reported and
did not stop the others."""
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

VAULT = "/workspace/aiclipse"
HEALTHY = ("pod-a", "pod-b", "pod-c")
INVENTORY = Path(__file__).resolve().parents[1] / "inventory"


def host_vars(name):
    return yaml.safe_load((INVENTORY / "host_vars" / f"{name}.yml").read_text())


def recap(output, name):
    match = re.search(rf"^{re.escape(name)}\s+:\s+(.*)$", output, re.M)
    assert match, f"{name} is not in the run's recap"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


# -- the run -------------------------------------------------------------------------------

def test_run_failed_overall_because_of_the_two_bad_pods(fleet_run):
    rc, _output = fleet_run
    assert rc != 0


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_pod_finished_without_failures(fleet_run, name):
    stats = recap(fleet_run[1], name)
    assert stats["failed"] == 0 and stats["unreachable"] == 0
    assert stats["changed"] > 0


def test_broken_and_unreachable_pods_are_reported(fleet_run):
    output = fleet_run[1]
    assert recap(output, "pod-broken")["failed"] == 1
    # fleet.yml's first play waits for the connection, so a pod that never answers fails there.
    gone = recap(output, "pod-gone")
    assert gone["failed"] + gone["unreachable"] == 1 and gone["ok"] == 0
    summary = re.search(r"failed_or_unreachable:\s*\n((?:\s+- .*\n)+)", output)
    assert summary, "the fleet summary does not list the pods that did not finish"
    assert re.findall(r"- (\S+)", summary.group(1)) == ["pod-broken", "pod-gone"]
    provisioned = re.search(r"provisioned:\s*\n((?:\s+- .*\n)+)", output)
    assert re.findall(r"- (\S+)", provisioned.group(1)) == list(HEALTHY)


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
def test_ssh_session_sees_the_pods_own_settings(pod_host, ssh, name):
    settings = host_vars(name)["pod_env_variables"]
    proc = ssh(name, 'printf "%s\\n%s" "$TEMPLATE_TYPE" "$COMFY_ARGS"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n", 1) == [settings["TEMPLATE_TYPE"], settings["COMFY_ARGS"]]
    assert pod_host(name).file("/etc/rp_environment").mode == 0o600


@pytest.mark.parametrize("name", HEALTHY)
def test_pod_command_line_has_its_own_comfy_args(pod_host, name):
    launch = json.loads(pod_host(name).file(f"{VAULT}/.state/launch.json").content_string)
    assert launch["argv"][6:8] == ["--base-directory", VAULT]
    assert launch["argv"][8:] == shlex.split(host_vars(name)["launcher_comfy_args"])


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
