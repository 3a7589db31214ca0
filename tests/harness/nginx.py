"""A real nginx on a free loopback port that plays Hugging Face, CivitAI and plain URL origins.

Layout of the served tree (``files_dir``)::

    <name>                       /public/<name>      open, Range supported
                                 /private/<name>     needs ``Authorization: Bearer <token>``
                                 /basic/<name>       needs HTTP Basic ``basic_user:basic_password``
                                 /query/<name>       needs ``?token=<token>``
                                 /redirect/<name>    needs the token, then 302 to /signed/<name>
    hf/<org>/<repo>/<path>       /hf/<org>/<repo>/resolve/<rev>/<path>  302 to /signed/hf/...
                                 carrying X-Linked-Etag ("<sha256>", quoted) and X-Linked-Size,
                                 as the hub's redirect for an LFS file does
    civitai/<version id>         /api/download/models/<id>  needs the token, 302 to /signed/...
                                 /api/v1/model-versions/<id>  the model-version document (JSON,
                                 CivitAI's shape: files[] with hashes.SHA256 in upper-case hex,
                                 sizeKB, type, metadata.format, downloadUrl, primary)
                                 /signed/<name>      signed storage: any Authorization -> 400

What the stand-ins say about a file is computed from the served tree when nginx starts (and at
``refresh()``); ``hf_linked`` ({"org/repo/path": (sha256, size)}) and ``civitai_sha256``
({version id: sha256}) make them say something else, e.g. the sha256 of the real file while a
truncated one is served.

Signed storage is another origin: the redirects point at a second port of the same nginx
(``signed_url``), the way Hugging Face and CivitAI redirect to a CDN host. The access log
records, per request, the method, URI, status, Range, the Authorization header as received
and the port it arrived on, so tests can prove where a token went (and where it did not).
"""

import base64
import hashlib
import json
import os
import shutil
import time
import signal
import subprocess
import tempfile
from pathlib import Path

