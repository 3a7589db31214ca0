"""aria2_batch through real ansible, real aria2c, the nginx origin and the fault server."""

import hashlib
import json
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.ansible_run import ansible_env, run_module
from harness.model_vault import Vault
from harness.nginx import write_file
from harness.paths import REPO, VENV_BIN
from harness.processes import descendants

MiB = 1024 * 1024


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gets(origin, marker):
    return [line for line in origin.log_lines() if line.startswith("GET ") and marker in line]


def sent_bytes(lines):
    return sum(int(line.rsplit("bytes=", 1)[1]) for line in lines)


@pytest.fixture
def vault(tmp_path):
    return Vault(tmp_path / "vault")


@pytest.fixture
def three_files(make_origin, tmp_path):
    served = tmp_path / "served"
    catalog = {
        name: (size, write_file(served / name, size, seed=i))
        for i, (name, size) in enumerate(
            (("one.safetensors", 6 * MiB + 5), ("two.safetensors", 4 * MiB), ("three.bin", 70_000))
        )
    }
    origin = make_origin(served)
    origin.catalog = catalog
    return origin


def test_parallel_ranged_download_then_second_run_reads_nothing(three_files, vault):
    origin = three_files
    downloads = [
        {"url": f"{origin.url}/public/{name}", "dest": vault.dest(name), "sha256": digest}
        for name, (_size, digest) in origin.catalog.items()
    ]
    args = vault.args(downloads, min_split_size="1M")
    result, _run = run_module("aria2_batch", args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["downloaded"] == 3 and result["failed_count"] == 0
    for name, (_size, digest) in origin.catalog.items():
        assert sha(vault.dest(name)) == digest
    assert [r["status"] for r in result["results"]] == ["downloaded"] * 3
    assert len([line for line in gets(origin, "one.safetensors") if 'range="bytes=' in line]) >= 2, (
        "the 6 MiB file should have been fetched over several ranged connections"
    )
    assert os.listdir(vault.state / "staging") == []
    assert stat.S_IMODE(os.stat(vault.state / "ledger.json").st_mode) == 0o600
    assert "summary: 3 downloaded, 0 present, 0 failed" in vault.log.read_text()

    # Swap a file's bytes but keep size and mtime: only a run that reads the file could notice.
    target = Path(vault.dest("two.safetensors"))
    before = os.stat(target)
    target.write_bytes(b"\0" * before.st_size)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    requests_before = len(origin.log_lines())
    second, _run = run_module("aria2_batch", args)
    assert not second["changed"] and second["present"] == 3 and second["hashed"] == 0
    assert len(origin.log_lines()) == requests_before, "a recorded file must not even be asked about"
    checked, _run = run_module("aria2_batch", args, check=True, diff=True)
    assert not checked["changed"] and checked["would_download"] == 0 and checked["hashed"] == 0
    assert checked["diff"]["before"] == checked["diff"]["after"]


def test_check_mode_reports_bytes_needed_and_writes_nothing(three_files, vault):
    origin = three_files
    downloads = [{"url": f"{origin.url}/public/{name}", "dest": vault.dest(name)} for name in origin.catalog]
    result, _run = run_module("aria2_batch", vault.args(downloads), check=True, diff=True)
    assert result["changed"] and result["would_download"] == 3
    assert result["bytes_needed"] == sum(size for size, _digest in origin.catalog.values())
    assert {r["status"] for r in result["results"]} == {"would_download"}
    assert sorted(result["diff"]["after"].split()) == sorted(vault.dest(n) for n in origin.catalog)
    assert result["diff"]["before"] == ""
    assert not vault.root.exists(), "check mode must not create the vault, state or log"
    assert gets(origin, "/public/") == [], "check mode asks with HEAD only"


def test_token_goes_to_origin_only_and_never_shows(nginx_origin, vault, tmp_path):
    catalog = nginx_origin.catalog
    token = nginx_origin.token
    downloads = [
        {"url": nginx_origin.url + "/redirect/small.bin", "dest": vault.dest("small.bin"), "token": token},
        {
            "url": nginx_origin.url + "/hf/org/repo/resolve/main/split_files/vae/model.safetensors",
            "dest": vault.dest("model.safetensors", "vae"),
            "token": token,
            "sha256": catalog["hf/org/repo/split_files/vae/model.safetensors"][1],
        },
        {
            "url": nginx_origin.url + "/api/download/models/12345",
            "dest": vault.dest("12345.safetensors", "loras"),
            "token": token,
            "sha256": catalog["civitai/12345"][1],
        },
        {"url": nginx_origin.url + "/private/medium.bin", "dest": vault.dest("medium.bin"), "token": token},
    ]
    # -vvv prints the module's arguments and result: the most a user can ask ansible to show.
    proc = _start_ansible(vault.args(downloads), "-vvv")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "downloaded: 4" in out and "token: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out
    assert sha(vault.dest("medium.bin")) == catalog["medium.bin"][1]
    assert token not in out + err
    for path in vault.every_file():
        assert token.encode() not in path.read_bytes(), path
    signed = [line for line in nginx_origin.log_lines() if "/signed/" in line]
    assert len(signed) >= 3 and all('auth="-"' in line for line in signed), signed
    for marker in ("/redirect/small.bin", "/api/download/models/12345", "/private/medium.bin"):
        assert any(marker in line and f'auth="Bearer {token}"' in line for line in nginx_origin.log_lines())


def test_token_is_not_in_any_process_argv_while_downloads_run(make_origin, vault, tmp_path):
    """One file the origin serves itself (in-process, with the token) and one behind a redirect
    (aria2c, tokenless): no process's argv ever holds the token."""
    served = tmp_path / "served"
    digests = {name: write_file(served / name, 3 * MiB, seed=n) for n, name in enumerate(("slow.bin", "slow2.bin"))}
    origin = make_origin(served, limit_rate="1m")
    args = vault.args(
        [
            {
                "url": origin.url + "/private/slow.bin",
                "dest": vault.dest("slow.bin"),
                "token": origin.token,
                "sha256": digests["slow.bin"],
            },
            {
                "url": origin.url + "/redirect/slow2.bin",
                "dest": vault.dest("slow2.bin"),
                "token": origin.token,
                "sha256": digests["slow2.bin"],
            },
        ],
        split=1,
        max_connection_per_server=1,
    )
    proc = _start_ansible(args)
    seen_aria2c = False
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                assert origin.token.encode() not in cmdline, cmdline
                seen_aria2c = seen_aria2c or cmdline.startswith(b"/usr/bin/aria2c\0")
            time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
    finally:
        _kill_group(proc)
    assert seen_aria2c, "aria2c was never seen running; the file is too small to observe"
    assert origin.token not in out + err
    for name, digest in digests.items():
        assert sha(vault.dest(name)) == digest


def _start_ansible(args, *options):
    """Start a one-task play in its own process group; args travel in a 0600 file, not argv."""
    workdir = Path(tempfile.mkdtemp(prefix="play-", dir=Path(args["state_dir"]).parents[2]))
    (workdir / "args.json").write_text(json.dumps({"batch_args": args}))
    (workdir / "args.json").chmod(0o600)
    (workdir / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        '    - name: Download\n      aiclipse.comfyui.aria2_batch: "{{ batch_args }}"\n'
    )
    cmd = [
        str(VENV_BIN / "ansible-playbook"),
        "-c",
        "local",
        "-i",
        "localhost,",
        "-e",
        "ansible_python_interpreter={{ ansible_playbook_python }}",
        "-e",
        "@%s" % (workdir / "args.json"),
        str(workdir / "play.yml"),
        *options,
    ]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _aria2c_pids(marker):
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"/usr/bin/aria2c\0") and marker.encode() in cmdline:
            pids.append(int(pid))
    return pids


