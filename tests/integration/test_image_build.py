"""A real `podman build` of examples/Containerfile, and pods booted from the image.

The image is built once per session on the harness's debootstrap base, from a build context
made by examples/build-context.sh: the collection as it is in the checkout, a wheelhouse of
ansible-core + boto3 prepared on the host (containers do not trust the host's TLS proxy, so
pip installs offline inside), a wheelhouse for ComfyUI's requirements baked into the image,
and local git repos standing in for ComfyUI and a custom node. Every boot goes through tini and
the real entrypoint into the stand-in main.py, which records its argv in the pod's /workspace
(a host directory, so it persists like a pod volume) and, when asked, keeps serving like
ComfyUI, without a SIGTERM handler of its own. `podman stop` must then take seconds, not its
timeout, and nothing may be left a zombie.
"""

import hashlib
import json
import re
import subprocess
import textwrap
import time
import uuid

import pytest

from harness import podman as podman_harness
from harness.comfyui_fixtures import StandInClient
from harness.git_repos import make_comfyui_repo, make_node_repo
from harness.git_servers import SmartHttpGit, publish
from harness.nginx import write_file
from harness.net import steady_port, wait_for_port
from harness.paths import REPO
from harness.python_env import make_wheel
from harness.workflows import ui_node, ui_workflow
from harness.wheelhouse import runtime_wheelhouse

pytestmark = [pytest.mark.podman, pytest.mark.slow]

