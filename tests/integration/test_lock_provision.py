"""Provisioning from a lock (AICLIPSE_LOCK), end to end with real site.yml runs: ComfyUI and a
custom node from local git repositories, a model from nginx, the Comfy Registry stand-in.

What a user sees is asserted: the play's rc, the commits checked out, the report in
aiclipse/logs/lock-report.txt, and the pod's own lock afterwards.
"""

import hashlib
import json
import os
import shutil

import pytest
import yaml

from harness.ansible_run import run_module, run_playbook
from harness.comfy_registry import RegistryStandIn
from harness.git_repos import git, make_comfyui_repo, make_node_repo
from harness.nginx import NginxOrigin, write_file
from harness.paths import REPO
from harness.python_env import make_venv
from harness.site_pod import site_vars

SITE = REPO / "site.yml"
FIXTURES = REPO / "tests/fixtures/locks"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def text_of(run):
    return run.stdout[-6000:] + run.stderr[-3000:]


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    with NginxOrigin(tmp_path_factory.mktemp("lock-origin")) as served:
        yield served


class Pod:
    """A pod under root: ComfyUI and one node from local repositories, one model from nginx
    (no sha256 in the manifest: the lock records what was downloaded)."""

    def __init__(self, root, origin):
        self.root, self.origin = root, origin
        self.vault = root / "workspace/aiclipse"
        self.comfyui = make_comfyui_repo(root / "upstream/ComfyUI")
        self.node = make_node_repo(root / "upstream/ComfyUI-LockNode")
        make_venv(root / "venv")
        (root / "workflows").mkdir()
        manifests = root / "manifests"
        manifests.mkdir()
        (manifests / "t_nodes.txt").write_text(f"{self.node.url}|main|lock|a custom node\n")
        # Hugging Face-shaped: the hub's answer carries the file's sha256 (X-Linked-Etag).
        self.model_path = f"hf/lock/{root.name}/m.safetensors"
        self.model_sha = write_file(origin.files_dir / self.model_path, 60_000, seed=7)
        origin.refresh()
        (manifests / "t_models.txt").write_text(f"huggingface|lock/{root.name}|m.safetensors|vae\n")
        self.vars = {**site_vars(root, "t"), "models_hf_endpoint": f"{origin.url}/hf"}
        self.env = {"ANSIBLE_CALLBACK_FORMAT_PRETTY": "0"}

    @property
    def lock_file(self):
        return self.vault / ".state/pod.lock.yml"

    @property
    def report(self):
        return self.vault / "logs/lock-report.txt"

    @property
    def model(self):
        return self.vault / "models/vae/m.safetensors"

    def start(self, **env):
        return run_playbook(SITE, self.vars, env={**self.env, **env})

    def head(self, path):
        return git(path, "rev-parse", "HEAD")


@pytest.fixture
def provisioned(tmp_path, origin):
    pod = Pod(tmp_path, origin)
    run = pod.start()
    assert run.rc == 0, text_of(run)
    saved = tmp_path / "saved.lock.yml"
    shutil.copy(pod.lock_file, saved)
    return pod, saved


def test_a_start_from_the_lock_puts_drifted_checkouts_back(provisioned):
    pod, saved = provisioned
    locked = yaml.safe_load(saved.read_text())
    node_dir = pod.vault / "custom_nodes/ComfyUI-LockNode"
    comfy_dir = pod.vault / "ComfyUI"
    assert locked["custom_nodes"] == [{"name": "ComfyUI-LockNode", "repo": pod.node.url, "commit": pod.node.head()}]
    # Upstream moves on and the pod follows: the node and ComfyUI drift from the lock.
    pod.node.commit({"later.py": "# newer\n"}, "newer node")
    pod.comfyui.commit({"later.py": "# newer\n"}, "newer ComfyUI")
    git(node_dir, "pull", "-q", "--ff-only", "origin", "main")
    git(comfy_dir, "pull", "-q", "--ff-only")
    assert pod.head(node_dir) == pod.node.head() != locked["custom_nodes"][0]["commit"]
    assert pod.head(comfy_dir) != locked["comfyui"]["commit"]

    run = pod.start(AICLIPSE_LOCK=str(saved))
    assert run.rc == 0, text_of(run)
    assert pod.head(node_dir) == locked["custom_nodes"][0]["commit"]
    assert pod.head(comfy_dir) == locked["comfyui"]["commit"]
    report = pod.report.read_text()
    assert report.startswith(f"Pod lock {saved}: reproduced"), report
    # The pod's own lock is the one it was given, byte for byte.
    assert pod.lock_file.read_text() == saved.read_text()