@pytest.mark.parametrize("aria2c_too", [False, True], ids=["module-killed", "everything-killed"])
def test_killed_run_leaves_nothing_at_final_paths_and_resumes(make_origin, vault, tmp_path, aria2c_too):
    """SIGKILL of ansible, its worker and the module; aria2c either notices and saves its
    control files itself (--stop-with-process) or is SIGKILLed too (then its last save, at most
    10 s old, counts: here the one it wrote when the downloads started, since the kill comes
    within seconds). The bytes that cross the wire twice are counted at nginx."""
    served = tmp_path / "served"
    size = 6 * MiB
    files = {name: write_file(served / name, size, seed=i) for i, name in enumerate(("k1.bin", "k2.bin"))}
    origin = make_origin(served, limit_rate="1m")
    args = vault.args(
        [
            {"url": f"{origin.url}/public/{name}", "dest": vault.dest(name), "sha256": digest}
            for name, digest in files.items()
        ],
        split=2,
        min_split_size="1M",
    )
    proc = _start_ansible(args)
    staging = vault.state / "staging"
    deadline = time.monotonic() + 30
    started = None
    while time.monotonic() < deadline:
        partials = list(staging.glob("*.bin")) if staging.exists() else []
        partial = sum(p.stat().st_blocks * 512 for p in partials)
        started = started or (time.monotonic() if partials else None)
        # aria2c keeps up to 16 MiB in its own cache between saves of its control files (every
        # 10 s), so the disk may show nothing yet: a second after the partials appeared, about
        # a third of the 12 MiB has been fetched at 1 MB/s per connection.
        if partial >= 3 * MiB or (started and time.monotonic() - started >= 1.0):
            break
        time.sleep(0.1)
    else:
        _kill_group(proc)
        pytest.fail("the download never got going")
    aria2c = _aria2c_pids(str(vault.state))
    assert aria2c, "aria2c should be running mid-download"
    # ansible, its worker and the module (ansible starts it in a session of its own), all at once;
    # aria2c only when asked: that it otherwise dies with its parent is part of what is tested.
    for pid in [proc.pid, *descendants(proc.pid)]:
        if aria2c_too or pid not in aria2c:
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _aria2c_pids(str(vault.state)) and time.monotonic() < deadline:
        time.sleep(0.2)  # --stop-with-process: aria2c notices its parent's death within a second or so
    assert not _aria2c_pids(str(vault.state)), "aria2c must not outlive the killed run"
    assert not any(Path(vault.dest(name)).exists() for name in files), "nothing may appear at a final path"
    served_before = sent_bytes(gets(origin, "/public/"))

    result, _run = run_module("aria2_batch", args)
    assert not result.get("failed"), result.get("msg")
    assert result["downloaded"] == 2
    for name, digest in files.items():
        assert sha(vault.dest(name)) == digest
    twice = sent_bytes(gets(origin, "/public/")) - 2 * size
    print(
        f"HTTP ({'aria2c killed too' if aria2c_too else 'module killed'}): {twice / MiB:.2f} MiB of "
        f"2 x {size // MiB} MiB crossed the wire twice (killed at {served_before / MiB:.2f} MiB)"
    )
    # Per connection (4): what sat in its socket buffers and aria2c's first, unranged GET of a
    # resumed file (about 1 MiB each here). When aria2c itself was killed, also what it fetched
    # since its last save of the control files: they are saved every 10 s, and the kill comes
    # before the first save, so that is everything the origin had sent before the kill.
    connections = 4
    lost_at_most = served_before if aria2c_too else 0
    assert twice <= lost_at_most + connections * 2 * MiB, "%.1f MiB crossed the wire twice" % (twice / MiB)


