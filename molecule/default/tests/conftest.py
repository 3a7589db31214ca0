"""Fixtures for the default scenario's checks: the pod over testinfra's podman backend (plain
`podman exec`, no ansible in between) and what the world promised it (expected.json)."""
import json
import os
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
def world():
    """expected.json of the world the scenario ran in (tests/harness/molecule_world.py)."""
    root = os.environ.get("AICLIPSE_MOLECULE_WORLD")
    if not root:
        pytest.fail("AICLIPSE_MOLECULE_WORLD is not set: run the scenario through "
                    "tests/molecule_scenarios or tests/harness/molecule_world.py")
    return json.loads((Path(root) / "expected.json").read_text())


@pytest.fixture(scope="session")
def comfy_args():
    """COMFY_ARGS after the user's edit (the side effect's settings)."""
    settings = yaml.safe_load((SCENARIO / "vars" / "pod-settings-edited.yml").read_text())
    return settings["pod_settings"]["COMFY_ARGS"]
