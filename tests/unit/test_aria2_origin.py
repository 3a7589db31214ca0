"""http_origin (hop-by-hop requests, same-origin rules, URL checks) and the aria2 session,
against the real nginx origin, the fault origin and a real aria2c."""

import sys
import time

import pytest

from harness.fault_server import Redirect, Serve, Status
from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.aria2 import (  # noqa: E402
    Aria2Session,
    control_progress,
    describe_error,
    explain,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import (  # noqa: E402
    OriginClient,
    OriginError,
    OriginRanges,
    check_url,
    mask_url,
    origin_label,
    origin_of,
    resolve,
)

TOKEN = "unit-token-0123456789"


def client(url, token=None, **kwargs):
    return OriginClient(url, {"Authorization": f"Bearer {token}"} if token else {}, **kwargs)


def auth_by_path(origin, since=0, expect=()):
    """path -> Authorization values seen, from nginx's access log (lines after `since`).
    nginx logs a request when it finalizes it, which can be a moment after the client has what
    it needs and hung up: wait (a few seconds at most) until every path in `expect` is there."""
    deadline = time.monotonic() + 5
    while True:
        seen = {}
        for line in origin.log_lines()[since:]:
            path = line.split()[1]
            seen.setdefault(path.split("?")[0], set()).add(line.split('auth="', 1)[1].split('"', 1)[0])
        if all(path in seen for path in expect) or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


@pytest.mark.parametrize(
    "url, origin",
    [
        ("http://Host.example/a", ("http", "host.example", 80)),
        ("http://host.example:80/a", ("http", "host.example", 80)),
        ("https://host.example/a", ("https", "host.example", 443)),
        ("https://host.example:8443/a", ("https", "host.example", 8443)),
        ("http://[::1]:9/a", ("http", "::1", 9)),
    ],
)
def test_an_origin_is_scheme_host_and_port(url, origin):
    assert origin_of(url) == origin


def test_origin_label_shows_no_path_query_or_userinfo():
    assert origin_label("https://u:p@huggingface.co/org/repo?token=x") == "https://huggingface.co"
    assert origin_label("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://h:99999/a", "port 99999 is out of range (1-65535)"),
        ("http://h:0/a", "port 0 is out of range"),
        ("http://h:abc/a", "port 'abc' is not a number"),
        ("http:///a", "has no host"),
        ("ftp://h/a", "is not an http:// or https:// URL"),
        ("http://h/a b", "contains a space"),
        ("http://h/a\u2028b", "contains a control character"),
        ("http://[::1/a", "is not a valid URL"),
    ],
)
def test_check_url_says_what_is_wrong(url, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_url(url)


def test_check_url_masks_a_password_in_its_message():
    with pytest.raises(ValueError) as caught:
        check_url("http://bob:hunter2@h:99999/a")
    assert "hunter2" not in str(caught.value) and "//***@" in str(caught.value)


def test_mask_url():
    assert (
        mask_url("https://bob:pw@h/x?token=abc&v=1&X-Amz-Signature=s")
        == "https://***@h/x?token=***&v=1&X-Amz-Signature=***"
    )
    assert mask_url("https://tok@h/x") == "https://***@h/x"
    assert mask_url("https://h/x?download=true") == "https://h/x?download=true"


@pytest.mark.parametrize(
    "path, signed",
    [
        ("/redirect/small.bin", "/signed/small.bin"),
        ("/api/download/models/12345", "/signed/civitai/12345"),
        (
            "/hf/org/repo/resolve/main/split_files/vae/model.safetensors",
            "/signed/hf/org/repo/split_files/vae/model.safetensors",
        ),
    ],
)
def test_redirect_is_resolved_with_token_and_signed_url_gets_none(nginx_origin, path, signed):
    since = len(nginx_origin.log_lines())  # the origin is shared by the session
    resolved = resolve(client(nginx_origin.url + path, nginx_origin.token))
    assert resolved.url.startswith(nginx_origin.signed_url + signed + "?")
    assert not resolved.served_by_origin and resolved.hops == 1
    seen = auth_by_path(nginx_origin, since, expect=(path, signed))
    assert seen.get(path) == {"Bearer " + nginx_origin.token}, nginx_origin.log_lines()[since:]
    assert seen.get(signed) == {"-"}, nginx_origin.log_lines()[since:]


def test_a_file_the_origin_serves_itself_keeps_the_token_for_the_body(nginx_origin):
    resolved = resolve(client(nginx_origin.url + "/private/small.bin", nginx_origin.token))
    assert resolved.served_by_origin and resolved.ranges
    assert resolved.size == nginx_origin.catalog["small.bin"][0]


@pytest.mark.parametrize(
    "path, token, words",
    [
        ("/private/small.bin", None, "401"),
        ("/private/small.bin", "wrong", "token is missing or wrong"),
        ("/public/absent.bin", None, "404"),
    ],
)
def test_refusals_become_clear_errors(nginx_origin, path, token, words):
    with pytest.raises(OriginError, match=words):
        resolve(client(nginx_origin.url + path, token, tries=1))


def test_server_errors_are_retried_then_succeed(fault_server):
    resolved = resolve(client(fault_server.url + "/fail/503/2/a.bin", tries=3, retry_wait=0.05))
    assert resolved.size == fault_server.catalog["a.bin"][0]
    assert [r[0] for r in fault_server.requests] == ["HEAD"] * 3


def test_server_errors_give_up_after_tries(fault_server):
    with pytest.raises(OriginError, match="HTTP 500"):
        resolve(client(fault_server.url + "/fail/500/9/a.bin", tries=2, retry_wait=0.05))


def test_html_answer_is_reported_by_type(fault_server):
    assert resolve(client(fault_server.url + "/html/a.bin")).content_type == "text/html"


def test_unknown_size_stays_unknown(fault_server):
    assert resolve(client(fault_server.url + "/chunked/a.bin")).size is None


def test_line_breaks_in_token_are_refused_before_any_request(fault_server):
    with pytest.raises(OriginError, match="line break"):
        client(fault_server.url + "/files/a.bin", "abc\r\nX-Evil: 1")
    assert fault_server.requests == []


def test_with_a_token_the_probe_is_the_request_a_download_makes(fault_server, foreign_server):
    """HEAD 200 but GET 302: the probe must see the GET's answer, not the HEAD's."""
    fault_server.route(
        "/m",
        lambda r: Serve("a.bin") if r.method == "HEAD" else Redirect(f"http://{foreign_server.authority}/files/a.bin"),
    )
    resolved = resolve(client(fault_server.url + "/m", TOKEN))
    assert not resolved.served_by_origin and resolved.url.startswith(foreign_server.url)
    assert [(r.method, r.range) for r in fault_server.requests] == [("GET", "bytes=0-0")]
    assert all(r.authorization is None for r in foreign_server.requests)


def test_once_a_chain_leaves_the_origin_nothing_carries_the_token_even_back_home(fault_server, foreign_server):
    fault_server.route("/m", lambda r: Redirect(f"//{foreign_server.authority}/away"))
    foreign_server.route("/away", lambda r: Redirect(f"{fault_server.url}/home"))
    fault_server.route("/home", lambda r: Status(401) if r.authorization else Serve("a.bin"))
    resolved = resolve(client(fault_server.url + "/m", TOKEN))
    assert resolved.url == fault_server.url + "/home" and not resolved.served_by_origin
    assert [(r.path, r.authorization is not None) for r in fault_server.requests] == [("/m", True), ("/home", False)]


def test_each_range_of_an_in_process_download_is_resolved_hop_by_hop(fault_server, foreign_server):
    fault_server.route(
        "/m",
        lambda r: (
            Serve("b.bin")
            if (r.range or "").startswith("bytes=0-")
            else Redirect(f"//{foreign_server.authority}/files/b.bin")
        ),
    )

    class Job:
        size = fault_server.catalog["b.bin"][0]

    ranges = OriginRanges(client(fault_server.url + "/m", TOKEN))
    first = ranges.open_range(Job, 0, 999)
    later = ranges.open_range(Job, 1000, 1999)
    data = (fault_server.files_dir / "b.bin").read_bytes()
    assert first.read(2000) == data[:1000] and later.read(2000) == data[1000:2000]
    first.close()
    later.close()
    assert [r.range for r in foreign_server.requests] == ["bytes=1000-1999"]
    assert all(r.authorization is None for r in foreign_server.requests)


def test_unsupported_scheme():
    with pytest.raises(OriginError, match="scheme|cannot reach"):
        resolve(client("ftp://127.0.0.1/a.bin", tries=1))


def test_aria2_session_downloads_and_reports_errors(fault_server, tmp_path):
    with Aria2Session("/usr/bin/aria2c", {"max-tries": "1"}, str(tmp_path)) as session:
        good = session.add(fault_server.url + "/files/c.bin", str(tmp_path), "c.bin")
        bad = session.add(fault_server.url + "/status/404/c.bin", str(tmp_path), "missing.bin")
        short = session.add(fault_server.url + "/short/b.bin", str(tmp_path), "short.bin")
        for _attempt in range(200):
            statuses = session.statuses()
            if all(statuses[g]["status"] in ("complete", "error") for g in (good, bad, short)):
                break
            time.sleep(0.05)
        assert statuses[good]["status"] == "complete"
        assert statuses[bad]["status"] == "error"
        assert "not found" in explain(statuses[bad], session.cause(fault_server.url + "/status/404/c.bin"))
        reason = explain(statuses[short], session.cause(fault_server.url + "/short/b.bin"), host="origin")
        assert reason.startswith("origin closed the connection before the whole file was sent"), reason
        assert (tmp_path / "c.bin").stat().st_size == fault_server.catalog["c.bin"][0]
        argv = open(f"/proc/{session.process.pid}/cmdline", "rb").read()
        assert b"rpc-secret" not in argv
    assert session.process.poll() is not None
    assert not list(tmp_path.glob(".aria2-*.conf")), "the secret-bearing config must be gone"


def test_control_file_progress_matches_the_bytes_on_disk(make_origin, tmp_path):
    import os
    import signal
    import subprocess
    from harness.nginx import write_file

    served = tmp_path / "served"
    write_file(served / "s.bin", 8 * 1024 * 1024)
    origin = make_origin(served, limit_rate="1m")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ["aria2c", "-q", "-s2", "-x2", "-k1M", "--file-allocation=none", "-d", str(out), origin.url + "/public/s.bin"]
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    done = control_progress(str(out / "s.bin.aria2"))
    assert 0 < done < 8 * 1024 * 1024
    assert done == os.stat(out / "s.bin").st_blocks * 512, "the control file counts exactly what is on disk"
    assert control_progress(str(tmp_path / "absent.aria2")) is None


def test_describe_error_adds_hints():
    assert describe_error({"errorCode": "9", "errorMessage": ""}).startswith("not enough disk space")
    assert "cannot write the staging file" in describe_error({"errorCode": "17", "errorMessage": "Write failed"})


def test_describe_error_drops_url_queries_that_may_hold_credentials():
    reason = describe_error(
        {
            "errorCode": "3",
            "errorMessage": "Resource not found URI=https://cdn.example/x.bin?X-Amz-Signature=abc&token=SECRET end",
        }
    )
    assert "SECRET" not in reason and "abc" not in reason
    assert "Resource not found URI=https://cdn.example/x.bin?... end" in reason


def test_presigned_get_only_storage_is_sized_with_a_ranged_get(fault_server):
    resolved = resolve(client(fault_server.url + "/to-presigned/a.bin"))
    assert resolved.size == fault_server.catalog["a.bin"][0]
    signed = [r for r in fault_server.requests if r[1].startswith("/presigned/")]
    assert [(r[0], r[2], r[3]) for r in signed] == [("HEAD", None, None), ("GET", "bytes=0-0", None)]
