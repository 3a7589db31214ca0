"""Benchmark aria2_batch (not a test): is the module as fast as aria2c itself, and how much
faster than the original's sequential single-connection fallback?

Serves N files from an nginx origin throttled per connection (like a CDN edge), then times:

  1. aria2_batch through real ansible (resolve, one aria2c, verify sha256, publish, ledger);
  2. plain ``aria2c`` with the same -j/-s/-x/-k flags on the same URLs;
  3. a sequential single-connection Python download (urllib, one file after the other).

and prints the ratios. ``--sweep`` also times plain aria2c over a few -s/-x settings, which is
how the module's defaults were chosen. Data lives under a temporary directory below /tmp (or
--workdir) and is removed at the end.

    .venv/bin/python bench/aria2_batch_bench.py                 # 4 x 256 MB at 20 MB/s/conn
    .venv/bin/python bench/aria2_batch_bench.py --size-mb 64 --sweep
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import runs_text  # noqa: E402
from harness.ansible_run import run_module  # noqa: E402
from harness.nginx import NginxOrigin, write_file  # noqa: E402


# What aria2_batch adds for every file with a sha256, so that it can hash while downloading.
IN_ORDER = "--stream-piece-selector=inorder"
IN_ORDER_SHORT = "in order"


def aria2c_flags(jobs, split, conns, min_split):
    return [f"-j{jobs}", f"-s{split}", f"-x{conns}", f"-k{min_split}"]


def time_plain_aria2c(urls, out_dir, flags):
    out_dir.mkdir(parents=True)
    listing = out_dir / "urls.txt"
    listing.write_text("".join(u + "\n" for u in urls))
    started = time.monotonic()
    subprocess.run(
        ["aria2c", "-q", "--file-allocation=none", "-d", str(out_dir), "-i", str(listing)] + flags, check=True
    )
    return time.monotonic() - started


def time_sequential_python(urls, out_dir):
    out_dir.mkdir(parents=True)
    started = time.monotonic()
    for url in urls:
        with urllib.request.urlopen(url) as resp, open(out_dir / url.rsplit("/", 1)[1], "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    return time.monotonic() - started


def time_module(urls, digests, vault, args):
    downloads = [
        {"url": u, "dest": str(vault / "models" / u.rsplit("/", 1)[1]), "sha256": d} for u, d in zip(urls, digests)
    ]
    started = time.monotonic()
    result, proc = run_module("aria2_batch", dict(args, downloads=downloads, state_dir=str(vault / ".state")))
    elapsed = time.monotonic() - started
    if result.get("failed") or result.get("downloaded") != len(urls):
        raise SystemExit(f"aria2_batch did not download everything: {result.get('msg')}\n{proc.stderr}")
    return elapsed


def check(out_dir, digests):
    for path, digest in zip(sorted(out_dir.glob("*.bin")), digests):
        with open(path, "rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() != digest:
                raise SystemExit(f"wrong bytes in {path}")


def sha256_mib_s(path):
    """One core's sha256 rate over a file already in the page cache (read once before): the
    bound on how fast any downloader can verify what it fetched."""
    with open(path, "rb") as handle:
        hashlib.file_digest(handle, "sha256")
    started = time.monotonic()
    with open(path, "rb") as handle:
        hashlib.file_digest(handle, "sha256")
    return path.stat().st_size / (1024 * 1024) / (time.monotonic() - started)


def measure(table, files=4, size_mb=256, limit_rate="20m", repeat=5, workdir=None, target=None, sequential=True):
    """The suite's rows: aria2_batch vs plain aria2c with the same flags (the piece selector it
    gives aria2c for files with a sha256 included), vs plain aria2c as people run it (default
    selector) and vs sequential Python, each the median of `repeat` runs taken in turn, the
    module's default flags; `target` is the bound for the module's own time (its run less a
    ping module run) against plain aria2c with the same flags."""
    from common import in_turns, median, settle_disk

    work = Path(tempfile.mkdtemp(prefix="aiclipse-aria2-bench-", dir=workdir))
    try:
        served = work / "served"
        names = [f"model{i}.bin" for i in range(files)]
        digests = [write_file(served / n, size_mb * 1024 * 1024, seed=i) for i, n in enumerate(names)]
        module_runs, same_runs, plain_runs, seq_runs, startup_runs, verify_runs, sha_rates = [], [], [], [], [], [], []
        flags = aria2c_flags(4, 8, 8, "8M")
        settle_disk()
        with NginxOrigin(served, limit_rate=limit_rate) as origin:
            urls = [f"{origin.url}/public/{n}" for n in names]

            def startup():
                started = time.monotonic()
                run_module("ansible.builtin.ping", {})
                startup_runs.append(time.monotonic() - started)

            def module():
                module_runs.append(time_module(urls, digests, work / "vault", {}))
                shutil.rmtree(work / "vault")

            def same():
                same_runs.append(time_plain_aria2c(urls, work / "same", flags + [IN_ORDER]))
                shutil.rmtree(work / "same")

            def plain():
                plain_runs.append(time_plain_aria2c(urls, work / "plain", flags))
                started = time.monotonic()
                check(work / "plain", digests)
                verify_runs.append(time.monotonic() - started)
                sha_rates.append(sha256_mib_s(work / "plain" / names[0]))
                shutil.rmtree(work / "plain")

            def one_connection():
                seq_runs.append(time_sequential_python(urls, work / "sequential"))
                check(work / "sequential", digests)
                shutil.rmtree(work / "sequential")

            for number in range(repeat):
                in_turns(number, [startup, module, same, plain] + ([one_connection] if sequential else []))
        module_s, same_s, plain_s = median(module_runs), median(same_runs), median(plain_runs)
        startup_s, verify_s, sha_rate = median(startup_runs), median(verify_runs), median(sha_rates)
        total_mib = files * size_mb
        label = f"{files} x {size_mb} MiB at {limit_rate}/connection"
        # Judged: the module's own time, i.e. its run less a run of ansible.builtin.ping (ansible's
        # start-up and one module task, paid once per play whatever the module does).
        own_s = module_s - startup_s
        table.add(
            f"HTTP: aria2_batch / plain aria2c, same flags ({' '.join(flags + [IN_ORDER_SHORT])}), {label}",
            f"{module_s:.1f} s ({total_mib / module_s:.0f} MiB/s)",
            f"{same_s:.1f} s ({total_mib / same_s:.0f} MiB/s)",
            module_s / same_s,
            "",
            None,
        )
        table.add(
            f"  the module's own time: less ansible's start-up and a module task (ping: {startup_s:.1f} s)",
            f"{own_s:.1f} s",
            f"{same_s:.1f} s",
            own_s / same_s,
            f"<= {target:.2f}" if target else "",
            own_s / same_s <= target if target else None,
        )
        table.add(
            f"  bound: sha256 on one core (this run); {total_mib} MiB of it is {total_mib / sha_rate:.1f} s",
            f"{sha_rate:.0f} MiB/s",
        )
        table.add(
            "  plain aria2c, its default piece selector / in order",
            f"{plain_s:.1f} s",
            f"{same_s:.1f} s",
            plain_s / same_s,
            "",
            None,
        )
        table.add(
            f"  aria2_batch / plain aria2c (default selector) + a sha256 of its files ({verify_s:.1f} s)",
            f"{module_s:.1f} s",
            "%.1f s" % (plain_s + verify_s),
            module_s / (plain_s + verify_s),
            "",
            None,
        )
        if sequential:
            seq_s = median(seq_runs)
            table.add(
                f"HTTP: aria2_batch / sequential 1-connection Python, {label}",
                f"{module_s:.1f} s",
                f"{seq_s:.1f} s ({total_mib / seq_s:.0f} MiB/s)",
                module_s / seq_s,
                "< 1",
                module_s < seq_s,
            )
        table.note(
            f"HTTP {label} runs (s): aria2_batch {runs_text(module_runs)}; aria2c same flags {runs_text(same_runs)}; "
            f"aria2c default selector {runs_text(plain_runs)}"
        )
        return module_s, same_s, plain_s
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--limit-rate", default="20m", help="nginx limit_rate per connection")
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("-s", "--split", type=int, default=8)
    parser.add_argument("-x", "--conns", type=int, default=8)
    parser.add_argument("-k", "--min-split", default="8M")
    parser.add_argument("--sweep", action="store_true", help="also time plain aria2c at several -s/-x")
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--workdir", default=None, help="parent for the temporary data (default /tmp)")
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aiclipse-aria2-bench-", dir=opts.workdir))
    try:
        served = work / "served"
        print(f"writing {opts.files} x {opts.size_mb} MB ...", flush=True)
        names = [f"model{i}.bin" for i in range(opts.files)]
        digests = [write_file(served / n, opts.size_mb * 1024 * 1024, seed=i) for i, n in enumerate(names)]
        with NginxOrigin(served, limit_rate=opts.limit_rate) as origin:
            urls = [f"{origin.url}/public/{n}" for n in names]
            flags = aria2c_flags(opts.jobs, opts.split, opts.conns, opts.min_split)
            label = " ".join(flags)
            print(f"origin throttled to {opts.limit_rate} per connection; flags {label}", flush=True)

            started = time.monotonic()
            run_module("ansible.builtin.ping", {})
            ansible_s = time.monotonic() - started
            print(f"ansible start-up (ping) {ansible_s:6.1f} s  (part of every module run)", flush=True)

            module_s = time_module(
                urls,
                digests,
                work / "vault",
                {
                    "max_concurrent_downloads": opts.jobs,
                    "split": opts.split,
                    "max_connection_per_server": opts.conns,
                    "min_split_size": opts.min_split,
                },
            )
            shutil.rmtree(work / "vault")
            print(f"aria2_batch            {module_s:7.1f} s", flush=True)

            same_s = time_plain_aria2c(urls, work / "same", flags + [IN_ORDER])
            shutil.rmtree(work / "same")
            print(f"plain aria2c, in order {same_s:7.1f} s  (the piece selector aria2_batch uses)", flush=True)
            plain_s = time_plain_aria2c(urls, work / "plain", flags)
            started = time.monotonic()
            check(work / "plain", digests)
            verify_s = time.monotonic() - started
            shutil.rmtree(work / "plain")
            print(f"plain aria2c           {plain_s:7.1f} s", flush=True)
            print(
                f"  + sha256 of its files {verify_s:6.1f} s  (what aria2_batch also does before publishing)", flush=True
            )

            sweep = []
            if opts.sweep:
                for split in (1, 4, 8, 16):
                    sweep_flags = aria2c_flags(opts.jobs, split, split, opts.min_split)
                    seconds = time_plain_aria2c(urls, work / "sweep", sweep_flags)
                    shutil.rmtree(work / "sweep")
                    sweep.append((" ".join(sweep_flags), seconds))
                    print(f"  sweep {' '.join(sweep_flags):<22} {seconds:7.1f} s", flush=True)

            seq_s = None
            if not opts.skip_sequential:
                seq_s = time_sequential_python(urls, work / "sequential")
                check(work / "sequential", digests)
                shutil.rmtree(work / "sequential")
                print(f"sequential Python      {seq_s:7.1f} s", flush=True)

        total_mb = opts.files * opts.size_mb
        print()
        print(f"{opts.files} x {opts.size_mb} MB, {opts.limit_rate}/connection, {label}")
        print(
            f"aria2_batch / plain aria2c       = {module_s / plain_s:.2f}  ({total_mb / module_s:.0f} MB/s vs {total_mb / plain_s:.0f} MB/s)"
        )
        print(
            "aria2_batch / aria2c in order    = %.2f  (the same flags as the module gives aria2c)" % (module_s / same_s)
        )
        print(
            "  without ansible's start-up     = %.2f  (the module's own cost: origin checks, sha256, publish)"
            % ((module_s - ansible_s) / plain_s)
        )
        print("  vs aria2c + sha256, no ansible = %.2f" % ((module_s - ansible_s) / (plain_s + verify_s)))
        if seq_s:
            print(
                f"aria2_batch / sequential Python  = {module_s / seq_s:.2f}  ({total_mb / module_s:.0f} MB/s vs {total_mb / seq_s:.0f} MB/s)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
