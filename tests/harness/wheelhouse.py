"""The collection's runtime (ansible-core + boto3, the host venv's versions) as a wheelhouse.

Containers do not trust the TLS proxy this machine reaches PyPI through, so pods and images
install offline from wheels the host downloads once per version set into .cache/wheels.
"""

import fcntl
import hashlib
import shutil
import subprocess
from importlib import metadata

from .paths import CACHE, VENV_BIN


def runtime_wheelhouse():
    """Directory of wheels for ansible-core and boto3 with their dependencies."""
    pins = [f"ansible-core=={metadata.version('ansible-core')}", f"boto3=={metadata.version('boto3')}"]
    key = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12]
    wheels = CACHE / "wheels" / key
    done = wheels / ".complete"
    if done.exists():
        return wheels
    # Test workers (pytest-xdist) ask at once: one downloads, the others wait for it.
    (CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    with open(CACHE / "wheels" / f"{key}.lock", "w") as lock:
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
