"""Offline Python packaging for tests: hand-made wheels and throw-away venvs.

``make_wheel`` writes a tiny pure-Python wheel (no build backend, no index), so a wheelhouse
of stand-ins (``faketorch==2.0`` playing the pod's torch, ``fakedep==1.0`` a node's
requirement) installs with ``pip install --no-index --find-links <wheelhouse>``.

``make_venv`` copies one template venv (made once per process with ``python3 -m venv``, pip
included) instead of paying for ``ensurepip`` in every test. Call the copy's interpreter
(``<venv>/bin/python -m pip``): its scripts' shebangs still name the template.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

_TEMPLATE = {}


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(wheelhouse, name, version, requires=()):
    """Write ``<name>-<version>-py3-none-any.whl`` into wheelhouse; return its path.

    The package imports as ``name`` and knows its ``__version__``; ``requires`` become
    ``Requires-Dist`` lines.
    """
    wheelhouse = Path(wheelhouse)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: aiclipse-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [_record_line(path, data) for path, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    target = wheelhouse / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return target


def _template_venv():
    if "path" not in _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="aiclipse-venv-template-"))
        subprocess.run(["python3", "-m", "venv", str(root / "venv")], check=True, capture_output=True)
        _TEMPLATE["path"] = root / "venv"
    return _TEMPLATE["path"]


def make_venv(path, install=(), wheelhouse=None):
    """A fresh venv at path (a copy of the template) with ``install`` requirements from
    ``wheelhouse`` (offline). Returns the venv path."""
    path = Path(path)
    shutil.copytree(_template_venv(), path, symlinks=True)
    if install:
        pip_install(path, list(install), wheelhouse)
    return path


def pip_install(venv, requirements, wheelhouse):
    subprocess.run(
        [
            str(Path(venv) / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            *requirements,
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def installed_versions(venv):
    """{distribution name (lower case): version} of what is installed in venv."""
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(Path(venv) / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)
