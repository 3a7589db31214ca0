"""URLs with credentials kept out of ansible (module_utils._downloads.secret_urls), on real files."""

import os
import stat
import sys

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import secret_urls  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import (  # noqa: E402
    userinfo_authorization,
)

BASIC = "https://alice:s3cr%40t@files.example.com:8443/m/a.safetensors"
QUERY = "https://civitai.com/api/download/models/1234?type=Model&token=abcdef123456"
PLAIN = "https://huggingface.co/org/repo/resolve/main/a.safetensors?download=true"


@pytest.mark.parametrize(
    "url, carries",
    [(BASIC, True), (QUERY, True), (PLAIN, False), ("https://tok@host/x", True), ("/local/path", False), (None, False)],
)
def test_carries_credentials(url, carries):
    assert secret_urls.carries_credentials(url) is carries


def test_hide_masks_the_result_and_keeps_the_real_url_for_the_file():
    entries = [
        {"source": "url", "identifier": BASIC, "url": BASIC, "dest": "/m/a"},
        {"source": "civitai", "identifier": "1234", "url": QUERY, "dest": "/m/b"},
        {"source": "url", "identifier": PLAIN, "url": PLAIN, "dest": "/m/c"},
        {"source": "r2", "identifier": "k", "dest": "/m/d"},
    ]
    hidden = secret_urls.hide(entries)
    assert hidden == {"/m/a": BASIC, "/m/b": QUERY}
    text = repr(entries)
    assert "s3cr" not in text and "abcdef123456" not in text
    assert entries[0]["url"] == entries[0]["identifier"] == "https://***@files.example.com:8443/m/a.safetensors"
    assert entries[1]["identifier"] == "1234" and "token=***" in entries[1]["url"]
    assert [e.get("secret_url") for e in entries] == [True, True, None, None]


def test_the_file_is_0600_rewritten_only_on_change_and_emptied_when_unused(tmp_path):
    path = str(tmp_path / "state/models/secret-urls.json")
    assert secret_urls.write(path, {}) is False and not os.path.exists(path)  # nothing to keep: no file
    assert secret_urls.write(path, {"/m/a": BASIC}, check_mode=True) is False and not os.path.exists(path)
    assert secret_urls.write(path, {"/m/a": BASIC}) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert secret_urls.write(path, {"/m/a": BASIC}) is False
    assert secret_urls.SecretUrls(path).lookup("/m/a", "https://***@files.example.com:8443/m/a.safetensors") == BASIC
    assert secret_urls.write(path, {}) is True  # the manifest line is gone: so is the credential
    assert "s3cr" not in open(path).read()


def test_lookup_refuses_a_stale_record_an_open_file_and_a_missing_one(tmp_path):
    path = str(tmp_path / "secret-urls.json")
    secret_urls.write(path, {"/m/a": BASIC})
    urls = secret_urls.SecretUrls(path)
    with pytest.raises(secret_urls.SecretUrlsError, match="not https://\\*\\*\\*@other"):
        urls.lookup("/m/a", "https://***@other.example.com/m/a.safetensors")
    with pytest.raises(secret_urls.SecretUrlsError, match="holds no URL for /m/b"):
        urls.lookup("/m/b", "https://***@files.example.com/b")
    os.chmod(path, 0o644)
    with pytest.raises(secret_urls.SecretUrlsError, match="mode 0600"):
        secret_urls.SecretUrls(path).lookup("/m/a", "x")
    with pytest.raises(secret_urls.SecretUrlsError, match="written by model_manifest"):
        secret_urls.SecretUrls(str(tmp_path / "none.json")).lookup("/m/a", "x")
    with pytest.raises(secret_urls.SecretUrlsError, match="secret_urls_file is not set"):
        secret_urls.SecretUrls(None).lookup("/m/a", "x")


def test_userinfo_becomes_basic_auth_and_leaves_the_url():
    url, header = userinfo_authorization(BASIC)
    assert url == "https://files.example.com:8443/m/a.safetensors"
    assert header == "Basic YWxpY2U6czNjckB0"  # alice:s3cr@t, percent-decoded
    assert userinfo_authorization(PLAIN) == (PLAIN, None)
