# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From RunPod's pod records to inventory hosts: what is kept, filters, the SSH endpoint.

A pod's environment holds its settings and often its secrets (HF_TOKEN, R2 keys, passwords,
tokens inside URLs such as CONFIG_REPO). Host variables are printed by ``ansible-inventory
--list`` and written to the inventory cache, so only an allow-list of settings crosses over,
and even an allowed name never carries a value when it looks secret (the words rp_env_export
masks: TOKEN, SECRET, KEY, PASSWORD, PASSWD, CREDENTIAL); credentials inside a URL are masked.
The pod itself keeps every value: over SSH the pod_env role reads them from the pod's main
process, so nothing secret needs to travel to the controller.
"""

from __future__ import annotations

import fnmatch

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import mask_credentials
from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment.env_export import is_secret_name

# The pod settings of this collection that are not secret (README "Pod settings").
DEFAULT_ENV_NAMES = (
    "TEMPLATE_TYPE",
    "TEMPLATE_VERSION",
    "COMFY_ARGS",
    "ENABLE_SAGE_ATTENTION",
    "DOWNLOAD_MODELS",
    "DOWNLOAD_IN_FOREGROUND",
    "INSTALL_CUSTOM_NODES",
    "MODELS_MANIFEST",
    "NODES_MANIFEST",
    "COMFYUI_VERSION",
    "AUTO_UPDATE",
    "CONFIG_BRANCH",
    "FORCE_WORKFLOW_RESET",
    "GPU_TYPE",
)


def parse_env(entries):
    """RunPod's ``["KEY=value", ...]`` (a value may hold '=') as a dict; also takes a dict."""
    if isinstance(entries, dict):
        return {str(k): "" if v is None else str(v) for k, v in entries.items()}
    env = {}
    for entry in entries or []:
        name, sep, value = str(entry).partition("=")
        if sep and name:
            env[name] = value
    return env


def split_env(env, allowed_names):
    """(values that may land in host vars, sorted names of everything withheld)."""
    allowed = set(allowed_names)
    shown, withheld = {}, []
    for name in sorted(env):
        if name in allowed and not is_secret_name(name):
            shown[name] = mask_credentials(env[name], "********")
        else:
            withheld.append(name)
    return shown, withheld


def ssh_endpoint(pod):
    """(ip, port, None) of the pod's public SSH mapping, or (None, None, why there is none)."""
    runtime = pod.get("runtime")
    if not isinstance(runtime, dict):
        return (
            None,
            None,
            (
                f"it has no runtime yet (status {pod.get('desiredStatus') or 'unknown'}): it is "
                "starting or stopped, so RunPod lists no address for it"
            ),
        )
    ssh_ports = [
        port
        for port in runtime.get("ports") or []
        if isinstance(port, dict) and port.get("privatePort") == 22 and port.get("type") == "tcp"
    ]
    if not ssh_ports:
        return (
            None,
            None,
            (
                "it exposes no 22/tcp port: add 22 to the pod's (or template's) exposed TCP "
                "ports and make sure sshd runs in the image"
            ),
        )
    public = [port for port in ssh_ports if port.get("isIpPublic") and port.get("ip") and port.get("publicPort")]
    if not public:
        return (
            None,
            None,
            (
                "its port 22 has no public IP (RunPod's SSH proxy cannot run Ansible): deploy "
                "it on a machine with a public IP"
            ),
        )
    return public[0]["ip"], int(public[0]["publicPort"]), None


def record(pod, allowed_env_names):
    """What the inventory keeps of one pod (and caches): never a withheld value."""
    machine = pod.get("machine") if isinstance(pod.get("machine"), dict) else {}
    env, withheld = split_env(parse_env(pod.get("env")), allowed_env_names)
    ip, port, problem = ssh_endpoint(pod)
    runtime = pod.get("runtime") if isinstance(pod.get("runtime"), dict) else {}
    return {
        "id": str(pod.get("id") or ""),
        "name": str(pod.get("name") or ""),
        "status": str(pod.get("desiredStatus") or ""),
        "image": str(pod.get("imageName") or ""),
        "gpu": str(machine.get("gpuDisplayName") or ""),
        "gpu_count": pod.get("gpuCount") or 0,
        "location": str(machine.get("location") or ""),
        "machine_id": str(pod.get("machineId") or ""),
        "cost_per_hr": pod.get("costPerHr"),
        "uptime_seconds": runtime.get("uptimeInSeconds"),
        "env": env,
        "env_withheld": withheld,
        "ssh_host": ip,
        "ssh_port": port,
        "ssh_problem": problem,
    }


def reapply_env_policy(rec, allowed_env_names):
    """A cached record under today's allow-list: a name dropped from it since is withheld now."""
    env, withheld = split_env(rec.get("env") or {}, allowed_env_names)
    return dict(rec, env=env, env_withheld=sorted(set(withheld) | set(rec.get("env_withheld") or [])))


def _any_glob(value, patterns):
    return any(fnmatch.fnmatchcase(value.lower(), pattern.lower()) for pattern in patterns)


def matches(rec, name_prefixes=(), gpu_types=(), statuses=(), images=()):
    """True when the pod passes every filter that is set (each filter: any of its values)."""
    if name_prefixes and not any(rec["name"].startswith(prefix) for prefix in name_prefixes):
        return False
    if gpu_types and not _any_glob(rec["gpu"], gpu_types):
        return False
    if statuses and rec["status"].upper() not in {status.upper() for status in statuses}:
        return False
    if images and not _any_glob(rec["image"], images):
        return False
    return True


def hostnames(records, source="name"):
    """{pod id: inventory hostname}. By name, unless names clash or are empty: then
    ``<name>-<id>`` for each clashing pod, so no pod silently takes another's place."""
    if source == "id":
        return {rec["id"]: rec["id"] for rec in records}, []
    counts = {}
    for rec in records:
        counts[rec["name"]] = counts.get(rec["name"], 0) + 1
    names, clashes = {}, set()
    for rec in records:
        if not rec["name"]:
            names[rec["id"]] = rec["id"]
        elif counts[rec["name"]] > 1:
            names[rec["id"]] = f"{rec['name']}-{rec['id']}"
            clashes.add(rec["name"])
        else:
            names[rec["id"]] = rec["name"]
    return names, sorted(clashes)


def host_vars(rec):
    """Variables of the host of one pod: its SSH endpoint and what RunPod says about it."""
    return {
        "ansible_host": rec["ssh_host"],
        "ansible_port": rec["ssh_port"],
        "runpod_id": rec["id"],
        "runpod_name": rec["name"],
        "runpod_status": rec["status"],
        "runpod_image": rec["image"],
        "runpod_gpu": rec["gpu"],
        "runpod_gpu_count": rec["gpu_count"],
        "runpod_location": rec["location"],
        "runpod_machine_id": rec["machine_id"],
        "runpod_cost_per_hr": rec["cost_per_hr"],
        "runpod_env": rec["env"],
        "runpod_env_withheld": rec["env_withheld"],
    }
