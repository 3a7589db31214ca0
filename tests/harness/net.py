"""Loopback ports: picked by the kernel, never hard-coded, so parallel and repeated runs work."""

import random
import socket
import time


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def steady_port(host="127.0.0.1"):
    """A free port below the kernel's ephemeral range (32768 and up), for a server that must
    bind the same port again after a restart: free_port() and every outgoing connection on this
    machine draw from the ephemeral range, so none of them takes it in between."""
    low, high = 20000, 32767
    for _attempt in range(200):
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def wait_for_port(port, host="127.0.0.1", timeout=15.0, process=None):
    """Block until something accepts on host:port; fail fast if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
