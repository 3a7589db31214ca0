"""A real `podman build` of examples/Containerfile, and pods booted from the image.

The image is built once per session on the harness's debootstrap base, from a build context
made by examples/build-context.sh: the collection as it is in the checkout, a wheelhouse of
ansible-core + boto3 prepared on the host (containers do not trust the host's TLS proxy, so
pip installs offline inside), and local git repos standing in for ComfyUI and a custom node.
Every boot goes through the real entrypoint into the fake main.py, which records its argv in
the pod's /workspace (a host directory, so it persists like a pod volume).
"""
import json
import re
import subprocess
import textwrap
import uuid

import pytest

from harness import podman as podman_harness
from harness.git_repos import make_comfyui_repo, make_node_repo
from harness.paths import REPO
from harness.python_env import make_wheel
from harness.wheelhouse import runtime_wheelhouse

pytestmark = [pytest.mark.podman, pytest.mark.slow]

IMAGE = "localhost/aiclipse-example-test"
# The fake main.py records sys.argv[1:] (main.py itself is not in the record).
BASE = ["--listen", "0.0.0.0", "--port", "8188"]
IMAGE_DEFAULT_COMFY_ARGS = ["--preview-method", "auto"]  # ENV COMFY_ARGS in examples/Containerfile
SOURCES = "/opt/aiclipse/sources"


