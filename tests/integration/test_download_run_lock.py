"""The run lock and the stop contract of both downloaders, with real aria2c, nginx, moto.

Two runs of one downloader on the same vault (a fleet re-run while the pod's background job
still downloads) never write the same staging files: the second waits, then finds the models.

While a run holds ``<state_dir>/<downloader>.run.lock`` the file holds the module's PID;
SIGTERM to that PID stops the run within a couple of seconds, saying so in the log and in
every unfinished result, and the next run resumes where it stopped (bytes counted at the
server). Killing ansible's process group does not reach the module (ansible's worker calls
setsid): that is why the PID is there.
"""

import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.ansible_run import json_result_env, module_argv, module_result, run_module
from harness.nginx import write_file
from harness.paths import REPO
from harness.processes import command_line, descendants
from harness.s3 import ACCESS_KEY, SECRET_KEY
from harness.throttle_proxy import ThrottleProxy

MiB = 1024 * 1024
CREDENTIALS = {"R2_ACCESS_KEY_ID": ACCESS_KEY, "R2_SECRET_ACCESS_KEY": SECRET_KEY}


def body_bytes(origin, marker):
    return sum(
        int(line.rsplit("bytes=", 1)[1]) for line in origin.log_lines() if line.startswith("GET ") and marker in line
    )


def start_module(module, args, env=None):
    """The module through ansible in its own session, its result printed as JSON."""
    cmd = module_argv(module, args)
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=json_result_env(env),
    )


