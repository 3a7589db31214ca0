"""Two runs of one downloader on the same vault (a fleet re-run while the pod's background job
still downloads) never write the same staging files: the second waits, then finds the models."""
import hashlib
import threading
from pathlib import Path

from harness.ansible_run import run_module
from harness.nginx import write_file

MiB = 1024 * 1024


def test_second_aria2_batch_run_waits_and_downloads_nothing_twice(make_origin, tmp_path):
    served = tmp_path / "served"
    size = 3 * MiB
    digest = write_file(served / "big.safetensors", size, seed=3)
    # Throttled so the first run is still downloading when the second starts.
    origin = make_origin(served, limit_rate="1m")
    vault = tmp_path / "vault"
    dest = vault / "models/checkpoints/big.safetensors"
    args = {"state_dir": str(vault / ".state/models"), "log_file": str(vault / "logs/models.log"),
            "downloads": [{"url": f"{origin.url}/public/big.safetensors", "dest": str(dest), "sha256": digest}],
            "split": 1, "max_connection_per_server": 1}
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
    body_bytes = sum(int(line.rsplit("bytes=", 1)[1]) for line in origin.log_lines()
                     if line.startswith("GET ") and "big.safetensors" in line)
    assert body_bytes <= size * 1.05, f"the model crossed the wire more than once ({body_bytes} bytes)"
    assert "waiting for it to finish" in log.read_text()
    assert not list(Path(vault / ".state/models/staging").iterdir())
