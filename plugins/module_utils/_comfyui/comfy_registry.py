# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Comfy Registry id (+ version) -> the git repository to clone and what to pin it to.

The Comfy Registry (``https://api.comfy.org``, the service ComfyUI-Manager and comfy-cli use)
answers, in the shapes of its OpenAPI spec:

* ``GET /nodes/{id}`` -> ``Node``: ``id``, ``name``, ``repository`` (the pack's git URL),
  ``status`` (``NodeStatusActive`` / ``NodeStatusDeleted`` / ``NodeStatusBanned``) and
  ``latest_version`` (a ``NodeVersion``); 404 ``{"error": "", "message": "Node not found"}``.
* ``GET /nodes/{id}/versions/{version}`` -> ``NodeVersion``: ``version`` (semantic),
  ``downloadUrl`` (a zip of that version), ``deprecated``, ``status``
  (``NodeVersionStatusActive`` / ``...Deleted`` / ``...Banned`` / ``...Pending`` / ``...Flagged``);
  404 with an empty body object.

The registry names no git commit for a version. A workflow's ``ver`` that is a commit pins the
clone directly (the registry is asked only for the repository); a semantic version is
confirmed with the registry and returned with its ``download_url``, for the caller to map to a
tag or to fetch.

An offline map file pins ids without asking anyone, one line each::

    # cnr_id|repository URL[|version or commit]
    comfyui-kjnodes|https://github.com/kijai/ComfyUI-KJNodes
    comfyui-impact-pack|https://github.com/ltdrdata/ComfyUI-Impact-Pack|8.8.1

Every request has a bounded total time (connect, answer and body together), a bounded body
size, and at most one retry for a server error or a refused connection (not for a registry that
gave no answer in time: it would only double the wait). Once the registry could not be reached
or gave no answer, later look-ups of the same run fail at once with that reason: an unreachable
registry costs one timeout, not one per pack. Every failure is a :class:`RegistryError` whose
``kind`` says what to do about it.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.manifest_lines import (
    ManifestError,
    manifest_lines,
    read_manifest,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_location

DEFAULT_ENDPOINT = "https://api.comfy.org"
DEFAULT_TIMEOUT = 15.0
MAX_BODY = 4 * 1024 * 1024
USER_AGENT = "aiclipse.comfyui (Comfy Registry resolver)"

_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[\da-zA-Z.-]+)?(?:\+[\da-zA-Z.-]+)?$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")

# RegistryError.kind
INVALID = "invalid"  # the id or version cannot be asked for (fix the workflow)
NOT_FOUND = "not_found"  # the registry (or the offline map) does not know it
REFUSED = "refused"  # banned, deleted or forbidden: do not install
UNAVAILABLE = "unavailable"  # no answer, timeout, 5xx: try again later or use a map file
BAD_RESPONSE = "bad_response"  # an answer that is not the registry's shape

# RegistryError.no_answer
NO_CONNECTION = "no_connection"  # refused or broken: worth one retry
NO_ANSWER_IN_TIME = "no_answer_in_time"  # a retry would only double the wait


class RegistryError(Exception):
    """A failure resolving one id; ``kind`` is one of the constants above."""

    def __init__(self, kind, cnr_id, message, no_answer=None):
        self.kind = kind
        self.cnr_id = cnr_id
        # The endpoint answered nothing, not this id's fault: NO_CONNECTION or NO_ANSWER_IN_TIME.
        self.no_answer = no_answer
        super().__init__(message)


class NodeMapError(ManifestError):
    """A bad map file: every problem, each naming file and line."""


def _is_http_url(value):
    if not isinstance(value, str) or not value or any(char.isspace() or ord(char) < 32 for char in value):
        return False
    try:
        parts = urlsplit(value)
        port_read = parts.port is None or parts.port >= 0  # reading the port raises on a bad one
    except ValueError:
        return False
    return port_read and parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def _pin_kind(value):
    """'version' (semver, leading v dropped), 'commit', or None when it is neither."""
    bare = value[1:] if value[:1] in ("v", "V") else value
    if _SEMVER.match(bare):
        return bare, "version"
    if _COMMIT.match(value):
        return value.lower(), "commit"
    return None, None


def read_node_map(path):
    """{cnr_id (lower case): {"repository", "pin", "pin_kind", "origin"}} from a map file."""
    try:
        text = read_manifest(path, "the node map", max_bytes=MAX_BODY)
    except ManifestError as exc:
        raise NodeMapError(exc.problems, "the node map") from None
    found, problems = {}, []
    for origin, line in manifest_lines(text, path):
        fields = [field.strip() for field in line.split("|")]
        if len(fields) not in (2, 3):
            problems.append((origin, f"expected cnr_id|repository URL[|version or commit], got {len(fields)} fields"))
            continue
        node_id, repository = fields[0], fields[1]
        pin = fields[2] if len(fields) == 3 and fields[2] else None
        if not _ID.match(node_id) or len(node_id) > 100:
            problems.append((origin, f"'{node_id[:100]}' is not a Comfy Registry id"))
            continue
        if not _is_http_url(repository):
            problems.append(
                (
                    origin,
                    f"repository '{masked_location(repository)[:200]}' is not an http(s) URL without credentials",
                )
            )
            continue
        pin_kind = None
        if pin:
            pin, pin_kind = _pin_kind(pin)
            if pin is None:
                problems.append((origin, f"'{fields[2][:100]}' is neither a version (1.2.3) nor a commit"))
                continue
        key = node_id.lower()
        if key in found:
            problems.append((origin, f"{node_id} is already mapped at {found[key]['origin']}"))
            continue
        found[key] = {"repository": repository, "pin": pin, "pin_kind": pin_kind, "origin": origin}
    if problems:
        raise NodeMapError(problems, "the node map")
    return found


class ComfyRegistry:
    """Resolves Comfy Registry ids; results (and failures) are cached per (id, version).

    ``endpoint`` None or empty means offline: only the node map answers.
    """

    def __init__(
        self,
        endpoint=DEFAULT_ENDPOINT,
        timeout=DEFAULT_TIMEOUT,
        node_map=None,
        retries=1,
        retry_pause=0.5,
        max_body=MAX_BODY,
        offline_reason="offline",
    ):
        if endpoint:
            if not _is_http_url(endpoint):
                raise ValueError(
                    f"'{masked_location(endpoint)[:200]}' is not an http(s) URL without credentials (such as https://api.comfy.org)"
                )
            endpoint = endpoint.rstrip("/")
        if timeout <= 0:
            raise ValueError("registry timeout must be positive")
        self.endpoint = endpoint or None
        self.timeout = float(timeout)
        self.node_map = node_map or {}
        self.retries = retries
        self.retry_pause = retry_pause
        self.max_body = max_body
        self.offline_reason = offline_reason
        # Why the endpoint could not be reached earlier in this run (then it is not asked again).
        self.unreachable = None
        self._cache = {}
        self._opener = urllib.request.build_opener(_NoRedirect)

    def resolve(self, cnr_id, ver=None):
        """``{"cnr_id", "repository", "source" ("map" | "registry"), "version", "commit",
        "download_url", "latest_version", "deprecated", "warnings"}``; raises RegistryError."""
        key = (cnr_id.lower() if isinstance(cnr_id, str) else cnr_id, ver)
        if key not in self._cache:
            try:
                self._cache[key] = self._resolve(cnr_id, ver)
            except RegistryError as exc:
                self._cache[key] = exc
        answer = self._cache[key]
        if isinstance(answer, RegistryError):
            raise answer
        return dict(answer, warnings=list(answer["warnings"]))

    def _resolve(self, cnr_id, ver):
        if not isinstance(cnr_id, str) or not _ID.match(cnr_id) or len(cnr_id) > 100:
            raise RegistryError(INVALID, cnr_id, f"'{str(cnr_id)[:100]}' is not a Comfy Registry id")
        pin = pin_kind = None
        if ver not in (None, "", "unknown"):
            pin, pin_kind = _pin_kind(ver) if isinstance(ver, str) else (None, None)
            if pin is None:
                raise RegistryError(
                    INVALID,
                    cnr_id,
                    f"{cnr_id}: version '{str(ver)[:100]}' is neither a version (1.2.3) nor a commit",
                )
        result = {
            "cnr_id": cnr_id,
            "repository": None,
            "source": None,
            "version": None,
            "commit": None,
            "download_url": None,
            "latest_version": None,
            "deprecated": False,
            "warnings": [],
        }
        mapped = self.node_map.get(cnr_id.lower())
        if mapped:
            return self._from_map(result, mapped, pin, pin_kind)
        if not self.endpoint:
            raise RegistryError(
                NOT_FOUND,
                cnr_id,
                f"{cnr_id} is not in the node map and the registry is not used ({self.offline_reason})",
            )
        node = self._get_json(cnr_id, f"/nodes/{quote(cnr_id, safe='')}", f"node {cnr_id}")
        if not isinstance(node, dict):
            raise RegistryError(BAD_RESPONSE, cnr_id, f"{cnr_id}: the registry's answer is not a node object")
        status = node.get("status")
        if status in ("NodeStatusBanned", "NodeStatusDeleted"):
            raise RegistryError(
                REFUSED,
                cnr_id,
                f"{cnr_id} is {('banned' if status == 'NodeStatusBanned' else 'deleted')} in the Comfy Registry; it is not installed",
            )
        repository = node.get("repository")
        if not _is_http_url(repository):
            raise RegistryError(
                BAD_RESPONSE,
                cnr_id,
                f"{cnr_id}: the registry gives no http(s) repository ({json.dumps(repository)[:200]})",
            )
        result.update(repository=repository, source="registry")
        latest = node.get("latest_version") if isinstance(node.get("latest_version"), dict) else {}
        latest_version = latest.get("version") if isinstance(latest.get("version"), str) else None
        result["latest_version"] = latest_version
        if pin_kind == "commit":
            result["commit"] = pin
        elif pin_kind == "version":
            self._confirm_version(result, cnr_id, pin)
        elif latest_version:
            result["version"] = latest_version
            result["download_url"] = latest.get("downloadUrl") if _is_http_url(latest.get("downloadUrl")) else None
            result["deprecated"] = latest.get("deprecated") is True
        else:
            result["warnings"].append(
                f"{cnr_id} has no published version in the registry; its repository's default branch is used"
            )
        return result

    def _from_map(self, result, mapped, pin, pin_kind):
        result.update(repository=mapped["repository"], source="map")
        if mapped["pin"]:
            if pin and pin != mapped["pin"]:
                result["warnings"].append(
                    f"{result['cnr_id']}: the node map pins {mapped['pin']} ({mapped['origin']}), not the workflow's {pin}"
                )
            pin, pin_kind = mapped["pin"], mapped["pin_kind"]
        if pin_kind == "commit":
            result["commit"] = pin
        elif pin_kind == "version":
            result["version"] = pin
        return result

    def _confirm_version(self, result, cnr_id, version):
        path = f"/nodes/{quote(cnr_id, safe='')}/versions/{quote(version, safe='')}"
        try:
            answer = self._get_json(cnr_id, path, f"version {version} of {cnr_id}")
        except RegistryError as exc:
            if exc.kind != NOT_FOUND:
                raise
            result["warnings"].append(
                f"{cnr_id}: version {version} is not in the registry"
                + (f" (latest is {result['latest_version']})" if result["latest_version"] else "")
                + "; not pinned"
            )
            return
        if not isinstance(answer, dict) or not isinstance(answer.get("version"), str):
            raise RegistryError(
                BAD_RESPONSE,
                cnr_id,
                f"{cnr_id}: the registry's answer for version {version} is not a node version",
            )
        status = answer.get("status")
        if status in ("NodeVersionStatusBanned", "NodeVersionStatusDeleted"):
            raise RegistryError(
                REFUSED,
                cnr_id,
                f"{cnr_id} {version} is {('banned' if status == 'NodeVersionStatusBanned' else 'deleted')} in the Comfy Registry; it is not installed",
            )
        result["version"] = answer["version"]
        result["download_url"] = answer.get("downloadUrl") if _is_http_url(answer.get("downloadUrl")) else None
        result["deprecated"] = answer.get("deprecated") is True
        if result["deprecated"]:
            result["warnings"].append(f"{cnr_id} {version} is deprecated in the registry")
        if status in ("NodeVersionStatusFlagged", "NodeVersionStatusPending"):
            result["warnings"].append(
                f"{cnr_id} {version} is {('flagged' if status == 'NodeVersionStatusFlagged' else 'pending review')} in the registry"
            )

    # -- HTTP ------------------------------------------------------------------------------

    def _get_json(self, cnr_id, path, what):
        url = self.endpoint + path
        if self.unreachable:
            raise RegistryError(
                UNAVAILABLE,
                cnr_id,
                f"{what}: {self.unreachable} (earlier in this run; not asked again)",
                NO_CONNECTION,
            )
        attempt = 0
        while True:
            attempt += 1
            try:
                status, body = self._get(url)
            except RegistryError as exc:
                if exc.kind == UNAVAILABLE and attempt <= self.retries and exc.no_answer != NO_ANSWER_IN_TIME:
                    time.sleep(self.retry_pause)
                    continue
                if exc.no_answer:
                    self.unreachable = str(exc)
                raise RegistryError(exc.kind, cnr_id, f"{what}: {exc}", exc.no_answer) from None
            if status == 200:
                try:
                    return json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    raise RegistryError(
                        BAD_RESPONSE, cnr_id, f"{what}: the registry answered 200 with something that is not JSON"
                    ) from None
            message = _error_message(body)
            if status == 404:
                raise RegistryError(
                    NOT_FOUND,
                    cnr_id,
                    f"{what} is not in the Comfy Registry ({self.endpoint}: HTTP 404{message})",
                )
            if status == 403:
                raise RegistryError(
                    REFUSED, cnr_id, f"{what}: the registry refuses it (HTTP 403{message}), e.g. a banned node"
                )
            if status >= 500 and attempt <= self.retries:
                time.sleep(self.retry_pause)
                continue
            kind = UNAVAILABLE if status >= 500 or status == 429 else BAD_RESPONSE
            raise RegistryError(
                kind, cnr_id, f"{what}: the registry at {self.endpoint} answered HTTP {status}{message}"
            )

    def _get(self, url):
        """(status, body) within ``timeout`` seconds in all, headers and body included (a server
        that drips bytes cannot hold a pod start); raises RegistryError."""
        outcome = []

        def work():
            try:
                outcome.append(self._fetch(url))
            except Exception as exc:  # pylint: disable=broad-except  # a thread must hand every failure back
                outcome.append(RegistryError(BAD_RESPONSE, None, f"unexpected answer from {self.endpoint}: {exc}"))

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive() or not outcome:
            # The worker's socket times out on its own; nothing waits for it.
            raise RegistryError(
                UNAVAILABLE,
                None,
                f"no complete answer from {self.endpoint} within {self.timeout:g} s",
                NO_ANSWER_IN_TIME,
            )
        answer = outcome[0]
        if isinstance(answer, RegistryError):
            raise answer
        return answer

    def _fetch(self, url):
        """(status, body) or a RegistryError (returned, not raised: this runs in a thread)."""
        request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            response = exc
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                return RegistryError(
                    UNAVAILABLE,
                    None,
                    f"no answer from {self.endpoint} within {self.timeout:g} s",
                    NO_ANSWER_IN_TIME,
                )
            return RegistryError(UNAVAILABLE, None, f"cannot reach {self.endpoint}: {reason}", NO_CONNECTION)
        try:
            status = response.code
            chunks, total = [], 0
            read = getattr(response, "read1", response.read)
            while True:
                chunk = read(min(65536, self.max_body + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > self.max_body:
                    return RegistryError(
                        BAD_RESPONSE,
                        None,
                        f"the answer from {self.endpoint} is larger than {self.max_body} bytes",
                    )
            return status, b"".join(chunks)
        except (socket.timeout, TimeoutError):
            return RegistryError(
                UNAVAILABLE,
                None,
                f"no complete answer from {self.endpoint} within {self.timeout:g} s",
                NO_ANSWER_IN_TIME,
            )
        except (OSError, http.client.HTTPException) as exc:
            return RegistryError(UNAVAILABLE, None, f"the connection to {self.endpoint} broke: {exc}", NO_CONNECTION)
        finally:
            response.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The registry's JSON endpoints do not redirect; one that does is answered as it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # pylint: disable=too-many-arguments
        return None


def _error_message(body):
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError, AttributeError):
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("message"), str) and doc["message"]:
        return ": " + doc["message"][:200]
    return ""