def wait_for_pid(lock, log, marker, timeout=60):
    """The PID written into the run lock, once the log shows the download got going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = lock.read_text() if lock.exists() else ""
        if text.endswith("\n") and text.strip().isdigit() and log.exists() and marker in log.read_text():
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"no PID in {lock} (log: {(log.read_text() if log.exists() else 'none')})")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
    return state != "Z"


def wait_gone(pid, timeout):
    started = time.monotonic()
    while alive(pid) and time.monotonic() - started < timeout:
        time.sleep(0.02)
    return time.monotonic() - started


def test_second_aria2_batch_run_waits_and_downloads_nothing_twice(make_origin, tmp_path):
    served = tmp_path / "served"
    size = 6 * MiB
    digest = write_file(served / "big.safetensors", size, seed=3)
    # Throttled so the first run (about 12 s) is still downloading when the second starts.
    origin = make_origin(served, limit_rate="500k")
    vault = tmp_path / "vault"
    dest = vault / "models/checkpoints/big.safetensors"
    args = {
        "state_dir": str(vault / ".state/models"),
        "log_file": str(vault / "logs/models.log"),
        "downloads": [{"url": f"{origin.url}/public/big.safetensors", "dest": str(dest), "sha256": digest}],
        "split": 1,
        "max_connection_per_server": 1,
    }
    results = [None, None]

    def run(index):
        results[index] = run_module("aria2_batch", args)[0]

    first = threading.Thread(target=run, args=(0,))
    first.start()
    log = vault / "logs/models.log"
    for _attempt in range(200):
        if log.exists() and "starting" in log.read_text():
            break
        first.join(0.05)
    second = threading.Thread(target=run, args=(1,))
    second.start()
    first.join(120)
    second.join(120)

    statuses = sorted(r["results"][0]["status"] for r in results)
    assert statuses == ["downloaded", "present"], results
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
    body = body_bytes(origin, "big.safetensors")
    assert body <= size * 1.05, f"the model crossed the wire more than once ({body} bytes)"
    assert "waiting for it to finish" in log.read_text()
    assert not list(Path(vault / ".state/models/staging").iterdir())
    assert (vault / ".state/models/aria2_batch.run.lock").read_text() == "", "a finished run leaves no PID"


def test_sigterm_stops_aria2_batch_cleanly_and_the_next_run_resumes(make_origin, tmp_path):
    served = tmp_path / "served"
    size = 8 * MiB
    digests = {name: write_file(served / name, size, seed=n) for n, name in enumerate(("s1.bin", "s2.bin"))}
    # nginx allows a second's worth at the start of every request and aria2c's in-order pieces
    # make many requests: a low rate keeps the two files from finishing before the stop.
    origin = make_origin(served, limit_rate="256k")
    vault = tmp_path / "vault"
    state, log = vault / ".state/models", vault / "logs/models.log"
    args = {
        "state_dir": str(state),
        "log_file": str(log),
        "split": 2,
        "min_split_size": "1M",
        "downloads": [
            {"url": f"{origin.url}/public/{name}", "dest": str(vault / "models" / name), "sha256": digest}
            for name, digest in digests.items()
        ],
    }
    proc = start_module("aria2_batch", args)
    try:
        pid = wait_for_pid(state / "aria2_batch.run.lock", log, "starting")
        assert b"aria2_batch" in Path(f"/proc/{pid}/cmdline").read_bytes(), "the PID is the module's"
        while sum(p.stat().st_blocks * 512 for p in (state / "staging").glob("*.bin")) < 3 * MiB:
            time.sleep(0.05)
        # Killing ansible's whole process group does not reach the module: it lives in a session
        # of its own (ansible's worker calls setsid).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(1)
        assert alive(pid), "the module should have survived the kill of ansible's process group"
        os.kill(pid, signal.SIGTERM)
        took = wait_gone(pid, 30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not alive(pid), "SIGTERM did not stop the module"
    assert took < 10, f"the module took {took:.1f} s to stop (the contract says a couple of seconds)"
    text = log.read_text()
    assert "stopped by SIGTERM: 2 download(s) unfinished (s1.bin, s2.bin); they resume at the next start" in text
    assert len(list((state / "staging").glob("*.aria2"))) == 2, "aria2c saves its control files on SIGTERM"
    assert (state / "aria2_batch.run.lock").read_text() == ""
    assert not any((vault / "models" / name).exists() for name in digests)
    served_before = body_bytes(origin, "/public/")

    result, _proc = run_module("aria2_batch", args)
    assert not result.get("failed"), result.get("msg")
    for got in result["results"]:
        assert got["status"] == "downloaded" and got["reason"].startswith("resumed: "), got
    for name, digest in digests.items():
        assert hashlib.sha256((vault / "models" / name).read_bytes()).hexdigest() == digest
    refetched = body_bytes(origin, "/public/") - 2 * size
    print(
        f"HTTP: {refetched / MiB:.2f} MiB of 2 x {size // MiB} MiB crossed the wire twice after a SIGTERM "
        f"(stopped at {served_before / MiB:.2f} MiB)"
    )
    # The control files are exact (aria2c counts 16 KiB blocks that are on disk). What crosses the
    # wire again is what sat in a connection's socket buffers when aria2c stopped (nginx counts
    # bytes handed to the kernel), plus aria2c's first, unranged GET of a resumed file, which it
    # drops once it knows the size: about 1 MiB each here. Bound: 2 MiB per connection.
    connections = 2 * len(digests)
    assert refetched <= 2 * MiB * connections, "%.1f MiB crossed the wire twice" % (refetched / MiB)
    assert sum(r["fetched_bytes"] for r in result["results"]) <= 2 * size - served_before + connections * 2 * MiB


def test_sigterm_stops_r2_fetch_cleanly_with_a_result_and_the_next_run_resumes(s3, tmp_path):
    client = s3.client()
    client.create_bucket(Bucket="models")
    size = 16 * MiB
    body = os.urandom(size)
    client.put_object(Bucket="models", Key="big.safetensors", Body=body)
    vault = tmp_path / "vault"
    state, log = vault / ".state/models", vault / "logs/models.log"
    dest = vault / "models/big.safetensors"
    with ThrottleProxy(s3.port, 1 * MiB) as proxy:
        args = {
            "objects": [{"key": "big.safetensors", "dest": str(dest), "name": "checkpoints/big.safetensors"}],
            "bucket": "models",
            "endpoint_url": proxy.endpoint,
            "state_dir": str(state),
            "log_file": str(log),
            "part_size": "4MB",
            "multipart_threshold": "8MB",
            "max_concurrency": 2,
        }
        proc = start_module("r2_fetch", args, env=CREDENTIALS)
        try:
            pid = wait_for_pid(state / "r2_fetch.run.lock", log, "starting")
            while proxy.sent < 3 * MiB:
                time.sleep(0.05)
            started = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - started
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stopped_at = proxy.sent
        result = module_result(out)
        assert took < 10, f"r2_fetch took {took:.1f} s to stop"
        assert result["failed"] is True and result["failed_count"] == 1, result
        (got,) = result["results"]
        assert got["status"] == "failed" and got["reason"].startswith("stopped by SIGTERM before it finished"), got
        assert got["reason"].endswith("the next start resumes it")
        assert "stopped by SIGTERM: 1 download(s) unfinished (checkpoints/big.safetensors)" in log.read_text()
        assert list((state / "staging").glob("*.parts")), "the part journal stays for the resume"
        assert (state / "r2_fetch.run.lock").read_text() == ""
        assert not dest.exists()

        again, _proc = run_module("r2_fetch", dict(args, max_concurrency=8), env=CREDENTIALS)
        wire = proxy.sent
    assert not again.get("failed"), again.get("msg")
    assert dest.read_bytes() == body
    assert again["results"][0]["reason"].startswith("resumed: ")
    refetched = wire - size - 64 * 1024
    print(f"R2: {(wire - size) / MiB:.2f} MiB of {size // MiB} MiB crossed the wire twice after a SIGTERM")
    assert refetched <= 2 * MiB, f"{refetched / MiB:.1f} MiB crossed the wire twice (stopped at {stopped_at})"


@pytest.mark.parametrize("module", ["aria2_batch", "r2_fetch"])
def test_sigterm_while_waiting_for_the_lock_ends_the_wait(tmp_path, module):
    """A run queued behind another one (a fleet re-run) stops at once too, touching nothing."""
    import fcntl

    state = tmp_path / "vault/.state/models"
    state.mkdir(parents=True)
    holder = open(state / (f"{module}.run.lock"), "w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    log = tmp_path / "vault/logs/models.log"
    if module == "aria2_batch":
        args = {
            "state_dir": str(state),
            "log_file": str(log),
            "downloads": [{"url": "http://127.0.0.1:9/x.bin", "dest": str(tmp_path / "vault/models/x.bin")}],
        }
        env = {}
    else:
        args = {
            "state_dir": str(state),
            "log_file": str(log),
            "endpoint_url": "http://127.0.0.1:9",
            "bucket": "b",
            "objects": [{"key": "x.bin", "dest": str(tmp_path / "vault/models/x.bin")}],
        }
        env = CREDENTIALS
    proc = start_module(module, args, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and "waiting for it to finish" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # This run's module only: a machine-wide match would stop the downloads of pods that
        # tests running in parallel boot (their processes are visible here too).
        pids = [pid for pid in descendants(proc.pid) if f"AnsiballZ_{module}" in command_line(pid)]
        assert pids, "the waiting module is not running"
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
    finally:
        holder.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    result = module_result(out)
    assert result["results"][0]["status"] == "failed"
    assert result["results"][0]["reason"].startswith("stopped by SIGTERM before it finished")
    assert not (tmp_path / "vault/models").exists()
