"""The molecule scenarios' testinfra checks import and collect, checked in seconds.

The checks run only inside `molecule verify`, late in a slow scenario, and they import the test
harness: a harness change that breaks them would otherwise show up as "Verifier tests failed"
at the end of a 20-minute run.
"""

import subprocess
import sys

from harness.paths import REPO


def test_every_scenario_check_collects():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "molecule",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    collected = {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}
    scenarios = {path.parent.parent.name for path in (REPO / "molecule").glob("*/tests/test_*.py")}
    assert {c.split("/")[1] for c in collected} == scenarios
