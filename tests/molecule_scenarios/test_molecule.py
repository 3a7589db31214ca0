"""The molecule scenarios, run with the servers their pods reach.

Each test starts a world (tests/harness/molecule_world.py: nginx origin, moto S3, local git
repos, manifests, workflows, an SSH key), exports its addresses and the pod image tag as
AICLIPSE_MOLECULE_* variables, and runs `molecule test -s <scenario>`; the scenario's own
testinfra checks decide. On failure the tail of molecule's output is the assertion message.
"""

import re

import pytest

from harness.molecule_world import World, run_molecule

pytestmark = [pytest.mark.podman, pytest.mark.slow]


@pytest.fixture
def world(tmp_path, podman_image):  # podman_image: fails early when podman is missing
    started = World(tmp_path / "world").build().start()
    yield started
    started.stop()


def _run(scenario, world):
    proc = run_molecule(["test", "-s", scenario], world)
    output = proc.stdout
    assert proc.returncode == 0, f"molecule test -s {scenario} failed (rc {proc.returncode}):\n{_failure(output)}"
    return output


def _failure(output):
    """The verifier's own report when it failed (destroy's output would push it out of a plain
    tail), else the tail of molecule's output."""
    start = output.find("> verify] Executing")
    if start >= 0:
        ends = [i for i in (output.find(f"> {step}]", start) for step in ("cleanup", "destroy")) if i > 0]
        return output[start : min(ends, default=len(output))][-12000:]
    return output[-12000:]


def test_default_pod_start_restart_and_user_edits(world):
    output = _run("default", world)
    # Every promised step ran, in order, and the verifier ran the testinfra checks.
    steps = ["create", "prepare", "converge", "idempotence", "side_effect", "verify"]
    for step in steps:
        assert f"[default > {step}] Executed: Successful" in output, f"step {step} did not run"
    assert re.search(r"\b\d+ passed\b", output), "no testinfra summary in the output"
    assert not re.search(r"\b\d+ (failed|error)", output)
    # No step prints a secret: not the provisioning runs (converge, idempotence, converge) and
    # not molecule's own create/destroy, whose platforms carry the pod's tokens.
    _assert_no_secret(output, world)


def test_fleet_in_parallel_over_ssh_with_a_broken_and_a_gone_pod(world):
    output = _run("fleet", world)
    for step in ("create", "prepare", "converge", "verify"):
        assert f"[fleet > {step}] Executed: Successful" in output, f"step {step} did not run"
    assert re.search(r"\b\d+ passed\b", output), "no testinfra summary in the output"
    _assert_no_secret(output, world)


def test_adopted_install_moves_into_the_vault_without_losing_a_byte(world):
    output = _run("adopted", world)
    for step in ("create", "prepare", "converge", "idempotence", "verify"):
        assert f"[adopted > {step}] Executed: Successful" in output, f"step {step} did not run"
    assert re.search(r"\b\d+ passed\b", output), "no testinfra summary in the output"
    assert not re.search(r"\b\d+ (failed|error)", output)


def _assert_no_secret(output, world):
    for secret in (
        world.expected["hf_token"],
        world.expected["r2_secret"],
        world.expected["runpod_key"],
        world.expected["fleet_pod_secret"],
    ):
        assert secret not in output, "a secret appears in molecule's output"
