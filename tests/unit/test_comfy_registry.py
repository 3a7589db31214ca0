"""Comfy Registry resolver (module_utils._comfyui.comfy_registry) against a loopback stand-in that answers
with the registry's real shapes (tests/harness/comfy_registry.py), including 404, 403, 5xx,
stalls, dripped bodies, garbage and oversized answers; and the offline node map."""

import socket
import sys
import threading
import time

import pytest

from harness.comfy_registry import RegistryStandIn
from harness.net import free_port
from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfy_registry import (  # noqa: E402
    BAD_RESPONSE,
    INVALID,
    NOT_FOUND,
    REFUSED,
    UNAVAILABLE,
    ComfyRegistry,
    NodeMapError,
    RegistryError,
    read_node_map,
)

KJ = "https://github.com/kijai/ComfyUI-KJNodes"


@pytest.fixture
def registry():
    with RegistryStandIn() as standin:
        standin.add("comfyui-kjnodes", KJ, versions=("1.0.9", "1.1.0", "1.1.2"), deprecated=("1.1.0",))
        standin.add(
            "comfyui-impact-pack",
            "https://github.com/ltdrdata/ComfyUI-Impact-Pack",
            versions=("8.8.1",),
            version_status={"8.8.1": "NodeVersionStatusFlagged"},
        )
        standin.add("banned-pack", "https://github.com/evil/pack", status="NodeStatusBanned")
        standin.add(
            "gone-version",
            "https://github.com/x/gone",
            versions=("1.0.0", "2.0.0"),
            version_status={"1.0.0": "NodeVersionStatusDeleted"},
        )
        standin.add("never-published", "https://github.com/x/never", versions=())
        standin.add("no-repo", "")
        standin.add("ssh-repo", "git@github.com:x/y.git")
        yield standin


def client(standin, **kwargs):
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("retry_pause", 0.01)
    return ComfyRegistry(standin.url, **kwargs)


def failure(resolver, *args):
    with pytest.raises(RegistryError) as caught:
        resolver.resolve(*args)
    return caught.value


def test_a_registry_version_resolves_to_its_repository_and_download(registry):
    result = client(registry).resolve("comfyui-kjnodes", "1.0.9")
    assert result == {
        "cnr_id": "comfyui-kjnodes",
        "repository": KJ,
        "source": "registry",
        "version": "1.0.9",
        "commit": None,
        "download_url": "https://cdn.comfy.org/publisher/comfyui-kjnodes/1.0.9/node.zip",
        "latest_version": "1.1.2",
        "deprecated": False,
        "warnings": [],
    }
    assert [path for _m, path, _q in registry.requests] == [
        "/nodes/comfyui-kjnodes",
        "/nodes/comfyui-kjnodes/versions/1.0.9",
    ]


def test_no_version_means_the_latest_and_a_leading_v_is_dropped(registry):
    resolver = client(registry)
    assert resolver.resolve("comfyui-kjnodes")["version"] == "1.1.2"
    deprecated = resolver.resolve("comfyui-kjnodes", "v1.1.0")
    assert deprecated["version"] == "1.1.0" and deprecated["deprecated"]
    assert deprecated["warnings"] == ["comfyui-kjnodes 1.1.0 is deprecated in the registry"]


def test_a_commit_pins_the_clone_without_asking_for_a_version(registry):
    result = client(registry).resolve("comfyui-kjnodes", "A1B2C3D")
    assert (result["commit"], result["version"], result["repository"]) == ("a1b2c3d", None, KJ)
    assert [path for _m, path, _q in registry.requests] == ["/nodes/comfyui-kjnodes"]


def test_unknown_ids_and_versions(registry):
    resolver = client(registry)
    missing = failure(resolver, "no-such-pack", None)
    assert missing.kind == NOT_FOUND and "Node not found" in str(missing) and missing.cnr_id == "no-such-pack"
    # A version the registry does not have: the repository still resolves, unpinned, said so.
    result = resolver.resolve("comfyui-kjnodes", "9.9.9")
    assert (result["version"], result["repository"]) == (None, KJ)
    assert result["warnings"] == ["comfyui-kjnodes: version 9.9.9 is not in the registry (latest is 1.1.2); not pinned"]
    unpublished = resolver.resolve("never-published")
    assert unpublished["version"] is None and "no published version" in unpublished["warnings"][0]


