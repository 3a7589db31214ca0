"""Reading a lock to provision from (module_utils _workspace/lock_source): pod locks as
pod_lock writes them, ComfyUI-Manager snapshots in both of Manager's forms, and every problem
named with the file and line."""

import http.server
import json
import sys
import threading

import pytest
import yaml

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.lock_source import (  # noqa: E402
    LockSourceError,
    node_items,
    parse,
    read_text,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.pod_lock import render  # noqa: E402

SNAPSHOT = REPO / "tests/fixtures/locks/manager-snapshot.json"
MODELS = "/workspace/aiclipse/models"
SHA = "ab" * 32


def written_lock(**models):
    """A lock rendered by pod_lock's own writer."""
    return render(
        {
            "version": 1,
            "comfyui": {
                "path": "/w/ComfyUI",
                "repo": "https://github.com/comfyanonymous/ComfyUI.git",
                "commit": "a" * 40,
            },
            "custom_nodes": [{"name": "ComfyUI-Foo", "repo": "https://github.com/org/ComfyUI-Foo", "commit": "b" * 40}],
            "python": {"interpreter": "/venv/bin/python", "packages_digest": "sha256:00", "packages": ["a==1"]},
            "models": [
                {"dest": f"{MODELS}/{dest}", "source": source, "size": 10, "sha256": SHA, "sha256_from": "huggingface"}
                for dest, source in models.items()
            ],
        }
    )


def test_a_lock_pod_lock_wrote_reads_back():
    lock = parse(
        written_lock(**{"vae/v.safetensors": "https://huggingface.co/org/repo/resolve/main/sub/v.safetensors"}),
        "l.yml",
        MODELS,
    )
    assert lock["format"] == "pod-lock"
    assert lock["comfyui"] == {"repo": "https://github.com/comfyanonymous/ComfyUI.git", "commit": "a" * 40}
    assert node_items(lock) == [
        {
            "url": "https://github.com/org/ComfyUI-Foo",
            "branch": "",
            "commit": "b" * 40,
            "category": "lock",
            "description": "locked at l.yml:9",
        }
    ]
    (model,) = lock["models"]
    assert model == {
        "subdir": "vae",
        "filename": "sub/v.safetensors",
        "sha256": SHA,
        "size": 10,
        "source": "huggingface",
        "identifier": "org/repo@main",
    }
    assert lock["models_locked"] == [
        {"dest": f"{MODELS}/vae/v.safetensors", "sha256": SHA, "size": 10, "origin": "l.yml:18"}
    ]


@pytest.mark.parametrize(
    "source, kind",
    [
        ("https://huggingface.co/org/repo/resolve/main/v.safetensors", "huggingface"),
        ("https://civitai.com/api/download/models/12345", "civitai"),
        # Another host never becomes a token-carrying source, whatever its path looks like.
        ("https://mirror.example/org/repo/resolve/main/v.safetensors", "url"),
        ("https://civitai.com.evil.example/api/download/models/12345", "url"),
        ("http://huggingface.co/org/repo/resolve/main/v.safetensors", "url"),
        ("s3://models/vae/v.safetensors", "r2"),
    ],
)
def test_a_locked_url_gets_a_token_source_only_at_the_configured_endpoint(source, kind):
    lock = parse(written_lock(**{"vae/v.safetensors": source}), "l.yml", MODELS)
    assert lock["models"][0]["source"] == kind


def test_the_manager_snapshot_fixture_reads_as_the_nodes_part():
    lock = parse(SNAPSHOT.read_text(), str(SNAPSHOT), MODELS)
    snapshot = json.loads(SNAPSHOT.read_text())
    assert lock["format"] == "comfyui-manager-snapshot"
    assert lock["comfyui"] == {"repo": None, "commit": snapshot["comfyui"]}
    assert [(n["name"], n["commit"]) for n in lock["custom_nodes"]] == [
        ("ComfyUI-SnapNode", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c")
    ]
    assert [(n["cnr_id"], n["version"]) for n in lock["registry_nodes"]] == [("comfyui-regsnap", "1.0.0")]
    assert lock["models"] is None  # the manifests plan the models
    notes = "\n".join(lock["notes"])
    assert "ComfyUI-Sleeping: disabled" in notes and "my_helper.py" in notes and "4 pip packages" in notes


def test_the_yaml_form_of_a_manager_snapshot_reads_the_same():
    data = json.loads(SNAPSHOT.read_text())
    as_yaml = parse(yaml.safe_dump({"custom_nodes": data}), "s.yaml", MODELS)
    as_json = parse(SNAPSHOT.read_text(), "s.yaml", MODELS)
    for key in ("comfyui", "models"):
        assert as_yaml[key] == as_json[key]
    assert [(n["cnr_id"], n["version"]) for n in as_yaml["registry_nodes"]] == [("comfyui-regsnap", "1.0.0")]
    assert len(as_yaml["notes"]) == len(as_json["notes"]) == 3
    assert [n["repo"] for n in as_yaml["custom_nodes"]] == [n["repo"] for n in as_json["custom_nodes"]]


def test_every_problem_is_named_with_its_line_at_once():
    text = written_lock(**{"vae/v.safetensors": "ftp://x/y", "../etc/passwd": "https://e.example/x"})
    text = text.replace('"' + "b" * 40 + '"', '"not-a-commit"')
    with pytest.raises(LockSourceError) as caught:
        parse(text, "l.yml", MODELS)
    message = str(caught.value)
    assert "l.yml:11: commit 'not-a-commit' is not a commit" in message
    assert "source 'ftp://x/y' is neither an http(s) URL nor s3://bucket/key" in message
    assert "is not under this pod's models folder" in message or "without '..'" in message
    assert message.startswith("the lock l.yml cannot be used (nothing was changed)")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("version: 2\n", "l.yml:1: version 2 is not a lock version"),
        ("{}\n", "is neither a pod lock"),
        ("version: 1\ncustom_nodes:\n  - name: a\n  - name: a\n", "l.yml:4: custom node a is listed twice"),
        ('{"git_custom_nodes": {"https://github.com/o/X": {"hash": "zz"}}}', "l.yml:1: hash of https://github.com/o/X"),
        ("version: 1\nmodels: [\n", "l.yml:3: not valid YAML"),
    ],
)
def test_bad_locks(text, expected):
    with pytest.raises(LockSourceError) as caught:
        parse(text, "l.yml", MODELS)
    assert expected in str(caught.value)


