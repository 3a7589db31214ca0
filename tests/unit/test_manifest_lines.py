"""The line reader under the models, nodes and node-map manifests, and their one error shape."""

import sys

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.manifest_lines import (  # noqa: E402
    ManifestError,
    manifest_lines,
    read_manifest,
)


def test_lines_skip_blanks_and_comments_and_keep_their_numbers():
    text = "\ufeff# header\r\n\r\n  first | a  \r\n\t# indented comment\nsecond\n\n"
    assert list(manifest_lines(text, "m.txt")) == [("m.txt:3", "first | a"), ("m.txt:5", "second")]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_only_a_newline_ends_a_line(separator):
    text = f"# a comment{separator}that goes on\nentry\n"
    assert list(manifest_lines(text, "m")) == [("m:2", "entry")]


def test_read_drops_the_byte_order_mark_and_names_a_bad_line(tmp_path):
    path = tmp_path / "m.txt"
    path.write_bytes(b"\xef\xbb\xbfentry\n")
    assert read_manifest(str(path)) == "entry\n"
    path.write_bytes(b"ok\nok\ncaf\xe9\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(str(path), "the nodes manifest")
    assert str(err.value).startswith(f"{path}:3: not UTF-8 text (line 3 is not valid UTF-8)")


def test_read_a_missing_or_too_large_file(tmp_path):
    missing = tmp_path / "missing.txt"
    assert read_manifest(str(missing), missing_ok=True) is None
    with pytest.raises(ManifestError, match="cannot read the node map: it does not exist"):
        read_manifest(str(missing), "the node map")
    with pytest.raises(ManifestError, match="manifest file does not exist"):
        read_manifest(str(missing), missing_message="manifest file does not exist")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 101)
    with pytest.raises(ManifestError, match="larger than 100 bytes"):
        read_manifest(str(big), max_bytes=100)
    assert read_manifest(str(big), max_bytes=101) == "x" * 101


def test_one_problem_reads_as_one_line_several_as_a_list():
    one = ManifestError([("m.txt:2", "bad")], "the model manifests", "nothing was downloaded")
    assert str(one) == "m.txt:2: bad (nothing was downloaded)"
    several = ManifestError([("m.txt:2", "bad"), ("n.txt:7", "worse")], "the model manifests", "nothing was downloaded")
    assert str(several) == (
        "2 problems in the model manifests (nothing was downloaded):\n  m.txt:2: bad\n  n.txt:7: worse"
    )
    assert several.problems == [("m.txt:2", "bad"), ("n.txt:7", "worse")]
    assert isinstance(several, ValueError)