def test_banned_deleted_and_flagged(registry):
    resolver = client(registry)
    assert failure(resolver, "banned-pack", None).kind == REFUSED
    gone = failure(resolver, "gone-version", "1.0.0")
    assert gone.kind == REFUSED and "deleted" in str(gone)
    assert resolver.resolve("gone-version", "2.0.0")["version"] == "2.0.0"
    flagged = resolver.resolve("comfyui-impact-pack", "8.8.1")
    assert flagged["warnings"] == ["comfyui-impact-pack 8.8.1 is flagged in the registry"]
    registry.status["forbidden"] = 403
    assert failure(resolver, "forbidden", None).kind == REFUSED


def test_answers_that_are_not_the_registry_shape(registry):
    resolver = client(registry)
    assert failure(resolver, "no-repo", None).kind == BAD_RESPONSE
    ssh = failure(resolver, "ssh-repo", None)
    assert ssh.kind == BAD_RESPONSE and "no http(s) repository" in str(ssh)
    registry.garbage.add("cloudflare")
    assert failure(resolver, "cloudflare", None).kind == BAD_RESPONSE
    registry.shapes["a-list"] = ["not", "a", "node"]
    assert failure(resolver, "a-list", None).kind == BAD_RESPONSE
    registry.shapes["evil-repo"] = {"id": "evil-repo", "repository": "file:///etc/passwd", "status": "NodeStatusActive"}
    assert failure(resolver, "evil-repo", None).kind == BAD_RESPONSE
    registry.huge.add("huge")
    big = failure(client(registry, max_body=1024 * 1024), "huge", None)
    assert big.kind == BAD_RESPONSE and "larger than" in str(big)


def test_server_errors_are_retried_once_then_reported(registry):
    registry.fail_times["comfyui-kjnodes"] = (503, 1)
    assert client(registry).resolve("comfyui-kjnodes")["version"] == "1.1.2"
    registry.status["broken"] = 500
    broken = failure(client(registry), "broken", None)
    assert broken.kind == UNAVAILABLE and "HTTP 500: Failed to get node" in str(broken)
    assert [path for _m, path, _q in registry.requests].count("/nodes/broken") == 2


def test_a_stalled_or_dripping_registry_costs_at_most_the_timeout(registry):
    registry.stall.add("stalled")
    registry.stall_seconds = 30
    started = time.monotonic()
    stalled = failure(client(registry, timeout=1, retries=0), "stalled", None)
    assert stalled.kind == UNAVAILABLE and "within 1 s" in str(stalled)
    assert time.monotonic() - started < 10
    # Headers at once, then a byte every 50 ms: the total time is bounded, not each read.
    registry.drip.add("comfyui-kjnodes")
    started = time.monotonic()
    dripped = failure(client(registry, timeout=1, retries=0), "comfyui-kjnodes", None)
    assert dripped.kind == UNAVAILABLE and time.monotonic() - started < 10


def test_nothing_listening_and_a_server_that_hangs_up(registry):
    nobody = ComfyRegistry(f"http://127.0.0.1:{free_port()}", timeout=2, retry_pause=0.01)
    refused = failure(nobody, "comfyui-kjnodes", None)
    assert refused.kind == UNAVAILABLE and "cannot reach" in str(refused)
    # A server that accepts and closes without a word.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = []

    def hang_up():
        while not stop:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        rude = ComfyRegistry(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=2, retry_pause=0.01)
        assert failure(rude, "comfyui-kjnodes", None).kind == UNAVAILABLE
    finally:
        stop.append(True)
        listener.close()


def test_ids_and_versions_are_checked_before_any_request(registry):
    resolver = client(registry)
    for bad in ("../../etc/passwd", "a/b", "", "x" * 101, "-x", "id?x=1", None):
        assert failure(resolver, bad, None).kind == INVALID
    assert failure(resolver, "comfyui-kjnodes", "latest; rm -rf /").kind == INVALID
    assert registry.requests == []
    with pytest.raises(ValueError):
        ComfyRegistry("file:///etc")


def test_results_and_failures_are_cached(registry):
    resolver = client(registry)
    resolver.resolve("comfyui-kjnodes", "1.0.9")
    first = resolver.resolve("comfyui-kjnodes", "1.0.9")
    first["warnings"].append("caller's own")
    assert resolver.resolve("comfyui-kjnodes", "1.0.9")["warnings"] == []
    failure(resolver, "no-such-pack", None)
    failure(resolver, "no-such-pack", None)
    assert len(registry.requests) == 3


# -- the offline node map ------------------------------------------------------------------


