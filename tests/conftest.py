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
        print(
            f"\nFAILED: tests wrote to the machine's pod paths {leaked}: a test used a default "
            "instead of its temporary root"
        )


POD_PATHS = ("/workspace", "/etc/rp_environment", "/opt/workflows", "/opt/aiclipse")


# Test files that take minutes (containers, molecule scenarios) start first: with the files
# spread over workers (scripts/test.sh), a long file started last would run on alone.
LONG_FILES = (
    "tests/molecule_scenarios/",
    "tests/integration/test_image_build.py",
    "tests/integration/test_fleet",
    "tests/integration/test_entrypoint.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        path = item.nodeid
        for index, prefix in enumerate(LONG_FILES):
            if path.startswith(prefix):
                return index
        return len(LONG_FILES)

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept
