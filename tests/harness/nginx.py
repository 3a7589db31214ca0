"""A real nginx on a free loopback port that plays Hugging Face, CivitAI and plain URL origins.

Layout of the served tree (``files_dir``)::

    <name>                       /public/<name>      open, Range supported
                                 /private/<name>     needs ``Authorization: Bearer <token>``
                                 /redirect/<name>    needs the token, then 302 to /signed/<name>
    hf/<org>/<repo>/<path>       /hf/<org>/<repo>/resolve/<rev>/<path>  302 to /signed/hf/...
    civitai/<version id>         /api/download/models/<id>  needs the token, 302 to /signed/...
                                 /signed/<name>      signed storage: any Authorization -> 400

Signed storage is another origin: the redirects point at a second port of the same nginx
(``signed_url``), the way Hugging Face and CivitAI redirect to a CDN host. The access log
records, per request, the method, URI, status, Range, the Authorization header as received
and the port it arrived on, so tests can prove where a token went (and where it did not).
"""
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .net import free_port, wait_for_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    sendfile on;
    log_format probe '$request_method $request_uri $status range="$http_range" auth="$http_authorization" port=$server_port bytes=$body_bytes_sent';
    access_log {state}/access.log probe;
    client_body_temp_path {state}/body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{signed_port};
        server_name origin;
        root {files};
        {limit_rate}
        location /public/ {{
            alias {files}/;
        }}
        location /private/ {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            alias {files}/;
        }}
        location ~ ^/redirect/(?<name>.+)$ {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            return 302 http://127.0.0.1:{signed_port}/signed/$name?X-Amz-Signature=stand-in;
        }}
        location ~ ^/hf/(?<repo>[^/]+/[^/]+)/resolve/(?<rev>[^/]+)/(?<path>.+)$ {{
            # Public repos need no token; a wrong one is refused like the real hub does.
            if ($http_authorization !~ "^(|Bearer {token})$") {{ return 401; }}
            return 302 http://127.0.0.1:{signed_port}/signed/hf/$repo/$path?X-Amz-Signature=stand-in;
        }}
        location ~ ^/api/download/models/(?<id>[0-9]+)$ {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            return 302 http://127.0.0.1:{signed_port}/signed/civitai/$id?X-Amz-Signature=stand-in;
        }}
        location /signed/ {{
            # Signed storage (S3/R2 presigned URLs) rejects a second auth mechanism.
            if ($http_authorization != "") {{ return 400; }}
            alias {files}/;
        }}
    }}
}}
"""


class NginxOrigin:
    """Start with ``with NginxOrigin(files_dir) as origin:``; ``origin.url`` is the base URL."""

    def __init__(self, files_dir, token="test-token-0123456789", limit_rate=None, port=None):
        self.files_dir = Path(files_dir).resolve()
        self.token = token
        self.limit_rate = limit_rate
        self.port = port or free_port()
        self.signed_port = free_port()
        self.state = Path(tempfile.mkdtemp(prefix="aiclipse-nginx-"))
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def signed_url(self):
        """The signed-storage origin the redirects point at (another port: another origin)."""
        return f"http://127.0.0.1:{self.signed_port}"

    @property
    def access_log(self):
        return self.state / "access.log"

    def log_lines(self):
        if not self.access_log.exists():
            return []
        return self.access_log.read_text().splitlines()

    def start(self):
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.state / sub).mkdir(exist_ok=True)
        limit = f"limit_rate {self.limit_rate};" if self.limit_rate else ""
        conf = self.state / "nginx.conf"
        conf.write_text(_CONFIG.format(state=self.state, port=self.port, signed_port=self.signed_port, files=self.files_dir,
                                       token=self.token, limit_rate=limit,
                                       # As root, workers would drop to `nobody` and fail to
                                       # read pytest's 0700 temp dirs.
                                       user="user root;" if os.geteuid() == 0 else ""))
        self.process = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(self.state), "-e", str(self.state / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, process=self.process)
        except Exception as exc:
            log = self.state / "error.log"
            detail = log.read_text() if log.exists() else ""
            self.stop()
            raise RuntimeError(f"nginx did not start ({exc}): {detail}") from None
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def write_file(path, size, seed=0):
    """A deterministic, incompressible-enough file of `size` bytes; returns its sha256."""
    import hashlib
    import random
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = rng.randbytes(min(left, 1 << 20))
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return digest.hexdigest()
