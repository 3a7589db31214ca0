"""pytest fixtures over the harness pieces. Loaded by tests/conftest.py."""

import shutil

import pytest

from . import podman as podman_harness
from .nginx import NginxOrigin, write_file
from .s3 import MotoS3


class ServedTree:
    """A directory of served files and their catalog: relative name -> (size, sha256)."""

    def __init__(self, root, catalog):
        self.root = root
        self.catalog = catalog


@pytest.fixture(scope="session")
def origin_files(tmp_path_factory):
    """A served tree with a few known files for the session's origin."""
    root = tmp_path_factory.mktemp("origin-files")
    catalog = {}
    for name, size in (("small.bin", 4096), ("medium.bin", 3 * 1024 * 1024 + 17)):
        catalog[name] = (size, write_file(root / name, size, seed=len(name)))
    catalog["hf/org/repo/split_files/vae/model.safetensors"] = (
        200_000,
        write_file(root / "hf/org/repo/split_files/vae/model.safetensors", 200_000, 7),
    )
    catalog["civitai/12345"] = (150_000, write_file(root / "civitai/12345", 150_000, 8))
    return ServedTree(root, catalog)


@pytest.fixture(scope="session")
def nginx_origin(origin_files):
    """An nginx origin on a free loopback port (see harness.nginx for its paths)."""
    with NginxOrigin(origin_files.root) as origin:
        origin.catalog = origin_files.catalog
        yield origin


@pytest.fixture
def make_origin(tmp_path):
    """Factory for a private origin (own files, token, limit_rate); stopped after the test."""
    started = []

    def _make(files_dir=None, **kwargs):
        origin = NginxOrigin(files_dir or tmp_path / "served", **kwargs)
        origin.files_dir.mkdir(parents=True, exist_ok=True)
        started.append(origin.start())
        return origin

    yield _make
    for origin in started:
        origin.stop()


@pytest.fixture(scope="session")
def moto_s3():
    """moto's S3 server on a free loopback port, shared by the session."""
    with MotoS3() as server:
        yield server


@pytest.fixture
def s3(moto_s3):
    """The session's S3 server, emptied before the test."""
    moto_s3.reset()
    return moto_s3


@pytest.fixture(scope="session")
def podman_image():
    """Tag of the debootstrap base image (built once per recipe, cached by podman)."""
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: run `make setup` (scripts/setup.sh)")
    podman_harness.remove_leftovers()
    yield podman_harness.base_image()
    podman_harness.remove_leftovers()


@pytest.fixture
def pod_container(podman_image):
    """Factory: start a container on the base image (host network); removed after the test."""
    started = []

    def _start(**kwargs):
        container = podman_harness.Container(kwargs.pop("image", podman_image), **kwargs)
        started.append(container.start())
        return container

    yield _start
    for container in started:
        container.remove()