def test_faults_each_get_their_result_and_the_rest_completes(fault_server, vault):
    """aria2c's path (no token): every fault gets its own result, the rest completes."""
    url = fault_server.url
    cat = fault_server.catalog
    plan = [
        ("reset", "/reset-once/a.bin", cat["a.bin"][1], "downloaded", ""),
        ("unavailable", "/fail/503/2/b.bin", cat["b.bin"][1], "downloaded", ""),
        ("server-error", "/fail/500/1/c.bin", cat["c.bin"][1], "downloaded", ""),
        ("get-500", "/fail-get/500/2/a.bin", cat["a.bin"][1], "downloaded", ""),
        ("presigned", "/to-presigned/b.bin", cat["b.bin"][1], "downloaded", ""),
        ("broken", "/fail-get/500/99/c.bin", None, "failed", "answered HTTP 500"),
        ("short", "/short/a.bin", None, "failed", "closed the connection before the whole file was sent"),
        ("missing", "/status/404/a.bin", None, "failed", "404"),
        ("forbidden", "/status/403/a.bin", None, "failed", "403"),
        ("login-page", "/html/a.bin", None, "failed", "HTML"),
        ("disguised", "/disguised-html/a.bin", None, "failed", "HTML"),
        ("bad-sum", "/files/c.bin", "0" * 64, "failed", "sha256"),
        ("bad-port", "http://127.0.0.1:99999/c.bin", None, "failed", "port 99999 is out of range"),
        ("no-number", "http://127.0.0.1:abc/c.bin", None, "failed", "port 'abc' is not a number"),
    ]
    downloads = [
        {
            "name": name,
            "url": path if path.startswith("http") else url + path,
            "dest": vault.dest(name + ".safetensors"),
            **({"sha256": digest} if digest else {}),
        }
        for name, path, digest, _status, _reason in plan
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads, fail_on_error=False, max_tries=3))
    assert not result.get("failed"), f"fail_on_error=false must not fail the task: {result.get('msg')}"
    by_name = {r["name"]: r for r in result["results"]}
    for name, _path, _digest, status, reason in plan:
        assert by_name[name]["status"] == status, by_name[name]
        assert reason in by_name[name]["reason"], by_name[name]
        assert Path(vault.dest(name + ".safetensors")).exists() == (status == "downloaded")
    assert "aria2c error 1" in by_name["short"]["reason"], "the raw code stays for searching"
    assert sha(vault.dest("reset.safetensors")) == cat["a.bin"][1]
    assert result["failed_count"] == 9 and result["downloaded"] == 5
    log = vault.log.read_text()
    assert "failed bad-sum" in log and "summary: 5 downloaded, 0 present, 9 failed" in log
    assert "retrying get-500" in log

    again, _run = run_module("aria2_batch", vault.args(downloads, max_tries=3))
    assert again["failed"] and again["msg"].startswith("9 of 14 models failed: broken: ")
    assert again["present"] == 5 and again["failed_count"] == 9