def test_a_sha256_or_commit_with_a_trailing_newline_is_refused():
    """64 hex digits and nothing else: a pattern matched with ``$`` takes "<hex>\\n" too."""
    text = written_lock(**{"vae/v.safetensors": "https://huggingface.co/org/repo/resolve/main/v.safetensors"})
    assert f'sha256: "{SHA}"' in text
    with pytest.raises(LockSourceError) as caught:
        parse(text.replace(f'sha256: "{SHA}"', f'sha256: "{SHA}\\n"'), "l.yml", MODELS)
    assert "is not 64 hex digits" in str(caught.value)
    commit = '"' + "a" * 40 + '"'
    with pytest.raises(LockSourceError) as caught:
        parse(text.replace(commit, commit[:-1] + '\\n"'), "l.yml", MODELS)
    assert "is not a commit" in str(caught.value)


class _LockServer(http.server.BaseHTTPRequestHandler):
    body = b""
    seen = []

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        type(self).seen.append((self.path, dict(self.headers)))
        if self.path != "/pod.lock.yml":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def lock_server(tmp_path, monkeypatch):
    # A ~/.netrc entry for the host must not be used: a lock URL never gets a credential.
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password netrc-secret-123\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    _LockServer.body = written_lock().encode()
    _LockServer.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LockServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_lock_url_is_fetched_without_any_credential(lock_server):
    text, name = read_text(lock_server + "/pod.lock.yml")
    assert name == lock_server + "/pod.lock.yml"
    assert parse(text, name, MODELS)["comfyui"]["commit"] == "a" * 40
    ((path, headers),) = _LockServer.seen
    assert not any(key.lower() == "authorization" for key in headers), headers


def test_a_lock_url_that_is_gone_says_so(lock_server):
    with pytest.raises(LockSourceError) as caught:
        read_text(lock_server + "/gone.yml")
    assert str(caught.value) == f"cannot fetch the lock {lock_server}/gone.yml: HTTP 404 Not Found"


def test_a_lock_path_that_is_missing_says_where_it_is_looked_for(tmp_path):
    with pytest.raises(LockSourceError) as caught:
        read_text(str(tmp_path / "nope.yml"))
    assert f"cannot read the lock {tmp_path}/nope.yml: No such file or directory" in str(caught.value)
    assert "the machine that runs ansible" in str(caught.value)
