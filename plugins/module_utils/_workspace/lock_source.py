# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lock to provision from: a pod lock (pod_lock's YAML) or a ComfyUI-Manager snapshot.

``read_text(source)`` reads a path or fetches an http(s) URL (never with a token: a lock is
meant to be shared); ``parse(text, name, models_dir, ...)`` validates it and returns what the
roles need, every problem named with the file and line. A ComfyUI-Manager snapshot (JSON, or
the YAML form Manager writes, ``custom_nodes:`` around the same keys) gives ComfyUI's commit
and the nodes; its models part is empty, so the manifests still plan the models.

The result::

    {format, source, digest, comfyui: {repo, commit}, custom_nodes: [{name, repo, commit,
     origin}], registry_nodes: [{cnr_id, version, origin}], models: [manifest items] or None,
     notes: [what the lock holds that is not reproduced, and why]}
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import urllib.error
from urllib.parse import unquote, urlsplit

from ansible.module_utils.urls import open_url

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - ansible-core depends on PyYAML
    HAS_YAML = False

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.nodes_manifest import validate_entry
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import is_sha256_hex
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import origin_of

LOCK_VERSION = 1
MAX_BYTES = 16 * 1024 * 1024
# Matched whole (fullmatch): with "$", a value ending in a newline would pass.
_COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")
_CNR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LOCK_KEYS = {"version", "comfyui", "custom_nodes", "python", "models"}
NODE_KEYS = {"name", "repo", "commit"}
MODEL_KEYS = {"dest", "source", "size", "sha256", "sha256_from", "missing"}
MANAGER_KEYS = {"comfyui", "git_custom_nodes", "cnr_custom_nodes", "file_custom_nodes", "pips"}


class LockSourceError(Exception):
    """The lock cannot be read or is malformed; the message names the file and line."""


