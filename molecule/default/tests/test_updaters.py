"""ComfyUI's own updaters on the provisioned (pinned) pod, then what ComfyUI lists.

Upstream (the world's ComfyUI repository, which the pod fetches from) moves on once per
updater with a commit under models/: a placeholder added in a new folder, one moved and one
deleted, one rewritten. In the pod: `git pull`, ComfyUI's update.py and ComfyUI-Manager's
"Update ComfyUI" (tests/harness/comfyui_updaters.py, with pygit2 and GitPython installed in the
pod from wheels). After each, the stand-in ComfyUI is started in the pod from the launch file
and asked, over HTTP, for its models, workflows and custom nodes. Last, the pod restarts
through its entrypoint twice; the second start changes nothing.
"""

import json
import re
import shlex
import time
from pathlib import Path

import pytest

from harness import podman as podman_harness
from harness.comfyui_fixtures import StandInClient, with_port
from harness.git_repos import GitRepo
from harness.net import free_port, wait_for_port
from harness.paths import REPO
from harness.wheelhouse import updater_wheelhouse

POD = "aiclipse-molecule-pod"
VAULT = "/workspace/aiclipse"
CHECKOUT = f"{VAULT}/ComfyUI"
GIT = f"git -c safe.directory='*' -C {CHECKOUT}"
ENTRYPOINT = "/opt/aiclipse/config/roles/launcher/files/aiclipse-entrypoint"
MOVES = [
    ("git pull", {"models/new_type/put_new_type_files_here": ""}, (), "a new model folder"),
    (
        "pygit2",
        {"models/approx_vae/put_vae_approx_here": ""},
        ("models/vae_approx/put_vae_approx_here", "models/gligen/put_gligen_here"),
        "a placeholder moved, one deleted",
    ),
    ("manager", {"models/checkpoints/put_checkpoints_here": "see the docs\n"}, (), "a placeholder rewritten"),
]


def pod_exec(*cmd, check=True, env=None, workdir=None, detach=False):
    args = ["exec"] + (["-d"] if detach else []) + (["-w", workdir] if workdir else [])
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    return podman_harness.podman(*args, POD, *cmd, check=check, timeout=900)


@pytest.fixture(scope="module")
def updaters():
    """pygit2 and GitPython in a venv of the pod (offline, from wheels), and the stand-ins."""
    wheels = updater_wheelhouse()
    podman_harness.podman("cp", str(wheels), f"{POD}:/tmp/updater-wheels")
    podman_harness.podman("cp", str(REPO / "tests" / "harness" / "comfyui_updaters.py"), f"{POD}:/tmp/")
    pod_exec(
        "sh",
        "-c",
        "python3 -m venv /tmp/updaters && /tmp/updaters/bin/pip install -q --no-index "
        "--find-links /tmp/updater-wheels pygit2 GitPython",
    )

    def run(name, path=CHECKOUT):
        if name == "git pull":
            proc = pod_exec("sh", "-c", f"{GIT} pull -q --ff-only", check=False)
            assert proc.returncode == 0, proc.stderr
            return {}
        proc = pod_exec("/tmp/updaters/bin/python", "/tmp/comfyui_updaters.py", name, path, check=False)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0, report
        return report

    return run


def standin_listing():
    """Start the stand-in ComfyUI in the pod as the launch file says; return what it lists."""
    launch = json.loads(pod_exec("cat", f"{VAULT}/.state/launch.json").stdout)
    port = free_port()
    pod_exec(
        *with_port(launch["argv"], port),
        detach=True,
        workdir=launch["cwd"],
        env={"FAKE_COMFYUI_SERVE": "1", "FAKE_COMFYUI_ARGV_FILE": "/tmp/standin.json"},
    )
    wait_for_port(port, timeout=60)
    try:
        comfy = StandInClient(f"http://127.0.0.1:{port}")
        return {
            "checkpoints": comfy.models("checkpoints"),
            "loras": comfy.models("loras"),
            "vae": comfy.models("vae"),
            "workflows": comfy.workflows(),
            "nodes": comfy.custom_nodes(),
            "classes": comfy.node_classes(),
            "standin": comfy.standin(),
        }
    finally:
        pid = json.loads(pod_exec("cat", "/tmp/standin.json").stdout)["pid"]
        pod_exec("kill", "-INT", str(pid))
        deadline = time.monotonic() + 30
        while pod_exec("kill", "-0", str(pid), check=False).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)


def workflows_on_the_shortcut():
    out = pod_exec("sh", "-c", "cd /workspace/workflows/ && find . -type f | sed 's|^./||' | sort").stdout
    return out.split()


def start_pod(comfy_args):
    proc = pod_exec(ENTRYPOINT, env={"COMFY_ARGS": comfy_args}, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    recap = re.findall(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
    assert recap and recap[-1][1] == "0", proc.stdout[-4000:]
    return int(recap[-1][0])


def test_each_updater_works_and_comfyui_still_lists_everything(world, updaters, comfy_args):
    upstream = GitRepo(Path(world["comfyui_url"][len("file://") :]))
    models = {m["path"] for m in world["pods"]["pod"]["models"]} | {"loras/my-own-lora.safetensors"}
    expected_nodes = sorted([world["pods"]["pod"]["node"], "HandNode"])
    for name, files, removed, message in MOVES:
        head = upstream.commit(files, message, remove=removed, force_add=list(files))
        report = updaters(name)
        assert pod_exec("sh", "-c", f"{GIT} rev-parse HEAD").stdout.strip() == head, (name, report)
        assert pod_exec("sh", "-c", f"{GIT} rev-parse --abbrev-ref HEAD").stdout.strip() == "master", name
        assert pod_exec("sh", "-c", f"{GIT} stash list").stdout == "", name
        assert pod_exec("sh", "-c", f"{GIT} status --porcelain --untracked-files=all").stdout == "", name
        assert not report.get("reset_hard"), (name, report)

        listed = standin_listing()
        assert listed["standin"]["base_directory"] == VAULT
        for folder in ("checkpoints", "loras", "vae"):
            assert sorted(f"{folder}/{m}" for m in listed[folder]) == sorted(
                m for m in models if m.startswith(folder + "/")
            )
        assert listed["workflows"] == workflows_on_the_shortcut(), name
        assert "txt2img.json" in listed["workflows"] and "video/i2v.json" in listed["workflows"]
        assert listed["nodes"] == expected_nodes, name

    # The next start brings what upstream added under models/ into the vault; the one after
    # has nothing left to do.
    start_pod(comfy_args)
    assert pod_exec("test", "-f", f"{VAULT}/models/new_type/put_new_type_files_here", check=False).returncode == 0
    assert start_pod(comfy_args) == 0
    assert pod_exec("sh", "-c", f"{GIT} status --porcelain --untracked-files=all").stdout == ""
    started = json.loads(pod_exec("cat", "/tmp/comfyui-argv.json").stdout)
    assert started["argv"][:6] == ["--listen", "0.0.0.0", "--port", "8188", "--base-directory", VAULT]
    assert started["argv"][6:] == shlex.split(comfy_args)
