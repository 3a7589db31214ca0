"""site.yml's start stamp: a start that finds nothing changed skips the roles, and every change a
start would repair makes it run them all (real ansible-playbook, nginx origin, git, venv).

The pod is the shape of a real one, under tmp_path: ComfyUI from a stand-in repository, a
custom node, a venv, template workflows, the env file and shell hook, host keys and
authorized_keys, two models downloaded from nginx.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

from harness.ansible_run import run_playbook
from harness.git_repos import make_comfyui_repo, make_node_repo
from harness.nginx import NginxOrigin, write_file
from harness.paths import REPO
from harness.python_env import make_venv
from harness.site_pod import site_vars

SITE = REPO / "site.yml"
HF_TOKEN = "hf_stampTESTtoken0123456789abcdef"
# A task of each role: any of them in a run's output means the roles ran.
ROLE_TASK = "Write the ComfyUI command line for the pod entrypoint"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Pod:
    def __init__(self, root, origin):
        self.root = root
        self.origin = origin
        self.vault = root / "workspace/aiclipse"
        self.models = {"vae.safetensors": "vae", "up.pth": "upscale_models"}
        self.sums = {
            name: write_file(origin.files_dir / name, 50_000 + i, seed=i) for i, name in enumerate(self.models)
        }
        make_comfyui_repo(root / "upstream/ComfyUI")
        self.node = make_node_repo(root / "upstream/ComfyUI-Stamp-Node")
        make_venv(root / "venv")
        (root / "workflows").mkdir()
        (root / "workflows/txt2img.json").write_text('{"nodes": []}\n')
        manifests = root / "manifests"
        manifests.mkdir()
        (manifests / "t_nodes.txt").write_text(f"{self.node.url}|main|stamp|a custom node\n")
        (manifests / "t_models.txt").write_text(
            "".join(
                f"url|{origin.url}/public/{name}|{name}|{subdir}|{self.sums[name]}\n"
                for name, subdir in self.models.items()
            )
        )
        self.env = {"HF_TOKEN": HF_TOKEN, "COMFY_ARGS": "--preview-method auto", "FORCE_WORKFLOW_RESET": "false"}
        self.vars = site_vars(root, "t")

    @property
    def stamp(self):
        return self.vault / ".state/start-stamp.json"

    def model(self, name):
        return self.vault / "models" / self.models[name] / name

    def start(self, check=False, extra_vars=None, verbosity=0, **env):
        """One start; returns (run, whether the roles ran, the stamp check's reasons)."""
        run = run_playbook(
            SITE,
            {**self.vars, **(extra_vars or {})},
            check=check,
            verbosity=verbosity,
            env={**self.env, **env, "ANSIBLE_CALLBACK_FORMAT_PRETTY": "0"},
        )
        assert run.rc == 0 and run.failed == 0, run.stdout[-4000:] + run.stderr[-2000:]
        # The json callback's document starts a line; with -vvvv ansible's own lines come first.
        document = json.loads(run.stdout[run.stdout.rindex("\n{") + 1 if "\n{" in run.stdout else 0 :])
        tasks = {task["task"]["name"]: task for play in document["plays"] for task in play["tasks"]}
        compare = tasks.get("Compare this pod with the stamp of its last clean start", {})
        reasons = next(iter(compare.get("hosts", {}).values()), {}).get("reasons", [])
        return run, any(ROLE_TASK in name for name in tasks), reasons


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    """Provisioned once; every test leaves it provisioned and stamped."""
    root = tmp_path_factory.mktemp("stamp-pod")
    with NginxOrigin(root / "served") as origin:
        pod = Pod(root, origin)
        run, roles_ran, dummy = pod.start()
        assert roles_ran and run.changed > 0
        yield pod


def test_unchanged_start_skips_the_roles_and_leaves_no_secret(pod):
    run, roles_ran, reasons = pod.start()
    assert not roles_ran and run.changed == 0 and reasons == [], reasons
    # Check mode agrees: nothing would change, so nothing needs checking.
    run, roles_ran, dummy = pod.start(check=True)
    assert not roles_ran and run.changed == 0
    assert stat.S_IMODE(pod.stamp.stat().st_mode) == 0o600
    stamp = pod.stamp.read_text()
    assert HF_TOKEN not in stamp and HF_TOKEN not in run.stdout + run.stderr
    recorded = json.loads(stamp)
    assert str(pod.model("vae.safetensors")) in recorded["expected"]
    assert str(pod.vault / "ComfyUI") in recorded["git"]
    assert str(pod.vault / "custom_nodes/ComfyUI-Stamp-Node") in recorded["git"]


@pytest.mark.parametrize(
    "switch",
    [
        {"extra_vars": {"aiclipse_skip_unchanged_start": False}},
        {"FORCE_WORKFLOW_RESET": "true"},
        {"extra_vars": {"custom_nodes_update": True}},
    ],
    ids=["switched-off", "workflow-reset", "node-updates"],
)
def test_what_must_act_at_every_start_runs_the_roles(pod, switch):
    run, roles_ran, dummy = pod.start(**switch)
    assert roles_ran and run.changed == 0
    assert not pod.start()[1]


def _retarget(link, target):
    link.unlink()
    link.symlink_to(target)


def _swap_for_a_link(path):
    """Someone replaces a managed file by a link to a world-readable copy of it."""
    copy = path.with_name(path.name + ".copy")
    copy.write_bytes(path.read_bytes())
    copy.chmod(0o644)
    path.unlink()
    path.symlink_to(copy)


def _private_regular_file(path):
    info = os.lstat(path)
    copy = path.with_name(path.name + ".copy")
    return stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and copy.read_bytes()


def _usable_key(path):
    return (
        subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(path)], capture_output=True, check=False).returncode
        == 0
    )


