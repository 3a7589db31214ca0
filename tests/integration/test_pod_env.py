"""Role aiclipse.comfyui.pod_env: idempotent hook and keys, and real SSH sessions seeing the settings.

Part one runs the role locally five times against files in tmp_path. Part two runs it the way a
pod start does, on a podman container whose environment holds the pod settings (the podman
connection runs modules inside the container with that environment), then logs in over real
sshd on a loopback port.
"""

import json
import os
import subprocess

import pytest

from harness.ansible_run import run_playbook
from harness.paths import CONTAINERS_CONF
from harness import podman as podman_harness
from harness.ssh_pod import SshPod, make_client_key

HOOK_MARKER = "# aiclipse.comfyui pod_env hook"
COMFY_ARGS = "--lowvram --preview-method 'auto' --x \"a b\" $HOME `id` \\ ünï"
SECRETS = {
    "HF_TOKEN": "hf_PodEnvSecret_abcdef123456",
    "CIVITAI_TOKEN": "civitai_PodEnvSecret_654321",
    "R2_ACCESS_KEY_ID": "r2id_PodEnvSecret_777",
    "R2_SECRET_ACCESS_KEY": "r2secret/PodEnv+Secret==888",
}
# A pod name in Latin-1: bytes that are not UTF-8 must reach SSH sessions exactly, at pod start
# (the module's own environment) and over SSH (the pod's /proc/1/environ).
POD_NAME = os.fsdecode(b"caf\xe9-pod")
# Ubuntu's root bashrc starts like this; Debian's has no guard. The hook must beat it.
UBUNTU_GUARD = "case $- in *i*) ;; *) return;; esac"
LEGACY_LINE = "source /etc/rp_environment"


def write_playbook(tmp_path):
    playbook = tmp_path / "pod_env.yml"
    playbook.write_text(
        "- name: Pod start\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: aiclipse.comfyui.pod_env\n"
    )
    return playbook


def assert_no_secret(text):
    for name, value in SECRETS.items():
        assert value not in text, f"the value of {name} leaked into ansible output"


# ---------------------------------------------------------------- part one: local, five runs


