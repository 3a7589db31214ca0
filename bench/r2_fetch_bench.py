"""Benchmark (not a test): r2_fetch against the original's sequential boto3 download_file.

An nginx on loopback plays an S3-style endpoint: path-style ``/<bucket>/<key>`` GET, HEAD and
Range, ETag and If-Match, every connection throttled with ``limit_rate`` (default 20m, about
what one connection to R2 gets from a pod). nginx ignores the signature, so both sides sign
with dummy keys exactly as they would against R2.

Printed: the wall time of the original way (``download_file`` per object, one object after
the other, boto3's default TransferConfig), of the r2_fetch module run through ansible for the
same objects (and its start-up cost alone), and of r2_fetch's code in this process, each as a
ratio to the original; with ``--sweep`` for several concurrency / part size pairs (the
module's defaults come from this). Each number is the best of ``--repeat`` runs.

    .venv/bin/python bench/r2_fetch_bench.py                 # 4 x 256 MiB at 20m per connection
    .venv/bin/python bench/r2_fetch_bench.py --sweep
    .venv/bin/python bench/r2_fetch_bench.py --count 2 --size-mib 64   # a quick look
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

sys.path.insert(0, str(HERE.parent / "collections"))

from common import DUMMY_R2_CREDENTIALS as DUMMY, runs_text  # noqa: E402
from harness.ansible_run import run_module  # noqa: E402
from harness.nginx import NginxOrigin, write_file  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import DownloadRun  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.r2_fetcher import R2Fetcher, r2_entries  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets  # noqa: E402

BUCKET = "models"


def make_objects(root, count, size):
    """The served tree (reused between runs when the sizes match): root/models/bench-<n>.bin."""
    keys = []
    for number in range(count):
        key = f"checkpoints/bench-{number}.safetensors"
        path = root / BUCKET / key
        if not path.exists() or path.stat().st_size != size:
            write_file(path, size, seed=number)
        keys.append(key)
    return keys


def plain_client(endpoint, **config):
    """A boto3 S3 client as a user points it at the bench's path-style endpoint (no checksums
    the endpoint cannot answer); `config` adds botocore Config options."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="auto",
        aws_access_key_id=DUMMY["R2_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY["R2_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **config,
        ),
    )


