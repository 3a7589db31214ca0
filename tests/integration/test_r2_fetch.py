"""r2_fetch through real ansible against moto's S3 server (real boto3, real wire protocol).

Requests are counted at the server (moto's request log), not inside the module, so "no GET"
and "only the missing parts" are facts about the network, not about our own bookkeeping.
"""

import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from harness.ansible_run import REPO, ansible_env, module_argv, run_module
from harness.net import free_port
from harness.processes import descendants
from harness.s3 import ACCESS_KEY, SECRET_KEY
from harness.s3_auth import FORBIDDEN_BUCKET, OBJECT_BODY, OBJECT_KEY, READABLE_BUCKET
from harness.throttle_proxy import ThrottleProxy

MIB = 1024 * 1024
BUCKET = "models"
CREDENTIALS = {"R2_ACCESS_KEY_ID": ACCESS_KEY, "R2_SECRET_ACCESS_KEY": SECRET_KEY}


def payload(size, seed):
    """Deterministic bytes that look like a safetensors file (8-byte header length first)."""
    import random

    return b"\x10\x00\x00\x00\x00\x00\x00\x00" + random.Random(seed).randbytes(size - 8)


def upload(client, key, body, bucket=BUCKET):
    client.put_object(Bucket=bucket, Key=key, Body=body)
    return hashlib.sha256(body).hexdigest()


def requests_after(server, mark, method=None):
    """Requests the server logged after `mark` earlier ones (waits for the log to settle)."""
    previous = None
    for _attempt in range(20):
        current = server.requests()
        if current == previous:
            break
        previous = current
        time.sleep(0.1)
    return [r for r in current[mark:] if method is None or r[0] == method]


def fetch(server, tmp_path, objects, env=None, **options):
    args = {
        "objects": objects,
        "bucket": BUCKET,
        "endpoint_url": server.endpoint,
        "state_dir": str(tmp_path / "vault/.state/models"),
        "log_file": str(tmp_path / "vault/logs/models.log"),
        "part_size": "1MB",
        "multipart_threshold": "2MB",
        "max_concurrency": 4,
    }
    args.update(options)
    check = args.pop("_check", False)
    diff = args.pop("_diff", False)
    verbosity = args.pop("_verbosity", 0)
    return run_module(
        "r2_fetch", args, check=check, diff=diff, verbosity=verbosity, env=CREDENTIALS if env is None else env
    )


