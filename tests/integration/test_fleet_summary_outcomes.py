"""The fleet summary as a user reads it at the end of a real ansible-playbook run, with pods found
through the runpod inventory (loopback RunPod API stand-in, connection local instead of SSH).

Attacked: a pod whose start was not clean (a custom node failed: a warning at a pod start, so
its play goes on) must not be reported plainly ``provisioned`` nor left out of the retry file;
a pod the inventory left out (still starting) must be in the summary and the retry file, not
only in an inventory warning. The run that retries them from the retry file provisions exactly
those, and leaves no retry file behind.
"""

import stat

import pytest

from harness.fleet_runs import fleet_summary, run_fleet_playbook
from harness.runpod_api import RunPodApi, runpod_pod, write_inventory_config

KEY = "rpa_summary_test_key_never_printed_1357"
BROKEN = "custom node ComfyUI-Broken: git clone failed: repository not found"

# The fleet playbook's shape: the summary switched on, and on pod-b the fact site.yml sets on a
# start that was not clean (tests/integration/test_start_stamp_site.py checks site.yml sets it).
PLAYBOOK = """\
- name: Provision the pods
  hosts: pods
  gather_facts: false
  vars:
    aiclipse_fleet_summary: true
  tasks:
    - name: Note what kept this start from being clean
      ansible.builtin.set_fact:
        __aiclipse_start_failures: "{{ [broken] if inventory_hostname == 'pod-b' and not (fixed | bool) else [] }}"
    - name: Read the models manifests
      ansible.builtin.fail:
        msg: "broken_models.txt:2: unknown source 'hugginface'"
      when: inventory_hostname == 'pod-c' and not (fixed | bool)
"""


@pytest.fixture
def fleet(tmp_path):
    pods = [
        runpod_pod("a1", "pod-a", ssh_port=40401),
        runpod_pod("b1", "pod-b", ssh_port=40402),
        runpod_pod("c1", "pod-c", ssh_port=40403),
        dict(runpod_pod("s1", "starting", ssh_port=40404), runtime=None),
    ]
    with RunPodApi(KEY, pods) as api:
        playbook = tmp_path / "fleet.yml"
        playbook.write_text(PLAYBOOK)
        yield {
            "api": api,
            "inventory": write_inventory_config(tmp_path / "inventory", api.url),
            "playbook": playbook,
            "retry": tmp_path / "fleet.retry",
        }


def run_fleet(fleet, fixed, *args):
    extra_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "broken": BROKEN,
        "fixed": fixed,
    }
    return run_fleet_playbook(fleet["playbook"], fleet["inventory"], KEY, fleet["retry"], *args, extra_vars=extra_vars)


def test_unclean_and_skipped_pods_are_reported_and_retried(fleet):
    first = run_fleet(fleet, False)
    assert first.rc != 0  # pod-c failed
    head, rows = fleet_summary(first.stdout)
    assert rows["pod-a"][0] == "provisioned"
    assert rows["pod-b"] == ("provisioned with failures", BROKEN)
    assert rows["pod-c"][0] == "failed" and "hugginface" in rows["pod-c"][1]
    outcome, why = rows["starting"]
    assert outcome == "skipped" and why.startswith("left out of the inventory: it has no runtime yet"), why
    assert head == "4 pods: 1 provisioned, 1 failed, 0 unreachable, 1 provisioned with failures, 1 skipped"
    assert fleet["retry"].read_text() == "pod-b\npod-c\nstarting\n"
    assert stat.S_IMODE(fleet["retry"].stat().st_mode) == 0o600

    # The starting pod is up, pod-b's node and pod-c's manifest are fixed: the retry runs those three.
    with fleet["api"].lock:
        fleet["api"].pods[3] = runpod_pod("s1", "starting", ssh_port=40404)
    second = run_fleet(fleet, True, "--limit", f"@{fleet['retry']}")
    assert second.rc == 0, second.stdout[-3000:] + second.stderr[-2000:]
    head, rows = fleet_summary(second.stdout)
    assert {host: outcome for host, (outcome, _d) in rows.items()} == dict.fromkeys(
        ("pod-b", "pod-c", "starting"), "provisioned"
    )
    assert not fleet["retry"].exists()