def test_faults_of_in_process_downloads_each_get_their_result(fault_server, vault):
    """The in-process path (a token, the origin serves the file): the same faults."""
    url = fault_server.url
    cat = fault_server.catalog
    plan = [
        ("reset", "/reset-once/big.bin", cat["big.bin"][1], "downloaded", ""),
        ("unavailable", "/fail/503/2/b.bin", cat["b.bin"][1], "downloaded", ""),
        ("get-500", "/fail-get/500/2/a.bin", cat["a.bin"][1], "downloaded", ""),
        ("chunked", "/chunked/b.bin", cat["b.bin"][1], "downloaded", ""),
        ("broken", "/fail-get/500/99/c.bin", None, "failed", "HTTP 500"),
        ("missing", "/status/404/a.bin", None, "failed", "404"),
        ("login-page", "/html/a.bin", None, "failed", "HTML"),
        ("disguised", "/disguised-html/a.bin", None, "failed", "HTML"),
        ("bad-sum", "/files/c.bin", "0" * 64, "failed", "sha256"),
    ]
    downloads = [
        {
            "name": name,
            "url": url + path,
            "dest": vault.dest(name + ".safetensors"),
            "token": "tok-123",
            **({"sha256": digest} if digest else {}),
        }
        for name, path, digest, _status, _reason in plan
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads, fail_on_error=False, min_split_size="1M"))
    by_name = {r["name"]: r for r in result["results"]}
    for name, _path, _digest, status, reason in plan:
        assert by_name[name]["status"] == status, by_name[name]
        assert reason in by_name[name]["reason"], by_name[name]
    assert sha(vault.dest("reset.safetensors")) == cat["big.bin"][1]
    assert "in-process" in vault.log.read_text()
    assert [p.name for p in (vault.state / "staging").iterdir()] == []


