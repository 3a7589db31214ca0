# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The models workflows need, planned together with the models manifests.

One destination, one entry: a manifest entry for a destination wins over a workflow's, and a
workflow that says something else about it (another URL, another sha256) is reported. A
workflow model with a URL becomes a manifest entry of its own, built by the manifest parser
itself (``ManifestParser.entry``), so it passes exactly the checks a manifest line passes and
its sha256 is verified like a manifest's. A Hugging Face ``/resolve/`` URL on the configured
hub becomes a ``huggingface`` entry (the HF token goes to that origin only, as for a manifest
line), every other URL a tokenless ``url`` entry. A model without a URL is ``unresolved``
unless a manifest or a file already present provides it.
"""

from __future__ import annotations

import os
import posixpath
from urllib.parse import unquote, urlsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_url

from .values import same_url, shown

# Final status of each workflow model (RETURN of model_manifest's workflow_models).
MANIFEST = "manifest"  # a manifest entry writes that destination
TO_DOWNLOAD = "to_download"  # a workflow entry of the plan downloads it
PRESENT = "present"  # its file is there (maybe in an alias folder) and nobody downloads it
UNRESOLVED = "unresolved"  # no URL anywhere and no file
REFUSED = "refused"  # the workflow's URL or hash did not pass the manifest checks


def source_text(source):
    """'<workflow> node <id> (<type>)' for messages and plan origins."""
    if source.get("node_id") is None:
        where = "models list"
    else:
        where = f"node {source['node_id']} ({source['node_type']})"
    if source.get("subgraph"):
        where += " in " + " > ".join(source["subgraph"])
    return shown(f"{source['workflow']} {where}", 400)


def _hf_fields(url, hf_endpoint, name):
    """(identifier, filename) of a Hugging Face resolve URL on the hub, or None."""
    hub, parts = urlsplit(hf_endpoint), urlsplit(url)
    if (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port) != (
        hub.scheme.lower(),
        (hub.hostname or "").lower(),
        hub.port,
    ):
        return None
    if parts.query not in ("", "download=true") or parts.fragment:
        return None
    prefix = hub.path.rstrip("/") + "/"
    if not parts.path.startswith(prefix):
        return None
    segments = parts.path[len(prefix) :].split("/")
    if len(segments) < 5 or segments[2] != "resolve":
        return None
    org, repo, revision = segments[0], segments[1], unquote(segments[3])
    filename = unquote("/".join(segments[4:]))
    if posixpath.basename(filename) != name:
        return None  # the file lands under the workflow's name: only a url entry can say that
    identifier = f"{org}/{repo}" + ("" if revision == "main" else "@" + revision)
    return identifier, filename


def raw_entry(model, hf_endpoint):
    """The manifest fields of a workflow model with a URL."""
    fields = _hf_fields(model["url"], hf_endpoint, model["name"])
    raw = {"subdir": model["directory"], "sha256": model["sha256"] or ""}
    if fields:
        raw.update(source="huggingface", identifier=fields[0], filename=fields[1])
    else:
        raw.update(source="url", identifier=model["url"], filename=model["name"])
    return raw


def plan_workflow_models(workflow_result, manifest_entries, parser):
    """Merge the workflows' models into a manifest plan.

    Returns ``(entries, models, warnings)``: plan entries for the workflow models no manifest
    writes (to append to the plan's), one item per workflow model with its final ``status``
    (see the constants above) and what decided it, and the warnings a person must see
    (manifest disagreements, refused values, unresolved models).
    """
    by_dest = {entry["dest"]: entry for entry in manifest_entries}
    entries, models, warnings = [], [], []
    for model in workflow_result["models"]:
        first = model["required_by"][0]
        dest = os.path.join(parser.models_dir, model["directory"], model["name"])
        item = {
            "key": model["key"],
            "dest": dest,
            "url": model["url"],
            "sha256": model["sha256"],
            "status": None,
            "origin": None,
            "reason": None,
            "disagreements": [],
            "required_by": model["required_by"],
            "conflicts": model["conflicts"],
            "present_at": model.get("present_at"),
            "known_directory": model["known_directory"],
        }
        manifest = by_dest.get(dest)
        if manifest is not None:
            item.update(status=MANIFEST, origin=manifest["origin"])
            _disagreements(item, model, manifest, first, warnings)
        elif model["url"] and (model["status"] != "present" or model.get("present_at") == dest):
            origin = "workflow " + source_text(first)
            try:
                entry = parser.entry(raw_entry(model, parser.hf_endpoint), origin)
            except ValueError as exc:
                reason = f"refused: {exc}"
                item.update(status=REFUSED, origin=origin, reason=reason)
                warnings.append(
                    f"workflow model {shown(model['key'])} from {source_text(first)}: {shown(str(exc), 300)}; it is not downloaded"
                )
            else:
                entries.append(entry)
                item.update(status=TO_DOWNLOAD, origin=origin)
        elif model["status"] == "present":
            item.update(status=PRESENT, reason=f"found at {model['present_at']}")
        else:
            item.update(status=UNRESOLVED, reason="no URL in any workflow or manifest")
            warnings.append(
                f"workflow model {shown(model['key'])} ({source_text(first)}) is unresolved: no workflow gives a URL and no manifest "
                "lists it; add it to a models manifest or put the file in place"
            )
        models.append(item)
    return entries, models, warnings


def _disagreements(item, model, manifest, first, warnings):
    manifest_url = manifest.get("url")
    if model["url"] and manifest_url and not same_url(model["url"], manifest_url):
        item["disagreements"].append(
            {"field": "url", "workflow": masked_url(model["url"]), "manifest": masked_url(manifest_url)}
        )
    elif model["url"] and not manifest_url:
        item["disagreements"].append(
            {
                "field": "url",
                "workflow": masked_url(model["url"]),
                "manifest": f"{manifest['source']} {manifest.get('identifier')}",
            }
        )
    if model["sha256"] and manifest.get("sha256") and model["sha256"] != manifest["sha256"]:
        item["disagreements"].append({"field": "sha256", "workflow": model["sha256"], "manifest": manifest["sha256"]})
    for item_disagreement in item["disagreements"]:
        warnings.append(
            f"model {shown(model['key'])}: {source_text(first)} gives {item_disagreement['field']} "
            f"{shown(item_disagreement['workflow'], 300)}, the manifest ({manifest['origin']}) "
            f"{shown(item_disagreement['manifest'], 300)}; the manifest's is used"
        )


def report_states(models):
    """key -> {status, detail} for report.render: what a person needs to know of each model now."""
    states = {}
    for item in models:
        status, detail = item["status"], None
        if status in (MANIFEST, TO_DOWNLOAD):
            status = PRESENT if os.path.isfile(item["dest"]) else TO_DOWNLOAD
            detail = (
                (f"from the manifest {item['origin']}")
                if item["status"] == MANIFEST
                else f"<- {masked_url(item['url'])}{('  sha256 {}...'.format(item['sha256'][:12]) if item['sha256'] else '')}"
            )
        elif status == PRESENT:
            detail = item["reason"]
        else:
            detail = item["reason"]
        for disagreement in item["disagreements"]:
            detail += f"; the workflow's {disagreement['field']} {disagreement['workflow']} is not used"
        states[item["key"]] = {"status": status, "detail": detail}
    return states


def counts(models):
    """Workflow models per final status."""
    totals = {status: 0 for status in (MANIFEST, TO_DOWNLOAD, PRESENT, UNRESOLVED, REFUSED)}
    for item in models:
        totals[item["status"]] += 1
    totals["disagreements"] = sum(len(item["disagreements"]) for item in models)
    return totals