def test_a_start_from_the_lock_on_checkouts_owned_by_another_uid_is_checked(provisioned):
    """A volume made elsewhere: git refuses such checkouts unless trusted. The comparison with
    the lock must run there too, not be skipped by a git refusal the play then reports green."""
    pod, saved = provisioned
    for checkout in (pod.vault / "ComfyUI", pod.vault / "custom_nodes/ComfyUI-LockNode"):
        for path in [checkout, *checkout.rglob("*")]:
            os.lchown(path, 4242, 4242)
    pod.lock_file.unlink()
    run = pod.start(AICLIPSE_LOCK=str(saved))
    assert run.rc == 0, text_of(run)
    report = pod.report.read_text()
    assert report.startswith(f"Pod lock {saved}: reproduced"), report
    assert pod.lock_file.read_text() == saved.read_text()


def test_a_model_replaced_upstream_fails_naming_both_hashes(provisioned, origin):
    pod, saved = provisioned
    locked_sha = pod.model_sha
    assert yaml.safe_load(saved.read_text())["models"][0]["sha256"] == locked_sha
    # Same URL, same size, other bytes; the pod lost its copy.
    replaced = write_file(origin.files_dir / pod.model_path, 60_000, seed=8)
    origin.refresh()
    pod.model.unlink()

    run = pod.start(AICLIPSE_LOCK=str(saved))
    assert run.rc != 0, text_of(run)
    assert not pod.model.exists()  # the replaced bytes never reach the models folder
    report = pod.report.read_text()
    assert "NOT reproduced" in report, report
    line = next(line for line in report.splitlines() if "vae/m.safetensors" in line)
    assert locked_sha in line and replaced in line, report
    assert locked_sha in run.stdout and replaced in run.stdout
    # The pod's lock still says what the lock said: an unreproduced start does not rewrite it.
    assert pod.lock_file.read_text() == saved.read_text()


def test_a_plain_url_model_without_any_published_hash_is_locked_and_its_replacement_caught(tmp_path, origin):
    """A plain URL whose manifest and origin give no sha256: the download is hashed anyway, so
    the lock holds what was fetched and a same-size replacement upstream cannot pass for it."""
    pod = Pod(tmp_path, origin)
    served = f"plain/{tmp_path.name}/p.safetensors"
    first = write_file(origin.files_dir / served, 70_000, seed=11)
    origin.refresh()
    manifest = tmp_path / "manifests/t_models.txt"
    manifest.write_text(manifest.read_text() + f"url|{origin.url}/public/{served}|p.safetensors|loras\n")
    run = pod.start()
    assert run.rc == 0, text_of(run)
    saved = tmp_path / "saved.lock.yml"
    shutil.copy(pod.lock_file, saved)
    model = pod.vault / "models/loras/p.safetensors"
    locked = {item["dest"]: item for item in yaml.safe_load(saved.read_text())["models"]}
    assert locked[str(model)]["sha256"] == first, locked

    replaced = write_file(origin.files_dir / served, 70_000, seed=12)
    origin.refresh()
    model.unlink()
    run = pod.start(AICLIPSE_LOCK=str(saved))
    assert run.rc != 0, text_of(run)
    assert not model.exists()
    report = pod.report.read_text()
    line = next(line for line in report.splitlines() if "loras/p.safetensors" in line)
    assert first in line and replaced in line, report


def test_a_node_commit_no_longer_reachable_is_reported(provisioned):
    pod, saved = provisioned
    text = saved.read_text()
    gone = "0123456789abcdef0123456789abcdef01234567"
    edited = pod.root / "edited.lock.yml"
    edited.write_text(text.replace(pod.node.head(), gone))
    run = pod.start(AICLIPSE_LOCK=str(edited))
    assert run.rc != 0, text_of(run)
    report = pod.report.read_text()
    assert f"custom node ComfyUI-LockNode: at {pod.node.head()}, the lock says {gone}" in report, report
    assert f"{edited}:" in report  # the line of the lock that names it


def test_a_bad_lock_names_the_file_and_line_and_changes_nothing(tmp_path):
    lock = tmp_path / "bad.lock.yml"
    lock.write_text(
        "version: 1\n"
        "comfyui:\n"
        "  commit: nothex\n"
        "custom_nodes:\n"
        "  - name: ComfyUI-X\n"
        "    repo: https://github.com/o/ComfyUI-X\n"
        "    comit: 0123456\n"
        "models:\n"
        "  - dest: ../../etc/passwd\n"
        "    source: https://example.com/x\n"
    )
    result, _proc = run_module("pod_lock_read", {"source": str(lock), "models_dir": str(tmp_path / "models")})
    assert result.get("failed"), result
    msg = result["msg"]
    assert f"{lock}:3: comfyui commit 'nothex' is not a commit" in msg
    assert f"{lock}:7: unknown key 'comit'" in msg
    assert f"{lock}:9: model dest ../../etc/passwd" in msg
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "comfyui": "abc",\n  "git_custom_nodes": {,}\n}\n')
    result, _proc = run_module("pod_lock_read", {"source": str(broken), "models_dir": str(tmp_path)})
    assert result.get("failed") and f"{broken}:3: not valid JSON" in result["msg"], result