def test_disk_full_during_download_fails_that_entry_only(fault_server, small_tmpfs, tmp_path):
    vault = Vault(small_tmpfs("3m") / "vault")
    vault.log = tmp_path / "logs/models.log"  # a log on the full disk could say nothing
    # One file at a time, the small one first: once the disk is full nothing more can land on
    # it, so the point is that the big one's failure does not undo or corrupt the small one.
    downloads = [
        {
            "url": fault_server.url + "/files/c.bin",
            "dest": vault.dest("c.bin"),
            "sha256": fault_server.catalog["c.bin"][1],
        },
        {"url": fault_server.url + "/chunked/big.bin", "dest": vault.dest("big.bin")},
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads, max_tries=1, max_concurrent_downloads=1))
    assert result["failed"] and "big.bin" in result["msg"]
    small, big = result["results"]
    assert small["status"] == "downloaded", small
    assert big["status"] == "failed" and "disk" in big["reason"], big
    assert not Path(vault.dest("big.bin")).exists()
    assert sha(vault.dest("c.bin")) == fault_server.catalog["c.bin"][1]
    # The ledger lives on the full disk too: c.bin is recorded, or the log says why it is not.
    ledger = vault.state / "ledger.json"
    recorded = ledger.exists() and vault.dest("c.bin") in json.loads(ledger.read_text())["entries"]
    assert recorded or "ledger not updated" in vault.log.read_text()


def test_disk_preflight_downloads_what_fits_and_fails_only_the_rest(fault_server, small_tmpfs):
    tiny = small_tmpfs("3m")
    vault = Vault(tiny / "vault")
    downloads = [
        {"url": fault_server.url + "/files/c.bin", "dest": vault.dest("c.bin")},
        {"url": fault_server.url + "/files/big.bin", "dest": vault.dest("big.bin")},
        {"url": fault_server.url + "/files/a.bin", "dest": vault.dest("a.bin")},
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads))
    assert result["failed"] and result["msg"].startswith("1 of 3 models failed: big.bin: not enough disk space")
    small, big, other = result["results"]
    assert small["status"] == other["status"] == "downloaded"
    assert big["status"] == "failed"
    assert big["reason"].startswith("not enough disk space: needs 6.00 MB, ") and (f"free on {tiny}") in big["reason"]
    assert not [r for r in fault_server.requests if r.method == "GET" and r.path.endswith("big.bin")]
    assert not Path(vault.dest("big.bin")).exists()


def test_staging_on_another_filesystem_is_a_clear_per_entry_error(fault_server, small_tmpfs, tmp_path):
    other = Vault(small_tmpfs("1m") / "vault")
    dest = str(tmp_path / "models/c.bin")
    result, _run = run_module("aria2_batch", other.args([{"url": fault_server.url + "/files/c.bin", "dest": dest}]))
    assert result["failed"]
    assert "different filesystems" in result["results"][0]["reason"]
    assert not Path(dest).exists()