IMAGE = "localhost/aiclipse-example-test"
# The fake main.py records sys.argv[1:] (main.py itself is not in the record).
BASE = ["--listen", "0.0.0.0", "--port", "8188", "--base-directory", "/workspace/aiclipse"]
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
    make_node_repo(
        src / "ComfyUI-TestNode", extra_files={"__init__.py": "NODE_CLASS_MAPPINGS = {'TestNode': object}\n"}
    )
    (src / "manifests").mkdir()
    (src / "manifests" / "base_nodes.txt").write_text(
        f"file://{SOURCES}/ComfyUI-TestNode|main|test|A node every pod of this image has\n"
    )
    # The template workflow needs a node pack by its registry id, which the offline registry map
    # the image bakes resolves to a repository on a loopback git server that serves the build
    # only: bake installs the pack, and a pod can only copy it from the image.
    wf_node = make_node_repo(
        work / "ComfyUI-WfNode", extra_files={"__init__.py": "NODE_CLASS_MAPPINGS = {'WfNode': object}\n"}
    )
    git_server = SmartHttpGit(work / "git-served")
    git_server.start()
    (src / "manifests" / "registry_map.txt").write_text(
        f"wf-node|{git_server.url(publish(wf_node, work / 'git-served'))}\n"
    )
    (src / "workflows").mkdir()
    (src / "workflows" / "template.json").write_text(ui_workflow(ui_node(1, "WfNode", [], cnr_id="wf-node")))
    bake_vars = work / "bake-vars.yml"
    bake_vars.write_text(
        textwrap.dedent(f"""\
        ---
        comfyui_repo_url: file://{SOURCES}/ComfyUI
        comfyui_version: master
        bake_wheels_src: {SOURCES}/pywheels
        comfyui_pip_offline: true
        bake_manifests_src: {SOURCES}/manifests
        bake_workflows_src: {SOURCES}/workflows
        """)
    )
    context = work / "context"
    cmd = [
        str(REPO / "examples" / "build-context.sh"),
        str(context),
        "--vars",
        str(bake_vars),
        "--wheels",
        str(runtime_wheelhouse()),
    ]
    for name in ("ComfyUI", "ComfyUI-TestNode", "pywheels", "manifests", "workflows"):
        cmd += ["--source", str(src / name)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    tag = f"{IMAGE}:{uuid.uuid4().hex[:8]}"
    try:
        build = podman_harness.podman(
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE={podman_image}",
            "-t",
            tag,
            str(context),
            check=False,
            timeout=1200,
        )
    finally:
        git_server.stop()
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
    args = [
        "--name",
        name,
        "--label",
        "aiclipse-image-test=1",
        "--network",
        "host",
        "-v",
        f"{volume.path}:/workspace",
        "-e",
        "FAKE_COMFYUI_ARGV_FILE=/workspace/argv.json",
    ]
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
    assert volume.record["argv"] == BASE + [
        "--output-directory",
        "/workspace/my outputs",
        "--title",
        'say "hi"',
        "$HOME",
    ]
    assert volume.record["cwd"] == "/workspace/aiclipse/ComfyUI"
    assert volume.record["executable"] == "/venv/bin/python"
    assert "aiclipse-entrypoint: starting ComfyUI" in output
    assert "PROVISIONING FAILED" not in output
    # The seeded checkout is exactly what git made: the baked nodes went to the vault.
    vault = volume.path / "aiclipse"
    assert (vault / "custom_nodes" / "ComfyUI-TestNode" / "__init__.py").is_file()
    # The template workflow's node pack came from the image: its git server is gone.
    assert (vault / "custom_nodes" / "ComfyUI-WfNode" / "__init__.py").is_file()
    assert "node  installed" in (vault / "logs" / "workflow-nodes.txt").read_text()
    assert not (vault / "ComfyUI" / "custom_nodes" / "ComfyUI-TestNode").exists()
    status = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(vault / "ComfyUI"), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""

    # The pod's user works: a workflow edit, a model, an output.
    (vault / "output" / "render.png").write_bytes(b"user output")
    user_model = vault / "models" / "loras" / "mine.safetensors"
    user_model.parent.mkdir(parents=True, exist_ok=True)
    user_model.write_bytes(b"user model")
    fakedep = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--entrypoint",
            "/venv/bin/python",
            example_image,
            "-c",
            "import fakedep; print(fakedep.__version__)",
        ],
        env=podman_harness.podman_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert fakedep.stdout.strip() == "1.0", fakedep.stderr  # baked ComfyUI requirement

    volume.clear_record()
    rc, again = restart(name)
    assert rc == 0, again[-6000:]
    assert recap_changed(again) == 0, f"changed on restart: {changed_tasks(again)}"
    assert volume.record["argv"] == BASE + [
        "--output-directory",
        "/workspace/my outputs",
        "--title",
        'say "hi"',
        "$HOME",
    ]
    assert (vault / "output" / "render.png").read_bytes() == b"user output"
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
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        example_image,
        "-c",
        "test -x /usr/local/bin/aiclipse-entrypoint && test -x /usr/local/bin/aiclipse-config-update"
        " && test -x /usr/bin/tini"
        " && test -f /opt/aiclipse/ComfyUI/main.py && test -d /opt/aiclipse/custom_nodes/ComfyUI-TestNode"
        # The node pack the template workflow names is baked too.
        " && test -f /opt/aiclipse/custom_nodes/ComfyUI-WfNode/__init__.py"
        # The baked checkout is pristine: the nodes live beside it, not in it.
        " && test ! -e /opt/aiclipse/ComfyUI/custom_nodes/ComfyUI-TestNode"
        ' && test -z "$(git -C /opt/aiclipse/ComfyUI status --porcelain)"'
        " && ls /opt/aiclipse/wheels/fakedep-1.0-py3-none-any.whl >/dev/null"
        " && test -f /opt/workflows/template.json && test -f /opt/aiclipse/manifests/base_nodes.txt"
        # Pod-start-only work never happens at build time.
        " && test ! -e /workspace/aiclipse && test ! -e /etc/rp_environment && echo baked",
        check=False,
    )
    assert out.stdout.strip() == "baked", out.stderr


# -- stop: tini in front, the stop passed on, no zombies ----------------------------------------