# (change made between two starts, what the full start must have put right)
DRIFT = {
    "env file swapped for a link to a readable copy": (
        lambda pod: _swap_for_a_link(pod.root / "etc/rp_environment"),
        lambda pod: _private_regular_file(pod.root / "etc/rp_environment"),
    ),
    "authorized_keys swapped for a link": (
        lambda pod: _swap_for_a_link(pod.root / "root/.ssh/authorized_keys"),
        lambda pod: _private_regular_file(pod.root / "root/.ssh/authorized_keys"),
    ),
    "host key emptied": (
        lambda pod: (pod.root / "etc/ssh/ssh_host_ed25519_key").write_bytes(b""),
        lambda pod: _usable_key(pod.root / "etc/ssh/ssh_host_ed25519_key"),
    ),
    "model deleted": (
        lambda pod: pod.model("up.pth").unlink(),
        lambda pod: sha(pod.model("up.pth")) == pod.sums["up.pth"],
    ),
    "model overwritten": (
        lambda pod: pod.model("vae.safetensors").write_bytes(b"truncated"),
        lambda pod: sha(pod.model("vae.safetensors")) == pod.sums["vae.safetensors"],
    ),
    "shortcut retargeted": (
        lambda pod: _retarget(pod.root / "workspace/models", pod.root),
        lambda pod: os.readlink(pod.root / "workspace/models") == str(pod.vault / "models"),
    ),
    "workflow deleted": (
        lambda pod: (pod.vault / "user/default/workflows/txt2img.json").unlink(),
        lambda pod: (pod.vault / "user/default/workflows/txt2img.json").is_file(),
    ),
    "env file edited": (
        lambda pod: (pod.root / "etc/rp_environment").write_text("export X=1\n"),
        lambda pod: "COMFY_ARGS" in (pod.root / "etc/rp_environment").read_text(),
    ),
    "host key deleted": (
        lambda pod: (pod.root / "etc/ssh/ssh_host_ed25519_key").unlink(),
        lambda pod: (pod.root / "etc/ssh/ssh_host_ed25519_key").is_file(),
    ),
    "launch file deleted": (
        lambda pod: (pod.vault / ".state/launch.json").unlink(),
        lambda pod: (pod.vault / ".state/launch.json").is_file(),
    ),
    "custom node removed": (
        lambda pod: shutil.rmtree(pod.vault / "custom_nodes/ComfyUI-Stamp-Node"),
        lambda pod: (pod.vault / "custom_nodes/ComfyUI-Stamp-Node/__init__.py").is_file(),
    ),
    # A main.py started by hand without --base-directory saves into ComfyUI's own folders.
    "output saved inside ComfyUI's checkout": (
        lambda pod: (pod.vault / "ComfyUI/output/by-hand.png").write_bytes(b"png"),
        lambda pod: (
            (pod.vault / "output/by-hand.png").read_bytes() == b"png"
            and not (pod.vault / "ComfyUI/output/by-hand.png").exists()
        ),
    ),
    "model added to the user manifest": (
        lambda pod: (pod.vault / "models_manifest.txt").write_text(
            f"url|{pod.origin.url}/public/up.pth|extra.pth|loras|{pod.sums['up.pth']}\n"
        ),
        lambda pod: sha(pod.vault / "models/loras/extra.pth") == pod.sums["up.pth"],
    ),
    "venv's requirements record deleted": (
        lambda pod: (pod.root / "venv/.aiclipse-state/comfyui.json").unlink(),
        lambda pod: (pod.root / "venv/.aiclipse-state/comfyui.json").is_file(),
    ),
}


@pytest.mark.parametrize("drift", list(DRIFT))
def test_a_change_between_starts_runs_the_roles_which_repair_it(pod, drift):
    change, repaired = DRIFT[drift]
    change(pod)
    run, roles_ran, reasons = pod.start()
    assert roles_ran and reasons, f"{drift}: the start skipped the roles"
    assert repaired(pod), f"{drift}: not repaired\n{run.stdout[-3000:]}"
    # The repaired pod is stamped again: the start after that skips the roles.
    dummy, roles_ran, reasons = pod.start()
    assert not roles_ran, f"{drift}: the start after the repair ran the roles: {reasons}"