def is_url(source):
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def read_text(source, timeout=30.0):
    """(text, name) of a lock at a path or an http(s) URL."""
    if not source or not isinstance(source, str):
        raise LockSourceError("no lock given (AICLIPSE_LOCK / aiclipse_lock_source is empty)")
    if is_url(source):
        # No credential of any kind: no token, no ~/.netrc entry, no Kerberos ticket.
        try:
            with open_url(
                source,
                headers={"Accept": "application/json, application/yaml, */*"},
                timeout=timeout,
                use_netrc=False,
                use_gssapi=False,
                force_basic_auth=False,
                validate_certs=True,
            ) as answer:
                data = answer.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise LockSourceError(f"cannot fetch the lock {source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise LockSourceError(f"cannot fetch the lock {source}: {reason}") from None
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise LockSourceError(
                f"cannot read the lock {source}: {exc.strerror or exc} (AICLIPSE_LOCK names a file on the machine that runs ansible, "
                "or an http(s) URL)"
            ) from None
    if len(data) > MAX_BYTES:
        raise LockSourceError(f"the lock {source} is larger than {MAX_BYTES} bytes; is it a lock?")
    try:
        return data.decode("utf-8-sig"), source
    except UnicodeDecodeError as exc:
        raise LockSourceError(f"{source}: not UTF-8 text (byte {exc.start})") from None


# -- Reading with line numbers ---------------------------------------------------------------
class _Lines:
    """Line numbers of the values in a document, by path (tuple of keys and indexes)."""

    def __init__(self, name, text):
        self.name = name
        self.text = text
        self.lines = {}

    def at(self, path):
        path = tuple(path)
        while path:
            if path in self.lines:
                return f"{self.name}:{self.lines[path]}"
            path = path[:-1]
        return self.name

    def record_yaml(self, node, path=()):
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[path + (key.value,)] = key.start_mark.line + 1
                self.record_yaml(value, path + (key.value,))
                self.lines[path + (key.value,)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record_yaml(item, path + (index,))

    def record_json(self, value, path=()):
        """JSON keeps no positions: a key's line is where its quoted text first appears."""
        if isinstance(value, dict):
            for key, item in value.items():
                found = self.text.find(json.dumps(key))
                if found < 0:
                    found = self.text.find(str(key))
                if found >= 0:
                    self.lines[path + (key,)] = self.text.count("\n", 0, found) + 1
                self.record_json(item, path + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.record_json(item, path + (index,))


def _load(text, name):
    lines = _Lines(name, text)
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError as exc:
            where = f"{name}:{exc.lineno}" if hasattr(exc, "lineno") else name
            raise LockSourceError(f"{where}: not valid JSON: {getattr(exc, 'msg', exc)}") from None
        lines.record_json(data)
        return data, lines
    if not HAS_YAML:  # pragma: no cover
        raise LockSourceError(f"{name}: reading a YAML lock needs PyYAML on the machine that runs ansible")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise LockSourceError(
            f"{where}: not valid YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}"
        ) from None
    if node is not None:
        lines.record_yaml(node)
    return data, lines


# -- Validation -------------------------------------------------------------------------------
class _Problems:
    def __init__(self, lines):
        self.lines = lines
        self.items = []

    def add(self, path, message):
        self.items.append(f"{self.lines.at(path)}: {message}")

    def raise_if_any(self):
        if self.items:
            raise LockSourceError(
                f"the lock {self.lines.name} cannot be used (nothing was changed): {'; '.join(self.items)}"
            )


def _commit(value, path, problems, what):
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _COMMIT.fullmatch(value):
        problems.add(path, f"{what} {value!r} is not a commit (7 to 40 hex digits)")
        return None
    return value.lower()


def _node(url, commit, path, problems, origin):
    try:
        entry = validate_entry({"url": url, "commit": commit or ""}, origin)
    except ValueError as exc:
        problems.add(path, str(exc))
        return None
    return {"name": entry["name"], "repo": url, "commit": commit, "origin": origin}


def parse(text, name, models_dir, hf_endpoint="https://huggingface.co", civitai_endpoint="https://civitai.com"):
    """The lock in `text` (read from `name`) as the roles use it; LockSourceError on any problem."""
    data, lines = _load(text, name)
    digest = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    problems = _Problems(lines)
    if isinstance(data, dict) and isinstance(data.get("custom_nodes"), dict) and "version" not in data:
        # Manager's YAML snapshot wraps the JSON's keys in custom_nodes.
        lines.lines = {path[1:]: line for path, line in lines.lines.items() if path[:1] == ("custom_nodes",)}
        data = data["custom_nodes"]
    if isinstance(data, dict) and ("git_custom_nodes" in data or "cnr_custom_nodes" in data):
        result = _manager_snapshot(data, problems, name)
        result["format"] = "comfyui-manager-snapshot"
    elif isinstance(data, dict) and "version" in data:
        result = _pod_lock(data, problems, name, models_dir, hf_endpoint, civitai_endpoint)
        result["format"] = "pod-lock"
    else:
        raise LockSourceError(
            f"{name} is neither a pod lock (a mapping with version: {LOCK_VERSION}, as pod_lock writes it) nor a ComfyUI-Manager "
            "snapshot (git_custom_nodes, cnr_custom_nodes)"
        )
    problems.raise_if_any()
    result.update(source=name, digest=digest)
    return result


def node_items(lock):
    """The locked git nodes as items of the custom_nodes module's ``nodes`` option."""
    return [
        {
            "url": node["repo"],
            "branch": node.get("branch") or "",
            "commit": node.get("commit") or "",
            "category": "lock",
            "description": f"locked at {node['origin']}",
        }
        for node in lock["custom_nodes"]
        if node.get("repo")
    ]


def _unknown_keys(mapping, known, path, problems, what):
    for key in mapping:
        if key not in known:
            problems.add(path + (key,), f"unknown key {key!r} in {what} (keys: {', '.join(sorted(known))})")


def _pod_lock(data, problems, name, models_dir, hf_endpoint, civitai_endpoint):
    if data.get("version") != LOCK_VERSION:
        problems.add(
            ("version",),
            f"version {data.get('version')!r} is not a lock version this collection reads ({LOCK_VERSION})",
        )
    _unknown_keys(data, LOCK_KEYS, (), problems, "the lock")
    comfyui = data.get("comfyui") or {}
    if not isinstance(comfyui, dict):
        problems.add(("comfyui",), "comfyui must be a mapping with repo and commit")
        comfyui = {}
    repo = comfyui.get("repo")
    if repo is not None and not isinstance(repo, str):
        problems.add(("comfyui", "repo"), "comfyui repo must be a string")
        repo = None
    result = {
        "comfyui": {
            "repo": repo or None,
            "commit": _commit(comfyui.get("commit"), ("comfyui", "commit"), problems, "comfyui commit"),
        },
        "custom_nodes": [],
        "registry_nodes": [],
        "models": [],
        "models_locked": [],
        "python": {"packages_digest": None},
        "notes": [],
    }
    python = data.get("python")
    if isinstance(python, dict) and isinstance(python.get("packages_digest"), str):
        result["python"]["packages_digest"] = python["packages_digest"]
    nodes = data.get("custom_nodes") or []
    if not isinstance(nodes, list):
        problems.add(("custom_nodes",), "custom_nodes must be a list")
        nodes = []
    seen = {}
    for index, item in enumerate(nodes):
        path = ("custom_nodes", index)
        origin = problems.lines.at(path)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            problems.add(path, "a custom node must be a mapping with name, repo and commit")
            continue
        _unknown_keys(item, NODE_KEYS, path, problems, "a custom node")
        folder = item["name"]
        if folder in (".", "..") or "/" in folder or "\\" in folder:
            problems.add(path + ("name",), f"node name {folder!r} is not a folder name")
            continue
        if folder.lower() in seen:
            problems.add(path + ("name",), f"custom node {folder} is listed twice (first at {seen[folder.lower()]})")
            continue
        seen[folder.lower()] = origin
        commit = _commit(item.get("commit"), path + ("commit",), problems, "commit")
        if not item.get("repo"):
            # A folder that was no git checkout (a registry zip, a copy): kept if present.
            result["custom_nodes"].append({"name": folder, "repo": None, "commit": None, "origin": origin})
            continue
        node = _node(item["repo"], commit, path + ("repo",), problems, origin)
        if node is None:
            continue
        if node["name"] != folder:
            problems.add(
                path + ("name",),
                f"node {folder}: its repository {item['repo']} would be installed as {node['name']}; the folder name "
                "must be the repository's last part",
            )
            continue
        result["custom_nodes"].append(node)
    models = data.get("models") or []
    if not isinstance(models, list):
        problems.add(("models",), "models must be a list")
        models = []
    endpoints = {"huggingface": _endpoint(hf_endpoint), "civitai": _endpoint(civitai_endpoint)}
    dests = {}
    for index, item in enumerate(models):
        path = ("models", index)
        model = _model(item, path, problems, models_dir, endpoints)
        if model is None:
            continue
        key = (model["subdir"], model["filename"].rsplit("/", 1)[-1])
        if key in dests:
            problems.add(path + ("dest",), f"model {'/'.join(key)} is listed twice (first at {dests[key]})")
            continue
        dests[key] = problems.lines.at(path)
        result["models"].append(model)
        result["models_locked"].append(
            {
                "dest": posixpath.join(posixpath.normpath(models_dir), *key),
                "sha256": model["sha256"] or None,
                "size": model.get("size"),
                "origin": problems.lines.at(path),
            }
        )
    return result


def _endpoint(url):
    try:
        parts = urlsplit(url)
        return origin_of(url), parts.path.rstrip("/")
    except ValueError:
        return None, ""


def _model(item, path, problems, models_dir, endpoints):
    if not isinstance(item, dict):
        problems.add(path, "a model must be a mapping with dest, source, size and sha256")
        return None
    _unknown_keys(item, MODEL_KEYS, path, problems, "a model")
    dest, source = item.get("dest"), item.get("source")
    if not isinstance(dest, str) or not dest:
        problems.add(path, "a model needs its dest (where it lands under the models folder)")
        return None
    if not isinstance(source, str) or not source:
        problems.add(path + ("dest",), f"model {dest} has no source to download it from")
        return None
    relative = posixpath.normpath(dest)
    if posixpath.isabs(relative):
        base = posixpath.normpath(models_dir)
        if not relative.startswith(base + "/"):
            problems.add(path + ("dest",), f"model dest {dest} is not under this pod's models folder {base}")
            return None
        relative = relative[len(base) + 1 :]
    parts = relative.split("/")
    if ".." in parts or len(parts) < 2:
        problems.add(
            path + ("dest",),
            f"model dest {dest} must be a file in a folder of the models folder (subdir/file), without '..'",
        )
        return None
    subdir, filename = "/".join(parts[:-1]), parts[-1]
    sha256 = item.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not is_sha256_hex(sha256)):
        problems.add(path + ("sha256",), f"sha256 {sha256!r} is not 64 hex digits")
        return None
    size = item.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        problems.add(path + ("size",), f"size {size!r} is not a number of bytes")
        return None
    manifest = {"subdir": subdir, "filename": filename, "sha256": (sha256 or "").lower()}
    if size is not None:
        manifest["size"] = size
    if source.startswith("s3://"):
        bucket, _sep, key = source[len("s3://") :].partition("/")
        if not bucket or not key or bucket == "?":
            problems.add(path + ("source",), f"source {source} names no bucket and key")
            return None
        manifest.update(source="r2", identifier=f"{bucket}/{key}")
        return manifest
    if not source.lower().startswith(("http://", "https://")):
        problems.add(path + ("source",), f"source {source!r} is neither an http(s) URL nor s3://bucket/key")
        return None
    manifest.update(_http_source(source, filename, endpoints))
    return manifest


def _http_source(url, filename, endpoints):
    """The manifest source of a locked URL. Hugging Face and CivitAI (whose tokens the download
    sends) only when the URL is at the endpoint this pod is configured with; any other URL is a
    plain url entry, so a lock from elsewhere can never make a pod send its token to a third host."""
    try:
        origin, path = origin_of(url), urlsplit(url).path
    except ValueError:
        return {"source": "url", "identifier": url}
    hf_origin, hf_path = endpoints["huggingface"]
    if origin == hf_origin and path.startswith(hf_path + "/") and "?" not in url:
        repo, sep, rest = path[len(hf_path) + 1 :].partition("/resolve/")
        revision, _slash, file_path = rest.partition("/")
        if sep and revision and file_path and unquote(file_path).rsplit("/", 1)[-1] == filename:
            return {
                "source": "huggingface",
                "identifier": f"{repo}@{unquote(revision)}",
                "filename": unquote(file_path),
            }
    cv_origin, cv_path = endpoints["civitai"]
    match = re.match(rf"^{re.escape(cv_path)}/api/download/models/([0-9]+)$", path)
    if origin == cv_origin and match and "?" not in url:
        return {"source": "civitai", "identifier": match.group(1)}
    return {"source": "url", "identifier": url}


def _manager_snapshot(data, problems, name):
    _unknown_keys(data, MANAGER_KEYS, (), problems, "a ComfyUI-Manager snapshot")
    result = {
        "comfyui": {"repo": None, "commit": _commit(data.get("comfyui"), ("comfyui",), problems, "comfyui")},
        "custom_nodes": [],
        "registry_nodes": [],
        "models": None,
        "models_locked": [],
        "python": {"packages_digest": None},
        "notes": [],
    }
    git_nodes = data.get("git_custom_nodes") or {}
    if not isinstance(git_nodes, dict):
        problems.add(("git_custom_nodes",), "git_custom_nodes must map repository URLs to {hash, disabled}")
        git_nodes = {}
    seen = {}
    for url, info in git_nodes.items():
        path = ("git_custom_nodes", url)
        origin = problems.lines.at(path)
        if not isinstance(info, dict):
            problems.add(path, f"{url}: expected {{hash, disabled}}")
            continue
        if info.get("disabled") is True:
            result["notes"].append(f"{url}: disabled in the snapshot, not installed ({origin})")
            continue
        commit = _commit(info.get("hash"), path, problems, f"hash of {url}")
        node = _node(url, commit, path, problems, origin)
        if node is None:
            continue
        if node["name"].lower() in seen:
            problems.add(path, f"{seen[node['name'].lower()]} and {url} would both be installed as {node['name']}")
            continue
        seen[node["name"].lower()] = url
        result["custom_nodes"].append(node)
    cnr_nodes = data.get("cnr_custom_nodes") or {}
    if not isinstance(cnr_nodes, dict):
        problems.add(("cnr_custom_nodes",), "cnr_custom_nodes must map Comfy Registry ids to versions")
        cnr_nodes = {}
    for cnr_id, version in cnr_nodes.items():
        path = ("cnr_custom_nodes", cnr_id)
        if not isinstance(cnr_id, str) or not _CNR_ID.fullmatch(cnr_id):
            problems.add(path, f"{cnr_id!r} is not a Comfy Registry id")
            continue
        if not isinstance(version, str) or not version.strip():
            problems.add(path, f"{cnr_id}: version {version!r} is not a version")
            continue
        result["registry_nodes"].append(
            {"cnr_id": cnr_id, "version": version.strip(), "origin": problems.lines.at(path)}
        )
    files = data.get("file_custom_nodes") or []
    for item in files if isinstance(files, list) else []:
        if isinstance(item, dict) and item.get("filename") and not item.get("disabled"):
            result["notes"].append(
                f"single-file node {item['filename']}: a snapshot holds no source for it; copy it into custom_nodes yourself"
            )
    pips = data.get("pips") or {}
    if isinstance(pips, dict) and pips:
        result["notes"].append(
            f"{len(pips)} pip packages listed in the snapshot are not installed from it: the venv is the image's, and each "
            "node's requirements.txt is installed with the node"
        )
    return result
