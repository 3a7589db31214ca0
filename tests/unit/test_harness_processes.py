"""The harness signals only processes a test started: descendants() finds a test's own
processes, across a setsid() as ansible's workers do, and never an unrelated one with the same
command line (a download in a pod another test is booting)."""

import subprocess
import sys
import time

from harness.processes import command_line, descendants

SLEEPER = "import time; time.sleep(60)  # harness-processes-probe"


def test_descendants_cross_a_new_session_and_skip_a_look_alike():
    # ours: a shell that starts the probe in a session of its own (as an ansible worker would)
    ours = subprocess.Popen(["sh", "-c", f'setsid {sys.executable} -c "{SLEEPER}" & wait'])
    stranger = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        deadline = time.monotonic() + 10
        found = []
        while not found and time.monotonic() < deadline:
            found = [pid for pid in descendants(ours.pid) if "harness-processes-probe" in command_line(pid)]
            time.sleep(0.05)
        assert len(found) == 1, found
        assert stranger.pid not in descendants(ours.pid)
        assert "harness-processes-probe" in command_line(stranger.pid)
        assert found[0] != stranger.pid
    finally:
        for pid in descendants(ours.pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()
