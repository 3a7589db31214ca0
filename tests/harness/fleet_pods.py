"""A fleet of pods for tests and the fleet benchmark, reached the way a user's RunPod fleet is.

Each pod is a podman container of the harness base image on the host network, with its
settings in its environment (as RunPod starts a pod), a fresh /venv and sshd on its own loopback
port. The RunPod API stand-in (harness.runpod_api) lists them; ``fleet.yml`` finds them through
the aiclipse.comfyui.runpod inventory plugin and pins their host keys in a known_hosts file of
the run, exactly as with inventories/runpod.

    world = FleetWorld(root).build(models=1, model_size=MIB)   # repos, manifests, model files
    with world.serving():                                      # nginx origin for the models
        pod = FleetPod.start(image, world, key_line, {"TEMPLATE_TYPE": "fleet"})
        api = RunPodApi(KEY, [pod.api_record("pod-a")]).start()
        inventory = world.inventory(root / "inv", api.url, key, root / "known_hosts")
"""

import contextlib
import json
import shutil
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from . import podman as podman_harness
from .git_repos import make_comfyui_repo, make_node_repo
from .nginx import NginxOrigin, write_file
from .paths import REPO
from .runpod_api import RunPodApi, runpod_pod
from .ssh_pod import SshPod, make_client_key

TEMPLATE = "fleet"
# The template whose models manifest has a line the parser refuses: the models role fails.
BROKEN_TEMPLATE = "broken-fleet"


class FleetContainer(podman_harness.Container):
    """Fleet pods carry their own label: test and benchmark sweeps each clean up only theirs."""

    LABEL = "aiclipse-fleet-pod"


class FleetWorld:
    """What every pod reads (mounted read-only at the same path): repos, manifests, models."""

    def __init__(self, root):
        self.root = root
        self.manifests = root / "manifests"
        self.served = root / "served"
        self.files = []
        self.origin = None

    def build(self, models=1, model_size=1024 * 1024):
        make_comfyui_repo(self.root / "upstream/ComfyUI")
        node = make_node_repo(self.root / "upstream/ComfyUI-Fleet-Node")
        self.manifests.mkdir(parents=True)
        (self.manifests / f"{TEMPLATE}_nodes.txt").write_text(f"{node.url}|main|fleet|a custom node\n")
        (self.manifests / f"{BROKEN_TEMPLATE}_models.txt").write_text(
            "# a typo in the source column\nhugginface|org/repo|x.safetensors|vae\n"
        )
        for number in range(models):
            name = f"fleet-{number}.safetensors"
            self.files.append((name, write_file(self.served / name, model_size, seed=number)))
        return self

    @contextlib.contextmanager
    def serving(self):
        """The nginx origin of the models while the block runs (the manifest names its URL)."""
        self.served.mkdir(parents=True, exist_ok=True)
        with NginxOrigin(self.served) as origin:
            self.origin = origin
            (self.manifests / f"{TEMPLATE}_models.txt").write_text(
                "".join(f"url|{origin.url}/public/{name}|{name}|checkpoints|{sha}\n" for name, sha in self.files)
            )
            try:
                yield origin
            finally:
                self.origin = None

    def site_vars(self):
        """Where the roles find this world; the pod's template comes from its own settings."""
        return {
            "models_manifests_dir": str(self.manifests),
            "models_foreground": True,
            "custom_nodes_manifests_dir": str(self.manifests),
            "comfyui_repo_url": str(self.root / "upstream/ComfyUI"),
            "comfyui_baked_dir": "",
            "comfyui_venv": "/venv",
        }

    def inventory(self, directory, api_url, key, known_hosts, extra_vars=None):
        """An inventory directory like inventories/runpod, its group_vars included, against the
        stand-in at api_url, with the run's client key and its own known_hosts (pods here are
        new per run on reused loopback ports)."""
        group_vars = directory / "group_vars" / "pods"
        group_vars.mkdir(parents=True, exist_ok=True)
        (directory / "runpod.yml").write_text(json.dumps({"plugin": "aiclipse.comfyui.runpod", "api_url": api_url}))
        # Files of a group_vars directory load in name order, a later one winning.
        shutil.copy(REPO / "inventories/runpod/group_vars/pods.yml", group_vars / "00-shipped.yml")
        (group_vars / "10-world.json").write_text(
            json.dumps(
                {
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_ssh_private_key_file": str(key),
                    "fleet_known_hosts_file": str(known_hosts),
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new "
                    "-o UserKnownHostsFile={{ fleet_known_hosts_file }} -o IdentitiesOnly=yes",
                    **self.site_vars(),
                    **(extra_vars or {}),
                }
            )
        )
        return directory


