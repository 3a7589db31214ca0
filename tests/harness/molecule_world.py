"""Everything the molecule scenarios' pods reach, started on loopback and described in env vars.

A *world* is one directory (mounted read-only at the same path in every scenario container)
plus the servers that serve it:

    served/                 nginx origin tree (plain URL files and a Hugging Face stand-in)
    upstream/ComfyUI        local git repo standing in for ComfyUI (harness.git_repos)
    nodes/<name>            local git repos standing in for custom nodes
    wheels/                 offline wheelhouse of stand-ins (fakedep, faketorch) for pip in the pods
    manifests/              template manifests (<template>_models.txt, <template>_nodes.txt)
    workflows/              template workflows the image would carry in /opt/workflows
    expected.json           what the testinfra tests compare against (sha256s, paths, args)
    fleet_key[.pub]         the fleet scenario's SSH client key, made per run
    known_hosts             the fleet's pinned host keys (fresh per world: ports are reused)

moto's S3 server holds the bucket of the ``r2`` manifest entry. For the fleet, a RunPod API
stand-in (harness.runpod_api) lists the scenario's pods with their settings and SSH ports, plus
one pod nothing answers for, one without an SSH port and one that is stopped. ``World.env()`` gives the
variables molecule.yml reads (``${AICLIPSE_MOLECULE_*}``), so ``molecule`` can also be run by
hand: ``.venv/bin/python tests/harness/molecule_world.py -- molecule converge -s default``.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `harness` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "harness"  # pylint: disable=redefined-builtin

from . import podman as podman_harness  # noqa: E402
from .git_repos import make_comfyui_repo, make_node_repo  # noqa: E402
from .net import free_port  # noqa: E402
from .nginx import NginxOrigin, write_file  # noqa: E402
from .paths import CACHE, CONTAINERS_CONF, REPO, VENV_BIN  # noqa: E402
from .python_env import make_wheel  # noqa: E402
from .runpod_api import RunPodApi, runpod_pod  # noqa: E402
from .s3 import ACCESS_KEY, SECRET_KEY, MotoS3  # noqa: E402
from .ssh_pod import make_client_key  # noqa: E402
from .wheelhouse import runtime_wheelhouse  # noqa: E402

BUCKET = "aiclipse-models"
# Secrets the pods get; tests prove they never show up in ansible's output.
HF_TOKEN = "hf_molecule_secret_token_0123456789"
# The single pod of molecule/default, and the healthy pods of molecule/fleet with their templates.
DEFAULT_TEMPLATE = "sdxl-molecule"
FLEET_TEMPLATES = {"pod-a": "sd15-fleet", "pod-b": "flux-fleet", "pod-c": "wan-fleet"}
# The fleet pods' own settings, as RunPod lists them and as the containers run with them.
FLEET_SETTINGS = {
    "pod-a": {"TEMPLATE_TYPE": "sd15-fleet", "COMFY_ARGS": "--preview-method auto"},
    "pod-b": {"TEMPLATE_TYPE": "flux-fleet", "COMFY_ARGS": "--highvram --preview-method taesd"},
    "pod-c": {"TEMPLATE_TYPE": "wan-fleet", "COMFY_ARGS": '--cpu --output-directory "/workspace/out c"'},
    # Its models manifest has a line the parser refuses, so the models role fails on it.
    "pod-broken": {"TEMPLATE_TYPE": "broken-fleet", "COMFY_ARGS": "--preview-method auto"},
}
# A secret in a fleet pod's settings and the RunPod key: neither may show up in any output.
FLEET_POD_SECRET = "hf_fleet_pod_secret_never_printed_1234"
RUNPOD_KEY = "rpa_molecule_runpod_key_never_printed_5678"


POD_IMAGE_NAME = "localhost/aiclipse-molecule-pod"
POD_IMAGE_PACKAGES = ["ansible-core", "boto3", "faketorch==2.0"]


def pod_image():
    """The scenarios' pod image: the harness base image plus /venv with what a baked pod image
    has (ansible-core to run site.yml on the pod, boto3 for r2_fetch, faketorch playing torch).

    Built once per machine from the offline wheelhouse; the tag holds a hash of its inputs.
    """
    base = podman_harness.base_image()
    wheels = runtime_wheelhouse()
    recipe = json.dumps([base, sorted(p.name for p in wheels.glob("*.whl")), POD_IMAGE_PACKAGES])
    tag = f"{POD_IMAGE_NAME}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if podman_harness.podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    context = Path(tempfile.mkdtemp(prefix="aiclipse-pod-image-", dir=CACHE))
    try:
        shutil.copytree(wheels, context / "wheels")
        make_wheel(context / "wheels", "faketorch", "2.0")
        (context / "Containerfile").write_text(
            f"FROM {base}\n"
            "COPY wheels /tmp/wheels\n"
            "RUN python3 -m venv /venv && /venv/bin/pip install -q --disable-pip-version-check"
            f" --no-index --find-links /tmp/wheels {' '.join(POD_IMAGE_PACKAGES)} && rm -rf /tmp/wheels\n"
        )
        podman_harness.podman("build", "--network", "host", "-t", tag, str(context), timeout=1200)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return tag


class World:
    """Build with ``World(root).build()``, then ``start()``; ``stop()`` ends the servers."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.origin = None
        self.s3 = None
        self.expected = {}
        self.fleet_ports = {}
        self.runpod = None

    # -- building --------------------------------------------------------------------------

    def build(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.origin = NginxOrigin(self.root / "served", token=HF_TOKEN)
        self.s3 = MotoS3()
        comfy = make_comfyui_repo(self.root / "upstream" / "ComfyUI", requirements=["fakedep==1.0"])
        wheels = self.root / "wheels"
        for name, version in (("fakedep", "1.0"), ("faketorch", "2.0")):
            make_wheel(wheels, name, version)
        (self.root / "manifests").mkdir()
        workflows = self.root / "workflows"
        (workflows / "video").mkdir(parents=True)
        (workflows / "txt2img.json").write_text('{"template": "txt2img", "nodes": []}\n')
        (workflows / "video" / "i2v.json").write_text('{"template": "i2v", "nodes": []}\n')
        self.expected = {
            "comfyui_url": comfy.url,
            "comfyui_head": comfy.head(),
            "wheels": str(wheels),
            "manifests": str(self.root / "manifests"),
            "workflows": str(workflows),
            "hf_token": HF_TOKEN,
            "r2_secret": SECRET_KEY,
            "bucket": BUCKET,
            "pods": {},
        }
        self._pod("pod", DEFAULT_TEMPLATE, seed=1, with_r2=True)
        for index, (pod, template) in enumerate(FLEET_TEMPLATES.items()):
            self._pod(pod, template, seed=10 + index, with_r2=False)
        # The failing fleet pod: its template manifest has a line the parser refuses.
        broken = self.root / "manifests" / "broken-fleet_models.txt"
        broken.write_text("# a typo in the source column\nhugginface|org/repo|x.safetensors|vae\n")
        self.expected["broken_manifest"] = str(broken)
        key, _pub = make_client_key(self.root)
        self.expected["fleet_key"] = str(key)
        self.fleet_ports = {pod: free_port() for pod in (*FLEET_TEMPLATES, "pod-broken", "pod-gone")}
        self.expected["fleet_ports"] = self.fleet_ports
        self.expected["fleet_settings"] = FLEET_SETTINGS
        self.expected["fleet_pod_secret"] = FLEET_POD_SECRET
        self.expected["runpod_key"] = RUNPOD_KEY
        self.expected["known_hosts"] = str(self.root / "known_hosts")
        self.runpod = RunPodApi(RUNPOD_KEY, self._runpod_pods())
        return self

    def _runpod_pods(self):
        """The account as RunPod lists it: the four pod containers, a pod that is down, one
        without an SSH port and a stopped one."""
        pods = []
        for number, (name, settings) in enumerate(FLEET_SETTINGS.items()):
            env = dict(settings, HF_TOKEN=FLEET_POD_SECRET) if name == "pod-a" else settings
            pods.append(runpod_pod(f"molecule{number}", name, ssh_port=self.fleet_ports[name], env=env))
        pods.append(runpod_pod("moleculegone", "pod-gone", ssh_port=self.fleet_ports["pod-gone"]))
        pods.append(runpod_pod("moleculenossh", "pod-nossh", ssh_port=None))
        pods.append(runpod_pod("moleculestopped", "pod-stopped", status="EXITED"))
        return pods

    def _pod(self, pod, template, seed, with_r2):
        """Served files, a node repo and the template manifests of one pod."""
        served = self.root / "served"
        models = []
        url_file = f"{pod}/{template}-checkpoint.safetensors"
        models.append(
            (
                "url",
                "{origin}/public/" + url_file,
                f"{template}-checkpoint.safetensors",
                "checkpoints",
                write_file(served / url_file, 300_000 + seed, seed),
            )
        )
        hf_path = f"hf/org-{pod}/repo/split_files/vae/{template}-vae.safetensors"
        models.append(
            (
                "huggingface",
                f"org-{pod}/repo",
                f"split_files/vae/{template}-vae.safetensors",
                "vae",
                write_file(served / hf_path, 120_000 + seed, seed + 100),
            )
        )
        if with_r2:
            r2_local = self.root / "r2" / f"{template}-lora.safetensors"
            models.append(
                (
                    "r2",
                    f"loras/{template}-lora.safetensors",
                    f"{template}-lora.safetensors",
                    "loras",
                    write_file(r2_local, 2 * 1024 * 1024 + seed, seed + 200),
                )
            )
        node = make_node_repo(self.root / "nodes" / f"ComfyUI-{template}-Node", requirements=["fakedep==1.0"])
        lines = [f"# {template}: models of the template (test data)"]
        entries = []
        for source, identifier, filename, subdir, sha in models:
            if source == "huggingface":
                lines.append(f"{identifier}|{filename}|{subdir}|{sha}")  # the 3-field HF form
            else:
                lines.append(f"{source}|{identifier}|{filename}|{subdir}|{sha}")
            entries.append({"source": source, "path": f"{subdir}/{Path(filename).name}", "sha256": sha})
        (self.root / "manifests" / f"{template}_models.txt").write_text("\n".join(lines) + "\n")
        (self.root / "manifests" / f"{template}_nodes.txt").write_text(
            f"{node.url}|main|test|the {template} template's node\n"
        )
        self.expected["pods"][pod] = {"template": template, "models": entries, "node": node.name}

    def _fill_templates(self):
        """Manifests name the origin by URL, known only once nginx has its port."""
        for path in (self.root / "manifests").glob("*_models.txt"):
            path.write_text(path.read_text().replace("{origin}", self.origin.url))

    # -- servers ---------------------------------------------------------------------------

    def start(self):
        self.origin.start()
        self.s3.start()
        self.runpod.start()
        self.expected["runpod_url"] = self.runpod.url
        self._fill_templates()
        client = self.s3.client()
        client.create_bucket(Bucket=BUCKET)
        for path in (self.root / "r2").glob("*"):
            client.upload_file(str(path), BUCKET, f"loras/{path.name}")
        self.expected["origin"] = self.origin.url
        self.expected["s3_endpoint"] = self.s3.endpoint
        (self.root / "expected.json").write_text(json.dumps(self.expected, indent=2) + "\n")
        return self

    def stop(self):
        for server in (self.origin, self.s3, self.runpod):
            if server is not None:
                server.stop()

    def env(self):
        """Environment for `molecule`: where the world is, its servers, image and PATH."""
        env = dict(os.environ)
        env.update(
            {
                "AICLIPSE_MOLECULE_WORLD": str(self.root),
                "AICLIPSE_MOLECULE_IMAGE": pod_image(),
                "AICLIPSE_MOLECULE_CHECKOUT": str(REPO),
                "AICLIPSE_MOLECULE_ORIGIN": self.origin.url,
                "AICLIPSE_MOLECULE_S3": self.s3.endpoint,
                "AICLIPSE_MOLECULE_S3_ACCESS_KEY": ACCESS_KEY,
                "AICLIPSE_MOLECULE_S3_SECRET_KEY": SECRET_KEY,
                "AICLIPSE_MOLECULE_HF_TOKEN": HF_TOKEN,
                "AICLIPSE_MOLECULE_COMFYUI_PIN": self.expected["comfyui_head"],
                "CONTAINERS_CONF": str(CONTAINERS_CONF),
                # molecule calls ansible-config/ansible-playbook by name.
                "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "NO_COLOR": "1",
                "PY_COLORS": "0",
                # molecule's create/destroy playbooks loop over the platforms, whose env holds the
                # pod's tokens; without this their item labels print them.
                "MOLECULE_NO_LOG": "true",
            }
        )
        for pod, port in self.fleet_ports.items():
            env[f"AICLIPSE_MOLECULE_PORT_{pod.replace('-', '_').upper()}"] = str(port)
        env["AICLIPSE_MOLECULE_FLEET_KEY"] = self.expected["fleet_key"]
        for pod, settings in FLEET_SETTINGS.items():
            for name, value in settings.items():
                env[f"AICLIPSE_MOLECULE_{pod.replace('-', '_').upper()}_{name}"] = value
        env["AICLIPSE_MOLECULE_FLEET_POD_SECRET"] = FLEET_POD_SECRET
        env["AICLIPSE_MOLECULE_RUNPOD_URL"] = self.runpod.url
        # The fleet's converge runs ansible-playbook as a user does, the key exported.
        env["RUNPOD_API_KEY"] = RUNPOD_KEY
        env["AICLIPSE_MOLECULE_KNOWN_HOSTS"] = self.expected["known_hosts"]
        return env


def run_molecule(args, world, timeout=900):
    """Run `molecule ARGS` in the checkout with the world's environment; return the process."""
    # One stream: molecule's step lines (stderr) stay in order with ansible's output (stdout).
    return subprocess.run(
        [str(VENV_BIN / "molecule"), *args],
        cwd=REPO,
        env=world.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def main(argv):
    """`molecule_world.py -- CMD...`: start a world, run CMD in it (e.g. molecule converge)."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    root = Path(tempfile.mkdtemp(prefix="aiclipse-molecule-world-"))
    world = World(root / "world").build().start()
    try:
        return subprocess.run(argv, cwd=REPO, env=world.env(), check=False).returncode
    finally:
        world.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
