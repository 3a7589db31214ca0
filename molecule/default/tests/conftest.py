"""Fixtures for the default scenario's checks: the pod over testinfra's podman backend (plain
`podman exec`, no ansible in between) and COMFY_ARGS after the edit; `world` comes from
molecule/conftest.py."""

from pathlib import Path

import pytest
import testinfra
import yaml

POD = "aiclipse-molecule-pod"
SCENARIO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pod():
    return testinfra.get_host(f"podman://{POD}")


@pytest.fixture(scope="session")
def comfy_args():
    """COMFY_ARGS after the user's edit (the side effect's settings)."""
    settings = yaml.safe_load((SCENARIO / "vars" / "pod-settings-edited.yml").read_text())
    return settings["pod_settings"]["COMFY_ARGS"]
