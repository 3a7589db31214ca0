"""What every user of a machine can see of its processes: their command lines (``ps``).

with ArgvSampler() as seen:          # samples /proc/*/cmdline until the block ends
    run_something()
seen.matching("git")                 # every distinct command line that held "git"
running("127.0.0.1:4711")            # command lines of processes alive now holding it
stop_process(proc, signal.SIGQUIT)   # a server's graceful stop, SIGKILL when it hangs
descendants(proc.pid)                # the PIDs below one process, deepest last

Signal only processes this test started (descendants()): /proc here shows every process on the
machine, the pods of tests running in parallel included, so matching command lines machine-wide
would reach their downloads too.
"""

import os
import subprocess
import threading


def _command_lines():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        if raw:
            yield int(pid), raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _parents():
    parents = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                parents[int(pid)] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def descendants(root):
    """PIDs of every process below root (children, their children, ...), parents first.
    ansible's workers call setsid(), so the process group of `ansible` misses the module."""
    parents = _parents()
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def command_line(pid):
    """pid's command line as text ("" when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def stop_process(process, signum, timeout=10):
    """End a server we started: `signum` (its graceful stop), then SIGKILL after `timeout` s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def running(fragment):
    """Command lines of the processes alive now that contain fragment (this one excluded)."""
    return [line for pid, line in _command_lines() if fragment in line and pid != os.getpid()]


class ArgvSampler:
    """Reads every process's command line as often as it can while the block runs."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.lines = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = None

    def _run(self):
        while not self._stop.is_set():
            self.lines.update(line for dummy, line in _command_lines())
            self.samples += 1
            self._stop.wait(self.interval)

    def matching(self, fragment):
        return sorted(line for line in self.lines if fragment in line)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