# A stand-in for aria2_batch/r2_fetch while they run (see tests/integration/test_entrypoint.py):
# holds <state>/<name>.run.lock with its PID in it and stops cleanly on SIGTERM, leaving a marker.
DOWNLOADER = (
    "import fcntl, os, signal, sys, time\n"
    "lock, marker = sys.argv[1], sys.argv[2]\n"
    "fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.ftruncate(fd, 0)\n"
    "os.write(fd, b'%d\\n' % os.getpid())\n"
    "def stop(signum, frame):\n"
    "    time.sleep(0.3)\n"
    "    open(marker, 'w').write('stopped on %d' % signum)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "open(marker + '.ready', 'w').close()\n"
    "while True:\n"
    "    time.sleep(1)\n"
)


def serving_pod(example_image, volume, containers, env=None):
    """A detached pod whose stand-in ComfyUI keeps serving on its own loopback port (one that
    no other test can take while the pod restarts)."""
    port = steady_port()
    name = start_detached(
        example_image, volume, containers, {"FAKE_COMFYUI_SERVE": "1", "COMFY_ARGS": f"--port {port}", **(env or {})}
    )
    wait_for_port(port, timeout=600)
    return name, port


def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_podman_stop_reaches_comfyui_and_the_download_in_seconds(example_image, volume, containers):
    name, port = serving_pod(example_image, volume, containers)
    # tini is PID 1, the entrypoint its child, ComfyUI the entrypoint's child.
    tree = podman_harness.podman("exec", name, "ps", "-eo", "pid=,ppid=,args=").stdout
    assert re.search(r"^\s*1\s+0\s+/usr/bin/tini -- /usr/local/bin/aiclipse-entrypoint", tree, re.M), tree
    comfy = StandInClient(f"http://127.0.0.1:{port}")
    # The manifest's node and the node pack the template workflow names, both baked.
    assert sorted(comfy.custom_nodes()) == ["ComfyUI-TestNode", "ComfyUI-WfNode"]
    assert comfy.workflows() == ["template.json"]
    (volume.path / "aiclipse" / ".state" / "models").mkdir(parents=True, exist_ok=True)
    podman_harness.podman(
        "exec",
        "-d",
        name,
        "/venv/bin/python",
        "-c",
        DOWNLOADER,
        "/workspace/aiclipse/.state/models/aria2_batch.run.lock",
        "/workspace/download.stopped",
    )
    wait_for(volume.path / "download.stopped.ready")

    started = time.monotonic()
    podman_harness.podman("stop", "-t", "30", name, timeout=120)
    seconds = time.monotonic() - started
    state = json.loads(podman_harness.podman("inspect", "--format", "{{json .State}}", name).stdout)
    logs = podman_harness.podman("logs", name, check=False)
    output = logs.stdout + logs.stderr
    # ComfyUI died of the SIGTERM it was passed (128 + 15); a SIGKILL after the 30 s timeout
    # would be 137. The generous bound only says it did not wait for that timeout.
    assert state["ExitCode"] == 143, (state, output[-3000:])
    assert seconds < 20, f"podman stop took {seconds:.1f}s"
    assert (volume.path / "download.stopped").read_text() == "stopped on 15"
    assert "received SIGTERM: stopping ComfyUI" in output


def test_sigint_stops_comfyui_the_way_ctrl_c_does(example_image, volume, containers):
    name, dummy = serving_pod(example_image, volume, containers)
    podman_harness.podman("kill", "-s", "INT", name)
    rc = podman_harness.podman("wait", name, timeout=60).stdout.strip()
    logs = podman_harness.podman("logs", name, check=False)
    assert rc == "0", (logs.stdout + logs.stderr)[-3000:]
    assert "Stopped server" in logs.stdout + logs.stderr


