"""Verified by default: the sha256 a source publishes (Hugging Face's X-Linked-Etag, CivitAI's
model-version API, an S3 object's checksum or metadata) is what a download is checked against
when the manifest gives none. Through real ansible, real aria2c, nginx playing the hub and
CivitAI with their exact headers and bodies, and moto for S3."""

import base64
import hashlib
import os
from pathlib import Path

import pytest

from harness.ansible_run import run_module
from harness.nginx import write_file
from harness.s3 import ACCESS_KEY, SECRET_KEY

MiB = 1024 * 1024
REPO_FILE = "org/repo/split_files/model.safetensors"


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def signed_gets(origin):
    """GETs of file bytes from storage; a probe's one-byte GET (``Range: bytes=0-0``) is no download."""
    return [line for line in origin.log_lines() if line.startswith("GET /signed/") and 'range="bytes=0-0"' not in line]


def hf_url(origin, path=REPO_FILE):
    repo, _slash, name = path.partition("/")[2].partition("/")
    return f"{origin.url}/hf/{path.split('/')[0]}/{repo}/resolve/main/{name}"


def download(tmp_path, items, **extra):
    args = {
        "state_dir": str(tmp_path / "vault/.state/models"),
        "log_file": str(tmp_path / "vault/logs/models.log"),
        "downloads": items,
        "retry_wait": 1,
        "fail_on_error": False,
    }
    args.update(extra)
    result, _proc = run_module("aria2_batch", args)
    return result, {r["name"]: r for r in result.get("results", [])}


def dest(tmp_path, name="model.safetensors"):
    return str(tmp_path / "vault/models/checkpoints" / name)


@pytest.fixture
def hub(tmp_path):
    served = tmp_path / "served"
    digest = write_file(served / "hf" / REPO_FILE, 3 * MiB + 17, seed=5)
    return served, digest


# -- Hugging Face ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", [False, True], ids=["public", "with-token"])
def test_a_truncated_file_from_the_hub_is_refused_and_not_published(hub, make_origin, tmp_path, token):
    served, digest = hub
    full = os.path.getsize(served / "hf" / REPO_FILE)
    with open(served / "hf" / REPO_FILE, "r+b") as handle:
        handle.truncate(full - 4096)  # storage holds a cut copy under the right name
    origin = make_origin(served, hf_linked={REPO_FILE: (digest, full)})
    item = {"name": "model", "url": hf_url(origin), "dest": dest(tmp_path)}
    if token:
        item["token"] = origin.token
    result, by_name = download(tmp_path, [item])
    entry = by_name["model"]
    assert entry["status"] == "failed", entry
    assert str(full) in entry["reason"] and digest in entry["reason"], entry["reason"]
    assert not os.path.exists(dest(tmp_path))
    assert signed_gets(origin) == []


def test_a_same_size_file_of_other_content_fails_verification_against_the_hub(hub, make_origin, tmp_path):
    served, digest = hub
    size = os.path.getsize(served / "hf" / REPO_FILE)
    write_file(served / "hf" / REPO_FILE, size, seed=99)  # swapped bytes, same name and size
    origin = make_origin(served, hf_linked={REPO_FILE: (digest, size)})
    result, by_name = download(tmp_path, [{"name": "model", "url": hf_url(origin), "dest": dest(tmp_path)}])
    entry = by_name["model"]
    assert entry["status"] == "failed" and "verification failed" in entry["reason"], entry
    assert digest in entry["reason"]
    assert not os.path.exists(dest(tmp_path))
    assert not list((tmp_path / "vault/.state/models/staging").glob("*model.safetensors*"))


def test_the_hub_sha256_is_recorded_and_the_second_run_reads_nothing(hub, make_origin, tmp_path):
    served, digest = hub
    origin = make_origin(served)
    items = [{"name": "model", "url": hf_url(origin), "dest": dest(tmp_path)}]
    result, by_name = download(tmp_path, items)
    assert by_name["model"]["status"] == "downloaded", by_name
    assert by_name["model"]["sha256"] == digest and by_name["model"]["sha256_from"] == "huggingface"
    assert sha(dest(tmp_path)) == digest
    gets_before = len(signed_gets(origin))
    again, by_name = download(tmp_path, items)
    assert by_name["model"]["status"] == "present" and not again["changed"], by_name
    assert again["hashed"] == 0  # asked the hub (one HEAD), read no byte of the file
    assert by_name["model"]["sha256_from"] == "huggingface"
    assert len(signed_gets(origin)) == gets_before


def test_a_manifest_sha256_the_hub_contradicts_is_an_error_naming_both(hub, make_origin, tmp_path):
    served, digest = hub
    origin = make_origin(served)
    wrong = "ab" * 32
    result, by_name = download(
        tmp_path, [{"name": "model", "url": hf_url(origin), "dest": dest(tmp_path), "sha256": wrong}]
    )
    entry = by_name["model"]
    assert entry["status"] == "failed"
    assert wrong in entry["reason"] and digest in entry["reason"] and "model" in entry["reason"], entry["reason"]
    assert "huggingface" in entry["reason"]
    assert signed_gets(origin) == []  # refused before a byte was downloaded
    assert not os.path.exists(dest(tmp_path))


