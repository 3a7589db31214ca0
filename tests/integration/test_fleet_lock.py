"""A fleet provisioned from one lock gets that lock on every pod (real SSH into podman pods,
the RunPod API stand-in, playbooks/fleet.yml as a user runs it).

pod-a is provisioned from the manifests and its lock is copied to the controller. Then the
custom node's upstream moves on, so a pod provisioned from the manifests now would clone
another commit. The whole fleet is then provisioned with AICLIPSE_LOCK naming the controller's
copy: every pod must end with the very same lock file, byte for byte. The lock holds no per-pod
field (no host name, no timestamp; paths are the pods' shared layout), so nothing is left out
of the comparison.
"""

import pytest
import yaml

from harness.ansible_run import run_playbook
from harness.fleet_pods import running_fleet
from harness.git_repos import GitRepo
from harness.paths import REPO

pytestmark = [pytest.mark.podman, pytest.mark.slow]

FLEET = REPO / "playbooks" / "fleet.yml"
KEY = "rpa_fleet_lock_key_never_printed_1357"
NAMES = ("pod-a", "pod-b", "pod-c")
LOCK = "/workspace/aiclipse/.state/pod.lock.yml"


@pytest.fixture
def fleet(tmp_path, podman_image):
    with running_fleet(tmp_path, podman_image, NAMES, KEY) as running:
        yield running


def run_fleet(fleet, *args, **env):
    run = run_playbook(
        FLEET,
        inventory=fleet["inventory"],
        json_output=False,
        args=args,
        env={"RUNPOD_API_KEY": KEY, "AICLIPSE_FLEET_RETRY_FILE": str(fleet["retry"]), **env},
    )
    assert KEY not in run.stdout + run.stderr
    return run


def test_a_fleet_from_one_lock_has_that_lock_on_every_pod(fleet):
    pods = fleet["pods"]
    first = run_fleet(fleet, "--limit", "pod-a")
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    lock_text = pods["pod-a"].container.sh(f"cat {LOCK}").stdout
    saved = fleet["root"] / "fleet.lock.yml"
    saved.write_text(lock_text)
    locked = yaml.safe_load(lock_text)
    node = GitRepo(fleet["world"].root / "upstream/ComfyUI-Fleet-Node")
    assert [n["commit"] for n in locked["custom_nodes"]] == [node.head()]
    assert locked["models"][0]["sha256"] and not locked["models"][0].get("missing")

    # Upstream moves on: without the lock, pod-b and pod-c would get the new commit.
    newer = node.commit({"later.py": "# newer\n"}, "newer node")

    run = run_fleet(fleet, AICLIPSE_LOCK=str(saved))
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    locks = {name: pod.container.sh(f"cat {LOCK}").stdout for name, pod in pods.items()}
    assert locks == dict.fromkeys(NAMES, lock_text)
    assert newer not in lock_text
    for pod in pods.values():
        report = pod.container.sh("cat /workspace/aiclipse/logs/lock-report.txt").stdout
        assert report.startswith(f"Pod lock {saved}: reproduced"), report