def test_background_downloads_leave_no_zombies(example_image, volume, containers, make_origin, tmp_path):
    served = tmp_path / "served"
    sums = {
        name: write_file(served / name, 200_000 + i, seed=i)
        for i, name in enumerate(("a.safetensors", "b.safetensors"))
    }
    origin = make_origin(served)
    (volume.path / "manifest.txt").write_text(
        "".join(f"url|{origin.url}/public/{name}|{name}|checkpoints|{sha}\n" for name, sha in sums.items())
    )
    name, dummy = serving_pod(example_image, volume, containers, {"MODELS_MANIFEST": "/workspace/manifest.txt"})
    log = volume.path / "aiclipse" / "logs" / "models.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and "summary: 2 downloaded" in log.read_text()):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no models.log"
        time.sleep(0.5)
    for model in sums:
        assert (volume.path / "aiclipse" / "models" / "checkpoints" / model).is_file()
    # The background jobs end: ansible's async wrapper notices its module finished (it polls every
    # few seconds; until then the module is its zombie) and exits; nothing is left unreaped.
    deadline = time.monotonic() + 30
    while True:
        table = podman_harness.podman("exec", name, "ps", "-eo", "stat=,pid=,ppid=,args=").stdout
        zombies = [line for line in table.splitlines() if line.split()[0].startswith("Z")]
        jobs = [line for line in table.splitlines() if "async_wrapper" in line or "ansible" in line]
        if not (jobs or zombies) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not jobs, table
    assert not zombies, table


def test_podman_stop_ends_a_real_background_download_and_the_next_boot_resumes_it(
    example_image, volume, containers, make_origin, tmp_path
):
    """The whole chain, no stand-in downloader: site.yml starts aria2_batch in the background,
    `podman stop` reaches it through tini and the entrypoint, it stops cleanly, and the next boot
    of the same container resumes it instead of fetching it again."""
    size = 16 * 1024 * 1024
    served = tmp_path / "served"
    digest = write_file(served / "big.safetensors", size, seed=7)
    origin = make_origin(served, limit_rate="200k")
    (volume.path / "manifest.txt").write_text(
        f"url|{origin.url}/public/big.safetensors|big.safetensors|checkpoints|{digest}\n"
    )
    name, dummy = serving_pod(example_image, volume, containers, {"MODELS_MANIFEST": "/workspace/manifest.txt"})
    staging = volume.path / "aiclipse" / ".state" / "models" / "staging"
    deadline = time.monotonic() + 120
    while sum(p.stat().st_blocks * 512 for p in staging.glob("*.safetensors")) < 8 * 1024 * 1024:
        assert time.monotonic() < deadline, "the background download never got going"
        time.sleep(0.2)

    started = time.monotonic()
    podman_harness.podman("stop", "-t", "30", name, timeout=120)
    seconds = time.monotonic() - started
    logs = podman_harness.podman("logs", name, check=False)
    output = logs.stdout + logs.stderr
    log = volume.path / "aiclipse" / "logs" / "models.log"
    assert seconds < 20, f"podman stop took {seconds:.1f}s"
    assert "stopping the model download running as pid" in output, output[-3000:]
    assert (
        "stopped by SIGTERM: 1 download(s) unfinished (checkpoints/big.safetensors); they resume at the next start"
        in log.read_text()
    ), log.read_text()
    assert list(staging.glob("*.aria2")), "aria2c saves its control file on SIGTERM"
    model = volume.path / "aiclipse" / "models" / "checkpoints" / "big.safetensors"
    assert not model.exists(), "a partial model is visible at its final path"
    served_at_stop = sum(int(line.rsplit("bytes=", 1)[1]) for line in origin.log_lines() if "/public/" in line)

    podman_harness.podman("start", name)
    deadline = time.monotonic() + 300
    while not model.exists():
        if time.monotonic() >= deadline:
            again = podman_harness.podman("logs", name, check=False)
            pytest.fail(f"{log.read_text()}\ncontainer log:\n{(again.stdout + again.stderr)[-4000:]}")
        time.sleep(0.5)
    assert "resumed" in log.read_text().rsplit("stopped by SIGTERM", 1)[1], log.read_text()
    served_total = sum(int(line.rsplit("bytes=", 1)[1]) for line in origin.log_lines() if "/public/" in line)
    # Resumed, not fetched again: what crosses the wire twice is what sat in socket buffers when
    # aria2c stopped and its first unranged GET of the resumed file, well under the 8 MiB on disk.
    refetched = served_total - size
    assert refetched <= served_at_stop - 4 * 1024 * 1024, (served_at_stop, served_total)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest
