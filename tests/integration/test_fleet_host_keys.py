"""A fleet over real SSH, found through the RunPod API stand-in: pinned host keys, failure
isolation, the fleet summary and a retry that runs only the pods that did not finish.

Four pods (podman containers, sshd on loopback ports, their settings in their environment) are
provisioned by playbooks/fleet.yml with the runpod inventory, as a user runs it. Then one pod's
host keys change (a rebuilt pod, or an impostor at its address), one pod's template turns
broken and one pod's sshd stops; the second run must refuse the first, report all three with
the task and reason, provision the healthy one anyway and list exactly the three in the retry
file. Following the summary's advice and rerunning with ``--limit @<retry file>`` provisions
exactly those three. A pod start (``-c local``) must not use SSH at all.
"""

import os
import re
import shlex
import subprocess

import pytest

from harness.ansible_run import run_playbook
from harness.fleet_runs import fleet_summary, run_fleet_playbook
from harness.fleet_pods import BROKEN_TEMPLATE, TEMPLATE, running_fleet
from harness.paths import REPO, VENV_BIN

pytestmark = [pytest.mark.podman, pytest.mark.slow]

FLEET = REPO / "playbooks" / "fleet.yml"
KEY = "rpa_fleet_test_key_never_printed_2468"
NAMES = ("pod-a", "pod-b", "pod-c", "pod-d")


def recap(output):
    return {
        m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)
    }


def pinned_keys(known_hosts, port):
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{port}", "-f", str(known_hosts)], capture_output=True, text=True, check=False
    )
    return {line.split()[2] for line in found.stdout.splitlines() if line and not line.startswith("#")}


@pytest.fixture
def fleet(tmp_path, podman_image):
    with running_fleet(tmp_path, podman_image, NAMES, KEY) as running:
        yield running


def run_fleet(fleet, *args):
    return run_fleet_playbook(FLEET, fleet["inventory"], KEY, fleet["retry"], *args)


def test_changed_host_key_is_refused_the_others_carry_on_and_a_retry_runs_only_the_rest(fleet):
    pods, api, known_hosts = fleet["pods"], fleet["api"], fleet["known_hosts"]

    # 1. First contact: every pod provisioned, each one's host key pinned.
    first = run_fleet(fleet)
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert {name: outcome for name, (outcome, _d) in fleet_summary(first.stdout)[1].items()} == dict.fromkeys(
        NAMES, "provisioned"
    )
    assert not fleet["retry"].exists()
    old_key_b = pods["pod-b"].host_key()
    for name, pod in pods.items():
        assert pinned_keys(known_hosts, pod.port) == {pod.host_key()}, f"{name}'s key was not pinned"

    # 2. pod-b answers with other host keys, pod-c's template is broken, pod-d's sshd is down.
    pods["pod-b"].replace_host_keys()
    with api.lock:
        api.pods[2]["env"] = [f"TEMPLATE_TYPE={BROKEN_TEMPLATE}"]
    pods["pod-d"].stop_sshd()
    second = run_fleet(fleet)
    assert second.rc != 0
    rows = fleet_summary(second.stdout)[1]
    assert rows["pod-a"][0] == "provisioned"
    assert recap(second.stdout)["pod-a"]["failed"] == 0
    outcome, detail = rows["pod-b"]
    assert outcome == "unreachable"
    assert detail.startswith(f"REFUSED: pod-b's SSH host key changed since it was recorded in {known_hosts}")
    forget = re.search(r"forget the old key with `([^`]+)`", detail).group(1)
    outcome, detail = rows["pod-c"]
    assert outcome == "failed"
    assert detail.startswith("aiclipse.comfyui.models : ") and f"{BROKEN_TEMPLATE}_models.txt:2" in detail
    outcome, detail = rows["pod-d"]
    assert outcome == "unreachable" and "Connection refused" in detail
    # Nothing ran on pod-b, and its old key is still the one pinned: a changed key is never learnt.
    assert recap(second.stdout)["pod-b"]["ok"] == 0
    assert pinned_keys(known_hosts, pods["pod-b"].port) == {old_key_b}
    assert fleet["retry"].read_text() == "pod-b\npod-c\npod-d\n"
    assert f"--limit @{fleet['retry']}" in second.stdout

    # 3. The user replaced pod-b on purpose, fixes pod-c and brings pod-d back, does what the
    #    summary says and retries only the pods that did not finish.
    subprocess.run(shlex.split(forget), check=True, capture_output=True)
    with api.lock:
        api.pods[2]["env"] = [f"TEMPLATE_TYPE={TEMPLATE}"]
    pods["pod-d"].start_sshd()
    # At -vvvv too, neither the RunPod key nor anything else secret is printed (run_fleet checks).
    third = run_fleet(fleet, "--limit", f"@{fleet['retry']}", "-vvvv")
    assert third.rc == 0, third.stdout[-4000:] + third.stderr[-2000:]
    assert sorted(recap(third.stdout)) == ["pod-b", "pod-c", "pod-d"]
    assert {name: outcome for name, (outcome, _d) in fleet_summary(third.stdout)[1].items()} == {
        "pod-b": "provisioned",
        "pod-c": "provisioned",
        "pod-d": "provisioned",
    }
    assert pinned_keys(known_hosts, pods["pod-b"].port) == {pods["pod-b"].host_key()}
    assert not fleet["retry"].exists(), "a retry file that lists nobody must not be left behind"
    for pod in pods.values():
        pod.container.sh("test -s /workspace/aiclipse/.state/launch.json && test -L /workspace/models")


def test_a_pod_start_uses_no_ssh(tmp_path):
    """-c local with host key checking on, no known_hosts anywhere and an `ssh` that fails loudly."""
    from harness.git_repos import make_comfyui_repo
    from harness.python_env import make_venv
    from harness.site_pod import site_vars

    shims = tmp_path / "shims"
    shims.mkdir()
    marker = tmp_path / "ssh-was-called"
    for tool in ("ssh", "scp", "sftp"):
        (shims / tool).write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\nexit 255\n')
        (shims / tool).chmod(0o755)
    root = tmp_path / "pod"
    make_comfyui_repo(root / "upstream/ComfyUI")
    make_venv(root / "venv")
    (root / "workflows").mkdir(parents=True)
    (root / "manifests").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    variables = {**site_vars(root, "none"), "models_download": False, "custom_nodes_enabled": False}
    run = run_playbook(
        REPO / "site.yml",
        variables,
        json_output=False,
        env={
            "PATH": f"{shims}:{VENV_BIN}:{os.environ['PATH']}",
            "HOME": str(home),
            "ANSIBLE_HOST_KEY_CHECKING": "true",
            "ANSIBLE_LOCAL_TEMP": str(home / ".ansible/tmp"),
        },
    )
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert not marker.exists(), marker.read_text() if marker.exists() else ""
    assert not (home / ".ssh").exists()