def test_existing_unrecorded_files_are_adopted_only_when_the_size_matches(fault_server, vault):
    good, bad = Path(vault.dest("good.bin")), Path(vault.dest("bad.bin"))
    good.parent.mkdir(parents=True)
    good.write_bytes(os.urandom(fault_server.catalog["c.bin"][0]))  # right size: a user's own copy
    bad.write_bytes(b"half a model")  # what the old scripts left after a crash
    downloads = [
        {"url": fault_server.url + "/files/c.bin", "dest": str(good)},
        {"url": fault_server.url + "/files/c.bin", "dest": str(bad)},
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads))
    assert [r["status"] for r in result["results"]] == ["present", "downloaded"], result["results"]
    assert sha(bad) == fault_server.catalog["c.bin"][1]
    # No sha256 wanted: the user's copy is adopted unread; the download is hashed as it arrives.
    assert result["hashed"] == 1
    assert [r["sha256"] for r in result["results"]] == [None, fault_server.catalog["c.bin"][1]], result["results"]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"url": "ftp://x/a.bin", "dest": "/tmp/a.bin"}, "url 'ftp://x/a.bin' is not an http:// or https:// URL"),
        ({"url": "http://127.0.0.1/a.bin", "dest": "relative/a.bin"}, "dest must be an absolute file path"),
        ({"url": "http://127.0.0.1/a.bin", "dest": "/tmp/a.bin", "sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"url": "http://127.0.0.1/a.bin", "dest": "/tmp/a.bin", "token": "x\nheader=evil"}, "line break"),
        ({"url": "http://127.0.0.1:99999/a.bin", "dest": "/tmp/a.bin"}, "port 99999 is out of range"),
        ({"url": "http://127.0.0.1:abc/a.bin", "dest": "/tmp/a.bin"}, "port 'abc' is not a number"),
    ],
)
def test_a_bad_entry_fails_alone_before_anything_happens(vault, entry, message):
    result, proc = run_module("aria2_batch", vault.args([entry]))
    assert result["failed"] and "downloads[0]: " in result["msg"] and message in result["msg"], result["msg"]
    assert result["results"][0]["status"] == "failed"
    assert "evil" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert not vault.state.exists() and not vault.models.exists()
    assert message in vault.log.read_text(), "a background job's only report is the log"


def test_one_bad_entry_does_not_take_the_batch_down(fault_server, vault):
    good = {"url": fault_server.url + "/files/c.bin", "dest": vault.dest("c.bin")}
    result, _run = run_module(
        "aria2_batch",
        vault.args(
            [
                {"url": "http://127.0.0.1:99999/x.bin", "dest": vault.dest("x.bin")},
                good,
                {"url": "http://127.0.0.1:abc/y.bin", "dest": vault.dest("y.bin")},
            ]
        ),
    )
    assert [r["status"] for r in result["results"]] == ["failed", "downloaded", "failed"]
    assert sha(vault.dest("c.bin")) == fault_server.catalog["c.bin"][1]


def test_duplicate_destinations_fail_the_second_entry(fault_server, vault):
    entry = {"url": fault_server.url + "/files/c.bin", "dest": vault.dest("c.bin")}
    result, _run = run_module("aria2_batch", vault.args([entry, dict(entry)]))
    assert [r["status"] for r in result["results"]] == ["downloaded", "failed"]
    assert "downloads[1]: same dest as downloads[0]" in result["msg"]


