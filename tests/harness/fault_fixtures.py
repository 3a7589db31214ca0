"""Fixtures for download fault tests: a misbehaving HTTP origin and a tiny filesystem."""
import subprocess

import pytest

from .fault_server import FaultServer
from .nginx import write_file


@pytest.fixture
def fault_server(tmp_path):
    """A FaultServer over a few files; ``server.catalog`` maps name -> (size, sha256)."""
    served = tmp_path / "fault-served"
    catalog = {}
    for seed, (name, size) in enumerate((("a.bin", 300_000), ("b.bin", 2_000_000), ("c.bin", 50_000),
                                         ("big.bin", 6 * 1024 * 1024))):
        catalog[name] = (size, write_file(served / name, size, seed=100 + seed))
    with FaultServer(served) as server:
        server.catalog = catalog
        yield server


@pytest.fixture
def small_tmpfs(tmp_path):
    """Factory: mount a tmpfs of `size` (e.g. "3m") under tmp_path; unmounted after the test."""
    mounted = []

    def _mount(size, name="tiny"):
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", str(point)], check=False,
                              capture_output=True, text=True)
        if proc.returncode:
            pytest.fail("cannot mount a tmpfs (tests run as root here): %s" % proc.stderr.strip())
        mounted.append(point)
        return point

    yield _mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)
