"""The adopted scenario's pod, over testinfra's podman backend (plain `podman exec`)."""

import pytest
import testinfra


@pytest.fixture(scope="session")
def pod():
    return testinfra.get_host("podman://aiclipse-molecule-adopted")
