"""r2_client: endpoint, credentials and R2 settings; botocore errors become clear sentences."""

import sys

import botocore.exceptions
import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import r2_client  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.r2_fetcher import r2_entries  # noqa: E402


def client_error(code, status, operation="GetObject"):
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "server words"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def test_endpoint_from_account_or_override():
    assert r2_client.resolve_endpoint("abc123", None) == "https://abc123.r2.cloudflarestorage.com"
    assert r2_client.resolve_endpoint("abc123", "http://127.0.0.1:9000/") == "http://127.0.0.1:9000"
    with pytest.raises(r2_client.R2ConfigError, match="set R2_ACCOUNT_ID"):
        r2_client.resolve_endpoint(None, None)
    with pytest.raises(r2_client.R2ConfigError, match="must start with http"):
        r2_client.resolve_endpoint(None, "minio:9000")


def test_missing_credentials_name_every_variable():
    with pytest.raises(r2_client.R2ConfigError) as caught:
        r2_client.check_credentials(None, "")
    assert "R2_ACCESS_KEY_ID (option access_key_id) and R2_SECRET_ACCESS_KEY" in str(caught.value)
    with pytest.raises(r2_client.R2ConfigError, match=r"its environment or /etc/rp_environment\)"):
        r2_client.check_credentials("id", None, "/etc/rp_environment")
    r2_client.check_credentials("id", "secret")


def test_client_is_configured_for_r2():
    client = r2_client.make_client("https://acct.r2.cloudflarestorage.com", "id", "secret", max_pool_connections=7)
    config = client.meta.config
    assert client.meta.region_name == "auto"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.s3["addressing_style"] == "path"
    assert config.max_pool_connections == 7
    assert client.meta.endpoint_url == "https://acct.r2.cloudflarestorage.com"


@pytest.mark.parametrize(
    "code,status,expected",
    [
        ("NoSuchKey", 404, "no such key: s3://b/k does not exist"),
        ("NoSuchBucket", 404, "no such bucket: b does not exist at https://e"),
        ("AccessDenied", 403, "access denied to s3://b/k"),
        ("InvalidAccessKeyId", 403, "bad credentials: https://e does not know this access key id"),
        ("SignatureDoesNotMatch", 403, "bad credentials: the secret key does not match"),
        ("PreconditionFailed", 412, "s3://b/k changed on the server during the download"),
        ("SlowDown", 503, "s3://b/k: the server answered 503 SlowDown server words"),
    ],
)
def test_error_messages(code, status, expected):
    assert r2_client.describe_error(client_error(code, status), "b", "k", "https://e").startswith(expected)


def test_unreachable_and_bodyless_errors():
    exc = botocore.exceptions.EndpointConnectionError(endpoint_url="https://e/b/k")
    assert (
        r2_client.describe_error(exc, "b", "k", "https://e") == "endpoint unreachable: could not connect to https://e"
    )
    assert r2_client.is_bodyless_status_error(client_error("404", 404, "HeadObject"))
    assert not r2_client.is_bodyless_status_error(client_error("NoSuchKey", 404))


def test_objects_default_bucket_strip_a_leading_slash_and_name_themselves():
    entries = r2_entries(
        [
            {"key": "/loras/a.safetensors", "dest": "/m/a.safetensors", "sha256": "A" * 64},
            {"key": "b", "bucket": "other", "dest": "/m/b", "name": "loras/b"},
        ],
        "models",
    )
    assert [(e.bucket, e.key, e.name, e.source) for e in entries] == [
        ("models", "loras/a.safetensors", "s3://models/loras/a.safetensors", "s3://models/loras/a.safetensors"),
        ("other", "b", "loras/b", "s3://other/b"),
    ]
    assert entries[0].sha256 == "a" * 64


def test_boto3_older_than_the_checksum_settings_is_named_with_what_to_do():
    assert r2_client.sdk_version_problem() is None  # the venv's own boto3 is new enough
    assert r2_client.sdk_version_problem("1.36.0", "1.36.0") is None
    assert r2_client.sdk_version_problem("2.0.0", "2.1.3") is None
    for old in (("1.35.99", "1.35.99"), ("1.36.0", "1.35.99"), ("1.9.0", "1.36.0"), ("unknown", "1.36.0")):
        message = r2_client.sdk_version_problem(*old)
        assert message and f"found boto3 {old[0]} and botocore {old[1]}" in message
        assert "request_checksum_calculation" in message and sys.executable in message
        assert "pip install" in message


def test_the_module_stops_before_any_request_when_boto3_is_too_old(tmp_path):
    """As a pod with an older boto3 would see it: a clear failure, not a traceback from Config."""
    from harness.ansible_run import run_module

    # The module's Python reports an older boto3/botocore (the code is the venv's: only the
    # versions are older, which is all the check reads).
    (tmp_path / "sitecustomize.py").write_text(
        "import boto3, botocore\nboto3.__version__ = botocore.__version__ = '1.35.99'\n"
    )
    result, _proc = run_module(
        "r2_fetch",
        {
            "objects": [{"key": "a.safetensors", "dest": str(tmp_path / "models" / "a.safetensors")}],
            "bucket": "models",
            "endpoint_url": "http://127.0.0.1:9",
            "state_dir": str(tmp_path / "state"),
            "access_key_id": "id",
            "secret_access_key": "secret",
        },
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result["failed"], result
    assert "found boto3 1.35.99 and botocore 1.35.99" in result["msg"], result
    assert "Traceback" not in result.get("module_stderr", "") + result["msg"]
    assert not (tmp_path / "models").exists()
