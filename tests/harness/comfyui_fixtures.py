"""pytest fixtures for ComfyUI and custom-node installs (registered in tests/conftest.py).

``wheelhouse``: offline wheels faketorch 1.0/2.0 (playing the pod's torch) and fakedep
1.0/2.0. ``pod_venv``: a fresh venv with faketorch 2.0 installed (a copy of one made per
session). ``pip_args``: the pip arguments that keep installs offline, on that wheelhouse.
``comfyui_upstream``: a fresh ComfyUI stand-in repo whose requirements are fakedep==1.0 and
faketorch (unpinned, like upstream's torch line).

``StandInClient(url)`` asks a serving stand-in ComfyUI (tests/harness/fake_comfyui_main.py)
what ComfyUI would list: model folders and files, the workflows of
``/api/userdata?dir=workflows``, custom node classes. ``running_standin(argv, cwd)`` starts one
from a launch file's argv on a free loopback port and stops it afterwards.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from .git_repos import make_comfyui_repo
from .net import free_port, wait_for_port
from .processes import stop_process
from .python_env import make_venv, make_wheel


class StandInClient:
    """What a serving ComfyUI (the stand-in) lists, through ComfyUI's own HTTP routes."""

    def __init__(self, url, fetch=None):
        self.url = url.rstrip("/")
        # fetch(url) -> (status, body text); default: urllib from this host.
        self._fetch = fetch or _urllib_fetch

    def get(self, route):
        status, body = self._fetch(self.url + route)
        if status != 200:
            raise AssertionError(f"GET {route}: HTTP {status} {body[:200]}")
        return json.loads(body)

    def model_folders(self):
        return self.get("/api/models")

    def models(self, folder):
        return self.get(f"/api/models/{folder}")

    def workflows(self):
        """What ComfyUI's workflow browser asks for: every file under the user's workflows."""
        return sorted(self.get("/api/userdata?dir=workflows&recurse=true&split=false&full_info=false"))

    def node_classes(self):
        return self.get("/api/object_info")

    def standin(self):
        return self.get("/api/aiclipse/standin")

    def custom_nodes(self):
        return sorted(entry["module"] for entry in self.standin()["custom_nodes"])


def _urllib_fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def with_port(argv, port, listen="127.0.0.1"):
    """argv with --listen/--port replaced (the launch file names the pod's 0.0.0.0:8188)."""
    out = list(argv)
    for flag, value in (("--listen", listen), ("--port", str(port))):
        if flag in out[:-1]:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


@contextlib.contextmanager
def running_standin(argv, cwd, env=None):
    """Start the stand-in ComfyUI with argv (a launch file's) on a free loopback port."""
    port = free_port()
    fd, record = tempfile.mkstemp(prefix="standin-argv-", suffix=".json")  # never inside the checkout
    os.close(fd)
    proc = subprocess.Popen(
        with_port(argv, port),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {}), "FAKE_COMFYUI_SERVE": "1", "FAKE_COMFYUI_ARGV_FILE": record},
    )
    try:
        wait_for_port(port, process=proc)
        yield StandInClient(f"http://127.0.0.1:{port}")
    finally:
        stop_process(proc, signal.SIGINT)
        if os.path.exists(record):
            os.unlink(record)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheelhouse")
    for name in ("faketorch", "fakedep"):
        for version in ("1.0", "2.0"):
            make_wheel(root, name, version)
    return root


@pytest.fixture(scope="session")
def _pod_venv_template(tmp_path_factory, wheelhouse):
    return make_venv(
        tmp_path_factory.mktemp("pod-venv-template") / "venv", install=["faketorch==2.0"], wheelhouse=wheelhouse
    )


@pytest.fixture
def pod_venv(tmp_path, _pod_venv_template):
    """A venv of its own for the test, faketorch 2.0 installed (run it as venv/bin/python)."""
    return shutil.copytree(_pod_venv_template, tmp_path / "venv", symlinks=True)


@pytest.fixture
def pip_args(wheelhouse):
    return ["--no-index", "--find-links", str(wheelhouse)]


@pytest.fixture
def comfyui_upstream(tmp_path):
    return make_comfyui_repo(tmp_path / "upstream" / "ComfyUI", requirements=["fakedep==1.0", "faketorch"])


def trap_pip(venv):
    """Replace the venv's pip by one that only records that it ran (and fails). Returns the
    marker file pip would create; ``restore_pip(venv)`` undoes it."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    shutil.move(site / "pip", site / "pip.real")
    (site / "pip").mkdir()
    marker = venv / "pip-was-run"
    (site / "pip" / "__init__.py").write_text("")
    (site / "pip" / "__main__.py").write_text(
        f"import sys\nopen({str(marker)!r}, 'a').write(' '.join(sys.argv) + '\\n')\nsys.exit(3)\n"
    )
    return marker


def restore_pip(venv):
    site = next((venv / "lib").glob("python3*/site-packages"))
    shutil.rmtree(site / "pip")
    shutil.move(site / "pip.real", site / "pip")
