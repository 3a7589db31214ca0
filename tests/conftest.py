import os

pytest_plugins = ["harness.fixtures", "harness.r2_fixtures", "harness.fault_fixtures", "harness.comfyui_fixtures"]


def pytest_sessionstart(session):
    # Tests provision temporary roots; a pod path on the test machine means a default leaked.
    session.config.pod_paths_before = {p: os.path.lexists(p) for p in POD_PATHS}


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "pod_paths_before", {})
    leaked = [p for p in POD_PATHS if os.path.lexists(p) and not before.get(p)]
    if leaked:
        session.exitstatus = 1
        print(f"\nFAILED: tests wrote to the machine's pod paths {leaked}: a test used a default "
              "instead of its temporary root")


POD_PATHS = ("/workspace", "/etc/rp_environment", "/opt/workflows", "/opt/aiclipse")