@pytest.fixture
def models(s3, tmp_path):
    """Three objects in moto: two small ones and one multipart-sized (6 parts of 1 MiB)."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    bodies = {
        "loras/a.safetensors": payload(300_000, 1),
        "vae/b.safetensors": payload(5_000, 2),
        "checkpoints/big.safetensors": payload(6 * MIB - 1234, 3),
    }
    objects = []
    for key, body in bodies.items():
        objects.append(
            {
                "key": key,
                "dest": str(tmp_path / "vault/models" / os.path.basename(key)),
                "sha256": upload(client, key, body),
            }
        )
    return objects, bodies


def test_check_mode_lists_objects_and_fetches_nothing(s3, tmp_path, models):
    objects, bodies = models
    mark = len(s3.requests())
    result, _proc = fetch(s3, tmp_path, objects, _check=True, _diff=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert [r["status"] for r in result["results"]] == ["would_download"] * 3
    assert result["bytes_needed"] == sum(len(b) for b in bodies.values())
    assert objects[2]["dest"] in result["diff"]["after"]
    assert requests_after(s3, mark, "GET") == []
    assert not (tmp_path / "vault").exists(), "check mode must not create the state dir or models"


def test_fetches_in_parallel_ranges_verifies_and_second_run_issues_no_get(s3, tmp_path, models):
    objects, bodies = models
    mark = len(s3.requests())
    result, _proc = fetch(s3, tmp_path, objects)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["downloaded"] == 3
    for obj, body in zip(objects, bodies.values()):
        assert open(obj["dest"], "rb").read() == body
    gets = requests_after(s3, mark, "GET")
    big = [g for g in gets if g[1] == f"/{BUCKET}/checkpoints/big.safetensors"]
    assert len(big) == 6 and {g[2] for g in big} == {206}, "big object must come as 6 ranged GETs"
    assert len(gets) == 8
    assert os.listdir(tmp_path / "vault/.state/models/staging") == [], "staging left behind"
    ledger = tmp_path / "vault/.state/models/ledger.json"
    assert oct(ledger.stat().st_mode & 0o777) == "0o600"
    assert set(json.loads(ledger.read_text())["entries"]) == {o["dest"] for o in objects}

    mtimes = [os.stat(o["dest"]).st_mtime_ns for o in objects]
    mark = len(s3.requests())
    again, _proc = fetch(s3, tmp_path, objects)
    assert again["changed"] is False, again
    assert [r["status"] for r in again["results"]] == ["present"] * 3
    assert all(r["reason"] == "recorded in the ledger" for r in again["results"]), "must not re-hash"
    assert again["hashed"] == 0 and result["hashed"] == 3  # publish hashes once; the skip reads nothing
    second = requests_after(s3, mark)
    assert [m for m, _path, _status in second if m == "GET"] == [], second
    assert len([m for m, _path, _status in second if m == "HEAD"]) == 3
    assert [os.stat(o["dest"]).st_mtime_ns for o in objects] == mtimes
    log = (tmp_path / "vault/logs/models.log").read_text()
    assert "summary: 3 downloaded" in log and "summary: 0 downloaded, 3 present" in log


def test_recorded_models_stay_present_when_the_endpoint_is_down(s3, tmp_path, models):
    objects, _bodies = models
    fetch(s3, tmp_path, objects[:2])
    down = f"http://127.0.0.1:{free_port()}"
    wanted = objects[:2] + [{"key": "new.safetensors", "dest": str(tmp_path / "vault/models/new.safetensors")}]
    result, _proc = fetch(s3, tmp_path, wanted, endpoint_url=down)
    assert [r["status"] for r in result["results"]] == ["present", "present", "failed"], result["results"]
    assert "its source could not be asked" in result["results"][0]["reason"]
    assert result["results"][2]["reason"].startswith("endpoint unreachable")


def test_changed_object_is_fetched_again(s3, tmp_path, models):
    objects, _proc = models
    fetch(s3, tmp_path, objects[:1])
    newer = payload(300_000, 99)
    objects[0]["sha256"] = upload(s3.client(), objects[0]["key"], newer)
    result, _proc = fetch(s3, tmp_path, objects[:1])
    assert result["results"][0]["status"] == "downloaded", result["results"]
    assert open(objects[0]["dest"], "rb").read() == newer


def test_bad_sha256_places_nothing_and_others_complete(s3, tmp_path, models):
    objects, bodies = models
    objects[0]["sha256"] = "0" * 64
    result, _proc = fetch(s3, tmp_path, objects)
    assert result["failed"] is True and result["results"][0]["status"] == "failed"
    assert "sha256" in result["results"][0]["reason"]
    assert not os.path.exists(objects[0]["dest"])
    assert [r["status"] for r in result["results"][1:]] == ["downloaded"] * 2
    assert os.listdir(tmp_path / "vault/.state/models/staging") == []


def test_sigkill_mid_part_costs_at_most_one_chunk_per_part_in_flight(s3, tmp_path):
    """Counted at the wire (the throttling proxy): after a SIGKILL in the middle of parts, the
    next run fetches again at most the chunk (1 MiB) each in-flight part was reading, not the
    parts; over two kills the object crosses the wire barely more than once."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    size, in_flight = 24 * MIB, 2
    body = payload(size, 4)
    key = "checkpoints/huge.safetensors"
    obj = {"key": key, "dest": str(tmp_path / "vault/models/huge.safetensors"), "sha256": upload(client, key, body)}
    state = tmp_path / "vault/.state/models"
    with ThrottleProxy(s3.port, 2 * MIB) as proxy:
        args = {
            "objects": [obj],
            "bucket": BUCKET,
            "endpoint_url": proxy.endpoint,
            "state_dir": str(state),
            "part_size": "4MB",
            "multipart_threshold": "8MB",
            "max_concurrency": in_flight,
        }
        killed_at = []
        for stop_after in (6 * MIB, 13 * MIB):  # both times in the middle of two parts
            run = subprocess.Popen(
                module_argv("r2_fetch", args),
                cwd=REPO,
                env=ansible_env(CREDENTIALS),
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            try:
                while proxy.sent < stop_after and time.monotonic() < deadline and run.poll() is None:
                    time.sleep(0.01)
                # Hold the wire, so what is lost is what the module had read and not journaled,
                # not what a starved process left in its socket buffers on a busy machine.
                proxy.pause()
                caught_up = time.monotonic() + 30
                while proxy.sent - journaled(state) > in_flight * MIB + 64 * 1024 and time.monotonic() < caught_up:
                    time.sleep(0.05)
            finally:
                killed = kill_tree(run.pid)
                run.wait()
                proxy.resume()
            assert len(killed) >= 3, "ansible, its worker and the module should all have been killed"
            assert run.returncode is not None and proxy.sent >= stop_after, "the download never got that far"
            killed_at.append(proxy.sent)
            assert not os.path.exists(obj["dest"]), "a partial file is visible at the final path"
        result, _proc = fetch(
            s3,
            tmp_path,
            [obj],
            endpoint_url=proxy.endpoint,
            part_size="4MB",
            multipart_threshold="8MB",
            max_concurrency=in_flight,
        )
        wire = proxy.sent
    assert not result.get("failed"), result.get("msg")
    got = result["results"][0]
    assert got["status"] == "downloaded" and "resumed" in got["reason"], got
    assert open(obj["dest"], "rb").read() == body
    # Response headers are a few hundred bytes a request; the rest is body.
    refetched = wire - size - 64 * 1024
    print(f"R2: {(wire - size) / MIB:.2f} MiB of {size // MIB} MiB crossed the wire again over two SIGKILLs")
    assert refetched <= 2 * in_flight * MIB, (
        f"{refetched / MIB:.1f} MiB crossed the wire again over two kills (killed at {killed_at})"
    )
    # What the last run fetched: the rest after the second kill, plus what each kill lost (at
    # most the chunk each in-flight part was reading; sent by the proxy but never journaled).
    assert got["fetched_bytes"] < size - killed_at[-1] + 2 * in_flight * MIB + 64 * 1024
    assert list((state / "staging").iterdir()) == []


def journaled(state):
    """Bytes the staging journals (``<staging>.parts``: a JSON line, then one big-endian 8-byte
    counter per part) say are on disk."""
    total = 0
    for journal in (state / "staging").glob("*.parts"):
        counters = journal.read_bytes().partition(b"\n")[2]
        total += sum(int.from_bytes(counters[i : i + 8], "big") for i in range(0, len(counters) - 7, 8))
    return total


def kill_tree(root):
    """SIGKILL root and every descendant, the module (deepest) first, so nothing reacts to its
    parent dying."""
    tree = [root, *descendants(root)]
    for pid in reversed(tree):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return tree


# -- errors --------------------------------------------------------------------------------


def test_missing_and_wrong_objects_each_get_their_reason(s3, tmp_path, models):
    objects, _proc = models
    wanted = objects[:1] + [
        {"key": "loras/typo.safetensors", "dest": str(tmp_path / "vault/models/typo.safetensors")},
        {"key": "x.safetensors", "bucket": "no-such-bucket", "dest": str(tmp_path / "vault/models/x.safetensors")},
    ]
    result, _proc = fetch(s3, tmp_path, wanted)
    assert result["failed"] is True
    statuses = [(r["status"], r["reason"]) for r in result["results"]]
    assert statuses[0][0] == "downloaded", "one bad object must not stop the others"
    assert statuses[1] == ("failed", f"no such key: s3://{BUCKET}/loras/typo.safetensors does not exist")
    assert statuses[2][0] == "failed" and statuses[2][1].startswith("no such bucket: no-such-bucket")
    assert result["msg"].startswith("2 of 3 models failed: ") and "typo" in result["msg"]

    kept, _proc = fetch(s3, tmp_path, wanted, fail_on_error=False)
    assert not kept.get("failed") and kept["failed_count"] == 2 and kept["present"] == 1


def test_permissions_and_credentials_errors_come_from_a_server_that_checks_them(moto_s3_auth, tmp_path):
    server = moto_s3_auth
    good = {"R2_ACCESS_KEY_ID": server.access_key_id, "R2_SECRET_ACCESS_KEY": server.secret_access_key}
    cases = {
        "ok": (good, READABLE_BUCKET, "downloaded", ""),
        "denied": (good, FORBIDDEN_BUCKET, "failed", "access denied to s3://forbidden/"),
        "bad-secret": (
            {**good, "R2_SECRET_ACCESS_KEY": "W" * 40},
            READABLE_BUCKET,
            "failed",
            "bad credentials: the secret key does not match",
        ),
        "bad-key": (
            {"R2_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000", "R2_SECRET_ACCESS_KEY": "W" * 40},
            READABLE_BUCKET,
            "failed",
            "bad credentials: http://127.0.0.1",
        ),
    }
    for name, (env, bucket, status, reason) in cases.items():
        dest = tmp_path / name / "model.safetensors"
        result, _proc = fetch(
            server, tmp_path / name, [{"key": OBJECT_KEY, "bucket": bucket, "dest": str(dest)}], env=env
        )
        got = result["results"][0]
        assert got["status"] == status, (name, got)
        assert got["reason"].startswith(reason), (name, got["reason"])
        assert dest.exists() == (status == "downloaded")
    assert (tmp_path / "ok/model.safetensors").read_bytes() == OBJECT_BODY


def test_unreachable_endpoint_is_named(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    result, _proc = run_module(
        "r2_fetch",
        {
            "objects": [{"key": "a.safetensors", "dest": str(tmp_path / "a.safetensors")}],
            "bucket": BUCKET,
            "endpoint_url": endpoint,
            "state_dir": str(tmp_path / "state"),
        },
        env=CREDENTIALS,
    )
    assert result["failed"] is True
    assert result["results"][0]["reason"] == f"endpoint unreachable: could not connect to {endpoint}"


@pytest.mark.parametrize("missing", ["R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"])
def test_missing_credentials_fail_before_any_request(s3, tmp_path, models, missing, monkeypatch):
    objects, _proc = models
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    env = {k: v for k, v in CREDENTIALS.items() if k != missing}
    mark = len(s3.requests())
    result, _proc = fetch(s3, tmp_path, objects, env=env)
    assert result["failed"] is True
    assert result["msg"].startswith(f"R2 credentials missing: set {missing}"), result["msg"]
    assert requests_after(s3, mark) == []
    assert not any(os.path.exists(o["dest"]) for o in objects)


def test_bad_objects_fail_alone_and_the_others_download(s3, tmp_path, models):
    objects, _proc = models
    objects = [dict(o, bucket=BUCKET) for o in objects]
    bad = objects + [
        {"key": "k", "bucket": BUCKET, "dest": "relative/path"},
        {"key": "k2", "bucket": BUCKET, "dest": objects[0]["dest"]},
        {"key": "k3", "bucket": BUCKET, "dest": str(tmp_path / "c"), "sha256": "abc"},
        {"key": "k4", "dest": str(tmp_path / "d")},
    ]
    mark = len(s3.requests())
    result, _proc = fetch(s3, tmp_path, bad, bucket=None)
    assert result["failed"] is True
    for fragment in (
        "objects[3]: dest must be an absolute file path",
        "objects[4]: same dest as objects[0]",
        "objects[5]: sha256 must be 64 hex digits",
        "objects[6]: no bucket for k4: set R2_BUCKET",
    ):
        assert fragment in result["msg"], result["msg"]
    assert [r["status"] for r in result["results"]] == ["downloaded"] * 3 + ["failed"] * 4
    assert not [r for r in requests_after(s3, mark) if "/k" in r[1]], "a bad object is never asked for"


def test_no_endpoint_and_no_account_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("R2_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("R2_ENDPOINT_URL", raising=False)
    args = {"objects": [{"key": "a", "bucket": "b", "dest": str(tmp_path / "a")}], "state_dir": str(tmp_path / "s")}
    result, _proc = run_module("r2_fetch", args, env=CREDENTIALS)
    assert result["failed"] is True and "set R2_ACCOUNT_ID" in result["msg"]


def test_secret_key_never_in_output_logs_ledger_or_argv(moto_s3_auth, tmp_path):
    server = moto_s3_auth
    secret = server.secret_access_key
    env = {"R2_ACCESS_KEY_ID": server.access_key_id, "R2_SECRET_ACCESS_KEY": secret}
    seen_in_argv = []
    stop = threading.Event()

    def watch_argv():
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as handle:
                            if secret.encode() in handle.read():
                                seen_in_argv.append(pid)
                    except OSError:
                        pass
            time.sleep(0.01)

    objects = [
        {"key": OBJECT_KEY, "bucket": READABLE_BUCKET, "dest": str(tmp_path / "vault/models/a.safetensors")},
        {"key": OBJECT_KEY, "bucket": FORBIDDEN_BUCKET, "dest": str(tmp_path / "vault/models/b.safetensors")},
    ]
    watcher = threading.Thread(target=watch_argv)
    watcher.start()
    try:
        vvv = run_vvv(server, tmp_path, objects, env)
    finally:
        stop.set()
        watcher.join()
    assert seen_in_argv == [], "the secret showed up in a process's argv"
    assert "ESTABLISH LOCAL CONNECTION" in vvv.stdout, "not a -vvv run"
    assert "status: downloaded" in vvv.stdout and "access denied to s3://forbidden/" in vvv.stdout
    assert secret not in vvv.stdout + vvv.stderr
    result, _proc = fetch(server, tmp_path, objects, env=env, _diff=True)
    # A task that passes the secret as an argument (not the environment) is masked too.
    masked, masked_proc = fetch(
        server, tmp_path, objects, env={}, secret_access_key=secret, access_key_id=server.access_key_id
    )
    assert [r["status"] for r in result["results"]] == ["present", "failed"]
    assert masked["results"][0]["status"] == "present"
    for text in (json.dumps(result), masked_proc.stdout, masked_proc.stderr):
        assert secret not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert (tmp_path / "vault/logs/models.log").read_text().count("r2_fetch: failed s3://forbidden/") == 3


def run_vvv(server, tmp_path, objects, env):
    """The task as a person runs it with -vvv (default callback), secret in the environment."""
    args = {
        "objects": objects,
        "endpoint_url": server.endpoint,
        "state_dir": str(tmp_path / "vault/.state/models"),
        "log_file": str(tmp_path / "vault/logs/models.log"),
    }
    cmd = module_argv("r2_fetch", args, "-vvv", "--diff")
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(env), capture_output=True, text=True, timeout=120, check=False)
