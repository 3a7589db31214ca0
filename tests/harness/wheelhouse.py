"""Wheelhouses of the host venv's package versions, for containers that install offline.

Containers do not trust the TLS proxy this machine reaches PyPI through, so pods and images
install offline from wheels the host downloads once per version set into .cache/<name>.
"""

import fcntl
import hashlib
import shutil
import subprocess
from importlib import metadata

from .paths import CACHE, VENV_BIN


def runtime_wheelhouse():
    """Directory of wheels for ansible-core and boto3 with their dependencies."""
    return _wheelhouse("wheels", ["ansible-core", "boto3"])


def updater_wheelhouse():
    """Directory of wheels for pygit2 and GitPython, the libraries ComfyUI's updaters use."""
    return _wheelhouse("wheels-updaters", ["pygit2", "GitPython"])


def _wheelhouse(name, packages):
    pins = [f"{package}=={metadata.version(package)}" for package in packages]
    key = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12]
    wheels = CACHE / name / key
    done = wheels / ".complete"
    if done.exists():
        return wheels
    # Test workers (pytest-xdist) ask at once: one downloads, the others wait for it.
    (CACHE / name).mkdir(parents=True, exist_ok=True)
    with open(CACHE / name / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(wheels, ignore_errors=True)
            wheels.mkdir(parents=True)
            subprocess.run(
                [
                    str(VENV_BIN / "pip"),
                    "download",
                    "-q",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    "-d",
                    str(wheels),
                    *pins,
                ],
                check=True,
                timeout=600,
            )
            done.write_text("\n".join(pins) + "\n")
    return wheels
