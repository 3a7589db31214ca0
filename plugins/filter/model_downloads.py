# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a model_manifest plan into the download lists of aria2_batch and r2_fetch, and their
results back into one report.

No secret passes through here: HTTP items name the variable that holds their token
(``token_name``), which the module reads on the target. Each filter is documented in the
sidecar file of its name (``ansible-doc -t filter aiclipse.comfyui.model_http_downloads``).
"""

from ansible.errors import AnsibleFilterError

HTTP_TOKENS = {"huggingface": "hf_token_name", "civitai": "civitai_token_name", "url": None}


def _entries(entries, filter_name):
    if not isinstance(entries, (list, tuple)):
        raise AnsibleFilterError(
            f"{filter_name} expects the entries list of model_manifest, got {type(entries).__name__}"
        )
    return entries


def model_http_downloads(entries, hf_token_name="HF_TOKEN", civitai_token_name="CIVITAI_TOKEN"):
    """aria2_batch `downloads` items for the HTTP sources, each naming its source's token."""
    tokens = {"hf_token_name": hf_token_name, "civitai_token_name": civitai_token_name}
    items = []
    for entry in _entries(entries, "model_http_downloads"):
        if entry.get("source") not in HTTP_TOKENS:
            continue
        item = {"name": entry["name"], "url": entry["url"], "dest": entry["dest"]}
        if entry.get("sha256"):
            item["sha256"] = entry["sha256"]
        if entry.get("size") is not None:
            item["size"] = entry["size"]
        if entry.get("secret_url"):
            item["secret_url"] = True  # url is masked; the module reads the real one on the target
        token_name = tokens.get(HTTP_TOKENS[entry["source"]] or "")
        if token_name:
            item["token_name"] = token_name
        items.append(item)
    return items


def model_r2_objects(entries):
    """r2_fetch `objects` items for the r2 entries."""
    items = []
    for entry in _entries(entries, "model_r2_objects"):
        if entry.get("source") != "r2":
            continue
        item = {"name": entry["name"], "bucket": entry["bucket"], "key": entry["key"], "dest": entry["dest"]}
        if entry.get("sha256"):
            item["sha256"] = entry["sha256"]
        items.append(item)
    return items


def model_download_report(results, skipped=None, planned=None):
    """One report over download module results (registered) and the plan's skipped entries.

    ``results`` is a list of registered results, or a dict label -> result so that a task that
    failed as a whole is named by its label. ``planned`` (the plan's entries) makes sure every
    planned model is accounted for: one without a result (its task crashed before reporting)
    is a failure naming the task's message.

    Returns counts, ``failures`` (``"<name>: <reason>"`` lines, including a module that failed
    as a whole) and ``lines`` (one per entry) for a person to read.
    """
    report = {"downloaded": 0, "present": 0, "failed": 0, "would_download": 0, "failures": [], "lines": []}
    if isinstance(results, dict):
        labelled = sorted(results.items())
    else:
        labelled = [("download task", result) for result in results or []]
    reported = set()
    crashed = []
    for label, result in labelled:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        entries = result.get("results") or []
        if not entries and (result.get("failed") or result.get("msg")):
            crashed.append(f"{label}: {result.get('msg', 'failed')}")
            if planned is None:  # nothing to attribute it to: the task itself is the failure
                report["failed"] += 1
                report["failures"].append(crashed[-1])
        for entry in entries:
            status = entry.get("status", "failed")
            name = entry.get("name") or entry.get("dest")
            reported.add(entry.get("dest"))
            report[status] = report.get(status, 0) + 1
            line = f"{name}: {status}"
            if entry.get("reason"):
                line += f" ({entry['reason']})"
            report["lines"].append(line)
            if status == "failed":
                report["failures"].append(f"{name}: {entry.get('reason') or 'failed'}")
    for entry in skipped or []:
        reported.add(entry.get("dest"))
        report["failed"] += 1
        report["lines"].append(f"{entry['name']}: failed ({entry['reason']})")
        report["failures"].append(f"{entry['name']}: {entry['reason']}")
    missing = [entry for entry in planned or [] if entry.get("dest") not in reported]
    why = "; ".join(crashed) or "its download task returned no result"
    for entry in missing:
        report["failed"] += 1
        report["lines"].append(f"{entry.get('name')}: failed (no result: {why})")
        report["failures"].append(f"{entry.get('name')}: no result: {why}")
    return report


class FilterModule:
    """Model plan -> download module arguments."""

    def filters(self):
        return {
            "model_http_downloads": model_http_downloads,
            "model_r2_objects": model_r2_objects,
            "model_download_report": model_download_report,
        }
