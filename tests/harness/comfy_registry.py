"""A loopback stand-in for the Comfy Registry (api.comfy.org), answering in its real shapes.

Shapes follow the registry's OpenAPI spec and server (Comfy-Org/registry-backend: ``Node``,
``NodeVersion``; a missing node is 404 ``{"error": "", "message": "Node not found"}``, a
missing version 404 ``{}``):

    GET /nodes/{id}                          Node with latest_version
    GET /nodes/{id}/versions                 [NodeVersion, ...]
    GET /nodes/{id}/versions/{version}       NodeVersion
    GET /nodes/{id}/install[?version=x.y.z]  NodeVersion (latest without ?version)

Faults, per node id (set on the instance): ``status[id] = 500`` (every request for that id
answers it with the registry's 500 body), ``fail_times[id] = (code, n)`` (the first n requests
answer code), ``stall`` (ids whose requests get the headers late, after ``stall_seconds``),
``drip`` (ids whose body trickles a byte at a time), ``garbage`` (200 with a non-JSON body),
``huge`` (200 with a body of ``huge_bytes``), ``shapes[id] = object`` (200 with that JSON).
``requests`` records every (method, path, query).
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .net import free_port


def node_version(
    node_id, version, status="NodeVersionStatusActive", deprecated=False, download_base="https://cdn.comfy.org"
):
    """A NodeVersion as the registry returns it."""
    return {
        "changelog": "",
        "createdAt": "2025-06-01T12:00:00Z",
        "dependencies": [],
        "deprecated": deprecated,
        "downloadUrl": f"{download_base}/publisher/{node_id}/{version}/node.zip",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{node_id}@{version}")),
        "node_id": node_id,
        "status": status,
        "status_reason": "",
        "version": version,
    }


class RegistryStandIn:
    """``with RegistryStandIn() as registry: registry.add(...); registry.url``"""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.nodes = {}
        self.versions = {}
        self.status = {}
        self.fail_times = {}
        self.stall = set()
        self.stall_seconds = 30.0
        self.drip = set()
        self.garbage = set()
        self.huge = set()
        self.huge_bytes = 8 * 1024 * 1024
        self.shapes = {}
        self.requests = []
        self.lock = threading.Lock()
        self._server = None
        self._thread = None

    def add(
        self, node_id, repository, versions=("1.0.0",), status="NodeStatusActive", version_status=None, deprecated=()
    ):
        """Publish a node with `versions` (the last one is latest)."""
        version_status = version_status or {}
        self.versions[node_id] = [
            node_version(node_id, v, version_status.get(v, "NodeVersionStatusActive"), v in deprecated)
            for v in versions
        ]
        self.nodes[node_id] = {
            "author": "",
            "category": "",
            "description": "A node pack for tests",
            "downloads": 42,
            "icon": "",
            "id": node_id,
            "license": '{"file": "LICENSE"}',
            "name": node_id,
            "rating": 0,
            "repository": repository,
            "status": status,
            "status_detail": "",
            "tags": [],
        }
        if self.versions[node_id]:
            self.nodes[node_id]["latest_version"] = self.versions[node_id][-1]
        return self.nodes[node_id]

    def __enter__(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                standin._handle(self)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # -- answers ---------------------------------------------------------------------------

    def _handle(self, handler):
        parts = urlsplit(handler.path)
        segments = [s for s in parts.path.split("/") if s]
        with self.lock:
            self.requests.append(("GET", parts.path, parts.query))
        if len(segments) < 2 or segments[0] != "nodes":
            return self._json(handler, 404, {"message": "Not Found"})
        node_id = segments[1]
        with self.lock:
            code_times = self.fail_times.get(node_id)
            if code_times and code_times[1] > 0:
                self.fail_times[node_id] = (code_times[0], code_times[1] - 1)
                return self._json(handler, code_times[0], {"error": "", "message": "Failed to get node"})
        if node_id in self.status:
            return self._json(handler, self.status[node_id], {"error": "boom", "message": "Failed to get node"})
        if node_id in self.stall:
            time.sleep(self.stall_seconds)
        if node_id in self.garbage:
            return self._raw(handler, 200, b"<html>Cloudflare: please wait</html>", "text/html")
        if node_id in self.huge:
            return self._raw(handler, 200, b"[" + b"0," * (self.huge_bytes // 2) + b"0]", "application/json")
        if node_id in self.shapes:
            return self._json(handler, 200, self.shapes[node_id])
        node = self.nodes.get(node_id)
        if node is None:
            return self._json(handler, 404, {"error": "", "message": "Node not found"})
        versions = self.versions.get(node_id, [])
        if len(segments) == 2:
            return self._json(handler, 200, node, drip=node_id in self.drip)
        if segments[2] == "install":
            wanted = parse_qs(parts.query).get("version", [None])[0]
            match = (
                versions[-1]
                if wanted is None and versions
                else next((v for v in versions if v["version"] == wanted), None)
            )
            if match is None:
                return self._json(handler, 404, {"error": "", "message": "Not found"})
            return self._json(handler, 200, match)
        if segments[2] == "versions" and len(segments) == 3:
            return self._json(handler, 200, versions)
        if segments[2] == "versions" and len(segments) == 4:
            match = next((v for v in versions if v["version"] == segments[3]), None)
            if match is None:
                return self._json(handler, 404, {})
            return self._json(handler, 200, match, drip=node_id in self.drip)
        return self._json(handler, 404, {"message": "Not Found"})

    def _json(self, handler, code, doc, drip=False):
        return self._raw(handler, code, json.dumps(doc).encode(), "application/json", drip=drip)

    @staticmethod
    def _raw(handler, code, body, ctype, drip=False):
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if drip:
                for index in range(len(body)):
                    handler.wfile.write(body[index : index + 1])
                    handler.wfile.flush()
                    time.sleep(0.05)
            else:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
