"""Benchmark (not a test): peak memory of the download modules while they fetch 4 x 1 GiB.

An unthrottled nginx on loopback serves ``--files`` sparse files of ``--size-gib`` each (as
plain URLs for aria2_batch, and as a path-style S3 endpoint for r2_fetch). Each module runs
through ``ansible`` with a sha256 for every file, so the figure includes verification and
publish. While it runs, /proc is polled every 20 ms for every process below the ansible
command, and each one's VmHWM (the kernel's own peak-RSS mark, so a peak between two polls is
not missed) is kept until it exits:

  * module: the Python process running the AnsiballZ module (its code, boto3 and buffers);
  * aria2c: the downloader aria2_batch starts (reported apart: it is a separate program whose
    memory is its own disk cache and connection buffers);
  * ansible: the controller (``ansible`` itself), for reference.

    .venv/bin/python bench/memory_bench.py             # 4 x 1 GiB
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DUMMY_R2_CREDENTIALS as DUMMY, GIB, MIB, Table  # noqa: E402
from harness.ansible_run import json_result_env, module_argv, module_result  # noqa: E402
from harness.nginx import NginxOrigin  # noqa: E402
from harness.paths import REPO  # noqa: E402

BUCKET = "models"
# The issues' targets: r2_fetch got the tighter one with bounded read buffers (issue 21).
TARGET_MIB = {"aria2_batch": 150, "r2_fetch": 100}


def zeros_sha256(size):
    digest = hashlib.sha256()
    block = bytes(MIB)
    for _block in range(size // MIB):
        digest.update(block)
    digest.update(bytes(size % MIB))
    return digest.hexdigest()


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _peak_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _kind(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    text = b" ".join(argv)
    if argv and os.path.basename(argv[0]) == b"aria2c":
        return "aria2c"
    if b"AnsiballZ_" in text:
        return "module"
    if b"/bin/ansible" in text:
        return "ansible"
    return None


class PeakWatcher:
    """Polls the process tree of `root_pid`; peaks (MiB) by kind: module, aria2c, ansible."""

    def __init__(self, root_pid, interval=0.02):
        self.root_pid = root_pid
        self.interval = interval
        self.peaks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            todo, seen = [self.root_pid], set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                todo += _children(pid)
                kind = _kind(pid)
                peak = _peak_kib(pid) if kind else None
                if peak:
                    self.peaks[kind] = max(self.peaks.get(kind, 0), peak / 1024)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_watched(module, args, env=None):
    """Run one module through `ansible` while watching memory; returns (result, peaks)."""
    cmd = module_argv(module, args)
    run_env = json_result_env(env)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakWatcher(proc.pid) as watcher:
        out, err = proc.communicate(timeout=1800)
    watcher.peaks["seconds"] = time.monotonic() - started
    try:
        result = module_result(out, err)
    except (ValueError, KeyError, IndexError):
        raise SystemExit(f"{module} gave no result:\n{out[-3000:]}\n{err[-3000:]}") from None
    return result, watcher.peaks


def measure(table, files=4, size=GIB, workdir=None):
    from common import workdir as make_workdir

    root = Path(workdir) if workdir else make_workdir("memory-")
    figures = {}
    try:
        served = root / "served"
        for number in range(files):
            for path in (served / (f"m{number}.bin"), served / BUCKET / (f"m{number}.bin")):
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as handle:
                    handle.truncate(size)
        sha = zeros_sha256(size)
        label = f"{files} x {size // GIB} GiB" if size >= GIB else f"{files} x {size // MIB} MiB"
        with NginxOrigin(served) as origin:
            out = root / "aria2"
            downloads = [
                {
                    "url": f"{origin.url}/public/m{n}.bin",
                    "dest": str(out / "models" / (f"m{n}.bin")),
                    "sha256": sha,
                }
                for n in range(files)
            ]
            result, peaks = run_watched(
                "aiclipse.comfyui.aria2_batch", {"downloads": downloads, "state_dir": str(out / "state")}
            )
            if result.get("failed") or result.get("downloaded") != files:
                raise SystemExit(f"aria2_batch: {result.get('msg', result)}")
            shutil.rmtree(out)
            figures["aria2_batch"] = peaks
            out = root / "r2"
            objects = [
                {"key": f"m{n}.bin", "dest": str(out / "models" / (f"m{n}.bin")), "sha256": sha} for n in range(files)
            ]
            result, peaks = run_watched(
                "aiclipse.comfyui.r2_fetch",
                {"objects": objects, "bucket": BUCKET, "endpoint_url": origin.url, "state_dir": str(out / "state")},
                env=DUMMY,
            )
            if result.get("failed") or result.get("downloaded") != files:
                raise SystemExit(f"r2_fetch: {result.get('msg', result)}")
            shutil.rmtree(out)
            figures["r2_fetch"] = peaks
        for module, peaks in figures.items():
            limit = TARGET_MIB[module]
            table.add(
                f"peak RSS: {module} module process, fetching {label}",
                f"{peaks.get('module', 0):.0f} MiB",
                "",
                None,
                f"<= {limit} MiB",
                peaks.get("module", 0) <= limit,
            )
        for module, peaks in figures.items():
            table.add(
                f"  {module} throughput, unthrottled loopback (incl. ansible, sha256, publish)",
                "%.0f MiB/s" % (files * size / MIB / peaks["seconds"]),
            )
        table.add(
            "  aria2c (aria2_batch's downloader, its own process)", f"{figures['aria2_batch'].get('aria2c', 0):.0f} MiB"
        )
        table.add(
            "  ansible controller (for reference)", f"{max(p.get('ansible', 0) for p in figures.values()):.0f} MiB"
        )
        return figures
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size-gib", type=float, default=1)
    opts = parser.parse_args()
    table = Table()
    measure(table, opts.files, int(opts.size_gib * GIB))
    print(table.render())


if __name__ == "__main__":
    main()