class FleetPod:
    """One running pod: its container and its sshd port."""

    def __init__(self, container, ssh):
        self.container = container
        self.ssh = ssh

    @property
    def port(self):
        return self.ssh.port

    @classmethod
    def start(cls, image, world, key_line, settings=None, container_class=FleetContainer):
        container = container_class(
            image,
            name=f"aiclipse-fleet-{uuid.uuid4().hex[:8]}",
            env=settings or {},
            extra_args=["-v", f"{world.root}:{world.root}:ro"],
        ).start()
        try:
            container.sh(
                "ssh-keygen -A >/dev/null && mkdir -p /root/.ssh && chmod 700 /root/.ssh && "
                f"printf '%s\\n' '{key_line}' > /root/.ssh/authorized_keys && python3 -m venv /venv"
            )
            ssh = SshPod(container, None).start()
        except BaseException:
            container.remove()
            raise
        return cls(container, ssh)

    def api_record(self, name, settings=None, pod_id=None):
        """This pod as RunPod's API lists it."""
        return runpod_pod(pod_id or f"id-{name}", name, ssh_port=self.port, env=settings or {})

    def host_key(self, kind="ed25519"):
        return self.container.sh(f"cat /etc/ssh/ssh_host_{kind}_key.pub").stdout.split()[1]

    def replace_host_keys(self):
        """New host keys, as a rebuilt pod (or an impostor) at the same address would have; the
        old pod's connections die with it."""
        self.stop_sshd()
        self.container.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null")
        self.start_sshd()

    def stop_sshd(self):
        """sshd and every session it holds (a connection master's too) go; the port closes."""
        self.container.sh("pkill -x sshd || true")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.1)
        raise TimeoutError(f"sshd of {self.container.name} still listens on {self.port}")

    def start_sshd(self):
        self.ssh.start()

    def remove(self):
        self.container.remove()


@contextlib.contextmanager
def running_fleet(root, image, names, api_key, models=1, model_size=256 * 1024):
    """Pods `names` of TEMPLATE started side by side, listed by a RunPod API stand-in that
    answers `api_key`, and the inventory fleet.yml reads; removed afterwards. Yields a dict:
    pods (name -> FleetPod), api, inventory, known_hosts, retry (the retry file's path), world, root."""
    podman_harness.remove_leftovers(FleetContainer.LABEL)
    world = FleetWorld(root / "world").build(models=models, model_size=model_size)
    key, key_line = make_client_key(root)
    pods = {}
    try:
        with world.serving():
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                started = pool.map(
                    lambda _name: FleetPod.start(image, world, key_line, {"TEMPLATE_TYPE": TEMPLATE}), names
                )
                pods.update(zip(names, started))
            records = [pod.api_record(name, {"TEMPLATE_TYPE": TEMPLATE}) for name, pod in pods.items()]
            with RunPodApi(api_key, records) as api:
                known_hosts = root / "known_hosts"
                inventory = world.inventory(root / "inventory", api.url, key, known_hosts, {"fleet_connect_timeout": 5})
                yield {
                    "pods": pods,
                    "api": api,
                    "inventory": inventory,
                    "known_hosts": known_hosts,
                    "retry": root / "fleet.retry",
                    "world": world,
                    "root": root,
                }
    finally:
        for pod in pods.values():
            pod.remove()
