"""moto in server mode on a free loopback port: a real S3 wire protocol endpoint for boto3.

The server runs as its own process (like R2 would be remote), logging every request so tests
can count GETs: ``server.requests("GET", "/bucket/key")``.
"""

import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .net import free_port, wait_for_port
from .processes import stop_process
from .paths import VENV_BIN

ACCESS_KEY = "AKIATESTHARNESS00000"
SECRET_KEY = "harness-secret-key-do-not-leak-0000000000"

_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')
# werkzeug colours every non-200 request line (206 ranged GETs, 404s) with ANSI escapes.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class MotoS3:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.state = Path(tempfile.mkdtemp(prefix="aiclipse-moto-"))
        self.log_path = self.state / "moto.log"
        self.process = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.port, process=self.process, timeout=30)
        return self

    def stop(self):
        stop_process(self.process, signal.SIGTERM)
        shutil.rmtree(self.state, ignore_errors=True)

    def client(self, **config):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def requests(self, method=None, path_prefix=None):
        """(method, path, status) of every request served so far, optionally filtered."""
        out = []
        for line in _ANSI.sub("", self.log_path.read_text(errors="replace")).splitlines():
            match = _REQUEST.search(line)
            if not match:
                continue
            if method and match["method"] != method:
                continue
            if path_prefix and not match["path"].startswith(path_prefix):
                continue
            out.append((match["method"], match["path"], int(match["status"])))
        return out

    def reset(self):
        """Drop every bucket (moto's own reset API) so a test starts from nothing."""
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10
        ).read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