def test_the_node_map_answers_without_the_network(tmp_path):
    node_map = tmp_path / "nodes-map.txt"
    node_map.write_text(
        "\ufeff# cnr_id|repository|pin\n\n"
        "comfyui-kjnodes | https://git.example.com/mirror/ComfyUI-KJNodes.git\n"
        "Comfyui-Impact-Pack|https://github.com/ltdrdata/ComfyUI-Impact-Pack|v8.8.1\n"
        "pinned-commit|https://github.com/x/y|0123abcd\n",
        encoding="utf-8",
    )
    resolver = ComfyRegistry(None, node_map=read_node_map(str(node_map)))
    mapped = resolver.resolve("comfyui-kjnodes", "1.0.9")
    assert (mapped["source"], mapped["repository"], mapped["version"]) == (
        "map",
        "https://git.example.com/mirror/ComfyUI-KJNodes.git",
        "1.0.9",
    )
    impact = resolver.resolve("comfyui-impact-pack", "8.0.0")
    assert impact["version"] == "8.8.1"
    assert f"the node map pins 8.8.1 ({node_map}:4), not the workflow's 8.0.0" in impact["warnings"][0]
    assert resolver.resolve("pinned-commit")["commit"] == "0123abcd"
    offline = failure(resolver, "not-mapped", None)
    assert offline.kind == NOT_FOUND and "offline" in str(offline)


def test_a_mapped_id_never_reaches_the_registry(registry, tmp_path):
    node_map = tmp_path / "map.txt"
    node_map.write_text("comfyui-kjnodes|https://git.example.com/kj.git\n")
    resolver = client(registry, node_map=read_node_map(str(node_map)))
    assert resolver.resolve("comfyui-kjnodes")["repository"] == "https://git.example.com/kj.git"
    assert resolver.resolve("comfyui-impact-pack")["source"] == "registry"
    assert [path for _m, path, _q in registry.requests] == ["/nodes/comfyui-impact-pack"]


def test_a_bad_node_map_names_every_bad_line(tmp_path):
    node_map = tmp_path / "map.txt"
    node_map.write_text(
        "ok|https://github.com/a/b\n"
        "only-one-field\n"
        "../x|https://github.com/a/b\n"
        "bad-url|file:///etc/passwd\n"
        "creds|https://user:tok@github.com/a/b\n"
        "bad-pin|https://github.com/a/b|main\n"
        "OK|https://github.com/a/c\n"
    )
    with pytest.raises(NodeMapError) as caught:
        read_node_map(str(node_map))
    message = str(caught.value)
    assert message.startswith("6 problems in the node map")
    for line in (2, 3, 4, 5, 6, 7):
        assert f"{node_map}:{line}:" in message
    assert f"already mapped at {node_map}:1" in message
    with pytest.raises(NodeMapError):
        read_node_map(str(tmp_path / "missing.txt"))


def test_a_registry_that_gave_no_answer_is_not_asked_again_in_the_run(registry):
    registry.stall.update(("stalled", "comfyui-kjnodes"))
    registry.stall_seconds = 30
    resolver = client(registry, timeout=1)
    first = failure(resolver, "stalled", None)
    assert first.kind == UNAVAILABLE and "within 1 s" in str(first)
    # No retry for a timeout (it would double the wait), and no request for the next id.
    started = time.monotonic()
    second = failure(resolver, "comfyui-kjnodes", "1.0.9")
    assert time.monotonic() - started < 1
    assert second.kind == UNAVAILABLE and "not asked again" in str(second)
    assert [path for _m, path, _q in registry.requests] == ["/nodes/stalled"]


def test_a_bad_endpoint_names_no_credential():
    with pytest.raises(ValueError) as caught:
        ComfyRegistry("https://user:ghp_endpointSecret1@@")
    assert "ghp_endpointSecret1" not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        ComfyRegistry("api.comfy.org")
    assert "'api.comfy.org' is not an http(s) URL" in str(caught.value)


def test_a_map_line_with_a_token_is_refused_without_showing_it(tmp_path):
    node_map = tmp_path / "map.txt"
    node_map.write_text("some-pack|https://user:ghp_mapSecret99@github.com/x/y\n")
    with pytest.raises(NodeMapError) as caught:
        read_node_map(str(node_map))
    assert f"{node_map}:1: repository 'https://***@github.com/x/y'" in str(caught.value)
    assert "ghp_mapSecret99" not in str(caught.value)
