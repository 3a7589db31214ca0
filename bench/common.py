"""Pieces every benchmark shares: paths, timing, the physical bounds, sparse model farms and the
result table. Benchmarks import it as ``from common import ...`` (bench/ is on sys.path when a
bench script runs), and reach the test harness and the collection's module_utils through the
paths set up here, so servers and containers are started exactly as the tests start them.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "collections"))

from harness.ansible_run import ansible_env, run_playbook  # noqa: E402  pylint: disable=wrong-import-position
from harness.nginx import NginxOrigin  # noqa: E402  pylint: disable=wrong-import-position
from harness.paths import CACHE, VENV_BIN  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024
GIB = 1024 * MIB
# The S3-style nginx endpoint of the R2 benchmarks checks no signature; boto3 still wants keys.
DUMMY_R2_CREDENTIALS = {
    "R2_ACCESS_KEY_ID": "BENCHMARK-ACCESS-KEY",
    "R2_SECRET_ACCESS_KEY": "benchmark-secret-not-checked-by-nginx",
}
# One a model subfolder of ComfyUI's, so the farms look like a pod's models/ tree.
SUBDIRS = ("checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "controlnet", "upscale_models")


def workdir(prefix):
    """A fresh directory under .cache/bench (same filesystem as the checkout; removed by the caller)."""
    root = CACHE / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def clock(function, *args, **kwargs):
    """(seconds, result) of one call."""
    started = time.monotonic()
    result = function(*args, **kwargs)
    return time.monotonic() - started, result


def runs_text(values, digits=1):
    """Each run's seconds, as the notes under a table list them."""
    return " ".join(f"{value:.{digits}f}" for value in values)


def median(values):
    return statistics.median(values)


def side_by_side(repeat, measured, baseline):
    """Run `measured` and `baseline` alternately `repeat` times each, so load on this shared
    machine hits both alike; return (median measured, median baseline, all measured, all baseline)."""
    ours, theirs = [], []
    for _round in range(repeat):
        ours.append(measured())
        theirs.append(baseline())
    return median(ours), median(theirs), ours, theirs


def in_turns(round_number, runs):
    """`runs` (callables) in the order of this round: each round starts one further along, so
    no contender always goes first. The first run after a pause or after the data was written
    is the slow one on this machine (plain aria2c took 12.5 s first, 6.8-8.7 s after), and a
    fixed order put that on the same side every round."""
    shift = round_number % len(runs)
    for run in runs[shift:] + runs[:shift]:
        run()


def settle_disk():
    """Write every dirty page out before timing: the served files were just written, and their
    writeback would otherwise land on whichever run comes first."""
    os.sync()


def noop_playbook(directory):
    """The baseline a pod start is compared with: one module task on the same host, nothing else."""
    path = Path(directory) / "noop.yml"
    path.write_text(
        "---\n- name: One no-op task\n  hosts: pods\n  gather_facts: false\n  tasks:\n"
        "    - name: Ping\n      ansible.builtin.ping:\n"
    )
    return path


