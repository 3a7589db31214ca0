# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every workflow's mentions merged into one plan: one entry per model destination, one per
node pack, each listing every place that needs it and every disagreement about it.

Rules (documented in the module):

* Models are keyed by ``<directory>/<name>``. The URL is the first one given (workflows in path
  order, nodes in file order) and its sha256 goes with it, or the first sha256 another mention
  gives for the same URL. Any other URL or sha256 for the same destination is a conflict,
  reported with where it came from, never silently merged.
* A model with no URL anywhere is ``unresolved``; with ``models_dir`` a model whose file exists
  (in its folder or the folder ComfyUI searches with it, e.g. ``clip`` for ``text_encoders``)
  is ``present``; otherwise ``to_download``.
* Node packs are keyed by registry id (``cnr:<id>``) or GitHub repo (``github:<owner/repo>``),
  case-insensitively. The version is the highest when every workflow gives a semantic
  version, else the first given; any other is a conflict. ``comfy-core`` is built in and never
  listed.
* A node type without a pack id that some other node of the same type names is counted for
  that pack; the rest are ``unidentified`` (built in, or from a pack no workflow names).
"""

from __future__ import annotations

import gc
import os

from . import files, graph, report
from .values import FOLDER_ALIASES, COMFYUI_MODEL_FOLDERS, same_url, semver_key, shown

MAX_WARNINGS = 20


def plan_workflows(
    paths, models_dir=None, include_inactive=True, max_bytes=files.DEFAULT_MAX_BYTES, max_files=files.DEFAULT_MAX_FILES
):
    """The whole result of the module (see its RETURN), warnings included."""
    # Hundreds of thousands of short-lived, acyclic objects (parsed JSON, mentions): cycle
    # collection passes would only scan them again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan(paths, models_dir, include_inactive, max_bytes, max_files)
    finally:
        if enabled:
            gc.enable()


def _plan(paths, models_dir, include_inactive, max_bytes, max_files):
    if models_dir is not None and not os.path.isabs(models_dir):
        raise ValueError(f"models_dir '{models_dir}' is not an absolute path")
    found, skipped = files.find_workflow_files(paths, max_files=max_files)
    workflows, scans, warnings = [], [], []
    for path, reason in skipped:
        workflows.append(_workflow_entry(path, "skipped", reason))
        if not reason.endswith("does not exist"):
            warnings.append(f"workflow {shown(path)} {reason}")
    for path, real in found:
        doc, reason = files.read_json(real, max_bytes)
        if reason:
            workflows.append(_workflow_entry(path, "invalid", reason))
            warnings.append(f"workflow {shown(path)} is not read: {reason}; its models and nodes are not provisioned")
            continue
        scan = graph.scan_document(doc, path, include_inactive=include_inactive)
        del doc
        if scan.format is None:
            workflows.append(_workflow_entry(path, "invalid", scan.problems[0]["message"]))
            warnings.append(f"workflow {shown(path)} is not read: {scan.problems[0]['message']}")
            continue
        scans.append(scan)
        entry = _workflow_entry(path, "read", None)
        entry.update(
            format=scan.format,
            schema_version=scan.version,
            nodes_read=scan.node_count,
            builtin_nodes=scan.builtin,
            problems=len(scan.problems) + scan.more_problems,
            ignored=len(scan.ignored) + scan.more_ignored,
        )
        workflows.append(entry)
        if entry["problems"]:
            first = scan.problems[0]
            warnings.append(
                f"workflow {shown(path)}: {entry['problems']} problem{('' if entry['problems'] == 1 else 's')}, e.g. {first['where']}: {first['message']}"
            )

    models = _merge_models(scans, models_dir)
    packs, unidentified = _merge_nodes(scans)

    problems, ignored = [], []
    for scan in scans:
        problems.extend(dict(item, workflow=scan.path) for item in scan.problems)
        if scan.more_problems:
            problems.append(
                {
                    "workflow": scan.path,
                    "where": "workflow",
                    "message": f"{scan.more_problems} more problems not listed",
                }
            )
        ignored.extend(dict(item, workflow=scan.path) for item in scan.ignored)
        if scan.more_ignored:
            ignored.append(
                {
                    "workflow": scan.path,
                    "where": "workflow",
                    "value": None,
                    "reason": f"{scan.more_ignored} more ignored values not listed",
                }
            )

    statuses = [model["status"] for model in models]
    counts = {
        "workflows": sum(1 for entry in workflows if entry["status"] == "read"),
        "workflows_not_read": sum(1 for entry in workflows if entry["status"] != "read"),
        "models": len(models),
        "to_download": statuses.count("to_download"),
        "unresolved": statuses.count("unresolved"),
        "present": statuses.count("present"),
        "model_conflicts": sum(len(model["conflicts"]) for model in models),
        "node_packs": len(packs),
        "node_conflicts": sum(len(pack["conflicts"]) for pack in packs),
        "unidentified_node_types": len(unidentified),
        "problems": len(problems),
        "ignored": len(ignored),
    }
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [
            "%s more workflow warnings; see workflows and problems" % (len(warnings) - MAX_WARNINGS)
        ]
    result = {
        "workflows": workflows,
        "models": models,
        "node_packs": packs,
        "unidentified_nodes": unidentified,
        "problems": problems,
        "ignored": ignored,
        "counts": counts,
        "warnings": warnings,
    }
    result["report"] = report.render(result)
    return result


def _workflow_entry(path, status, reason):
    return {
        "path": path,
        "status": status,
        "reason": reason,
        "format": None,
        "schema_version": None,
        "nodes_read": 0,
        "builtin_nodes": 0,
        "problems": 0,
        "ignored": 0,
    }


# -- models --------------------------------------------------------------------------------


def _merge_models(scans, models_dir):
    grouped = {}
    for scan in scans:
        for mention in scan.models:
            key = f"{mention['directory']}/{mention['name']}"
            grouped.setdefault(key, []).append(mention)
    models = []
    for key, mentions in grouped.items():
        first = mentions[0]
        with_url = [m for m in mentions if m["url"]]
        url = with_url[0]["url"] if with_url else None
        if url:
            hashes = [m["sha256"] for m in with_url if m["sha256"] and same_url(m["url"], url)]
        else:
            hashes = [m["sha256"] for m in mentions if m["sha256"]]
        sha256 = hashes[0] if hashes else None
        conflicts, seen = [], set()
        for mention in mentions:
            for field, value, chosen in (("url", mention["url"], url), ("sha256", mention["sha256"], sha256)):
                if not value or (field == "url" and same_url(value, chosen)) or (field == "sha256" and value == chosen):
                    continue
                marker = (field, value, mention["source"]["workflow"])
                if marker not in seen:
                    seen.add(marker)
                    conflicts.append({"field": field, "value": value, "chosen": chosen, "source": mention["source"]})
        model = {
            "key": key,
            "directory": first["directory"],
            "name": first["name"],
            "known_directory": first["directory"] in COMFYUI_MODEL_FOLDERS,
            "url": url,
            "sha256": sha256,
            "dest": None,
            "present_at": None,
            "status": "to_download" if url else "unresolved",
            "required_by": [m["source"] for m in mentions],
            "conflicts": conflicts,
        }
        if models_dir is not None:
            _locate(model, models_dir)
        models.append(model)
    return models


def _locate(model, models_dir):
    root = os.path.normpath(models_dir)
    dest = os.path.normpath(os.path.join(root, model["directory"], model["name"]))
    if os.path.commonpath((root, dest)) != root or dest == root:  # cannot happen after values.*; kept as a guard
        raise ValueError(f"model {model['key']} would land outside {root}")
    model["dest"] = dest
    for folder in FOLDER_ALIASES.get(model["directory"], (model["directory"],)):
        candidate = os.path.join(root, folder, model["name"])
        if os.path.isfile(candidate):
            model["status"], model["present_at"] = "present", candidate
            return


# -- node packs ----------------------------------------------------------------------------


def _merge_nodes(scans):
    grouped = {}
    for scan in scans:
        for mention in scan.nodes:
            key = ("cnr:" + mention["cnr_id"].lower()) if mention["cnr_id"] else ("github:" + mention["aux_id"].lower())
            grouped.setdefault(key, []).append(mention)
    packs, by_type = [], {}
    for key, mentions in grouped.items():
        cnr = next((m["cnr_id"] for m in mentions if m["cnr_id"]), None)
        aux = next((m["aux_id"] for m in mentions if m["aux_id"]), None)
        versions = [(m["ver"], m["ver_kind"]) for m in mentions if m["ver"]]
        if versions and all(kind == "version" for _ver, kind in versions):
            ver, ver_kind = max(versions, key=lambda item: semver_key(item[0]))
        elif versions:
            ver, ver_kind = versions[0]
        else:
            ver, ver_kind = None, None
        conflicts, seen = [], set()
        for mention in mentions:
            if mention["ver"] and mention["ver"] != ver and (mention["ver"], mention["source"]["workflow"]) not in seen:
                seen.add((mention["ver"], mention["source"]["workflow"]))
                conflicts.append({"field": "ver", "value": mention["ver"], "chosen": ver, "source": mention["source"]})
        node_types = []
        for mention in mentions:
            if mention["source"]["node_type"] not in node_types:
                node_types.append(mention["source"]["node_type"])
        pack = {
            "key": key,
            "cnr_id": cnr,
            "aux_id": aux,
            "repository": f"https://github.com/{aux}" if aux else None,
            "ver": ver,
            "ver_kind": ver_kind,
            "node_types": node_types,
            "required_by": [dict(m["source"], ver=m["ver"]) for m in mentions],
            "conflicts": conflicts,
        }
        packs.append(pack)
        for node_type in node_types:
            by_type.setdefault(node_type, pack)
    # Node types nobody names a pack for: per type, the workflows and how many nodes (an API
    # prompt lists every core node here, so the places are kept short).
    unidentified = {}
    for scan in scans:
        for item in scan.unidentified:
            pack = by_type.get(item["node_type"])
            if pack is not None:
                pack["required_by"].append(dict(item["source"], via="same_node_type", ver=None))
                continue
            uses = unidentified.setdefault(item["node_type"], {})
            uses[item["source"]["workflow"]] = uses.get(item["source"]["workflow"], 0) + 1
    return packs, [
        {
            "node_type": node_type,
            "used_in": [{"workflow": workflow, "nodes": count} for workflow, count in uses.items()],
        }
        for node_type, uses in unidentified.items()
    ]
