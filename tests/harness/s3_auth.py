"""A moto S3 server that enforces authentication, for the credential and permission errors.

moto checks SigV4 signatures and IAM policies once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests
have been served without checks. Those first requests provision the world: one IAM user
with a real access key that may only read bucket ``readable``, and a second bucket
``forbidden`` it may not read. After that every request answers exactly like S3 does:
``InvalidAccessKeyId`` for an unknown key, ``SignatureDoesNotMatch`` for a wrong secret,
``AccessDenied`` for a bucket the key has no right to.
"""

import json
import os
import subprocess

from .net import wait_for_port
from .paths import VENV_BIN
from .s3 import MotoS3

READABLE_BUCKET = "readable"
FORBIDDEN_BUCKET = "forbidden"
OBJECT_KEY = "loras/private.safetensors"
OBJECT_BODY = b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + b"\x5a" * 4086

# Every request the provisioning below makes, in order; the server checks auth afterwards.
_UNCHECKED_REQUESTS = 7


class AuthMotoS3(MotoS3):
    """``access_key_id`` / ``secret_access_key`` are the reader's credentials."""

    def __init__(self, port=None):
        super().__init__(port)
        self.access_key_id = None
        self.secret_access_key = None

    def start(self):
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_UNCHECKED_REQUESTS))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_for_port(self.port, process=self.process, timeout=30)
        self._provision()
        return self

    def _provision(self):
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        s3 = self.client()
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(
            UserName="reader",
            PolicyName="read-one-bucket",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["s3:GetObject", "s3:ListBucket"],
                            "Resource": [f"arn:aws:s3:::{READABLE_BUCKET}", f"arn:aws:s3:::{READABLE_BUCKET}/*"],
                        }
                    ],
                }
            ),
        )
        for bucket in (READABLE_BUCKET, FORBIDDEN_BUCKET):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=OBJECT_KEY, Body=OBJECT_BODY)
        self.access_key_id = key["AccessKeyId"]
        self.secret_access_key = key["SecretAccessKey"]