def test_a_model_replaced_upstream_under_the_same_url_is_noticed_and_fetched_again(hub, make_origin, tmp_path):
    served, digest = hub
    origin = make_origin(served)
    items = [{"name": "model", "url": hf_url(origin), "dest": dest(tmp_path)}]
    first, by_name = download(tmp_path, items)
    assert by_name["model"]["status"] == "downloaded"
    new_digest = write_file(served / "hf" / REPO_FILE, 3 * MiB + 17, seed=6)  # a new upload, same path
    origin.refresh()
    again, by_name = download(tmp_path, items)
    entry = by_name["model"]
    assert entry["status"] == "downloaded", entry
    assert "replaced upstream" in entry["reason"] and digest in entry["reason"] and new_digest in entry["reason"]
    assert sha(dest(tmp_path)) == new_digest and entry["sha256"] == new_digest


def test_a_manifest_pinned_file_is_present_without_asking_the_hub(hub, make_origin, tmp_path):
    served, digest = hub
    origin = make_origin(served)
    items = [{"name": "model", "url": hf_url(origin), "dest": dest(tmp_path), "sha256": digest}]
    download(tmp_path, items)
    lines = len(origin.log_lines())
    again, by_name = download(tmp_path, items)
    assert by_name["model"]["status"] == "present" and again["hashed"] == 0
    assert by_name["model"]["sha256_from"] == "manifest"
    assert origin.log_lines()[lines:] == []


@pytest.mark.parametrize("change", ["truncated", "rewritten"])
def test_a_recorded_hub_file_changed_on_disk_is_not_kept_while_the_hub_is_down(hub, make_origin, tmp_path, change):
    """The ledger knows the file's size and mtime: a model cut short or rewritten after it was
    verified against the hub is not reported present because the hub cannot be asked."""
    served, digest = hub
    origin = make_origin(served)
    items = [
        {"name": "changed", "url": hf_url(origin), "dest": dest(tmp_path, "changed.safetensors")},
        {"name": "intact", "url": hf_url(origin), "dest": dest(tmp_path, "intact.safetensors")},
    ]
    first, by_name = download(tmp_path, items)
    assert [by_name[n]["sha256_from"] for n in ("changed", "intact")] == ["huggingface", "huggingface"], by_name
    path = dest(tmp_path, "changed.safetensors")
    if change == "truncated":
        with open(path, "r+b") as handle:
            handle.truncate(1000)
    else:
        with open(path, "r+b") as handle:
            handle.write(b"\0" * 4096)  # same size, other bytes, a newer mtime
    origin.stop()
    again, by_name = download(tmp_path, items, max_tries=1)
    assert by_name["changed"]["status"] == "failed", by_name["changed"]
    assert "cannot reach" in by_name["changed"]["reason"]
    assert again["failed_count"] == 1
    assert by_name["intact"]["status"] == "present" and "could not be asked" in by_name["intact"]["reason"]
    log = (tmp_path / "vault/logs/models.log").read_text()
    assert any("failed changed" in line for line in log.splitlines()), log


