"""http_origin.resolve and the aria2 session, against the real nginx origin and fault server."""
import sys
import time

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.aria2 import Aria2Session, describe_error  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import OriginError, resolve  # noqa: E402


def auth_by_path(origin, since=0):
    """path -> Authorization values seen, from nginx's access log (lines after `since`)."""
    seen = {}
    for line in origin.log_lines()[since:]:
        path = line.split()[1]
        seen.setdefault(path.split("?")[0], set()).add(line.split('auth="', 1)[1].split('"', 1)[0])
    return seen


@pytest.mark.parametrize("path, signed", [
    ("/redirect/small.bin", "/signed/small.bin"),
    ("/api/download/models/12345", "/signed/civitai/12345"),
    ("/hf/org/repo/resolve/main/split_files/vae/model.safetensors", "/signed/hf/org/repo/split_files/vae/model.safetensors"),
])
def test_redirect_is_resolved_with_token_and_signed_url_gets_none(nginx_origin, path, signed):
    since = len(nginx_origin.log_lines())  # the origin is shared by the session
    resolved = resolve(nginx_origin.url + path, token=nginx_origin.token)
    assert resolved.url.startswith(nginx_origin.url + signed + "?")
    assert not resolved.with_auth and resolved.hops == 1
    seen = auth_by_path(nginx_origin, since)
    assert seen.get(path) == {"Bearer " + nginx_origin.token}, nginx_origin.log_lines()[since:]
    assert seen.get(signed) == {"-"}, nginx_origin.log_lines()[since:]


def test_no_redirect_keeps_the_token_for_the_download(nginx_origin):
    resolved = resolve(nginx_origin.url + "/private/small.bin", token=nginx_origin.token)
    assert resolved.with_auth and resolved.size == nginx_origin.catalog["small.bin"][0]


@pytest.mark.parametrize("path, token, words", [
    ("/private/small.bin", None, "401"),
    ("/private/small.bin", "wrong", "token is missing or wrong"),
    ("/public/absent.bin", None, "404"),
])
def test_refusals_become_clear_errors(nginx_origin, path, token, words):
    with pytest.raises(OriginError, match=words):
        resolve(nginx_origin.url + path, token=token, tries=1)


def test_server_errors_are_retried_then_succeed(fault_server):
    resolved = resolve(fault_server.url + "/fail/503/2/a.bin", tries=3, retry_wait=0.05)
    assert resolved.size == fault_server.catalog["a.bin"][0]
    assert [r[0] for r in fault_server.requests] == ["HEAD"] * 3


def test_server_errors_give_up_after_tries(fault_server):
    with pytest.raises(OriginError, match="HTTP 500"):
        resolve(fault_server.url + "/fail/500/9/a.bin", tries=2, retry_wait=0.05)


def test_html_answer_is_reported_by_type(fault_server):
    assert resolve(fault_server.url + "/html/a.bin").content_type == "text/html"


def test_unknown_size_stays_unknown(fault_server):
    assert resolve(fault_server.url + "/chunked/a.bin").size is None


def test_line_breaks_in_token_are_refused_before_any_request(fault_server):
    with pytest.raises(OriginError, match="line break"):
        resolve(fault_server.url + "/files/a.bin", token="abc\r\nX-Evil: 1")
    assert fault_server.requests == []


def test_unsupported_scheme():
    with pytest.raises(OriginError, match="scheme"):
        resolve("ftp://127.0.0.1/a.bin", tries=1)


def test_aria2_session_downloads_and_reports_errors(fault_server, tmp_path):
    with Aria2Session("/usr/bin/aria2c", {"max-tries": "1"}, str(tmp_path)) as session:
        good = session.add(fault_server.url + "/files/c.bin", str(tmp_path), "c.bin")
        bad = session.add(fault_server.url + "/status/404/c.bin", str(tmp_path), "missing.bin")
        for _attempt in range(200):
            statuses = session.statuses()
            if all(statuses[g]["status"] in ("complete", "error") for g in (good, bad)):
                break
            time.sleep(0.05)
        assert statuses[good]["status"] == "complete"
        assert statuses[bad]["status"] == "error"
        assert "aria2c error 3" in describe_error(statuses[bad])
        assert (tmp_path / "c.bin").stat().st_size == fault_server.catalog["c.bin"][0]
        argv = open("/proc/%d/cmdline" % session.process.pid, "rb").read()
        assert b"rpc-secret" not in argv
    assert session.process.poll() is not None
    assert not list(tmp_path.glob(".aria2-*.conf")), "the secret-bearing config must be gone"


def test_describe_error_adds_hints():
    assert describe_error({"errorCode": "9", "errorMessage": ""}) == "aria2c error 9: not enough disk space"
    assert "disk full" in describe_error({"errorCode": "17", "errorMessage": "Write failed"})


def test_describe_error_drops_url_queries_that_may_hold_credentials():
    reason = describe_error({"errorCode": "3", "errorMessage":
                             "Resource not found URI=https://cdn.example/x.bin?X-Amz-Signature=abc&token=SECRET end"})
    assert "SECRET" not in reason and "abc" not in reason
    assert reason == "aria2c error 3: Resource not found URI=https://cdn.example/x.bin?... end"


def test_presigned_get_only_storage_is_sized_with_a_ranged_get(fault_server):
    resolved = resolve(fault_server.url + "/to-presigned/a.bin", token="tok")
    assert resolved.size == fault_server.catalog["a.bin"][0] and not resolved.with_auth
    signed = [r for r in fault_server.requests if r[1].startswith("/presigned/")]
    assert [(r[0], r[2], r[3]) for r in signed] == [("HEAD", None, None), ("GET", "bytes=0-0", None)]