def test_a_lock_url_from_elsewhere_never_gets_a_token_for_its_models(tmp_path):
    """A lock's model URL at another host than the pod's Hugging Face endpoint is a plain URL
    download (no token); one at the endpoint stays a Hugging Face one (same origin)."""
    lock = tmp_path / "lock.yml"
    lock.write_text(
        "version: 1\nmodels:\n"
        f"  - dest: {tmp_path}/models/vae/a.safetensors\n"
        "    source: https://evil.example/org/repo/resolve/main/a.safetensors\n"
        f"  - dest: {tmp_path}/models/vae/b.safetensors\n"
        "    source: https://huggingface.co/org/repo/resolve/main/b.safetensors\n"
    )
    result, _proc = run_module("pod_lock_read", {"source": str(lock), "models_dir": str(tmp_path / "models")})
    first, second = result["lock"]["models"]
    assert first["source"] == "url" and second["source"] == "huggingface", result


@pytest.fixture
def snapshot_world(tmp_path):
    """Local repositories behind https://github.com/ (git's url.insteadOf) and the registry."""
    git_root = tmp_path / "github"
    snap = make_node_repo(git_root / "acme/ComfyUI-SnapNode")
    snap_first = snap.head()
    snap.commit({"later.py": "# later\n"}, "after the snapshot")
    reg = make_node_repo(git_root / "regowner/ComfyUI-RegSnap")
    reg_v1 = reg.tag("v1.0.0")
    reg.commit({"later.py": "# after 1.0.0\n"}, "after the release")
    reg.tag("v1.1.0")
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{git_root.as_uri()}/.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/",
    }
    with RegistryStandIn() as registry:
        registry.add("comfyui-regsnap", "https://github.com/regowner/ComfyUI-RegSnap", versions=("1.0.0", "1.1.0"))
        yield {"env": env, "snap": snap_first, "reg_v1": reg_v1, "registry": registry}


def test_a_comfyui_manager_snapshot_provisions_comfyui_and_the_nodes(tmp_path, origin, snapshot_world):
    (tmp_path / "pod").mkdir()
    pod = Pod(tmp_path / "pod", origin)
    first_comfyui = pod.comfyui.head()
    pod.comfyui.commit({"later.py": "# newer\n"}, "newer ComfyUI")
    snapshot = json.loads((FIXTURES / "manager-snapshot.json").read_text())
    assert set(snapshot) == {"comfyui", "git_custom_nodes", "cnr_custom_nodes", "file_custom_nodes", "pips"}
    # The fixture's shape, with the commits of the stand-in repositories.
    snapshot["comfyui"] = first_comfyui
    snapshot["git_custom_nodes"]["https://github.com/acme/ComfyUI-SnapNode"]["hash"] = snapshot_world["snap"]
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot, indent=4))
    pod.vars["custom_nodes_registry_endpoint"] = snapshot_world["registry"].url

    run = pod.start(AICLIPSE_LOCK=str(path), **snapshot_world["env"])
    assert run.rc == 0, text_of(run)
    nodes = pod.vault / "custom_nodes"
    assert pod.head(pod.vault / "ComfyUI") == first_comfyui
    assert pod.head(nodes / "ComfyUI-SnapNode") == snapshot_world["snap"]
    assert pod.head(nodes / "ComfyUI-RegSnap") == snapshot_world["reg_v1"]
    # The manifests' node is not the snapshot's: not installed; the disabled one neither.
    assert not (nodes / "ComfyUI-LockNode").exists() and not (nodes / "ComfyUI-Sleeping").exists()
    # The snapshot locks no models: the manifests' model is downloaded.
    assert sha(pod.model) == pod.model_sha
    report = pod.report.read_text()
    assert report.startswith(f"Pod lock {path}: reproduced"), report
    assert "ComfyUI-Sleeping: disabled in the snapshot" in report
    assert "single-file node my_helper.py" in report and "4 pip packages" in report
    lock = yaml.safe_load(pod.lock_file.read_text())
    assert {n["name"]: n["commit"] for n in lock["custom_nodes"]} == {
        "ComfyUI-SnapNode": snapshot_world["snap"],
        "ComfyUI-RegSnap": snapshot_world["reg_v1"],
    }
    assert lock["comfyui"]["commit"] == first_comfyui


def test_check_diff_shows_drift_the_start_stamp_does_not_watch(provisioned):
    """A package installed into the venv by hand changes nothing the start stamp watches, so the
    roles are skipped; --check --diff still shows it against the lock, and writes nothing."""
    pod, saved = provisioned
    site_packages = next((pod.root / "venv/lib").glob("python3*/site-packages"))
    dist = site_packages / "fakedrift-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedrift\nVersion: 1.0\n")
    run = run_playbook(SITE, pod.vars, check=True, diff=True, env=pod.env)
    assert run.rc == 0, text_of(run)
    assert "Write the ComfyUI command line for the pod entrypoint" not in run.stdout  # the roles were skipped
    assert "fakedrift==1.0" in run.stdout, run.stdout[-3000:]
    assert pod.lock_file.read_text() == saved.read_text()
