"""The custom-nodes manifest: the real manifests parse, bad lines name file:line, merge order."""

import re
import sys
import tempfile

import pytest

from harness.paths import FIXTURES, REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui import nodes_manifest  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import STAGING_PREFIX  # noqa: E402

ManifestError = nodes_manifest.ManifestError

REAL = sorted((FIXTURES / "manifests").glob("*_nodes.txt"))


def test_the_reference_has_node_manifests():
    assert {p.name for p in REAL} >= {
        "base_nodes.txt",
        "boomboom_nodes.txt",
        "qwen-multi-edit_nodes.txt",
        "sd15-basic_nodes.txt",
    }


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_manifest_every_active_line_becomes_a_node_with_its_origin(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    active = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")]
    entries = nodes_manifest.load([str(path)])
    assert len(entries) == len(active) > 0
    for entry, (number, line) in zip(entries, active):
        assert entry["origin"] == f"{path}:{number}"
        url, branch, category, description = [f.strip() for f in line.split("|")]
        assert (entry["url"], entry["branch"], entry["category"], entry["description"]) == (
            url,
            branch,
            category,
            description,
        )
        assert entry["name"] == url.rstrip("/").rsplit("/", 1)[-1]
        assert entry["commit"] == ""


def test_boomboom_commented_node_is_not_installed():
    names = [e["name"] for e in nodes_manifest.load([str(FIXTURES / "manifests" / "boomboom_nodes.txt")])]
    assert "ComfyUI-GGUF" not in names
    assert names[-2:] == ["ComfyUI-Impact-Pack", "comfyui-deploy"]


def test_template_replaces_base_node_in_place_and_adds_its_own():
    base = nodes_manifest.load([str(FIXTURES / "manifests" / "base_nodes.txt")])
    template = nodes_manifest.parse_text(
        "https://github.com/kijai/ComfyUI-KJNodes|develop|utility|pinned|ABCDEF1\n"
        "https://github.com/city96/ComfyUI-GGUF.git|main|quantization|GGUF\n",
        "template.txt",
    )
    merged = nodes_manifest.merge(base, template)
    assert [e["name"] for e in merged] == [e["name"] for e in base] + ["ComfyUI-GGUF"]
    kj = next(e for e in merged if e["name"] == "ComfyUI-KJNodes")
    assert (kj["branch"], kj["commit"], kj["origin"]) == ("develop", "abcdef1", "template.txt:1")


@pytest.mark.parametrize(
    "url, name",
    [
        ("https://github.com/o/Repo.git", "Repo"),
        ("https://github.com/o/Repo/", "Repo"),
        ("git@github.com:o/Node-X.git", "Node-X"),
        ("ssh://git@host:2222/o/n.y", "n.y"),
        ("file:///srv/git/NodeA", "NodeA"),
        ("/srv/git/NodeB.git", "NodeB"),
    ],
)
def test_url_forms_and_directory_names(url, name):
    (entry,) = nodes_manifest.parse_text(f"{url}|main|c|d\n", "m")
    assert entry["name"] == name


def test_only_the_url_is_required_and_empty_branch_means_default():
    (entry,) = nodes_manifest.parse_text("  https://h/o/Only  \n", "m")
    assert (entry["name"], entry["branch"], entry["commit"]) == ("Only", "", "")


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("github.com/o/r|main|c|d", "is not a git URL"),
        ("|main|c|d", "URL (first field) is empty"),
        ("https://h/o/r|main|c|d|xyz123z", "commit pin 'xyz123z'"),
        ("https://h/o/r|main|c|d|abc12", "7 to 40 hex digits"),
        ("https://h/o/r|main|c|d|abcdef1|extra", "6 fields, at most 5"),
        ("https://h/o/r|ma in|c|d", "not a valid branch"),
        ("https://h/o/r|../x|c|d", "not a valid branch"),
        ("https://h/o/..|main|c|d", "cannot take a directory name"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, fragment):
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(f"# header\n\nhttps://h/o/good|main|c|d\n{line}\n", encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        nodes_manifest.load([str(manifest)])
    assert str(err.value).startswith(f"{manifest}:4: ")
    assert fragment in str(err.value)


def test_same_node_twice_in_one_file_names_both_lines():
    with pytest.raises(ManifestError, match=re.escape("m:3: node 'r' is already listed at m:1")):
        nodes_manifest.parse_text("https://h/o/r|main\n\nhttps://other/x/r.git|dev\n", "m")


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(ManifestError, match="cannot read the nodes manifest"):
        nodes_manifest.load([str(tmp_path / "missing.txt")])
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"https://h/o/a|main\nhttps://h/o/b|main|c|caf\xe9\n")
    with pytest.raises(ManifestError, match=re.escape(f"{bad}:2: not UTF-8")):
        nodes_manifest.load([str(bad)])


def test_yaml_list_mappings_and_lines():
    entries = nodes_manifest.load(
        [],
        [
            {"repo_url": "https://h/o/A", "branch": "main", "commit": "0123456789abcdef0123456789abcdef01234567"},
            "https://h/o/B|dev|cat|desc",
            {"url": "https://h/o/C", "category": None},
        ],
    )
    assert [(e["name"], e["branch"], e["origin"]) for e in entries] == [
        ("A", "main", "nodes[0]"),
        ("B", "dev", "nodes[1]"),
        ("C", "", "nodes[2]"),
    ]
    assert entries[0]["commit"] == "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ManifestError, match=r"nodes\[0\]: unknown keys sha"):
        nodes_manifest.load([], [{"url": "https://h/o/A", "sha": "x"}])
    with pytest.raises(ManifestError, match=r"nodes\[0\]: expected a mapping"):
        nodes_manifest.load([], [42])


def test_a_manifest_saved_with_a_byte_order_mark_reads_like_one_without(tmp_path):
    text = "# Format: repo_url|branch|category|description\nhttps://h/o/First|main|c|d\n\nhttps://h/o/Second\n"
    plain, marked = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text(text, encoding="utf-8")
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    # The first line being a node matters too: the BOM must not end up in its URL.
    first = tmp_path / "bom-first.txt"
    first.write_bytes(b"\xef\xbb\xbfhttps://h/o/First|main\n")
    expected = [(e["name"], e["url"], e["origin"].rsplit(":", 1)[1]) for e in nodes_manifest.load([str(plain)])]
    assert (
        [(e["name"], e["url"], e["origin"].rsplit(":", 1)[1]) for e in nodes_manifest.load([str(marked)])]
        == expected
        == [("First", "https://h/o/First", "2"), ("Second", "https://h/o/Second", "4")]
    )
    assert [e["url"] for e in nodes_manifest.load([str(first)])] == ["https://h/o/First"]


@pytest.mark.parametrize(
    "branch_field, fifth, branch, commit",
    [
        ("3d673c5", "", "", "3d673c5"),
        ("0123456789ABCDEF0123456789abcdef01234567", "", "", "0123456789abcdef0123456789abcdef01234567"),
        ("main", "3d673c5", "main", "3d673c5"),
        ("release-2", "", "release-2", ""),
        # With a pin in the fifth field, the second field is the branch whatever it looks like.
        ("abcdef1", "1234567", "abcdef1", "1234567"),
    ],
)
def test_a_commit_id_in_the_branch_field_is_the_pin(branch_field, fifth, branch, commit):
    line = f"https://h/o/Node|{branch_field}|c|d" + (f"|{fifth}" if fifth else "")
    (entry,) = nodes_manifest.parse_text(line, "m")
    assert (entry["branch"], entry["commit"]) == (branch, commit)
    (listed,) = nodes_manifest.load([], [{"url": "https://h/o/Node", "branch": branch_field, "commit": fifth}])
    assert (listed["branch"], listed["commit"]) == (branch, commit)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git:s3cretpass@host/o/Node.git",
        "git://user:pw@host/Node.git",
    ],
)
def test_a_password_git_would_have_to_store_is_refused_with_file_and_line(tmp_path, url):
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(f"https://h/o/ok\n{url}|main\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=re.escape(f"{manifest}:2: a password in a ")):
        nodes_manifest.load([str(manifest)])


def test_tokens_in_https_urls_are_accepted():
    (entry,) = nodes_manifest.parse_text("https://user:ghp_tok@github.com/o/Private.git|main", "m")
    assert entry["name"] == "Private"


def test_no_node_can_have_the_name_of_a_staging_directory(tmp_path):
    # Whatever tempfile appends, a staging directory's name is never a node's directory name,
    # so cleaning up staging leftovers can never delete a node.
    for _dummy in range(20):
        staged = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=tmp_path).rsplit("/", 1)[1]
        with pytest.raises(ManifestError, match="cannot take a directory name"):
            nodes_manifest.parse_text(f"https://h/o/{staged}.git|main", "m")
    # The name earlier versions staged under is an ordinary node name.
    (entry,) = nodes_manifest.parse_text("https://h/o/.aiclipse-staging-mine|main", "m")
    assert entry["name"] == ".aiclipse-staging-mine"