class RefusingOrigin:
    """A loopback port that accepts each connection and closes it at once (a hub that is down
    behind a load balancer): counts how often it was tried."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self):
        self.sock.close()


def test_a_hub_that_cannot_be_reached_costs_its_retries_once_per_run_not_per_model(hub, make_origin, tmp_path):
    served, digest = hub
    origin = make_origin(served)
    names = [f"m{i}" for i in range(12)]
    items = [{"name": n, "url": hf_url(origin), "dest": dest(tmp_path, n + ".safetensors")} for n in names]
    first, by_name = download(tmp_path, items)
    assert all(by_name[n]["sha256_from"] == "huggingface" for n in names), by_name
    down = RefusingOrigin()
    try:
        moved = [dict(item, url=item["url"].replace(origin.url, f"http://127.0.0.1:{down.port}")) for item in items]
        again, by_name = download(tmp_path, moved, max_tries=3, retry_wait=1)
    finally:
        down.close()
    assert [by_name[n]["status"] for n in names] == ["present"] * len(names), by_name
    assert again["hashed"] == 0
    # One probe met the dead hub (3 tries); the other eleven models did not try it again.
    assert down.connections == 3, down.connections


# -- CivitAI ---------------------------------------------------------------------------------


@pytest.fixture
def civitai(tmp_path):
    served = tmp_path / "served"
    digest = write_file(served / "civitai/424242", 2 * MiB + 3, seed=8)
    return served, digest


def civitai_item(origin, tmp_path, **extra):
    item = {
        "name": "lora",
        "url": f"{origin.url}/api/download/models/424242",
        "dest": dest(tmp_path, "lora.safetensors"),
        "token": origin.token,
    }
    item.update(extra)
    return item


def test_civitai_sha256_verifies_the_download(civitai, make_origin, tmp_path):
    served, digest = civitai
    origin = make_origin(served)
    result, by_name = download(tmp_path, [civitai_item(origin, tmp_path)])
    assert by_name["lora"]["status"] == "downloaded", by_name
    assert by_name["lora"]["sha256"] == digest and by_name["lora"]["sha256_from"] == "civitai"
    assert any(line.startswith("GET /api/v1/model-versions/424242 ") for line in origin.log_lines())


def test_a_file_civitai_does_not_list_is_refused(civitai, make_origin, tmp_path):
    served, _digest = civitai
    listed = "cd" * 32
    origin = make_origin(served, civitai_sha256={"424242": listed})
    result, by_name = download(tmp_path, [civitai_item(origin, tmp_path)])
    entry = by_name["lora"]
    assert entry["status"] == "failed" and "verification failed" in entry["reason"] and listed in entry["reason"]
    assert not os.path.exists(dest(tmp_path, "lora.safetensors"))


def test_a_manifest_sha256_civitai_contradicts_is_an_error_naming_both(civitai, make_origin, tmp_path):
    served, digest = civitai
    origin = make_origin(served)
    wrong = "0f" * 32
    result, by_name = download(tmp_path, [civitai_item(origin, tmp_path, sha256=wrong)])
    entry = by_name["lora"]
    assert entry["status"] == "failed" and wrong in entry["reason"] and digest in entry["reason"]
    assert "civitai" in entry["reason"]
    assert signed_gets(origin) == []


# -- S3 / R2 ---------------------------------------------------------------------------------

BUCKET = "models"


def r2_fetch(s3, tmp_path, objects):
    args = {
        "objects": objects,
        "bucket": BUCKET,
        "endpoint_url": s3.endpoint,
        "fail_on_error": False,
        "state_dir": str(tmp_path / "vault/.state/models"),
        "log_file": str(tmp_path / "vault/logs/models.log"),
    }
    result, _proc = run_module(
        "r2_fetch", args, env={"R2_ACCESS_KEY_ID": ACCESS_KEY, "R2_SECRET_ACCESS_KEY": SECRET_KEY}
    )
    return result, {r["name"]: r for r in result.get("results", [])}


def body(size, seed):
    import random

    return b"\x10" + bytes(7) + random.Random(seed).randbytes(size - 8)


def test_s3_checksum_and_metadata_verify_and_are_recorded(s3, tmp_path):
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    checked, meta, lying = body(200_000, 1), body(150_000, 2), body(100_000, 3)
    client.put_object(Bucket=BUCKET, Key="checked.bin", Body=checked, ChecksumAlgorithm="SHA256")
    client.put_object(Bucket=BUCKET, Key="meta.bin", Body=meta, Metadata={"sha256": hashlib.sha256(meta).hexdigest()})
    client.put_object(Bucket=BUCKET, Key="lying.bin", Body=lying, Metadata={"sha256": "12" * 32})
    objects = [
        {"name": key, "key": key, "dest": str(tmp_path / "vault/models/loras" / key)}
        for key in ("checked.bin", "meta.bin", "lying.bin")
    ]
    result, by_name = r2_fetch(s3, tmp_path, objects)
    assert by_name["checked.bin"]["status"] == "downloaded" and by_name["checked.bin"]["sha256_from"] == "s3"
    assert by_name["checked.bin"]["sha256"] == hashlib.sha256(checked).hexdigest()
    assert by_name["meta.bin"]["status"] == "downloaded" and by_name["meta.bin"]["sha256_from"] == "s3"
    assert by_name["lying.bin"]["status"] == "failed" and "12" * 32 in by_name["lying.bin"]["reason"]
    assert not (tmp_path / "vault/models/loras/lying.bin").exists()


def test_s3_checksum_contradicting_the_manifest_is_an_error_naming_both(s3, tmp_path):
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    data = body(120_000, 4)
    answer = client.put_object(Bucket=BUCKET, Key="a.bin", Body=data, ChecksumAlgorithm="SHA256")
    actual = base64.b64decode(answer["ChecksumSHA256"]).hex()
    wrong = "9a" * 32
    result, by_name = r2_fetch(
        s3, tmp_path, [{"name": "a", "key": "a.bin", "sha256": wrong, "dest": str(tmp_path / "vault/models/a.bin")}]
    )
    entry = by_name["a"]
    assert entry["status"] == "failed" and wrong in entry["reason"] and actual in entry["reason"]
    assert "s3" in entry["reason"]
    assert [r for r in s3.requests(method="GET") if r[1] == f"/{BUCKET}/a.bin"] == []
