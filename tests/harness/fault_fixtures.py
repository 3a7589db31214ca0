"""Fixtures for download fault tests: misbehaving HTTP origins and tiny filesystems."""

import subprocess

import pytest

from .fault_server import FaultServer
from .nginx import write_file

FAULT_FILES = (("a.bin", 300_000), ("b.bin", 2_000_000), ("c.bin", 50_000), ("big.bin", 6 * 1024 * 1024))


def _served(tmp_path):
    served = tmp_path / "fault-served"
    catalog = {}
    if not served.exists():
        for seed, (name, size) in enumerate(FAULT_FILES):
            write_file(served / name, size, seed=100 + seed)
    import hashlib

    for name, _size in FAULT_FILES:
        data = (served / name).read_bytes()
        catalog[name] = (len(data), hashlib.sha256(data).hexdigest())
    return served, catalog


@pytest.fixture
def fault_server(tmp_path):
    """A FaultServer over a few files; ``server.catalog`` maps name -> (size, sha256)."""
    served, catalog = _served(tmp_path)
    with FaultServer(served, label="origin") as server:
        server.catalog = catalog
        yield server


@pytest.fixture
def foreign_server(tmp_path):
    """A second FaultServer with the same files: the host a redirect sends a client to
    (signed storage, a CDN, an attacker). No secret may ever reach it."""
    served, catalog = _served(tmp_path)
    with FaultServer(served, label="foreign") as server:
        server.catalog = catalog
        yield server


@pytest.fixture
def tls_fault_server(tmp_path):
    """A FaultServer that speaks HTTP and HTTPS on one port (``server.ca_file`` to trust)."""
    served, catalog = _served(tmp_path)
    with FaultServer(served, label="origin", tls=True) as server:
        server.catalog = catalog
        yield server


def requests_with_secret(servers, secret):
    """Every request, on any of `servers`, with `secret` in any header (Authorization or other)."""
    return [
        r for server in servers for r in server.requests if any(secret in str(value) for value in r.headers.values())
    ]


def assert_secret_only_at(origin, servers, secret, scheme="http"):
    """The token went nowhere but `origin`: right server, right Host header, right scheme."""
    leaks = [
        r
        for r in requests_with_secret(servers, secret)
        if r.server != origin.label or r.host != origin.authority or r.scheme != scheme
    ]
    assert not leaks, f"the token reached another origin: {leaks}"


@pytest.fixture
def small_tmpfs(tmp_path):
    """Factory: mount a tmpfs of `size` (e.g. "3m") under tmp_path; unmounted after the test."""
    mounted = []

    def _mount(size, name="tiny"):
        point = tmp_path / name
        point.mkdir(exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            check=False,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            pytest.fail(f"cannot mount a tmpfs (tests run as root here): {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield _mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)
