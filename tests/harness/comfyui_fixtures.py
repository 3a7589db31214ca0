"""pytest fixtures for ComfyUI and custom-node installs (registered in tests/conftest.py).

``wheelhouse``: offline wheels faketorch 1.0/2.0 (playing the pod's torch) and fakedep
1.0/2.0. ``pod_venv``: a fresh venv with faketorch 2.0 installed (a copy of one made per
session). ``pip_args``: the pip arguments that keep installs offline, on that wheelhouse.
``comfyui_upstream``: a fresh ComfyUI stand-in repo whose requirements are fakedep==1.0 and
faketorch (unpinned, like upstream's torch line).
"""
import shutil

import pytest

from .git_repos import make_comfyui_repo
from .python_env import make_venv, make_wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheelhouse")
    for name in ("faketorch", "fakedep"):
        for version in ("1.0", "2.0"):
            make_wheel(root, name, version)
    return root


@pytest.fixture(scope="session")
def _pod_venv_template(tmp_path_factory, wheelhouse):
    return make_venv(tmp_path_factory.mktemp("pod-venv-template") / "venv",
                     install=["faketorch==2.0"], wheelhouse=wheelhouse)


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
        f"import sys\nopen({str(marker)!r}, 'a').write(' '.join(sys.argv) + '\\n')\nsys.exit(3)\n")
    return marker


def restore_pip(venv):
    site = next((venv / "lib").glob("python3*/site-packages"))
    shutil.rmtree(site / "pip")
    shutil.move(site / "pip.real", site / "pip")
