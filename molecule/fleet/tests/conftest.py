"""Fixtures for the fleet checks: each pod over testinfra's podman backend, over real SSH, and
the saved output of the fleet run (converge.yml); `world` comes from molecule/conftest.py."""

import os
import subprocess
from pathlib import Path

import pytest
import testinfra

from harness.ssh_pod import ssh_argv


def _saved(name):
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name
    first, _sep, rest = log.read_text().partition("\n")
    return int(first.removeprefix("rc=")), rest


@pytest.fixture(scope="session")
def fleet_run():
    """(exit code, output) of `ansible-playbook -i inventories/runpod -i inventory playbooks/fleet.yml`."""
    return _saved("fleet-run.log")


@pytest.fixture(scope="session")
def fleet_graph():
    """(exit code, output) of `ansible-inventory -i inventories/runpod --graph`."""
    return _saved("fleet-graph.log")


@pytest.fixture(scope="session")
def retry_file():
    """The fleet summary's retry file (None when it was not written)."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "fleet.retry"
    return path.read_text() if path.exists() else None


@pytest.fixture(scope="session")
def pod_host():
    """pod_host("pod-a"): the pod's container through testinfra's podman backend."""
    return lambda name: testinfra.get_host(f"podman://aiclipse-fleet-{name}")


@pytest.fixture(scope="session")
def ssh(world):
    """ssh("pod-a", "cmd") runs cmd the way `ssh pod 'cmd'` does (non-interactive, over sshd)."""
    return lambda name, command: _ssh(world, name, command)


def _ssh(world, name, command):
    return subprocess.run(
        [*ssh_argv(world["fleet_key"], world["fleet_ports"][name]), "root@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
