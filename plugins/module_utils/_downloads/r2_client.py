# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A boto3 S3 client set up the way Cloudflare R2 accepts it, and botocore errors made readable.

Why each setting (all of them were learned the hard way against R2):

* ``region_name='auto'``: R2 has no regions; SigV4 still needs a region string and R2 wants ``auto``.
* ``request_checksum_calculation`` / ``response_checksum_validation = 'when_required'``: boto3
  >= 1.36 adds CRC32 checksum headers to every request by default, and R2 rejects some of them.
* path-style addressing: a custom endpoint (R2 account endpoint, moto, MinIO) rarely has
  wildcard DNS for ``<bucket>.<host>``.
* the classic client only: the CRT transfer client silently ignores ``endpoint_url``, so the
  downloads here are our own ranged GETs on this client (see ranged_download.py).

Credentials are passed to boto3 directly and never put in the environment, argv, or any message.
Where they come from (options, the target's environment or env file) is r2_fetcher.py's business.
"""

import platform
import re
import sys
import traceback

try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

# request_checksum_calculation and response_checksum_validation (see client_config) came with
# botocore 1.36, which boto3 1.36 requires: an older pair fails on the first client it makes.
MIN_SDK_VERSION = (1, 36)

R2_ENDPOINT_TEMPLATE = "https://{account_id}.r2.cloudflarestorage.com"
R2_REGION = "auto"

# Option name -> environment variable a pod sets, for messages.
CREDENTIAL_SOURCES = (
    ("access_key_id", "R2_ACCESS_KEY_ID"),
    ("secret_access_key", "R2_SECRET_ACCESS_KEY"),
)


def _release(version):
    """(major, minor) of a version string such as '1.36.2'; (0, 0) when it cannot be read."""
    match = re.match(r"(\d+)\.(\d+)", str(version or ""))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def sdk_version_problem(boto3_version=None, botocore_version=None):
    """None when boto3 and botocore are new enough for R2, else what to do about it.

    Like ansible's missing_required_lib, the message names the host and its Python, so the
    library can be installed where the module runs. Versions default to the imported ones.
    """
    boto3_version = boto3_version or getattr(boto3, "__version__", None)
    botocore_version = botocore_version or getattr(botocore, "__version__", None)
    if _release(boto3_version) >= MIN_SDK_VERSION and _release(botocore_version) >= MIN_SDK_VERSION:
        return None
    wanted = "{}.{}".format(*MIN_SDK_VERSION)
    return (
        f"the required Python libraries boto3 >= {wanted} and botocore >= {wanted} are too old on {platform.node()}'s Python "
        f"{sys.executable}: found boto3 {boto3_version} and botocore {botocore_version}, which lack request_checksum_calculation (R2 "
        "rejects the checksums older versions send). Upgrade them for that Python, for example "
        f"'{sys.executable} -m pip install \"boto3>={wanted}\"', or point ansible_python_interpreter at a Python "
        "that has them."
    )


class R2ConfigError(Exception):
    """Settings that make any network call pointless (raised before one is made)."""


def resolve_endpoint(account_id=None, endpoint_url=None):
    """The S3 endpoint: an explicit override wins, else the account's R2 endpoint."""
    if endpoint_url:
        if not endpoint_url.startswith(("http://", "https://")):
            raise R2ConfigError(f"endpoint_url {endpoint_url!r} must start with http:// or https://")
        return endpoint_url.rstrip("/")
    if account_id:
        return R2_ENDPOINT_TEMPLATE.format(account_id=account_id.strip())
    raise R2ConfigError(
        "no R2 endpoint: set R2_ACCOUNT_ID (option account_id) or give endpoint_url for another S3-compatible store"
    )


def check_credentials(access_key_id, secret_access_key, env_file=None):
    """Raise R2ConfigError naming every missing credential (and where it comes from)."""
    values = {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
    missing = [f"{env} (option {option})" for option, env in CREDENTIAL_SOURCES if not values[option]]
    if missing:
        raise R2ConfigError(
            f"R2 credentials missing: set {' and '.join(missing)} on the pod (its environment or {env_file or 'its env file'}) or pass them to "
            "the task; nothing was downloaded"
        )


def client_config(max_pool_connections=10, connect_timeout=10, read_timeout=60, max_attempts=5):
    """botocore Config R2 accepts (see module docstring), sized for our thread pool."""
    return Config(
        region_name=R2_REGION,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def make_client(endpoint_url, access_key_id=None, secret_access_key=None, unsigned=False, **config_kwargs):
    """A classic boto3 S3 client for ``endpoint_url``; ``unsigned`` for anonymous stand-ins."""
    config = client_config(**config_kwargs)
    if unsigned:
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
    # An own Session: never picks up ~/.aws profiles or AWS_* variables of the pod by accident.
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=R2_REGION,
        aws_access_key_id=None if unsigned else access_key_id,
        aws_secret_access_key=None if unsigned else secret_access_key,
        config=config,
    )


# S3 error code -> what it means for the person reading the result.
_CODE_MESSAGES = {
    "NoSuchKey": "no such key: s3://{bucket}/{key} does not exist",
    "NoSuchBucket": "no such bucket: {bucket} does not exist at {endpoint}",
    "AccessDenied": "access denied to s3://{bucket}/{key}: the R2 token lacks read permission on this bucket",
    "InvalidAccessKeyId": "bad credentials: {endpoint} does not know this access key id (check R2_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "bad credentials: the secret key does not match the access key id (check R2_SECRET_ACCESS_KEY)",
    "InvalidToken": "bad credentials: the token was rejected by {endpoint}",
    "ExpiredToken": "bad credentials: the token has expired",
    "PreconditionFailed": "s3://{bucket}/{key} changed on the server during the download (ETag differs); run again",
    "InvalidRange": "s3://{bucket}/{key} is shorter than announced (range not satisfiable); run again",
}


def error_code(exc):
    """The S3 error code of a ClientError ('NoSuchKey', '404', ...), else None."""
    if HAS_BOTO3 and isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def describe_error(exc, bucket, key, endpoint):
    """One clear sentence for a failure of a request on s3://bucket/key. Never holds a secret:
    botocore messages carry codes and resource names, not the request's headers."""
    fields = {"bucket": bucket, "key": key, "endpoint": endpoint}
    if HAS_BOTO3 and isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _CODE_MESSAGES:
            return _CODE_MESSAGES[code].format(**fields)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = exc.response.get("Error", {}).get("Message") or ""
        return "s3://{bucket}/{key}: the server answered {status} {code} {detail}".format(
            status=status, code=code, detail=detail, **fields
        ).strip()
    if HAS_BOTO3 and isinstance(exc, EndpointConnectionError):
        return "endpoint unreachable: could not connect to {endpoint}".format(**fields)
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ConnectionError):
        return "endpoint unreachable: connection to {endpoint} failed ({name})".format(
            name=type(exc).__name__, **fields
        )
    if HAS_BOTO3 and isinstance(exc, BotoCoreError):
        return "s3://{bucket}/{key}: {error}".format(error=exc, **fields)
    return "s3://{bucket}/{key}: {name}: {error}".format(name=type(exc).__name__, error=exc, **fields)


def is_bodyless_status_error(exc):
    """HEAD errors have no XML body, so botocore only knows the status ('403', '404');
    a GET of the same object tells NoSuchKey from NoSuchBucket, AccessDenied from bad keys."""
    code = error_code(exc)
    return code is not None and code.isdigit()
