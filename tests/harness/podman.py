"""Podman test containers on a debootstrap base image, all on the host network.

The base image is Debian bookworm built with debootstrap and ``podman import``; its tag holds a
hash of the recipe below, so it is built once per machine and rebuilt only when the recipe
changes. Podman settings this machine needs (runc, lowered ulimits) come from the project's
containers.conf via CONTAINERS_CONF.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

from .paths import CACHE, CONTAINERS_CONF

LABEL = "aiclipse-test"
SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = [
    "python3",
    "python3-venv",
    "aria2",
    "openssh-server",
    "openssh-client",
    "git",
    "rsync",
    "ca-certificates",
    "procps",
    "sudo",
    "iproute2",
]
IMAGE_NAME = "localhost/aiclipse-test-base"
# Bump when the way the rootfs is made changes (not only the package list).
RECIPE_VERSION = "1"


def podman_env():
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def podman(*args, check=True, capture=True, input=None, timeout=600):
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        check=check,
        text=True,
        capture_output=capture,
        input=input,
        timeout=timeout,
    )


def recipe_hash():
    recipe = json.dumps([RECIPE_VERSION, SUITE, sorted(PACKAGES)]).encode()
    return hashlib.sha256(recipe).hexdigest()[:12]


def base_image():
    """Tag of the base image, building it when this recipe has not been built on this machine."""
    tag = f"{IMAGE_NAME}:{recipe_hash()}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    CACHE.mkdir(parents=True, exist_ok=True)
    # Test workers (pytest-xdist) start at once: one builds, the others wait for its image.
    with open(CACHE / "base-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman("image", "exists", tag, check=False).returncode == 0:
            return tag
        return _build_base_image(tag)


def _build_base_image(tag):
    debs = CACHE / "debootstrap-debs"
    debs.mkdir(exist_ok=True)
    work = tempfile.mkdtemp(prefix="aiclipse-rootfs-", dir=CACHE)
    try:
        rootfs = os.path.join(work, "rootfs")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--cache-dir={debs}",
                "--include=" + ",".join(PACKAGES),
                SUITE,
                rootfs,
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        # Host keys and machine-id are made per container, never baked into the image.
        for stale in ("etc/ssh/ssh_host_*", "etc/machine-id"):
            subprocess.run(f"rm -f {rootfs}/{stale}", shell=True, check=True)
        subprocess.run(["rm", "-rf", f"{rootfs}/var/cache/apt/archives", f"{rootfs}/var/lib/apt/lists"], check=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "--change", "CMD=/bin/bash", "-", tag],
            stdin=tar.stdout,
            env=podman_env(),
            check=True,
            capture_output=True,
        )
        tar.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tag


class Container:
    """A running container (``sleep infinity``) to exec into; removed on exit.

    Labelled ``LABEL=<pid of the test process>``, so cleanup only sweeps containers of runs that
    are gone (see remove_leftovers); a subclass may use its own LABEL to be swept separately.
    """

    LABEL = LABEL

    def __init__(self, image, name=None, volumes=(), env=None, command=("sleep", "infinity"), extra_args=()):
        self.image = image
        self.name = name or f"aiclipse-test-{uuid.uuid4().hex[:10]}"
        self.volumes = list(volumes)
        self.env = dict(env or {})
        self.command = list(command)
        self.extra_args = list(extra_args)

    def start(self):
        # The label names the test process, so cleanup only touches containers whose run is gone.
        args = ["run", "-d", "--name", self.name, "--label", f"{self.LABEL}={os.getpid()}", "--network", "host"]
        for src, dst in self.volumes:
            args += ["-v", f"{src}:{dst}"]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        podman(*args, *self.extra_args, self.image, *self.command)
        return self

    def exec(self, *cmd, check=True, user=None, input=None, env=None):
        args = ["exec"]
        if input is not None:
            args.append("-i")
        if user:
            args += ["--user", user]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return podman(*args, self.name, *cmd, check=check, input=input)

    def sh(self, script, check=True, **kwargs):
        return self.exec("bash", "-c", script, check=check, **kwargs)

    def copy_in(self, src, dst):
        podman("cp", str(src), f"{self.name}:{dst}")

    def testinfra(self):
        import testinfra

        return testinfra.get_host(f"podman://{self.name}")

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(label=LABEL, own=False):
    """Containers a killed earlier run left behind: labelled by a test process that is gone.

    Containers of runs still alive (another developer's session, a parallel run) are left alone;
    with ``own=True`` this process's containers go too.
    """
    out = podman(
        "ps",
        "-a",
        "--filter",
        f"label={label}",
        "--format",
        f'{{{{.ID}}}} {{{{index .Labels "{label}"}}}}',
        check=False,
    ).stdout
    stale = []
    for line in out.splitlines():
        cid, _sep, owner = line.partition(" ")
        mine = owner == str(os.getpid())
        if not (own and mine) and owner.isdigit() and owner != "1" and _pid_alive(int(owner)):
            continue
        stale.append(cid)
    if stale:
        podman("rm", "-f", "-t", "0", *stale, check=False)
