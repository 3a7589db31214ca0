"""A loopback stand-in for RunPod's GraphQL API (``POST https://api.runpod.io/graphql``).

It speaks the protocol the real API speaks, as runpod-python and runpodctl use it: a JSON body
``{"query": ..., "variables": ...}``, the key as ``Authorization: Bearer <key>`` (the real API
also takes ``?api_key=`` in the URL, so this one does too, and records it: a client that puts
the key there is caught), HTTP 401 for a missing or wrong key, GraphQL validation errors as HTTP
400 with graphql-js messages, and only the fields a query selects in the answer (a client that
forgets to ask for a field gets nothing for it, as from the real server). Types and field names
follow runpod-python's pod query (``myself { pods { ... runtime { ports { ip isIpPublic
privatePort publicPort type } } machine { gpuDisplayName } } }``); ``env`` is a list of
``KEY=value`` strings, ``runtime`` is null until a pod runs. The pod list is not paged, as on
RunPod: ``myself.pods`` takes no arguments.

    api = RunPodApi("rpa_key", [runpod_pod("p1", "pod-a", ssh_port=2201)]).start()
    api.url            # http://127.0.0.1:<port>/graphql
    api.requests       # what came in: method, path, query string, Authorization header
    api.fault = "graphql_error" | "http_500" | "rate_limited" | "not_json" | ("redirect", url)
"""

import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .ansible_run import ansible_env
from .net import free_port
from .paths import REPO, VENV_BIN

# What each GraphQL type offers: None is a scalar (or a list of scalars), a string names an
# object type, a one-element list a list of that object type.
SCHEMA = {
    "Query": {"myself": "User"},
    "User": {"id": None, "email": None, "pods": ["Pod"]},
    "Pod": {
        "id": None,
        "name": None,
        "desiredStatus": None,
        "imageName": None,
        "env": None,
        "gpuCount": None,
        "vcpuCount": None,
        "memoryInGb": None,
        "costPerHr": None,
        "containerDiskInGb": None,
        "volumeInGb": None,
        "volumeMountPath": None,
        "dockerArgs": None,
        "dockerId": None,
        "lastStatusChange": None,
        "machineId": None,
        "podType": None,
        "port": None,
        "ports": None,
        "uptimeSeconds": None,
        "templateId": None,
        "machine": "PodMachineInfo",
        "runtime": "PodRuntime",
    },
    "PodMachineInfo": {
        "gpuDisplayName": None,
        "location": None,
        "podHostId": None,
        "maintenanceStart": None,
        "maintenanceEnd": None,
        "maintenanceNote": None,
    },
    "PodRuntime": {"uptimeInSeconds": None, "ports": ["PodRuntimePorts"]},
    "PodRuntimePorts": {"ip": None, "isIpPublic": None, "privatePort": None, "publicPort": None, "type": None},
}


def runpod_pod(
    pod_id,
    name,
    ip="127.0.0.1",
    ssh_port=None,
    status="RUNNING",
    gpu="RTX A6000",
    gpu_count=1,
    image="aiclipse/comfyui:latest",
    env=None,
    public=True,
    extra_ports=(),
):
    """One pod as the API describes it. ``ssh_port`` None: no 22/tcp mapping; ``public`` False:
    22 is mapped on a private address only (a community-cloud pod without a public IP);
    status other than RUNNING: no runtime at all."""
    ports = []
    if ssh_port is not None:
        ports.append(
            {
                "ip": ip if public else "10.2.3.4",
                "isIpPublic": bool(public),
                "privatePort": 22,
                "publicPort": ssh_port,
                "type": "tcp",
            }
        )
    # RunPod also lists the HTTP proxy ports of a pod; those are never an SSH endpoint.
    ports.append({"ip": "100.64.0.9", "isIpPublic": False, "privatePort": 8188, "publicPort": 8188, "type": "http"})
    ports.extend(extra_ports)
    return {
        "id": pod_id,
        "name": name,
        "desiredStatus": status,
        "imageName": image,
        "env": [f"{key}={value}" for key, value in (env or {}).items()],
        "gpuCount": gpu_count,
        "vcpuCount": 8,
        "memoryInGb": 31,
        "costPerHr": 0.49,
        "containerDiskInGb": 20,
        "volumeInGb": 50,
        "volumeMountPath": "/workspace",
        "dockerArgs": "",
        "dockerId": None,
        "lastStatusChange": "Rented by User: Tue Aug 15 2023",
        "machineId": f"m-{pod_id}",
        "podType": "RESERVED",
        "port": None,
        "ports": "8188/http,22/tcp",
        "uptimeSeconds": 0,
        "templateId": None,
        "machine": {
            "gpuDisplayName": gpu,
            "location": "EU-RO-1",
            "podHostId": f"{pod_id}-64411eb2",
            "maintenanceStart": None,
            "maintenanceEnd": None,
            "maintenanceNote": None,
        },
        "runtime": ({"uptimeInSeconds": 120, "ports": ports} if status == "RUNNING" else None),
    }