def test_every_problem_of_every_source_is_reported_at_once(tmp_path):
    base = tmp_path / "base_nodes.txt"
    base.write_text("https://h/o/good|main\nnot-a-url|main\nhttps://h/o/r|main|c|d|xyz\n", encoding="utf-8")
    user = tmp_path / "user_nodes.txt"
    user.write_text("# mine\nhttps://h/o/dup|main\nhttps://other/x/dup.git|dev\n", encoding="utf-8")
    missing = tmp_path / "template_nodes.txt"
    with pytest.raises(ManifestError) as err:
        nodes_manifest.load([str(base), str(user), str(missing)], [{"url": "https://h/o/A", "sha": "x"}, 42])
    origins = [origin for origin, dummy in err.value.problems]
    assert origins == [f"{base}:2", f"{base}:3", f"{user}:3", str(missing), "nodes[0]", "nodes[1]"]
    message = str(err.value)
    assert message.startswith("6 problems in the nodes manifests:\n")
    for fragment in (
        "is not a git URL",
        "commit pin 'xyz'",
        "node 'dup' is already listed at",
        "cannot read the nodes manifest",
        "unknown keys sha",
        "expected a mapping",
    ):
        assert fragment in message, fragment


def test_a_good_set_of_sources_loads_merged(tmp_path):
    base = tmp_path / "base_nodes.txt"
    base.write_text("https://h/o/A|main\r\nhttps://h/o/B|main\r\n", encoding="utf-8")
    assert [(e["name"], e["branch"]) for e in nodes_manifest.load([str(base)], ["https://h/o/A|dev"])] == [
        ("A", "dev"),
        ("B", "main"),
    ]


def test_line_numbers_count_newlines_only(tmp_path):
    """A U+2028 or \\x0c in a comment is not a line break: every later line keeps its number (CRLF too)."""
    manifest = tmp_path / "nodes.txt"
    manifest.write_bytes(
        "# a comment\u2028with a line separator\x0c and a form feed\r\n"
        "https://h/o/First|main\r\n\r\nhttps://h/o/bad|ma in\r\n".encode("utf-8")
    )
    with pytest.raises(ManifestError) as err:
        nodes_manifest.load([str(manifest)])
    assert err.value.problems == [(f"{manifest}:4", "'ma in' is not a valid branch or tag name")]
    manifest.write_bytes("# \u2028\x85\nhttps://h/o/First|main\r\n".encode("utf-8"))
    assert [e["origin"] for e in nodes_manifest.load([str(manifest)])] == [f"{manifest}:2"]
