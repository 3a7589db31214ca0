# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RunPod's GraphQL API, read-only: the account's pods, for the runpod inventory plugin.

Why the API directly and not the ``runpod`` SDK: the SDK pulls in a serverless worker stack
(fastapi, aiohttp, paramiko, boto3, cryptography, watchdog, ...) that a controller has no use
for, keeps its key in module-global state, and up to version 1.7.7 (January 2025) sent the key as
``?api_key=`` in the URL, where proxies and access logs keep it. RunPod's own docs still show
that form. Here the key goes only in an ``Authorization: Bearer`` header, over HTTPS (plain
HTTP only to a loopback address, for test servers), and redirects are not followed, so the
header is never replayed to another host. The one query is runpod-python's and runpodctl's
pod query, cut down to the fields the inventory uses. ``myself { pods }`` takes no arguments
and is not paged: one request returns every pod of the account.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.module_utils.urls import open_url

DEFAULT_URL = "https://api.runpod.io/graphql"
USER_AGENT = "aiclipse.comfyui-runpod-inventory"
MASK = "********"

# Only what the inventory needs. `env` is a list of KEY=value strings; `runtime` is null until
# the pod runs; `runtime.ports` lists every mapping (SSH is privatePort 22, type tcp, public IP).
POD_QUERY = """
query aiclipseFleetPods {
  myself {
    pods {
      id
      name
      desiredStatus
      imageName
      env
      gpuCount
      costPerHr
      machineId
      machine { gpuDisplayName location }
      runtime {
        uptimeInSeconds
        ports { ip isIpPublic privatePort publicPort type }
      }
    }
  }
}
"""


class RunPodApiError(Exception):
    """The API could not be asked or refused; the message says what to do and never holds the key."""


def check_url(url):
    """The key may only travel encrypted: https, or http to a loopback test server."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
    raise RunPodApiError(
        f"api_url {url!r} is not an https URL: the RunPod API key would cross the network in clear text. "
        "Use https (the default is https://api.runpod.io/graphql); plain http is accepted only for a "
        "loopback test server."
    )


class RunPodClient:
    """``RunPodClient(key, url).pods()``: every pod of the account, as the API describes them."""

    def __init__(self, api_key, url=DEFAULT_URL, timeout=30, validate_certs=True):
        if not api_key:
            raise RunPodApiError(
                "No RunPod API key: export RUNPOD_API_KEY (a key with read access to pods is enough; "
                "create one under Settings > API Keys in the RunPod console)."
            )
        check_url(url)
        self._api_key = api_key
        self.url = url
        self.timeout = timeout
        self.validate_certs = validate_certs

    def pods(self):
        doc = self._post({"query": POD_QUERY, "variables": {}})
        data = doc.get("data") if isinstance(doc, dict) else None
        myself = data.get("myself") if isinstance(data, dict) else None
        pods = myself.get("pods") if isinstance(myself, dict) else None
        if not isinstance(pods, list):
            raise RunPodApiError(
                self._scrub(f"The RunPod API at {self.url} answered without a pod list: {json.dumps(doc)[:300]}")
            )
        return pods

    def _post(self, payload):
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {self._api_key}",
        }
        try:
            response = open_url(
                self.url,
                data=json.dumps(payload),
                headers=headers,
                method="POST",
                timeout=self.timeout,
                validate_certs=self.validate_certs,
                follow_redirects="none",
                http_agent=USER_AGENT,
            )
            status, body = response.getcode(), response.read()
        except HTTPError as exc:
            status, body = exc.code, _read(exc)
            if 300 <= status < 400:
                raise RunPodApiError(
                    self._scrub(
                        f"The RunPod API at {self.url} answered HTTP {status} redirecting to "
                        f"{exc.headers.get('Location')!r}. Redirects are not followed, so the API key is not "
                        "sent on to another address: set api_url to the address the API really answers at."
                    )
                ) from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RunPodApiError(
                self._scrub(
                    f"Cannot reach the RunPod API at {self.url}: {reason}. Check the network (and "
                    "https_proxy), or api_url."
                )
            ) from None
        return self._decode(status, body)

    def _decode(self, status, body):
        try:
            doc = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            doc = None
        errors = (
            [str(error.get("message", error)) for error in (doc.get("errors") or []) if isinstance(error, dict)]
            if isinstance(doc, dict)
            else []
        )
        detail = "; ".join(errors) or _snippet(body)
        if status in (401, 403):
            raise RunPodApiError(
                f"RunPod refused the API key (HTTP {status}) at {self.url}: RUNPOD_API_KEY is wrong, revoked "
                "or lacks read access to pods. Create a key under Settings > API Keys in the RunPod console "
                "and export it as RUNPOD_API_KEY."
            )
        if status == 429:
            raise RunPodApiError(
                f"The RunPod API at {self.url} is rate limiting this key (HTTP 429): try again "
                "in a minute, or turn on the inventory cache (cache: true) so runs reuse one answer."
            )
        if status != 200:
            raise RunPodApiError(self._scrub(f"The RunPod API at {self.url} answered HTTP {status}: {detail}"))
        if doc is None:
            raise RunPodApiError(
                self._scrub(f"The RunPod API at {self.url} answered with something that is not JSON: {detail}")
            )
        if errors:
            raise RunPodApiError(self._scrub(f"The RunPod API at {self.url} reported an error: {detail}"))
        return doc

    def _scrub(self, text):
        """Belt and braces: whatever a server echoes, the key never leaves in a message."""
        return text.replace(self._api_key, MASK) if self._api_key else text


def _read(exc):
    try:
        return exc.read() or b""
    except (OSError, AttributeError):
        return b""


def _snippet(body):
    text = (body or b"").decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return (text[:200] + "...") if len(text) > 200 else (text or "(empty body)")
