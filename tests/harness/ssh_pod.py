"""Real sshd inside a test container, reached on a free loopback port with a throwaway key.

The container shares the host network, so sshd listens on 127.0.0.1:<port> the way a fleet pod
is reached at ip:port. The client key is made per test and never leaves its tmp directory.
"""

import subprocess

from .net import free_port, wait_for_port


def ssh_argv(key, port):
    """`ssh` to root@127.0.0.1 on `port` with `key` alone: no config file, no prompt, no host key
    kept (a test pod's key is new every run); append "root@127.0.0.1" and the command."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentitiesOnly=yes",
    ]


def make_client_key(directory):
    """A fresh ed25519 key pair; returns (private key path, public key line)."""
    key = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aiclipse-test", "-f", str(key)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return key, (directory / "id_ed25519.pub").read_text().strip()


class SshPod:
    """sshd started in `container` (it needs host keys first); run commands as root over ssh."""

    def __init__(self, container, key):
        self.container = container
        self.key = key
        self.port = free_port()

    def start(self):
        self.container.sh(
            f"mkdir -p /run/sshd && /usr/sbin/sshd -p {self.port} -o ListenAddress=127.0.0.1 "
            f"-o PermitRootLogin=prohibit-password -o PasswordAuthentication=no"
        )
        wait_for_port(self.port)
        return self

    def ssh(self, *command, tty=False, input=None, timeout=30):
        """Run ssh as a user would; with no command and tty=True it is an interactive login."""
        args = ssh_argv(self.key, self.port)
        if tty:
            args.append("-tt")
        return subprocess.run(
            args + ["root@127.0.0.1", *command], capture_output=True, input=input, timeout=timeout, check=False
        )
