"""Where the checkout, its venv and its caches are."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VENV", REPO / ".venv"))
VENV_BIN = VENV / "bin"
CACHE = REPO / ".cache"
CONTAINERS_CONF = REPO / "containers" / "containers.conf"
# The project owns its test data: copies of the reference manifests live in tests/fixtures.
FIXTURES = REPO / "tests" / "fixtures"
