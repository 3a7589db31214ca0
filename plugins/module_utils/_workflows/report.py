# -*- coding: utf-8 -*-
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
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def summary(result):
    counts = result["counts"]
    parts = ["%d workflow%s read" % (counts["workflows"], "" if counts["workflows"] == 1 else "s")]
    if counts["workflows_not_read"]:
        parts[0] += ", %d not read" % counts["workflows_not_read"]
    parts.append(
        "%s: %d to download, %d unresolved, %d present"
        % (_plural(counts["models"], "model"), counts["to_download"], counts["unresolved"], counts["present"])
    )
    parts.append("%s needed" % _plural(counts["node_packs"], "node pack"))
    parts.append("%s unknown" % _plural(counts["unidentified_node_types"], "node type"))
    conflicts = counts["model_conflicts"] + counts["node_conflicts"]
    parts.append(_plural(conflicts, "conflict"))
    parts.append(_plural(counts["problems"], "problem"))
    return "Workflow requirements: " + "; ".join(parts)


def _source_text(source):
    text = (
        "node %s %s" % (source["node_id"], source["node_type"])
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
        text = "registry %s" % pack["cnr_id"]
        if pack["aux_id"]:
            text += " (github %s)" % pack["aux_id"]
    else:
        text = "github %s" % pack["aux_id"]
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
            lines.append("== %s: NOT READ: %s" % (path, shown(workflow["reason"], 300)))
            continue
        detail = "%s%s, %s" % (
            workflow["format"],
            ", schema " + workflow["schema_version"] if workflow["schema_version"] else "",
            _plural(workflow["nodes_read"], "node"),
        )
        lines.append("== %s (%s)" % (path, detail))
        found = per_workflow.get(workflow["path"], {})
        for model, source in found.get("models", ()) if "models" in parts else ():
            state = (model_states or {}).get(model["key"])
            if state is not None:
                line = "  model %-12s %s" % (state["status"].replace("_", " "), shown(model["key"]))
                if state.get("detail"):
                    line += "  (%s)" % shown(state["detail"], 400)
                lines.append(line)
                continue
            status = model["status"].replace("_", " ")
            line = "  model %-12s %s" % (status, shown(model["key"]))
            if model["status"] == "to_download":
                line += "  <- %s" % shown(masked_url(model["url"]), 300)
                if model["sha256"]:
                    line += "  (sha256 %s...)" % model["sha256"][:12]
            elif model["status"] == "unresolved":
                line += "  (%s: no URL in any workflow)" % _source_text(source)
            else:
                line += "  (%s)" % shown(model["present_at"], 300)
            if not model["known_directory"]:
                line += "  [folder '%s' is not one of ComfyUI's own: a custom node must register it]" % shown(
                    model["directory"]
                )
            lines.append(line)
        for pack, names in found.get("packs", ()) if "nodes" in parts else ():
            state = (pack_states or {}).get(pack["key"]) or {"status": "needed"}
            line = "  node  %-12s %s  (%s)" % (
                state["status"].replace("_", " "),
                shown(_pack_text(pack), 200),
                shown(", ".join(names), 300),
            )
            if state.get("detail"):
                line += "  %s" % shown(state["detail"], 400)
            lines.append(line)
        for node_type in found.get("unknown", ()) if "nodes" in parts else ():
            lines.append(
                "  node  %-12s %s  (no pack id: built in, or from a pack no workflow names)"
                % ("unknown", shown(node_type))
            )
        for key, conflict in found.get("conflicts", ()):
            if key.startswith(("cnr:", "github:")) != ("nodes" in parts) and len(parts) == 1:
                continue
            value, chosen = conflict["value"], conflict["chosen"]
            if conflict["field"] == "url":
                value, chosen = masked_url(value), masked_url(chosen) if chosen else chosen
            lines.append(
                "  conflict           %s: %s %s from %s; using %s"
                % (
                    shown(key),
                    conflict["field"],
                    shown(value, 200),
                    _source_text(conflict["source"]),
                    shown(chosen, 200),
                )
            )
        for item in found.get("problems", ()):
            lines.append("  problem            %s: %s" % (shown(item["where"], 200), shown(item["message"], 400)))
        for item in found.get("ignored", ()):
            value = (" %s:" % shown(item["value"], 120)) if item["value"] else ""
            lines.append(
                "  ignored            %s:%s %s" % (shown(item["where"], 200), value, shown(item["reason"], 200))
            )
    return "\n".join(lines) + "\n"
