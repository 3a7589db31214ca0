"""pytest fixtures for the R2 tests: an auth-enforcing moto server. Loaded by tests/conftest.py."""

import pytest

from .s3_auth import AuthMotoS3


@pytest.fixture(scope="session")
def moto_s3_auth():
    """moto S3 that checks signatures and IAM policies (see harness.s3_auth)."""
    with AuthMotoS3() as server:
        yield server
