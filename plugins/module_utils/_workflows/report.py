# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan as text a person reads at pod start and in the logs: a summary line, then per
workflow each model (present / to download / unresolved), each node pack (needed), each node
type nobody names (unknown), conflicts, problems and ignored values.

Every value that came from a workflow file goes through ``values.shown``: a file name with a
newline or a bidi override cannot forge or reorder a line of this report.
"""

from __future__ import annotations

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_url

from .values import shown


def _plural(count, word):
    return f"{count} {word}{('' if count == 1 else 's')}"


def summary(result):
    counts = result["counts"]
    parts = [f"{counts['workflows']} workflow{('' if counts['workflows'] == 1 else 's')} read"]
    if counts["workflows_not_read"]:
        parts[0] += f", {counts['workflows_not_read']} not read"
    parts.append(
        f"{_plural(counts['models'], 'model')}: {counts['to_download']} to download, {counts['unresolved']} unresolved, {counts['present']} present"
    )
    parts.append(f"{_plural(counts['node_packs'], 'node pack')} needed")
    parts.append(f"{_plural(counts['unidentified_node_types'], 'node type')} unknown")
    conflicts = counts["model_conflicts"] + counts["node_conflicts"]
    parts.append(_plural(conflicts, "conflict"))
    parts.append(_plural(counts["problems"], "problem"))
    return "Workflow requirements: " + "; ".join(parts)


def _source_text(source):
    text = (
        f"node {source['node_id']} {source['node_type']}"
        if source.get("node_id") is not None
        else "the workflow's models list"
    )
    if source.get("subgraph"):
        text += " in " + " > ".join(source["subgraph"])
    if source.get("input"):
        text += " " + source["input"]
    if not source.get("active", True):
        text += ", inactive"
    return shown(text, 200)


def _pack_text(pack):
    if pack["cnr_id"]:
        text = f"registry {pack['cnr_id']}"
        if pack["aux_id"]:
            text += f" (github {pack['aux_id']})"
    else:
        text = f"github {pack['aux_id']}"
    if pack["ver"]:
        text += (" @ %s" if pack["ver_kind"] == "commit" else " %s") % pack["ver"]
    return text


def render(result, parts=("models", "nodes"), model_states=None, pack_states=None):
    """The whole report, one string ending in a newline.

    ``parts`` picks the sections of each workflow. ``model_states`` (key -> ``{status,
    detail}``) and ``pack_states`` (key -> ``{status, detail}``) replace what the workflows
    alone say by what provisioning decided (a manifest provides it, installed, failed ...)."""
    per_workflow = {}

    def bucket(path):
        return per_workflow.setdefault(
            path, {"models": [], "packs": [], "unknown": [], "conflicts": [], "problems": [], "ignored": []}
        )

    for model in result["models"]:
        first = {}
        for source in model["required_by"]:
            first.setdefault(source["workflow"], source)
        for path, source in first.items():
            bucket(path)["models"].append((model, source))
        for conflict in model["conflicts"]:
            bucket(conflict["source"]["workflow"])["conflicts"].append((model["key"], conflict))
    for pack in result["node_packs"]:
        types = {}
        for source in pack["required_by"]:
            names = types.setdefault(source["workflow"], [])
            if source["node_type"] not in names:
                names.append(source["node_type"])
        for path, names in types.items():
            bucket(path)["packs"].append((pack, names))
        for conflict in pack["conflicts"]:
            bucket(conflict["source"]["workflow"])["conflicts"].append((pack["key"], conflict))
    for item in result["unidentified_nodes"]:
        for use in item["used_in"]:
            bucket(use["workflow"])["unknown"].append(item["node_type"])
    for item in result["problems"]:
        bucket(item["workflow"])["problems"].append(item)
    for item in result["ignored"]:
        bucket(item["workflow"])["ignored"].append(item)

    lines = [summary(result)]
    for workflow in result["workflows"]:
        path = shown(workflow["path"], 400)
        if workflow["status"] != "read":
            lines.append(f"== {path}: NOT READ: {shown(workflow['reason'], 300)}")
            continue
        schema = f", schema {workflow['schema_version']}" if workflow["schema_version"] else ""
        detail = f"{workflow['format']}{schema}, {_plural(workflow['nodes_read'], 'node')}"
        lines.append(f"== {path} ({detail})")
        found = per_workflow.get(workflow["path"], {})
        for model, source in found.get("models", ()) if "models" in parts else ():
            state = (model_states or {}).get(model["key"])
            if state is not None:
                line = f"  model {state['status'].replace('_', ' '):<12} {shown(model['key'])}"
                if state.get("detail"):
                    line += f"  ({shown(state['detail'], 400)})"
                lines.append(line)
                continue
            status = model["status"].replace("_", " ")
            line = f"  model {status:<12} {shown(model['key'])}"
            if model["status"] == "to_download":
                line += f"  <- {shown(masked_url(model['url']), 300)}"
                if model["sha256"]:
                    line += f"  (sha256 {model['sha256'][:12]}...)"
            elif model["status"] == "unresolved":
                line += f"  ({_source_text(source)}: no URL in any workflow)"
            else:
                line += f"  ({shown(model['present_at'], 300)})"
            if not model["known_directory"]:
                line += f"  [folder '{shown(model['directory'])}' is not one of ComfyUI's own: a custom node must register it]"
            lines.append(line)
        for pack, names in found.get("packs", ()) if "nodes" in parts else ():
            state = (pack_states or {}).get(pack["key"]) or {"status": "needed"}
            status = state["status"].replace("_", " ")
            line = f"  node  {status:<12} {shown(_pack_text(pack), 200)}  ({shown(', '.join(names), 300)})"
            if state.get("detail"):
                line += f"  {shown(state['detail'], 400)}"
            lines.append(line)
        for node_type in found.get("unknown", ()) if "nodes" in parts else ():
            lines.append(
                f"  node  {'unknown':<12} {shown(node_type)}  (no pack id: built in, or from a pack no workflow names)"
            )
        for key, conflict in found.get("conflicts", ()):
            if key.startswith(("cnr:", "github:")) != ("nodes" in parts) and len(parts) == 1:
                continue
            value, chosen = conflict["value"], conflict["chosen"]
            if conflict["field"] == "url":
                value, chosen = masked_url(value), masked_url(chosen) if chosen else chosen
            lines.append(
                f"  conflict           {shown(key)}: {conflict['field']} {shown(value, 200)} "
                f"from {_source_text(conflict['source'])}; using {shown(chosen, 200)}"
            )
        for item in found.get("problems", ()):
            lines.append(f"  problem            {shown(item['where'], 200)}: {shown(item['message'], 400)}")
        for item in found.get("ignored", ()):
            value = (f" {shown(item['value'], 120)}:") if item["value"] else ""
            lines.append(f"  ignored            {shown(item['where'], 200)}:{value} {shown(item['reason'], 200)}")
    return "\n".join(lines) + "\n"