from .net import free_port, wait_for_port
from .processes import stop_process

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
    # Keys are repo/path of the served files: room for long ones whatever the CPU's cache line.
    map_hash_bucket_size 256;
    map_hash_max_size 4096;
    map "$repo/$path" $hf_linked_etag {{ default ""; include {state}/hf_etag.map; }}
    map "$repo/$path" $hf_linked_size {{ default ""; include {state}/hf_size.map; }}
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
        location /basic/ {{
            # An origin that takes HTTP Basic auth, as a URL's user:password@ gives it.
            if ($http_authorization != "Basic {basic}") {{ return 401; }}
            alias {files}/;
        }}
        location /query/ {{
            # An origin that takes the token as a query parameter (CivitAI's ?token=).
            if ($arg_token != "{token}") {{ return 401; }}
            alias {files}/;
        }}
        location ~ ^/redirect/(?<name>.+)$ {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            return 302 http://127.0.0.1:{signed_port}/signed/$name?X-Amz-Signature=stand-in;
        }}
        location ~ ^/hf/(?<repo>[^/]+/[^/]+)/resolve/(?<rev>[^/]+)/(?<path>.+)$ {{
            # Public repos need no token; a wrong one is refused like the real hub does.
            if ($http_authorization !~ "^(|Bearer {token})$") {{ return 401; }}
            add_header X-Linked-Etag $hf_linked_etag;
            add_header X-Linked-Size $hf_linked_size;
            return 302 http://127.0.0.1:{signed_port}/signed/hf/$repo/$path?X-Amz-Signature=stand-in;
        }}
        location ~ ^/api/download/models/(?<id>[0-9]+)$ {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            return 302 http://127.0.0.1:{signed_port}/signed/civitai/$id?X-Amz-Signature=stand-in;
        }}
        location ~ ^/api/v1/model-versions/(?<version>[0-9]+)$ {{
            default_type application/json;
            alias {state}/civitai-api/$version.json;
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

    def __init__(
        self, files_dir, token="test-token-0123456789", limit_rate=None, port=None, hf_linked=None, civitai_sha256=None
    ):
        self.files_dir = Path(files_dir).resolve()
        self.hf_linked = dict(hf_linked or {})
        self.civitai_sha256 = dict(civitai_sha256 or {})
        self.token = token
        self.basic_user = "alice"
        self.basic_password = "basic-pass-5566778899"
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

    def _write_source_facts(self):
        """The hub's X-Linked-* per file and CivitAI's model-version documents, from the tree."""
        etags, sizes = [], []
        hf_root = self.files_dir / "hf"
        facts = {}
        if hf_root.is_dir():
            for path in sorted(p for p in hf_root.rglob("*") if p.is_file()):
                facts[path.relative_to(hf_root).as_posix()] = (_sha256(path), path.stat().st_size)
        facts.update(self.hf_linked)
        for key, (sha256, size) in sorted(facts.items()):
            etags.append(f"    '{key}' '\"{sha256}\"';\n")
            sizes.append(f"    '{key}' '{size}';\n")
        (self.state / "hf_etag.map").write_text("".join(etags))
        (self.state / "hf_size.map").write_text("".join(sizes))
        api = self.state / "civitai-api"
        api.mkdir(exist_ok=True)
        civitai_root = self.files_dir / "civitai"
        versions = sorted(p.name for p in civitai_root.iterdir() if p.is_file()) if civitai_root.is_dir() else []
        for version in sorted(set(versions) | set(str(v) for v in self.civitai_sha256)):
            path = civitai_root / version
            size = path.stat().st_size if path.exists() else 0
            sha256 = self.civitai_sha256.get(version) or self.civitai_sha256.get(int(version)) or _sha256(path)
            (api / f"{version}.json").write_text(json.dumps(civitai_version(self.url, int(version), sha256, size)))

    def refresh(self):
        """Say again what the tree holds now (a file replaced upstream): rewrite and reload."""
        self._write_source_facts()
        self.process.send_signal(signal.SIGHUP)
        time.sleep(1.0)  # nginx starts new workers with the new maps, then retires the old ones

    def start(self):
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.state / sub).mkdir(exist_ok=True)
        self._write_source_facts()
        limit = f"limit_rate {self.limit_rate};" if self.limit_rate else ""
        conf = self.state / "nginx.conf"
        conf.write_text(
            _CONFIG.format(
                state=self.state,
                port=self.port,
                signed_port=self.signed_port,
                files=self.files_dir,
                token=self.token,
                basic=base64.b64encode(f"{self.basic_user}:{self.basic_password}".encode()).decode(),
                limit_rate=limit,
                # As root, workers would drop to `nobody` and fail to
                # read pytest's 0700 temp dirs.
                user="user root;" if os.geteuid() == 0 else "",
            )
        )
        self.process = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(self.state), "-e", str(self.state / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, process=self.process)
        except Exception as exc:
            log = self.state / "error.log"
            detail = log.read_text() if log.exists() else ""
            self.stop()
            raise RuntimeError(f"nginx did not start ({exc}): {detail}") from None
        return self

    def stop(self):
        stop_process(self.process, signal.SIGQUIT)
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def civitai_version(base_url, version_id, sha256, size):
    """A model-version document the way CivitAI's /api/v1/model-versions/{id} writes one: the
    model file (primary) and a training-data archive next to it."""

    def hashes(digest):
        digest = digest.upper()
        return {
            "AutoV1": digest[:8],
            "AutoV2": digest[:10],
            "SHA256": digest,
            "CRC32": digest[-8:],
            "BLAKE3": digest[::-1],
            "AutoV3": digest[:12],
        }

    download = f"{base_url}/api/download/models/{version_id}"
    return {
        "id": version_id,
        "modelId": version_id + 100000,
        "name": "v1.0",
        "description": None,
        "baseModel": "SDXL 1.0",
        "baseModelType": "Standard",
        "status": "Published",
        "availability": "Public",
        "air": f"urn:air:sdxl:checkpoint:civitai:{version_id + 100000}@{version_id}",
        "createdAt": "2025-12-18T08:55:00.000Z",
        "updatedAt": "2025-12-18T09:16:12.062Z",
        "trainedWords": [],
        "stats": {"downloadCount": 1, "thumbsUpCount": 0},
        "model": {"name": "Stand-in model", "type": "Checkpoint", "nsfw": False, "poi": False},
        "files": [
            {
                "id": version_id * 10 + 1,
                "name": "training_data.zip",
                "type": "Training Data",
                "sizeKB": 1.5,
                "metadata": {"format": "Other"},
                "pickleScanResult": "Success",
                "virusScanResult": "Success",
                "hashes": hashes(hashlib.sha256(b"training data %d" % version_id).hexdigest()),
                "downloadUrl": f"{download}?type=Training%20Data",
                "primary": False,
            },
            {
                "id": version_id * 10,
                "name": f"model_{version_id}.safetensors",
                "type": "Model",
                "sizeKB": size / 1024,
                "metadata": {"format": "SafeTensor", "size": "pruned", "fp": "fp16"},
                "pickleScanResult": "Success",
                "virusScanResult": "Success",
                "hashes": hashes(sha256),
                "downloadUrl": download,
                "primary": True,
            },
        ],
        "images": [],
        "downloadUrl": download,
    }


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
