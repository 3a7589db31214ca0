"""source_hashes: what each source's answer says about a file, and what is not to be trusted."""

import base64
import hashlib
import sys

import pytest

from harness.nginx import civitai_version
from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import Entry  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.source_hashes import (  # noqa: E402
    SourceHashError,
    civitai_file,
    civitai_version_id,
    huggingface_linked,
    reconcile,
    s3_sha256,
)

DIGEST = hashlib.sha256(b"model").hexdigest()
B64 = base64.b64encode(hashlib.sha256(b"model").digest()).decode()


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"x-linked-etag": f'"{DIGEST}"', "x-linked-size": "123"}, (DIGEST, 123)),
        ({"x-linked-etag": f'W/"{DIGEST.upper()}"'}, (DIGEST, None)),
        # A file kept in git: its ETag is a git object id, never taken for a sha256.
        ({"etag": f'"{DIGEST[:40]}"'}, (None, None)),
        ({"x-linked-etag": f'"{DIGEST[:40]}"', "x-linked-size": "12x"}, (None, None)),
    ],
)
def test_huggingface_linked_reads_only_an_lfs_sha256(headers, expected):
    assert huggingface_linked(headers) == expected


def test_civitai_picks_the_file_the_url_downloads():
    doc = civitai_version("https://civitai.com", 77, DIGEST, 2048)
    assert civitai_file(doc, "https://civitai.com/api/download/models/77") == (DIGEST, "model_77.safetensors")
    training = civitai_file(doc, "https://civitai.com/api/download/models/77?type=Training%20Data")
    assert training[1] == "training_data.zip" and training[0] != DIGEST
    assert civitai_version_id("https://civitai.com/api/download/models/77?type=Model") == "77"
    assert civitai_version_id("https://example.com/models/77") is None


def test_civitai_without_a_sha256_or_files_says_so():
    doc = civitai_version("https://civitai.com", 77, DIGEST, 2048)
    for item in doc["files"]:
        item["hashes"].pop("SHA256")
    with pytest.raises(SourceHashError, match="no SHA256"):
        civitai_file(doc, "https://civitai.com/api/download/models/77")
    with pytest.raises(SourceHashError, match="no files"):
        civitai_file({"files": []}, "https://civitai.com/api/download/models/77")


@pytest.mark.parametrize(
    "head, expected",
    [
        ({"ChecksumSHA256": B64, "ETag": '"abc"'}, DIGEST),
        ({"ChecksumSHA256": B64, "ChecksumType": "FULL_OBJECT", "ETag": '"abc-3"'}, DIGEST),
        # Composite checksums of multipart uploads are digests of part digests: never the file's.
        ({"ChecksumSHA256": B64 + "-3", "ETag": '"abc-3"'}, None),
        ({"ChecksumSHA256": B64, "ChecksumType": "COMPOSITE", "ETag": '"abc"'}, None),
        ({"ChecksumSHA256": B64, "ETag": '"abc-2"'}, None),
        ({"Metadata": {"sha256": DIGEST.upper()}}, DIGEST),
        ({"Metadata": {"SHA256": "sha256:" + DIGEST}}, DIGEST),
        ({"Metadata": {"sha256": "not-a-digest"}}, None),
        ({"ChecksumSHA256": "!!!", "ETag": '"abc"'}, None),
    ],
)
def test_s3_sha256_only_from_a_whole_object_checksum_or_metadata(head, expected):
    assert s3_sha256(head) == expected


def test_reconcile_names_both_values_and_the_entry():
    entry = Entry(0, "loras/a.safetensors", "/m/loras/a.safetensors", sha256="ab" * 32)
    entry.source_sha256, entry.source_hash_from = DIGEST, "huggingface"
    problem = reconcile(entry)
    assert "ab" * 32 in problem and DIGEST in problem and "loras/a.safetensors" in problem and "huggingface" in problem
    free = Entry(1, "b", "/m/b")
    free.source_sha256, free.source_hash_from = DIGEST, "civitai"
    assert reconcile(free) == "" and free.sha256 == DIGEST and free.sha256_from == "civitai"
