"""Fixtures every scenario's checks share (pytest loads this for molecule/<scenario>/tests: the
repository's pyproject.toml makes its root the rootdir)."""

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def world():
    """expected.json of the world the scenario ran in (tests/harness/molecule_world.py)."""
    root = os.environ.get("AICLIPSE_MOLECULE_WORLD")
    if not root:
        pytest.fail(
            "AICLIPSE_MOLECULE_WORLD is not set: run the scenario through "
            "tests/molecule_scenarios or tests/harness/molecule_world.py"
        )
    return json.loads((Path(root) / "expected.json").read_text())