class GraphQLError(Exception):
    """A query the server refuses before running it (HTTP 400, like graphql-js validation)."""


_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|([{}():!$,])|(\"(?:[^\"\\]|\\.)*\")|(#[^\n]*))")


def _tokens(query):
    pos, out = 0, []
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if not match or match.end() == pos:
            if query[pos:].strip() == "":
                break
            raise GraphQLError(f'Syntax Error: Unexpected character: "{query[pos:].strip()[:1]}".')
        pos = match.end()
        if match.group(4) is None and (match.group(1) or match.group(2) or match.group(3)):
            out.append(match.group(1) or match.group(2) or match.group(3))
    return out


def parse_selection(query):
    """The top-level selection set of one operation: [(alias, field, sub-selection or None)]."""
    tokens = _tokens(query)
    pos = 0
    if tokens[:1] == ["query"]:
        pos = 1
        if pos < len(tokens) and tokens[pos] not in ("{", "("):
            pos += 1  # operation name
        if pos < len(tokens) and tokens[pos] == "(":
            pos = _skip_parens(tokens, pos)
    elif tokens[:1] in (["mutation"], ["subscription"], ["fragment"]):
        raise GraphQLError(f"this stand-in answers queries only, not {tokens[0]}")
    selection, pos = _selection_set(tokens, pos)
    if pos != len(tokens):
        raise GraphQLError(f'Syntax Error: Unexpected Name "{tokens[pos]}".')
    return selection


def _skip_parens(tokens, pos):
    depth = 0
    while pos < len(tokens):
        depth += {"(": 1, ")": -1}.get(tokens[pos], 0)
        pos += 1
        if depth == 0:
            return pos
    raise GraphQLError('Syntax Error: Expected ")".')


def _selection_set(tokens, pos):
    if pos >= len(tokens) or tokens[pos] != "{":
        raise GraphQLError('Syntax Error: Expected "{".')
    pos += 1
    fields = []
    while pos < len(tokens) and tokens[pos] != "}":
        name = tokens[pos]
        if not re.match(r"[A-Za-z_]", name):
            raise GraphQLError(f'Syntax Error: Unexpected "{name}".')
        pos += 1
        alias = name
        if pos < len(tokens) and tokens[pos] == ":":
            name = tokens[pos + 1]
            pos += 2
        if pos < len(tokens) and tokens[pos] == "(":
            raise GraphQLError(f'Unknown argument on field "{name}".')
        sub = None
        if pos < len(tokens) and tokens[pos] == "{":
            sub, pos = _selection_set(tokens, pos)
        fields.append((alias, name, sub))
    if pos >= len(tokens):
        raise GraphQLError('Syntax Error: Expected "}".')
    return fields, pos + 1


def validate(selection, type_name):
    for _alias, field, sub in selection:
        fields = SCHEMA[type_name]
        if field not in fields:
            raise GraphQLError(f'Cannot query field "{field}" on type "{type_name}".')
        kind = fields[field]
        target = kind[0] if isinstance(kind, list) else kind
        if target is None and sub is not None:
            raise GraphQLError(f'Field "{field}" must not have a selection since type "String" has no subfields.')
        if target is not None and sub is None:
            raise GraphQLError(
                f'Field "{field}" of type "{target}" must have a selection of subfields. '
                f'Did you mean "{field} {{ ... }}"?'
            )
        if target is not None:
            validate(sub, target)