def test_a_log_on_a_full_disk_is_a_warning_and_the_downloads_still_finish(fault_server, vault, small_tmpfs):
    full = small_tmpfs("64k", name="logs")
    with open(full / "filler", "wb") as handle:
        try:
            handle.write(b"x" * 1024 * 1024)
        except OSError:
            pass
    vault.log = full / "models.log"
    result, proc = run_module(
        "aria2_batch", vault.args([{"url": fault_server.url + "/files/c.bin", "dest": vault.dest("c.bin")}])
    )
    assert not result.get("failed"), result.get("msg")
    assert result["results"][0]["status"] == "downloaded"
    assert any(f"cannot write {vault.log}: No space left on device" in w for w in result.get("warnings", [])), (
        result.get("warnings")
    )
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_disk_that_fills_up_during_an_in_process_download_fails_that_entry(fault_server, small_tmpfs, tmp_path):
    """Size unknown in advance (chunked), so the preflight cannot stop it: the write itself fails."""
    vault = Vault(small_tmpfs("3m") / "vault")
    vault.log = tmp_path / "logs/models.log"
    result, proc = run_module(
        "aria2_batch",
        vault.args(
            [
                {"url": fault_server.url + "/files/c.bin", "dest": vault.dest("c.bin"), "token": "tok-0123456789"},
                {
                    "url": fault_server.url + "/chunked/big.bin",
                    "dest": vault.dest("big.bin"),
                    "token": "tok-0123456789",
                },
            ]
        ),
    )
    small, big = result["results"]
    assert small["status"] == "downloaded", small
    assert big["status"] == "failed", big
    assert big["reason"].startswith("the disk filled up while downloading: the file needs an unknown size, ")
    assert (f"free on {vault.root.parent} now") in big["reason"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not Path(vault.dest("big.bin")).exists()
    assert sha(vault.dest("c.bin")) == fault_server.catalog["c.bin"][1]


# -- a bad item fails alone; a module that cannot download still reports every entry ---------


def test_an_item_missing_its_url_or_with_a_bad_size_fails_alone(three_files, vault):
    origin = three_files
    _size, digest = origin.catalog["three.bin"]
    downloads = [
        {"url": f"{origin.url}/public/three.bin", "dest": vault.dest("three.bin"), "sha256": digest},
        {"dest": vault.dest("no-url.bin")},
        {"url": f"{origin.url}/public/two.safetensors", "dest": vault.dest("two.safetensors"), "size": "12MB"},
        {"url": f"{origin.url}/public/one.safetensors", "name": "no-dest"},
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads, fail_on_error=False))
    statuses = [(r["name"], r["status"]) for r in result["results"]]
    assert statuses == [
        ("three.bin", "downloaded"),
        ("no-url.bin", "failed"),
        ("two.safetensors", "failed"),
        ("no-dest", "failed"),
    ], result
    reasons = [r["reason"] for r in result["results"]]
    assert "downloads[1]" in reasons[1] and "url" in reasons[1]
    assert "downloads[2]" in reasons[2] and "size must be a whole number" in reasons[2] and "12MB" in reasons[2]
    assert "downloads[3]" in reasons[3] and "dest" in reasons[3]
    assert sha(vault.dest("three.bin")) == digest


@pytest.mark.parametrize(
    "option, expected",
    [
        ({"min_split_size": "lots"}, "min_split_size must be a size"),
        ({"max_connection_per_server": 40}, "max_connection_per_server must be between 1 and 16"),
    ],
    ids=["min_split_size", "max_connection_per_server"],
)
def test_a_bad_option_fails_every_entry_and_the_log_names_each(three_files, vault, option, expected):
    origin = three_files
    downloads = [
        {"url": f"{origin.url}/public/{name}", "dest": vault.dest(name)} for name in ("one.safetensors", "three.bin")
    ]
    result, _run = run_module("aria2_batch", vault.args(downloads, **option))
    assert result.get("failed") and expected in result["msg"], result
    assert [(r["name"], r["status"]) for r in result["results"]] == [
        ("one.safetensors", "failed"),
        ("three.bin", "failed"),
    ]
    assert all(expected in r["reason"] for r in result["results"])
    log = vault.log.read_text()
    assert "one.safetensors" in log and "three.bin" in log and expected in log, log
    assert "summary: 0 downloaded, 0 present, 2 failed" in log
    assert not os.path.exists(vault.dest("three.bin"))


def test_without_aria2c_every_entry_fails_saying_so_in_the_log(three_files, vault, tmp_path):
    origin = three_files
    downloads = [{"url": f"{origin.url}/public/three.bin", "dest": vault.dest("three.bin")}]
    bare = tmp_path / "bin"  # every tool of /usr/bin but aria2c (/bin is /usr/bin here)
    bare.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if tool.name != "aria2c":
            (bare / tool.name).symlink_to(tool)
    result, _run = run_module("aria2_batch", vault.args(downloads), env={"PATH": str(bare)})
    assert result.get("failed"), result
    assert result["results"][0]["status"] == "failed" and "aria2c is not installed" in result["results"][0]["reason"]
    assert "three.bin" in vault.log.read_text() and "aria2c is not installed" in vault.log.read_text()