def test_a_new_setting_runs_the_roles(pod):
    run, roles_ran, reasons = pod.start(COMFY_ARGS="--lowvram")
    assert roles_ran and "inputs changed" in reasons[0]
    assert "--lowvram" in json.loads((pod.vault / ".state/launch.json").read_text())["argv"]
    assert not pod.start(COMFY_ARGS="--lowvram")[1]
    assert pod.start()[1]  # and back


def test_the_stamp_and_its_tasks_show_no_token_at_any_verbosity(pod):
    for token in ("hf_stampVERBOSEtoken0123456789", HF_TOKEN):
        # A new token is a new input: the first start is a full one, the second the short way.
        for expect_roles in (True, False):
            run, roles_ran, dummy = pod.start(verbosity=4, HF_TOKEN=token)
            assert roles_ran is expect_roles
            assert token not in run.stdout + run.stderr
            assert token not in pod.stamp.read_text()


def test_a_stamp_that_cannot_be_written_does_not_fail_the_start(pod):
    pod.stamp.unlink()
    pod.stamp.mkdir()
    try:
        run, roles_ran, dummy = pod.start()
        assert roles_ran and "The start stamp was not written" in run.stdout
        run, roles_ran, reasons = pod.start()
        assert roles_ran and "no stamp" in reasons[0]
    finally:
        pod.stamp.rmdir()
    assert pod.start()[1] and not pod.start()[1]


def test_a_lock_that_cannot_be_written_fails_the_start_and_is_not_stamped(pod):
    """The pod lock is part of a clean start: a failed pod_lock is a failed play, never a green
    one that stamps the start so the next one skips the roles with no lock written."""
    lock = pod.vault / ".state/pod.lock.yml"
    kept = lock.read_bytes()
    lock.unlink()
    lock.mkdir()  # the write cannot replace a directory
    pod.stamp.unlink()  # a full start, so the lock task runs
    try:
        run = run_playbook(SITE, pod.vars, env={**pod.env, "ANSIBLE_CALLBACK_FORMAT_PRETTY": "0"})
        assert run.rc != 0 and run.host_stats().get("failures") == 1, run.stdout[-4000:]
        assert f"cannot write {lock}" in run.stdout, run.stdout[-4000:]
        assert not pod.stamp.exists()
    finally:
        lock.rmdir()
        lock.write_bytes(kept)
    assert pod.start()[1] and not pod.start()[1]


def test_a_start_with_a_failed_node_is_not_stamped(pod):
    manifest = pod.vault / "custom_nodes.txt"
    manifest.write_text(f"{pod.root.as_uri()}/no-such-node|main|stamp|gone\n")
    try:
        run, roles_ran, dummy = pod.start()
        assert roles_ran and "no-such-node" in run.stdout
        assert not pod.stamp.exists()
        # What the fleet summary reads to report the pod "provisioned with failures".
        document = json.loads(run.stdout[run.stdout.rindex("\n{") + 1 if "\n{" in run.stdout else 0 :])
        noted = next(
            task["hosts"]["localhost"]
            for play in document["plays"]
            for task in play["tasks"]
            if task["task"]["name"] == "Note what kept this start from being clean"
        )
        (failure,) = noted["ansible_facts"]["__aiclipse_start_failures"]
        assert failure.startswith("custom node no-such-node: git clone failed"), failure
        run, roles_ran, reasons = pod.start()
        assert roles_ran and "no stamp" in reasons[0]
    finally:
        manifest.unlink()
    assert pod.start()[1] and not pod.start()[1]


def test_a_background_download_that_failed_is_retried_at_the_next_start(pod, tmp_path):
    served = pod.origin.files_dir / "late.pth"
    (pod.vault / "models_manifest.txt").write_text(f"url|{pod.origin.url}/public/late.pth|late.pth|loras\n")
    env = {"ANSIBLE_ASYNC_DIR": str(tmp_path / "async")}
    try:
        # In the background the start ends at once and is stamped with the model still to come;
        # the download then fails (404). The next start finds it missing and runs the roles.
        run, roles_ran, dummy = pod.start(extra_vars={"models_foreground": False}, **env)
        assert roles_ran and pod.stamp.exists()
        run, roles_ran, reasons = pod.start(extra_vars={"models_foreground": False}, **env)
        assert roles_ran and any("late.pth: not there yet" in line for line in reasons), reasons
        write_file(served, 1000, seed=9)
        run, roles_ran, dummy = pod.start()
        assert roles_ran and (pod.vault / "models/loras/late.pth").is_file()
        assert not pod.start()[1]
    finally:
        (pod.vault / "models_manifest.txt").unlink()
        served.unlink(missing_ok=True)
    assert pod.start()[1]
