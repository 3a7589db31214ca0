"""Benchmark (not a test): how long aria2_batch takes to confirm that every model is already
there, and that this does not grow with the models' size.

Two farms of ``--models`` sparse files recorded in the model ledger: 1 MiB each, and 1 GiB
each (hundreds of GiB apparent size; sparse, so nothing is written). For each farm:

  * the module through ansible, one playbook task with every entry (sha256 given, so a skip
    that read the bytes would be caught: the sparse zeros never match), median of ``--repeat``,
    next to the same one-task no-op playbook; the difference is the module's own time;
  * the module's code (the download pipeline with the HTTP fetcher) in this process, which is that
    time without ansible.

Every entry must come back ``present`` with nothing hashed.

A third in-process row per farm records the models with the sha256 Hugging Face published
(``sha256_from: huggingface``) and gives no sha256: such a model is asked about at each start,
and here the hub is down (nothing listens). The first probe finds that out; every model must
still be kept, unread, at a cost that does not grow with the models' size.

    .venv/bin/python bench/skip_check_bench.py
"""

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GIB, MIB, noop_playbook, record_farm, run_alone, side_by_side, sparse_farm, time_playbook  # noqa: E402
from harness.net import free_port  # noqa: E402


def downloads_of(farm, origin):
    return [{"url": f"{origin}/{filename}", "dest": dest, "sha256": sha} for _subdir, filename, dest, sha in farm]


def module_playbook(directory, downloads, state_dir):
    """One aria2_batch task over every entry; asserts that all were present and none hashed."""
    path = Path(directory) / "skip-check.yml"
    play = [
        {
            "name": "Confirm present models",
            "hosts": "pods",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Check every model",
                    "aiclipse.comfyui.aria2_batch": {"downloads": downloads, "state_dir": state_dir},
                    "register": "batch",
                },
                {
                    "name": "Every model was present and no byte was hashed",
                    "ansible.builtin.assert": {
                        "that": [f"batch.present == {len(downloads)}", "batch.hashed == 0", "not batch.changed"]
                    },
                },
            ],
        }
    ]
    path.write_text(json.dumps(play))
    return path


def in_process(downloads, state_dir):
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_fetcher import (
        HttpFetcher,
        http_entries,
    )
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import DownloadRun
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets

    started = time.monotonic()
    fetcher = HttpFetcher("aria2c", {}, TargetSecrets(None, environ={}))
    result = DownloadRun(fetcher, http_entries(downloads), state_dir).run()
    seconds = time.monotonic() - started
    if result["present"] != len(downloads) or result["hashed"]:
        raise SystemExit(
            f"in-process skip check: {result['present']} present, {result['hashed']} hashed of {len(downloads)}"
        )
    return seconds


def in_process_hub_down(farm, origin, state_dir):
    """The skip check of models recorded with the hub's sha256 while the hub is down."""
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_fetcher import (
        HttpFetcher,
        http_entries,
    )
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import DownloadRun
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets

    downloads = [{"url": f"{origin}/hf/{filename}", "dest": dest} for _subdir, filename, dest, _sha in farm]
    started = time.monotonic()
    fetcher = HttpFetcher("aria2c", {}, TargetSecrets(None, environ={}), tries=1, retry_wait=0)
    result = DownloadRun(fetcher, http_entries(downloads), state_dir).run()
    seconds = time.monotonic() - started
    if result["present"] != len(downloads) or result["hashed"]:
        raise SystemExit(
            f"hub-down skip check: {result['present']} present, {result['hashed']} hashed of {len(downloads)}"
        )
    return seconds


def measure(table, repeat=5, models=500, sizes=(MIB, GIB), workdir=None):
    from common import workdir as make_workdir

    root = Path(workdir) if workdir else make_workdir("skip-check-")
    origin = f"http://127.0.0.1:{free_port()}/public"  # nothing listens: a skip never asks
    figures = {}
    hub_figures = {}
    try:
        noop = noop_playbook(root)
        for size in sizes:
            label = f"{models} x {('%s GiB' % (size // GIB) if size >= GIB else '%s MiB' % (size // MIB))}"
            farm_dir = root / (f"farm-{size}")
            farm = sparse_farm(farm_dir / "models", models, size)
            state_dir = str(farm_dir / "state")
            record_farm(state_dir, farm)
            downloads = downloads_of(farm, origin)
            playbook = module_playbook(farm_dir, downloads, state_dir)
            run_s, noop_s, _ours, _theirs = side_by_side(
                repeat, lambda playbook=playbook: time_playbook(playbook), lambda: time_playbook(noop)
            )
            own_s = sorted(in_process(downloads, state_dir) for _round in range(repeat))[repeat // 2]
            module_s = max(0.0, run_s - noop_s)
            figures[size] = (module_s, own_s)
            table.add(
                f"skip check: aria2_batch, {label} present (module time over a 1-task playbook)",
                f"{module_s:.2f} s",
                f"({run_s:.2f} s - {noop_s:.2f} s)",
                None,
                "< 2 s",
                module_s < 2,
            )
            table.add("  the same, module code in-process (no ansible)", f"{own_s:.3f} s", "", None, "", None)
            hub_state = str(farm_dir / "state-hub")
            record_farm(hub_state, farm, sha256_from="huggingface")
            hub_s = sorted(in_process_hub_down(farm, origin, hub_state) for _round in range(repeat))[repeat // 2]
            hub_figures[size] = hub_s
            table.add("  recorded with the hub's sha256, hub down, in-process", f"{hub_s:.3f} s", "", None, "", None)
            shutil.rmtree(farm_dir)
        if len(sizes) == 2:
            small, large = (figures[size][1] for size in sizes)
            ratio = large / small
            table.add(
                f"skip check: {sizes[1] // GIB} GiB / {sizes[0] // MIB} MiB models, in-process",
                f"{large:.3f} s",
                f"{small:.3f} s",
                ratio,
                "~1 (no growth)",
                ratio < 1.5,
            )
            small, large = (hub_figures[size] for size in sizes)
            table.add(
                f"skip check, hub's sha256 and hub down: {sizes[1] // GIB} GiB / {sizes[0] // MIB} MiB models, in-process",
                f"{large:.3f} s",
                f"{small:.3f} s",
                large / small,
                "~1 (no growth)",
                large / small < 1.5,
            )
        return figures
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)


def main():
    run_alone(__doc__, measure, repeat=5, models=500)


if __name__ == "__main__":
    main()