def test_five_runs_one_hook_line_and_changed_only_when_something_changed(tmp_path):
    root = tmp_path / "pod"
    bashrc = root / "root" / ".bashrc"
    bashrc.parent.mkdir(parents=True)
    bashrc.write_text(f"{UBUNTU_GUARD}\nalias ll='ls -l'\n{LEGACY_LINE}\n{LEGACY_LINE}\n")
    _key, public_key = make_client_key(tmp_path)
    extra_vars = {
        "pod_env_file": str(root / "etc/rp_environment"),
        "pod_env_hook_files": [str(bashrc)],
        "pod_env_profile_script": str(root / "etc/profile.d/rp_environment.sh"),
        "pod_env_authorized_keys_file": str(root / "root/.ssh/authorized_keys"),
        "pod_env_host_key_dir": str(root / "etc/ssh"),
    }
    # The key twice (once with stray spaces): it must still land once.
    env = dict(SECRETS, COMFY_ARGS=COMFY_ARGS, PUBLIC_KEY=f"{public_key}\n  {public_key}  \n", RUNPOD_POD_NAME=POD_NAME)
    playbook = write_playbook(tmp_path)

    def run(**overrides):
        result = run_playbook(
            playbook,
            extra_vars=extra_vars,
            inventory="localhost,",
            env=dict(env, **overrides),
            args=["-c", "local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
        )
        assert result.rc == 0 and result.failed == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert_no_secret(result.stdout + result.stderr)
        return result.changed

    changes = [run() for _run in range(5)]
    assert changes[0] > 0 and changes[1:] == [0, 0, 0, 0], changes

    lines = bashrc.read_text().splitlines()
    assert sum(HOOK_MARKER in line for line in lines) == 1
    assert HOOK_MARKER in lines[0], "the hook must come before the early return"
    assert LEGACY_LINE not in lines, "the original system's piled-up source lines are removed"
    assert lines[1:] == [UBUNTU_GUARD, "alias ll='ls -l'"], "the rest of the bashrc is kept"
    assert (root / "root/.ssh/authorized_keys").read_text() == public_key + "\n"
    assert b"export RUNPOD_POD_NAME='caf\xe9-pod'\n" in (root / "etc/rp_environment").read_bytes()
    assert sorted(p.name for p in (root / "etc/ssh").glob("ssh_host_*_key")) == [
        "ssh_host_ecdsa_key",
        "ssh_host_ed25519_key",
        "ssh_host_rsa_key",
    ]

    # A hook moved below the early return plus a copy of it: the next run puts one back on top.
    bashrc.write_text("\n".join(lines[1:] + [lines[0], lines[0]]) + "\n")
    assert run() == 1, "one module now fixes the hook (it took two lineinfile tasks)"
    assert bashrc.read_text().splitlines() == lines

    # A new value is exactly one change: the env file.
    assert run(COMFY_ARGS="--cpu") == 1
    sourced = subprocess.run(
        ["bash", "-c", f'. {root}/etc/rp_environment && printf %s "$COMFY_ARGS"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout == "--cpu"


# ---------------------------------------------------------------- part two: a pod over real SSH


class Pod:
    """A container with the pod's settings in its environment, provisioned by the role, with sshd."""

    def __init__(self, image, tmp_path):
        self.tmp_path = tmp_path
        self.key, self.public_key = make_client_key(tmp_path)
        self.container = podman_harness.Container(
            image,
            env=dict(SECRETS, COMFY_ARGS=COMFY_ARGS, PUBLIC_KEY=self.public_key, TEMPLATE_TYPE="flux"),
            # podman stores -e values as JSON text (a byte that is not UTF-8 becomes U+FFFD), so
            # the pod's main process sets the Latin-1 name itself, as a pod's entrypoint may.
            command=["sh", "-c", "RUNPOD_POD_NAME=\"$(printf 'caf\\351-pod')\" exec sleep infinity"],
        )
        self.playbook = write_playbook(tmp_path)
        self.runs = []
        self.sshd = None

    def provision(self):
        """Run the role like pod start does (inside the pod), at -vvv with --diff; return the run."""
        result = run_playbook(
            self.playbook,
            inventory=f"{self.container.name},",
            diff=True,
            verbosity=3,
            json_output=False,
            # At pod start controller and pod are one process, so role defaults that look up
            # the environment (PUBLIC_KEY) see the pod's settings; give the controller the same.
            env={"CONTAINERS_CONF": str(CONTAINERS_CONF), "PUBLIC_KEY": self.public_key},
            args=["-c", "containers.podman.podman", "-e", "ansible_python_interpreter=/usr/bin/python3"],
        )
        assert result.rc == 0 and result.failed == 0, result.stdout[-4000:] + result.stderr[-4000:]
        self.runs.append(result)
        return result


@pytest.fixture(scope="module")
def pod(podman_image, tmp_path_factory):
    podman_harness.remove_leftovers()
    pod = Pod(podman_image, tmp_path_factory.mktemp("pod"))
    pod.container.start()
    try:
        # An Ubuntu-like bashrc with the original system's piled-up lines.
        pod.container.sh(
            f"{{ echo '{UBUNTU_GUARD}'; cat /root/.bashrc; echo '{LEGACY_LINE}'; "
            f"echo '{LEGACY_LINE}'; }} > /tmp/bashrc && mv /tmp/bashrc /root/.bashrc"
        )
        pod.provision()
        pod.provision()
        pod.sshd = SshPod(pod.container, pod.key).start()
        yield pod
    finally:
        pod.container.remove()


@pytest.mark.podman
def test_first_run_changes_second_does_not_and_vvv_shows_no_secret(pod):
    first, second = pod.runs
    assert first.changed > 0 and second.changed == 0, (first.stats, second.stats)
    for run in pod.runs:
        assert_no_secret(run.stdout + run.stderr)
    assert "HF_TOKEN='********'" in first.stdout, "the diff is shown, masked"
    bashrc = pod.container.sh("cat /root/.bashrc").stdout.splitlines()
    assert HOOK_MARKER in bashrc[0] and sum(HOOK_MARKER in line for line in bashrc) == 1
    assert LEGACY_LINE not in bashrc
    keys = pod.container.sh("cat /root/.ssh/authorized_keys").stdout.splitlines()
    assert keys == [pod.public_key]


@pytest.mark.podman
def test_fleet_run_over_ssh_keeps_the_pods_settings(pod):
    """Over SSH the module's environment is the session's; the role reads the pod's main process
    instead. With the file gone the session has no settings at all (the hook has nothing to
    source), so only the pod's own environment can bring back the very same file."""
    before = pod.container.sh("sha256sum /etc/rp_environment").stdout
    pod.container.sh("rm /etc/rp_environment")
    result = run_playbook(
        pod.playbook,
        inventory="127.0.0.1,",
        diff=True,
        json_output=False,
        env={"PUBLIC_KEY": pod.public_key},
        args=[
            "-u",
            "root",
            "--private-key",
            str(pod.key),
            "-e",
            f"ansible_port={pod.sshd.port}",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
            "-e",
            "ansible_ssh_common_args='-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no'",
        ],
    )
    assert result.rc == 0 and result.failed == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert result.changed == 1, result.stdout[-4000:]
    assert pod.container.sh("sha256sum /etc/rp_environment").stdout == before
    assert pod.container.sh("stat -c %a /etc/rp_environment").stdout.strip() == "600"
    assert_no_secret(result.stdout + result.stderr)
    # The pod name that is not UTF-8 came from /proc/1/environ byte for byte.
    out = pod.sshd.ssh('printf "%s" "$RUNPOD_POD_NAME"')
    assert out.returncode == 0 and out.stdout == b"caf\xe9-pod", out


@pytest.mark.podman
def test_non_interactive_ssh_command_sees_the_settings(pod):
    out = pod.sshd.ssh('printf "%s" "$COMFY_ARGS"; printf "|%s" "$TEMPLATE_TYPE" "$-"')
    assert out.returncode == 0, out.stderr
    value, template, flags = out.stdout.decode().split("|")
    assert value == COMFY_ARGS
    assert template == "flux"
    assert "i" not in flags, "this must really be a non-interactive shell"


@pytest.mark.podman
def test_interactive_login_shell_sees_the_settings(pod):
    script = (
        b'shopt -q login_shell && echo "LOGIN=yes"; case $- in *i*) echo "INTERACTIVE=yes";; esac; '
        b'printf "VALUE=<%s>\\n" "$COMFY_ARGS"; exit\n'
    )
    out = pod.sshd.ssh(tty=True, input=script)
    text = out.stdout.decode(errors="replace").replace("\r\n", "\n")
    assert "LOGIN=yes" in text and "INTERACTIVE=yes" in text, text
    assert f"VALUE=<{COMFY_ARGS}>" in text, text


@pytest.mark.podman
def test_environment_file_is_private_to_root(pod):
    mode = pod.container.sh("stat -c '%a %U' /etc/rp_environment").stdout.split()
    assert mode == ["600", "root"]
    denied = pod.container.exec("cat", "/etc/rp_environment", user="nobody", check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # The hook stays quiet for a user who may not read the file.
    other = pod.container.exec(
        "bash", "-c", f"{pod.container.sh('head -n1 /root/.bashrc').stdout}echo ok", user="nobody", check=False
    )
    assert other.stdout.strip() == "ok" and other.stderr == ""


@pytest.mark.podman
def test_hook_after_the_early_return_would_not_work(pod):
    """Control: the same check fails when the hook sits below the guard, so it proves placement."""
    pod.container.sh("sed -n 1p /root/.bashrc > /tmp/hook && sed -i 1d /root/.bashrc && cat /tmp/hook >> /root/.bashrc")
    try:
        out = pod.sshd.ssh('printf "<%s>" "$COMFY_ARGS"')
        assert out.stdout == b"<>"
    finally:
        pod.container.sh("sed -i '$d' /root/.bashrc && cat /tmp/hook /root/.bashrc > /tmp/b && mv /tmp/b /root/.bashrc")


def test_role_argument_specs_match_defaults():
    """Every default in defaults/main.yml is documented in meta/argument_specs.yml, and back."""
    import yaml
    from harness.paths import REPO

    defaults = yaml.safe_load((REPO / "roles/pod_env/defaults/main.yml").read_text())
    specs = yaml.safe_load((REPO / "roles/pod_env/meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
    assert "COMFY_ARGS" in defaults["pod_env_allow_list"]
    assert json.dumps(defaults)  # plain data only