@pytest.fixture(scope="module")
def example_image(podman_image, tmp_path_factory):
    """Tag of the example image, built from this checkout (podman reuses unchanged layers)."""
    work = tmp_path_factory.mktemp("example-image")
    src = work / "src"
    # Stand-ins: ComfyUI with a requirement served from a local wheelhouse, one custom node.
    pywheels = src / "pywheels"
    make_wheel(pywheels, "fakedep", "1.0")
    make_comfyui_repo(src / "ComfyUI", requirements=["fakedep==1.0"])
    make_node_repo(src / "ComfyUI-TestNode")
    (src / "manifests").mkdir()
    (src / "manifests" / "base_nodes.txt").write_text(
        f"file://{SOURCES}/ComfyUI-TestNode|main|test|A node every pod of this image has\n")
    (src / "workflows").mkdir()
    (src / "workflows" / "template.json").write_text('{"nodes": []}\n')
    bake_vars = work / "bake-vars.yml"
    bake_vars.write_text(textwrap.dedent(f"""\
        ---
        comfyui_repo_url: file://{SOURCES}/ComfyUI
        comfyui_version: master
        comfyui_pip_args: [--no-index, --find-links, {SOURCES}/pywheels]
        custom_nodes_pip_args: [--no-index, --find-links, {SOURCES}/pywheels]
        bake_manifests_src: {SOURCES}/manifests
        bake_workflows_src: {SOURCES}/workflows
        """))
    context = work / "context"
    cmd = [str(REPO / "examples" / "build-context.sh"), str(context), "--vars", str(bake_vars),
           "--wheels", str(runtime_wheelhouse())]
    for name in ("ComfyUI", "ComfyUI-TestNode", "pywheels", "manifests", "workflows"):
        cmd += ["--source", str(src / name)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    tag = f"{IMAGE}:{uuid.uuid4().hex[:8]}"
    build = podman_harness.podman("build", "--network", "host", "--build-arg", f"BASE={podman_image}",
                                  "-t", tag, str(context), check=False, timeout=1200)
    assert build.returncode == 0, f"podman build failed:\n{build.stdout[-6000:]}\n{build.stderr[-6000:]}"
    yield tag
    podman_harness.podman("rmi", "-f", tag, check=False)


class PodVolume:
    """A host directory mounted at /workspace, like a pod's persistent volume."""

    def __init__(self, path):
        self.path = path
        path.mkdir()

    @property
    def record(self):
        return json.loads((self.path / "argv.json").read_text())

    def clear_record(self):
        (self.path / "argv.json").unlink(missing_ok=True)


@pytest.fixture
def volume(tmp_path):
    return PodVolume(tmp_path / "workspace")


@pytest.fixture
def containers():
    names = []
    yield names
    for name in names:
        podman_harness.podman("rm", "-f", "-t", "0", name, check=False)


def run_args(volume, containers, env):
    name = f"aiclipse-test-{uuid.uuid4().hex[:10]}"
    containers.append(name)
    # Not the harness's label: its leftover sweep (run by any other pytest session sharing this
    # machine) would kill these pods mid-boot. Each is removed by name after its test.
    args = ["--name", name, "--label", "aiclipse-image-test=1", "--network", "host",
            "-v", f"{volume.path}:/workspace", "-e", "FAKE_COMFYUI_ARGV_FILE=/workspace/argv.json"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    return name, args


def boot(image, volume, containers, env=None):
    """Create and start a pod container (attached); return (name, rc, output)."""
    name, args = run_args(volume, containers, env)
    proc = podman_harness.podman("run", *args, image, check=False, timeout=600)
    return name, proc.returncode, proc.stdout + proc.stderr


def start_detached(image, volume, containers, env=None):
    name, args = run_args(volume, containers, env)
    podman_harness.podman("run", "-d", *args, image)
    return name


def restart(name):
    proc = podman_harness.podman("start", "--attach", name, check=False, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def recap_changed(output):
    """changed= of the provisioning run's PLAY RECAP (the last one in the output)."""
    found = re.findall(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert found, f"no PLAY RECAP in the boot output:\n{output[-4000:]}"
    changed, failed = found[-1]
    assert failed == "0", output[-4000:]
    return int(changed)


def changed_tasks(output):
    """Names of the tasks that reported changed (for a readable assertion message)."""
    names, task = [], None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            names.append(task)
    return names


def test_quoted_comfy_args_override_the_image_default_and_restart_is_a_no_op(example_image, volume, containers):
    comfy_args = '--output-directory "/workspace/my outputs" --title \'say "hi"\' $HOME'
    secret = "hf_entrypoint_secret_3f9a"
    name, rc, output = boot(example_image, volume, containers, {"COMFY_ARGS": comfy_args, "HF_TOKEN": secret})
    assert rc == 0, output[-6000:]
    # The pod's tokens are never echoed by the entrypoint or the provisioning run.
    assert secret not in output
    assert secret not in (volume.path / "aiclipse" / "logs" / "provision.log").read_text()
    assert secret not in (volume.path / "aiclipse" / ".state" / "launch.json").read_text()
    assert volume.record["argv"] == BASE + ["--output-directory", "/workspace/my outputs", "--title", 'say "hi"', "$HOME"]
    assert volume.record["cwd"] == "/workspace/aiclipse/ComfyUI"
    assert volume.record["executable"] == "/venv/bin/python"
    assert "aiclipse-entrypoint: starting ComfyUI" in output
    assert "PROVISIONING FAILED" not in output

    # The pod's user works: a workflow edit, a model, an output.
    vault = volume.path / "aiclipse"
    (vault / "ComfyUI" / "output" / "render.png").write_bytes(b"user output")
    user_model = vault / "models" / "loras" / "mine.safetensors"
    user_model.parent.mkdir(parents=True, exist_ok=True)
    user_model.write_bytes(b"user model")
    fakedep = subprocess.run(["podman", "run", "--rm", "--entrypoint", "/venv/bin/python", example_image,
                              "-c", "import fakedep; print(fakedep.__version__)"],
                             env=podman_harness.podman_env(), capture_output=True, text=True, timeout=120,
                             check=False)
    assert fakedep.stdout.strip() == "1.0", fakedep.stderr  # baked ComfyUI requirement

    volume.clear_record()
    rc, again = restart(name)
    assert rc == 0, again[-6000:]
    assert recap_changed(again) == 0, f"changed on restart: {changed_tasks(again)}"
    assert volume.record["argv"] == BASE + ["--output-directory", "/workspace/my outputs", "--title", 'say "hi"', "$HOME"]
    assert (vault / "ComfyUI" / "output" / "render.png").read_bytes() == b"user output"
    assert user_model.read_bytes() == b"user model"
    # Requirements are not reinstalled at boot: neither boot touched the image's venv.
    diff = podman_harness.podman("diff", name).stdout.split("\n")
    assert not [line for line in diff if " /venv" in line], diff


def test_image_default_and_empty_comfy_args_with_and_without_sage_attention(example_image, tmp_path, containers):
    # Three pods booted side by side (each boot is a full provisioning run).
    cases = {
        "image-default": ({}, BASE + IMAGE_DEFAULT_COMFY_ARGS),
        "empty-sage": ({"COMFY_ARGS": "", "ENABLE_SAGE_ATTENTION": "true"}, BASE + ["--use-sage-attention"]),
        "empty-no-sage": ({"COMFY_ARGS": "", "ENABLE_SAGE_ATTENTION": "false"}, BASE),
    }
    started = {}
    for case, (env, _expected) in cases.items():
        volume = PodVolume(tmp_path / case)
        name = start_detached(example_image, volume, containers, env)
        started[case] = (name, volume)
    for case, (name, volume) in started.items():
        rc = podman_harness.podman("wait", name, timeout=600).stdout.strip()
        logs = podman_harness.podman("logs", name, check=False)
        assert rc == "0", f"{case}:\n{(logs.stdout + logs.stderr)[-6000:]}"
        assert volume.record["argv"] == cases[case][1], case


def test_image_has_the_baked_pieces(example_image):
    out = podman_harness.podman(
        "run", "--rm", "--entrypoint", "sh", example_image, "-c",
        "test -x /usr/local/bin/aiclipse-entrypoint && test -x /usr/local/bin/aiclipse-config-update"
        " && test -f /opt/aiclipse/ComfyUI/main.py && test -d /opt/aiclipse/ComfyUI/custom_nodes/ComfyUI-TestNode"
        " && test -f /opt/workflows/template.json && test -f /opt/aiclipse/manifests/base_nodes.txt"
        # Pod-start-only work never happens at build time.
        " && test ! -e /workspace/aiclipse && test ! -e /etc/rp_environment && echo baked", check=False)
    assert out.stdout.strip() == "baked", out.stderr
