"""The whole benchmark suite in one run: pod start cost, a restart with a config repository,
skip check, planning from workflows, HTTP and R2 downloads, memory, the fleet's scaling curve,
a first boot end to end, and the physical bounds they run against, printed as one table of ratios.
Each ratio compares two things measured side by side in this run (taken in turn, median of
--repeat), so the load of a shared machine falls on both sides alike. See BENCHMARKS.md.

    bash bench/run.sh              # everything, full sizes (bounds, http, http-large, r2,
                                   # r2-large and memory took 17 minutes at --repeat 3, load 2-24)
    bash bench/run.sh --quick      # smaller sizes, fewer repetitions (a few minutes)
    bash bench/run.sh --only warm,skip
"""

import argparse
import shutil
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GIB, MIB, Table, disk_write_mib_s, environment_line, loopback_mib_s, workdir  # noqa: E402
import aria2_batch_bench  # noqa: E402
import config_update_bench  # noqa: E402
import first_boot_bench  # noqa: E402
import fleet_bench  # noqa: E402
import memory_bench  # noqa: E402
import r2_fetch_bench  # noqa: E402
import skip_check_bench  # noqa: E402
import warm_start_bench  # noqa: E402
import workflow_plan_bench  # noqa: E402

SECTIONS = (
    "bounds",
    "warm",
    "update",
    "skip",
    "plan",
    "http",
    "http-large",
    "r2",
    "r2-large",
    "memory",
    "fleet",
    "firstboot",
)


def sizes(quick):
    """What each section runs with; --quick keeps every figure but makes them smaller."""
    if quick:
        return {
            "repeat": 3,
            "warm_models": 50,
            "update_models": 20,
            "skip_models": 500,
            "plan_workflows": 1000,
            "http_mib": 32,
            "http_large_mib": 256,
            "memory_size": 256 * MIB,
            "fleet_repeat": 1,
            "fleet_sizes": (1, 4),
            "probe": 256 * MIB,
            # first boot, end to end (issue 21)
            "firstboot_repeat": 1,
            "firstboot_model": 256 * MIB,
        }
    return {
        "repeat": 5,
        "warm_models": 200,
        "update_models": 50,
        "skip_models": 500,
        "plan_workflows": 1000,
        "http_mib": 128,
        "http_large_mib": 1024,
        "memory_size": GIB,
        "fleet_repeat": 3,
        "fleet_sizes": fleet_bench.SIZES,
        "probe": GIB,
        # first boot, end to end (issue 21): each repetition is a whole first boot and its downloads
        "firstboot_repeat": 3,
        "firstboot_model": 256 * MIB,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and 3 repetitions (the fleet: 1 and 4 pods, once)"
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--repeat", type=int, help="repetitions per figure (default 5, --quick 3)")
    opts = parser.parse_args()
    chosen = [s.strip() for s in opts.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    size = sizes(opts.quick)
    repeat = opts.repeat or size["repeat"]
    table = Table()
    table.note("measured on: " + environment_line())
    work = workdir("suite-")
    runs = {
        "bounds": lambda: bounds(table, work, size["probe"]),
        "warm": lambda: warm_start_bench.measure(table, repeat, size["warm_models"]),
        "update": lambda: config_update_bench.measure(table, repeat, size["update_models"]),
        "skip": lambda: skip_check_bench.measure(table, repeat, size["skip_models"]),
        "plan": lambda: workflow_plan_bench.measure(table, repeat, size["plan_workflows"]),
        "http": lambda: aria2_batch_bench.measure(
            table, 4, size["http_mib"], "20m", repeat, workdir=str(work), target=1.3
        ),
        # 4 x 1 GiB takes half a minute a round, and no 200 s sequential baseline. 5 rounds: the
        # same aria2c run takes 9-14 s here from one round to the next, and the target is 1.10.
        "http-large": lambda: aria2_batch_bench.measure(
            table, 4, size["http_large_mib"], "20m", repeat, workdir=str(work), target=1.10, sequential=False
        ),
        "r2": lambda: r2_fetch_bench.measure(table, 4, size["http_mib"], "20m", repeat, workdir=str(work)),
        # Where the transfer, not ansible's and boto3's start-up, is what is compared. All
        # `repeat` rounds: in 3, one slow TransferManager run decided the 0.9 row.
        "r2-large": lambda: r2_fetch_bench.measure(
            table,
            4,
            size["http_large_mib"],
            "20m",
            repeat,
            workdir=str(work),
            tuned_target=0.9,
            sequential_target=None,
            in_process_target=0.5,
        ),
        "memory": lambda: memory_bench.measure(table, 4, size["memory_size"]),
        "fleet": lambda: fleet_bench.measure(table, opts.repeat or size["fleet_repeat"], size["fleet_sizes"]),
        # first boot, end to end (issue 21)
        "firstboot": lambda: first_boot_bench.measure(
            table, opts.repeat or size["firstboot_repeat"], size["firstboot_model"], workdir=None
        ),
    }
    failed = []
    started = time.monotonic()
    try:
        for name in SECTIONS:
            if name not in chosen:
                continue
            print(f"== {name} ({time.monotonic() - started:.0f} s so far)", flush=True)
            try:
                runs[name]()
            except (Exception, SystemExit) as exc:  # pylint: disable=broad-except
                # One broken section must not hide the others' figures.
                failed.append(name)
                table.add(f"{name}: FAILED ({str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__})", "")
                traceback.print_exc()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table.note(f"suite time: {time.monotonic() - started:.0f} s{(' (--quick)' if opts.quick else '')}")
    print()
    print(table.render())
    return 1 if failed else 0


def bounds(table, work, probe):
    """The physical limits every download figure runs against, measured now, on this machine."""
    loop = loopback_mib_s(work, probe)
    disk = disk_write_mib_s(work, probe)
    table.add("bound: loopback, nginx -> 4 x curl, unthrottled", f"{loop:.0f} MiB/s")
    table.add("bound: disk write, dd with fsync (.cache/bench)", f"{disk:.0f} MiB/s")


if __name__ == "__main__":
    sys.exit(main())