def time_playbook(playbook, extra_vars=None, inventory=None, env=None, args=(), expect_changed=None):
    """Seconds of one ansible-playbook run (json callback); fails loudly when the run failed."""
    seconds, run = clock(run_playbook, playbook, extra_vars, inventory=inventory, env=env, args=args)
    if run.rc != 0 or run.failed:
        raise SystemExit(f"{playbook} failed (rc {run.rc}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    if expect_changed is not None and run.changed != expect_changed:
        raise SystemExit(f"{playbook}: changed={run.changed}, expected {expect_changed}")
    return seconds


# -- sparse model farms -------------------------------------------------------------------


def fake_sha256(name):
    """A well-formed sha256 for an entry (the ledger is trusted, so no byte is ever hashed; a run
    that did hash would fail the check against these sparse zeros, which makes a missed skip loud)."""
    return hashlib.sha256(name.encode()).hexdigest()


def sparse_farm(models_dir, count, size, prefix="model"):
    """`count` sparse files of apparent `size` under models_dir/<subdir>/; returns their entries
    as (subdir, filename, dest, sha256)."""
    entries = []
    for number in range(count):
        subdir = SUBDIRS[number % len(SUBDIRS)]
        filename = f"{prefix}-{number:04d}.safetensors"
        dest = Path(models_dir) / subdir / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as handle:
            handle.truncate(size)
        entries.append((subdir, filename, str(dest), fake_sha256(filename)))
    return entries


def record_farm(state_dir, entries, sha256_from=None):
    """Put the farm into the model ledger exactly as ModelStore.record() would after a verified
    download (size, mtime_ns, sha256, and where the sha256 came from when given), in one ledger
    write instead of one per file."""
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import ModelStore

    store = ModelStore(str(state_dir))

    def add(ledger):
        for _subdir, _filename, dest, sha256 in entries:
            st = os.stat(dest)
            ledger[os.path.abspath(dest)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
            if sha256_from:
                ledger[os.path.abspath(dest)]["sha256_from"] = sha256_from

    store._update_ledger(add)  # pylint: disable=protected-access


# -- physical bounds ----------------------------------------------------------------------


def disk_write_mib_s(directory, size=1 * GIB):
    """Sequential write with fsync (what a download's bytes cost on this disk), in MiB/s."""
    target = Path(directory) / "disk-probe.bin"
    started = time.monotonic()
    subprocess.run(
        [
            "dd",
            "if=/dev/zero",
            f"of={target}",
            "bs=8M",
            "count=%s" % (size // (8 * MIB)),
            "conv=fsync",
            "status=none",
        ],
        check=True,
    )
    seconds = time.monotonic() - started
    target.unlink()
    return size / MIB / seconds


def loopback_mib_s(directory, size=1 * GIB, connections=4):
    """nginx -> curl over loopback into /dev/null, unthrottled, `connections` at once (the same
    shape as the downloads): the most any downloader could get from the origin here, in MiB/s."""
    served = Path(directory) / "loopback"
    served.mkdir(parents=True, exist_ok=True)
    with open(served / "probe.bin", "wb") as handle:
        handle.truncate(size)
    try:
        with NginxOrigin(served) as origin:
            url = origin.url + "/public/probe.bin"
            started = time.monotonic()
            procs = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", url]) for _conn in range(connections)]
            if any(proc.wait() for proc in procs):
                raise SystemExit(f"curl could not read {url}")
            seconds = time.monotonic() - started
    finally:
        shutil.rmtree(served, ignore_errors=True)
    return connections * size / MIB / seconds


# -- the table ----------------------------------------------------------------------------


class Table:
    """Rows of (figure, measured, baseline, ratio, target, verdict), printed aligned."""

    HEADER = ("figure", "measured", "baseline", "ratio", "target", "")

    def __init__(self):
        self.rows = []
        self.notes = []

    def add(self, figure, measured, baseline="", ratio=None, target="", ok=None):
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append((figure, measured, baseline, "" if ratio is None else f"{ratio:.2f}", target, verdict))

    def note(self, text):
        self.notes.append(text)

    def render(self):
        widths = [max(len(str(row[i])) for row in [self.HEADER] + self.rows) for i in range(len(self.HEADER))]
        lines = []
        for index, row in enumerate([self.HEADER] + self.rows):
            lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths).rstrip())
        return "\n".join(lines + [""] + self.notes)


def run_alone(doc, measure, **options):
    """main() of a bench script run on its own: one ``--name`` option per keyword (its default's
    type; a bool is a flag), then ``measure(table, **values)`` and the table printed."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(default), default=default)
    table = Table()
    measure(table, **vars(parser.parse_args()))
    print(table.render())


def environment_line():
    """What the numbers were measured on: cores, load, versions."""
    load = os.getloadavg()[0]
    version = subprocess.run(
        [str(VENV_BIN / "ansible"), "--version"], capture_output=True, text=True, env=ansible_env(), check=False
    ).stdout.splitlines()[:1]
    return f"{os.cpu_count()} cores, load {load:.1f} at start, {(version or ['ansible ?'])[0]}, Python {sys.version.split()[0]}"