def original_way(endpoint, keys, out):
    """What download_models.py did: one boto3 download_file after the other (default
    TransferConfig: up to 10 threads of 8 MiB ranges per object, no verification)."""
    client = plain_client(endpoint)
    started = time.monotonic()
    for key in keys:
        client.download_file(BUCKET, key, str(out / Path(key).name))
    elapsed = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def transfer_manager_way(endpoint, keys, out, max_concurrency=32, part_size=8 * 1024 * 1024):
    """What a user would tune boto3 into: s3transfer's TransferManager on the classic client at
    r2_fetch's concurrency and part size, every object at once, and as each one lands the same
    work r2_fetch does before it publishes (a sha256 of the file and an fsync, two at a time)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor
    from boto3.s3.transfer import TransferConfig
    from s3transfer.manager import TransferManager

    started = time.monotonic()
    client = plain_client(endpoint, max_pool_connections=max_concurrency)
    config = TransferConfig(
        max_concurrency=max_concurrency,
        multipart_chunksize=part_size,
        multipart_threshold=2 * part_size,
        use_threads=True,
    )
    out.mkdir(parents=True, exist_ok=True)

    def verify(path):
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
            os.fsync(handle.fileno())

    with ThreadPoolExecutor(max_workers=2) as verifiers, TransferManager(client, config) as manager:
        checks = []
        futures = [(manager.download(BUCKET, key, str(out / Path(key).name)), out / Path(key).name) for key in keys]
        for future, path in futures:
            future.result()
            checks.append(verifiers.submit(verify, path))
        for check in checks:
            check.result()
    elapsed = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def curl_bound(endpoint, keys, size, out, connections=32):
    """The floor for the same transfer on this machine: `connections` curl processes, each one
    ranged GET of an equal share of an object, into files of its own (no reassembly, no sha256,
    no fsync). Every byte crosses the same throttled loopback connections and lands in the page
    cache as r2_fetch's do; a downloader that also verifies cannot be faster."""
    out.mkdir(parents=True, exist_ok=True)
    per_object = max(1, connections // len(keys))
    started = time.monotonic()
    procs = []
    for key in keys:
        for share in range(per_object):
            first, last = share * size // per_object, (share + 1) * size // per_object - 1
            target = str(out / (f"{Path(key).name}.{share}"))
            url = f"{endpoint}/{BUCKET}/{key}"
            procs.append(subprocess.Popen(["curl", "-sS", "-r", f"{first}-{last}", "-o", target, url]))
    failed = [proc for proc in procs if proc.wait() != 0]
    elapsed = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    if failed:
        raise SystemExit(f"curl could not fetch every share from {endpoint}")
    return elapsed


def r2_fetch(endpoint, keys, out, **options):
    objects = [{"key": key, "dest": str(out / "models" / Path(key).name)} for key in keys]
    args = {"objects": objects, "bucket": BUCKET, "endpoint_url": endpoint, "state_dir": str(out / "state")}
    args.update(options)
    started = time.monotonic()
    result, _proc = run_module("r2_fetch", args, env=DUMMY)
    elapsed = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    if result.get("failed") or result.get("downloaded") != len(keys):
        raise SystemExit(f"r2_fetch failed: {result.get('msg', result)}")
    return elapsed


def r2_fetch_in_process(endpoint, keys, out, max_concurrency=32, part_size=8 * 1024 * 1024):
    """The module's own code (staging, journal, sha256 + fsync publish) in this process, so the
    comparison with download_file is not blurred by ansible's start-up on a busy machine."""
    settings = {
        "access_key_id": DUMMY["R2_ACCESS_KEY_ID"],
        "secret_access_key": DUMMY["R2_SECRET_ACCESS_KEY"],
        "endpoint_url": endpoint,
        "bucket": BUCKET,
    }
    fetcher = R2Fetcher(
        settings,
        TargetSecrets(None, environ={}),
        max_concurrency=max_concurrency,
        part_size=part_size,
        multipart_threshold=16 * 1024 * 1024,
    )
    entries = r2_entries([{"key": key, "dest": str(out / "models" / Path(key).name)} for key in keys], BUCKET)
    started = time.monotonic()
    result = DownloadRun(fetcher, entries, str(out / "state")).run()
    elapsed = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    if result["downloaded"] != len(keys):
        raise SystemExit("r2_fetch failed: %s" % [r["reason"] for r in result["results"]])
    return elapsed


def best_of(times, run):
    return min(run() for _run in range(times))


def judged(ratio, target):
    """The table's target column and verdict for a ratio; no verdict without a target."""
    return (f"<= {target:.1f}", ratio <= target) if target else ("", None)


def measure(
    table,
    count=4,
    size_mib=256,
    rate="20m",
    repeat=5,
    workdir=None,
    tuned_target=None,
    sequential_target=1.0,
    in_process_target=None,
):
    """The suite's rows: r2_fetch through ansible vs a tuned TransferManager and vs download_file
    one object after another, each the median of `repeat` runs taken in turn; the data lives in
    a temporary directory. A target of None prints the ratio without judging it (at sizes where
    ansible's and boto3's start-up, not the transfer, is most of the module's time). With
    `in_process_target`, r2_fetch's code also runs in this process (as download_file does) and
    that ratio to download_file is judged against it."""
    from common import in_turns, median, settle_disk

    work = Path(tempfile.mkdtemp(prefix="aiclipse-r2-bench-", dir=workdir))
    try:
        keys = make_objects(work / "served", count, size_mib * 1024 * 1024)
        ours, theirs, startup, tuned, in_process, floor = [], [], [], [], [], []
        settle_disk()
        with NginxOrigin(work / "served", limit_rate=rate) as origin:

            def timed(runs, way, *args):
                return lambda: runs.append(way(origin.url, *args, Path(tempfile.mkdtemp(dir=work))))

            for number in range(repeat):
                in_turns(
                    number,
                    [
                        timed(startup, r2_fetch, []),
                        timed(ours, r2_fetch, keys),
                        timed(tuned, transfer_manager_way, keys),
                        timed(theirs, original_way, keys),
                    ]
                    + (
                        [
                            timed(in_process, r2_fetch_in_process, keys),
                            timed(floor, curl_bound, keys, size_mib * 1024 * 1024),
                        ]
                        if in_process_target
                        else []
                    ),
                )
        took, baseline, tuned_s = median(ours), median(theirs), median(tuned)
        total_mib = count * size_mib
        table.add(
            f"R2: r2_fetch / s3transfer TransferManager (32 threads, 8 MiB parts, + sha256 + fsync), {count} x {size_mib} MiB",
            f"{took:.1f} s ({total_mib / took:.0f} MiB/s)",
            f"{tuned_s:.1f} s ({total_mib / tuned_s:.0f} MiB/s)",
            took / tuned_s,
            *judged(took / tuned_s, tuned_target),
        )
        table.add(
            f"  the same without ansible + boto3 start-up (r2_fetch with no objects: {median(startup):.1f} s)",
            "%.1f s" % (took - median(startup)),
            f"{tuned_s:.1f} s",
            (took - median(startup)) / tuned_s,
            "",
            None,
        )
        table.note(
            f"R2 runs (s): r2_fetch {runs_text(ours)}; TransferManager {runs_text(tuned)}; "
            f"download_file in sequence {runs_text(theirs)}"
            + (
                f"; r2_fetch in this process {runs_text(in_process)}; 32 x curl {runs_text(floor)}"
                if in_process
                else ""
            )
        )
        table.add(
            f"R2: r2_fetch / boto3 download_file in sequence, {count} x {size_mib} MiB at {rate}/connection",
            f"{took:.1f} s ({total_mib / took:.0f} MiB/s)",
            f"{baseline:.1f} s ({total_mib / baseline:.0f} MiB/s)",
            took / baseline,
            *judged(took / baseline, sequential_target),
        )
        own = took - median(startup)
        table.add(
            f"  the same without ansible + boto3 start-up (r2_fetch with no objects: {median(startup):.1f} s)",
            f"{own:.1f} s",
            f"{baseline:.1f} s",
            own / baseline,
            "",
            None,
        )
        if in_process:
            # r2_fetch's code as download_file runs, and the floor under any verifying downloader.
            for label, seconds, target in (
                ("r2_fetch's code in this process, as download_file runs", median(in_process), in_process_target),
                ("bound: 32 x curl, ranged GETs into files, no sha256, no fsync", median(floor), None),
            ):
                table.add(
                    f"  {label} / download_file in sequence",
                    f"{seconds:.1f} s ({total_mib / seconds:.0f} MiB/s)",
                    f"{baseline:.1f} s",
                    seconds / baseline,
                    *judged(seconds / baseline, target),
                )
        return took, baseline
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rate", default="20m", help="nginx limit_rate per connection")
    parser.add_argument("--sweep", action="store_true", help="also try other concurrency / part sizes")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best one counts")
    parser.add_argument("--data", default="/tmp/aiclipse-r2-bench", help="where the served objects are kept")
    args = parser.parse_args()

    served = Path(args.data)
    keys = make_objects(served, args.count, args.size_mib * 1024 * 1024)
    total_mib = args.count * args.size_mib
    print(f"{args.count} x {args.size_mib} MiB, nginx limit_rate {args.rate} per connection")
    with NginxOrigin(served, limit_rate=args.rate) as origin:

        def fresh():
            path = Path(tempfile.mkdtemp(prefix="r2-bench-out-", dir=served.parent))
            return path

        baseline = best_of(args.repeat, lambda: original_way(origin.url, keys, fresh()))
        print(
            f"original (boto3 download_file, one object after another): {baseline:6.1f} s  "
            f"{total_mib / baseline:6.0f} MiB/s"
        )
        # What ansible + boto3 cost before the first byte (nothing to fetch), to read the ratios.
        startup = best_of(args.repeat, lambda: r2_fetch(origin.url, [], fresh()))
        print(f"r2_fetch start-up (ansible + boto3 client, no objects):   {startup:6.1f} s")
        took = best_of(args.repeat, lambda: r2_fetch(origin.url, keys, fresh()))
        print(
            f"r2_fetch module, defaults, through ansible:                {took:6.1f} s  "
            f"{total_mib / took:6.0f} MiB/s  ratio to original {took / baseline:5.2f}"
        )

        settings = [{}]
        if args.sweep:
            settings += [
                {"max_concurrency": c, "part_size": p * 1024 * 1024} for c in (4, 8, 16, 32) for p in (8, 16, 64)
            ]
        for options in settings:
            took = best_of(
                args.repeat, lambda options=options: r2_fetch_in_process(origin.url, keys, fresh(), **options)
            )
            label = ", ".join(f"{k}={v >> 20 if k == 'part_size' else v}" for k, v in options.items()) or "defaults"
            print(
                f"r2_fetch in-process ({label:30s}):   {took:6.1f} s  {total_mib / took:6.0f} MiB/s  "
                f"ratio to original {took / baseline:5.2f}"
            )


if __name__ == "__main__":
    main()
