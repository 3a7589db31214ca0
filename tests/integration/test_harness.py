"""Each harness piece proves it works, so later failures point at the code, not the harness."""

import hashlib
import http.client
import subprocess
import time
import urllib.parse

import pytest

from harness.nginx import write_file


def _get(origin, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_aria2c_fetches_ranged_file_through_nginx(nginx_origin, tmp_path):
    size, sha = nginx_origin.catalog["medium.bin"]
    subprocess.run(
        [
            "aria2c",
            "-q",
            "-x4",
            "-s4",
            "-k1M",
            "--min-split-size=1M",
            "-d",
            str(tmp_path),
            "-o",
            "medium.bin",
            f"{nginx_origin.url}/public/medium.bin",
        ],
        check=True,
        timeout=60,
    )
    data = (tmp_path / "medium.bin").read_bytes()
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == sha
    ranged = [line for line in nginx_origin.log_lines() if "/public/medium.bin" in line and 'range="bytes=' in line]
    assert len(ranged) >= 2, "aria2c should have split the download into ranged requests"


def test_private_path_needs_the_bearer_token(nginx_origin):
    resp, _body = _get(nginx_origin, "/private/small.bin")
    assert resp.status == 401
    resp, _body = _get(nginx_origin, "/private/small.bin", {"Authorization": "Bearer wrong"})
    assert resp.status == 401
    resp, body = _get(nginx_origin, "/private/small.bin", {"Authorization": f"Bearer {nginx_origin.token}"})
    assert resp.status == 200 and len(body) == nginx_origin.catalog["small.bin"][0]


@pytest.mark.parametrize(
    "path",
    [
        "/redirect/small.bin",
        "/api/download/models/12345",
        "/hf/org/repo/resolve/main/split_files/vae/model.safetensors",
    ],
)
def test_redirect_to_signed_storage_rejects_authorization(nginx_origin, path):
    auth = {"Authorization": f"Bearer {nginx_origin.token}"}
    resp, _body = _get(nginx_origin, path, auth)
    assert resp.status == 302
    location = urllib.parse.urlsplit(resp.getheader("Location"))
    signed = f"{location.path}?{location.query}"
    assert location.path.startswith("/signed/")
    resp, _body = _get(nginx_origin, signed, auth)
    assert resp.status == 400, "signed storage must refuse a forwarded token"
    resp, body = _get(nginx_origin, signed)
    assert resp.status == 200 and len(body) > 0


def test_range_request_is_honoured(nginx_origin):
    resp, body = _get(nginx_origin, "/public/small.bin", {"Range": "bytes=100-199"})
    assert resp.status == 206 and len(body) == 100


def test_limit_rate_throttles_each_connection(make_origin, tmp_path):
    served = tmp_path / "served"
    write_file(served / "blob.bin", 300 * 1024)
    origin = make_origin(served, limit_rate="100k")
    started = time.monotonic()
    resp, body = _get(origin, "/public/blob.bin")
    elapsed = time.monotonic() - started
    assert resp.status == 200 and len(body) == 300 * 1024
    # 300 KiB at 100 KiB/s: about 3 s; a lower bound only, so a slow machine cannot fail it.
    assert elapsed >= 1.8


def test_moto_s3_lists_bucket_and_counts_gets(s3):
    client = s3.client()
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="loras/a.safetensors", Body=b"x" * 1000)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="models")["Contents"]]
    assert keys == ["loras/a.safetensors"]
    before = len(s3.requests("GET", "/models/loras/a.safetensors"))
    assert client.get_object(Bucket="models", Key="loras/a.safetensors")["Body"].read() == b"x" * 1000
    assert len(s3.requests("GET", "/models/loras/a.safetensors")) == before + 1


@pytest.mark.podman
def test_podman_image_runs_commands_with_host_network(pod_container, nginx_origin):
    pod = pod_container()
    out = pod.sh("python3 --version && aria2c --version | head -n1 && command -v sshd git rsync")
    assert "Python 3" in out.stdout and "aria2 version" in out.stdout
    # Host networking: the container reaches the harness origin on loopback.
    fetched = pod.sh(
        f'python3 -c "import urllib.request;'
        f"print(len(urllib.request.urlopen('{nginx_origin.url}/public/small.bin').read()))\""
    )
    assert fetched.stdout.strip() == str(nginx_origin.catalog["small.bin"][0])
    host = pod.testinfra()
    assert host.file("/usr/bin/aria2c").exists
    assert host.run("id -u").stdout.strip() == "0"