def project(value, selection):
    """Only the selected fields, under their aliases, as a GraphQL server answers."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, selection) for item in value]
    return {
        alias: (project(value.get(field), sub) if sub is not None else value.get(field))
        for alias, field, sub in selection
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._record()
        self._json(405, {"errors": [{"message": "GET query must be sent as POST"}]})

    def do_POST(self):
        api = self.server.api
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._record()
        if split.path != api.path:
            return self._json(404, {"message": "not found"})
        fault = api.fault
        if isinstance(fault, tuple) and fault[0] == "redirect":
            return self._send(307, b"", "text/plain", {"Location": fault[1]})
        query_key = parse_qs(split.query).get("api_key", [None])[0]
        header = self.headers.get("Authorization") or ""
        header_key = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        if (header_key or query_key) != api.api_key:
            return self._json(401, {"errors": [{"message": "Unauthorized"}]})
        if fault == "http_500":
            return self._send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", "text/html")
        if fault == "rate_limited":
            return self._json(
                429, {"errors": [{"message": "Too many requests, please slow down"}]}, {"Retry-After": "30"}
            )
        if fault == "not_json":
            return self._send(200, b"<!DOCTYPE html><title>Maintenance</title>\n", "text/html")
        try:
            request = json.loads(body)
            selection = parse_selection(request["query"])
            validate(selection, "Query")
        except (ValueError, KeyError, TypeError) as exc:
            return self._json(400, {"errors": [{"message": f"POST body sent invalid JSON: {exc}"}]})
        except GraphQLError as exc:
            return self._json(
                400, {"errors": [{"message": str(exc), "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}
            )
        if fault == "graphql_error":
            # What a resolver failure looks like: HTTP 200, data null, errors listed.
            return self._json(
                200,
                {
                    "errors": [
                        {"message": "Something went wrong. Please try again later.", "path": ["myself", "pods"]}
                    ],
                    "data": {"myself": None},
                },
            )
        with api.lock:
            root = {"myself": {"id": "user_stand_in", "email": "owner@example.invalid", "pods": list(api.pods)}}
        return self._json(200, {"data": project(root, selection)})

    def _record(self):
        split = urlsplit(self.path)
        with self.server.api.lock:
            self.server.api.requests.append(
                {
                    "method": self.command,
                    "path": split.path,
                    "query_string": split.query,
                    "authorization": self.headers.get("Authorization"),
                }
            )

    def _json(self, status, doc, headers=None):
        self._send(status, json.dumps(doc).encode(), "application/json", headers)

    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class RunPodApi:
    """The stand-in server; ``pods`` can be changed while it runs (under ``lock``)."""

    path = "/graphql"

    def __init__(self, api_key, pods=()):
        self.api_key = api_key
        self.pods = list(pods)
        self.fault = None
        self.requests = []
        self.lock = threading.Lock()
        self.port = None
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self):
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def write_inventory_config(directory, api_url, **options):
    """``<directory>/runpod.yml`` for the aiclipse.comfyui.runpod plugin against ``api_url``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "runpod.yml"
    doc = {"plugin": "aiclipse.comfyui.runpod", "api_url": api_url, **options}
    path.write_text(json.dumps(doc, indent=2) + "\n")  # JSON is YAML
    return path


def ansible_inventory(source, *args, api_key=None, env=None, timeout=120):
    """Run ``ansible-inventory -i source ARGS`` as a user does (the checkout's ansible.cfg),
    with RUNPOD_API_KEY set to ``api_key`` (unset when None); returns the completed process."""
    run_env = ansible_env(env)
    run_env.pop("RUNPOD_API_KEY", None)
    if api_key is not None:
        run_env["RUNPOD_API_KEY"] = api_key
    return subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), *args],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
