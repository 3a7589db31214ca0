# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One workflow document -> what it mentions: models, node packs, nodes of unknown origin.

Formats (ComfyUI frontend's zod schemas, ``workflowSchema.ts``):

* UI graphs, schema 0.4 (``version: 0.4``, links as arrays) and 1 (``version: 1``, ``state``,
  links as objects): ``nodes[]`` with ``id``, ``type``, ``mode``, ``properties`` and
  ``widgets_values``; subgraph definitions in ``definitions.subgraphs[]`` (nested definitions
  too), each a graph of its own whose instances are nodes whose ``type`` is the definition's
  id; legacy group nodes in ``extra.groupNodes``; a top-level ``models[]`` list (schema 1 and
  subgraph definitions).
* API prompts ``{id: {class_type, inputs, _meta}}``, bare or as the ``prompt`` of a /prompt
  request body.

What is read, per node:

* ``properties.models[]`` (``name``, ``url``, ``directory``, ``hash``, ``hash_type``). Like the
  frontend's missing-models check, a declared model counts only when one of the node's widget
  values (or of an instance of its subgraph, which carries promoted widgets) selects it; a node
  without widget values keeps all of them. An unselected one is stale metadata: ignored, and
  listed as such.
* the workflow's ``models[]``: required by the nodes whose widget values select them, else by
  the workflow itself.
* ``properties.cnr_id`` / ``aux_id`` / ``ver``: the node pack; ``comfy-core`` is built in.
* ComfyUI's loaders (``loaders.LOADER_WIDGETS``): the file a widget names, without a URL unless
  the workflow declares a model of that name elsewhere.

Nodes in mode 2 (never) or 4 (bypass), or inside subgraphs no active node instantiates, are
marked inactive. Every value is checked with ``values``; a bad one becomes a problem naming the
node and field, never an exception.
"""

from __future__ import annotations

from . import loaders
from .values import (
    BUILTIN_CNR_ID,
    BadValue,
    aux_id,
    cnr_id,
    download_url,
    file_name,
    model_folder,
    model_hash,
    node_version,
    shown,
)

INACTIVE_MODES = (2, 4)
MAX_SUBGRAPH_DEPTH = 32
MAX_LISTED = 100  # problems / ignored items kept per workflow (the rest are counted)
MAX_MENTIONS = 20000  # requirements taken from one workflow
GROUP = object()
_NONE = frozenset()  # the graph id of legacy group nodes' insides (always running)


class Scan:
    """What one workflow mentions. Lists of plain dicts, ready for ``plan``."""

    def __init__(self, path):
        self.path = path
        self.format = None  # "ui" | "api"
        self.version = None  # "0.4" | "1" | other schema version as text
        self.models = []  # {directory, name, url, sha256, source}
        self.nodes = []  # {cnr_id, aux_id, ver, ver_kind, source}
        self.unidentified = []  # {node_type, source}
        self.builtin = 0
        self.node_count = 0
        self.problems = []  # {where, message}
        self.ignored = []  # {where, value, reason}
        self.more_problems = 0
        self.more_ignored = 0
        self.too_many = False

    def problem(self, where, message):
        if len(self.problems) < MAX_LISTED:
            self.problems.append({"where": str(where), "message": message})
        else:
            self.more_problems += 1

    def ignore(self, where, value, reason):
        if len(self.ignored) < MAX_LISTED:
            self.ignored.append({"where": str(where), "value": value, "reason": reason})
        else:
            self.more_ignored += 1

    def room(self):
        if len(self.models) + len(self.nodes) + len(self.unidentified) < MAX_MENTIONS:
            return True
        if not self.too_many:
            self.too_many = True
            self.problem("workflow", f"more than {MAX_MENTIONS} requirements; the rest are not read")
        return False


def _ident(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, str)):
        return shown(str(value), 64)
    return None


def _strings(widgets):
    if isinstance(widgets, list):
        return {value for value in widgets if isinstance(value, str) and value.strip()}
    if isinstance(widgets, dict):
        return {value for value in widgets.values() if isinstance(value, str) and value.strip()}
    return set()


def _where(node_id, node_type, path, field=None):
    text = f"node {(node_id if node_id is not None else '?')} ({shown(node_type, 80)})"
    if path:
        text += " in " + " > ".join(f"subgraph '{step['name']}'" for step in path)
    return text + (" " + field if field else "")


class _Where:
    """Where in the workflow a value sits, made into text only when a problem needs it (most
    nodes have none, and a planner reading thousands of workflows should not format for them)."""

    __slots__ = ("node_id", "node_type", "path", "field")

    def __init__(self, node_id, node_type, path, field=None):
        self.node_id, self.node_type, self.path, self.field = node_id, node_type, path, field

    def at(self, field):
        return _Where(
            self.node_id, self.node_type, self.path, field if self.field is None else self.field + " " + field
        )

    def __str__(self):
        return _where(self.node_id, self.node_type, self.path, self.field)


def scan_document(doc, path, include_inactive=True):
    """Scan a parsed workflow; a document that is no workflow at all gets ``format`` None and
    one problem saying so."""
    scan = Scan(path)
    if isinstance(doc, dict) and isinstance(doc.get("nodes"), list):
        _scan_ui(scan, doc, include_inactive)
    elif isinstance(doc, dict) and _api_like(doc.get("prompt")):
        _scan_api(scan, doc["prompt"])
    elif isinstance(doc, dict) and _api_like(doc):
        _scan_api(scan, doc)
    elif (
        isinstance(doc, dict)
        and isinstance(doc.get("workflow"), dict)
        and isinstance(doc["workflow"].get("nodes"), list)
    ):
        _scan_ui(scan, doc["workflow"], include_inactive)
    else:
        scan.problem("workflow", "not a ComfyUI workflow (neither a UI graph with nodes nor an API prompt)")
    return scan


def _api_like(doc):
    return isinstance(doc, dict) and any(
        isinstance(node, dict) and isinstance(node.get("class_type"), str) for node in doc.values()
    )


# -- API prompts ---------------------------------------------------------------------------


def _scan_api(scan, prompt):
    scan.format = "api"
    for key, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not node["class_type"]:
            scan.problem(f"node {shown(key, 64)}", "not an API node (no class_type); skipped")
            continue
        scan.node_count += 1
        node_type = node["class_type"]
        node_id = shown(key, 64)
        source = {
            "workflow": scan.path,
            "node_id": node_id,
            "node_type": shown(node_type, 120),
            "subgraph": [],
            "active": True,
        }
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        if node_type in loaders.LOADER_WIDGETS:
            scan.builtin += 1
            for input_name, folder, value in loaders.loader_files(node_type, inputs):
                _loader_mention(scan, source, input_name, folder, value, _Where(node_id, node_type, []), {})
        elif node_type not in loaders.FRONTEND_ONLY and scan.room():
            # API prompts carry no pack ids: a node is built in or from a pack nobody named.
            scan.unidentified.append({"node_type": shown(node_type, 120), "source": source})


# -- UI graphs -----------------------------------------------------------------------------


def _scan_ui(scan, doc, include_inactive):
    scan.format = "ui"
    version = doc.get("version")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        scan.version = "1" if version == 1 else shown(str(version), 16)
    graphs = [(doc, [], None, ())]  # (graph, path shown in sources, raw id, raw ids of its chain)
    _collect_definitions(scan, doc, [], (), graphs)
    _collect_group_nodes(scan, doc, graphs)
    definition_ids = {graph_id for _graph, _path, graph_id, _chain in graphs if graph_id not in (None, GROUP)}

    # Which subgraphs run: instantiated by an active node in a graph that runs itself.
    instances, instance_strings = [], {}
    for graph, _path, graph_id, _chain in graphs:
        for node in _nodes_of(graph):
            if isinstance(node, dict) and node.get("type") in definition_ids:
                instances.append((graph_id, node["type"], node.get("mode") not in INACTIVE_MODES))
                instance_strings.setdefault(node["type"], set()).update(_strings(node.get("widgets_values")))
    running = set()
    changed = True
    while changed:
        changed = False
        for container, definition, on in instances:
            if on and definition not in running and (container is None or container in running):
                running.add(definition)
                changed = True

    top_models = _top_level_models(scan, graphs)
    top_names = {entry["name"] for entry in top_models}
    selected_by = {}  # top-level model name -> [node sources]
    declared_dirs = {entry["name"]: entry["directory"] for entry in top_models}
    pending_loaders = []

    for graph, path, graph_id, chain in graphs:
        nodes = graph.get("nodes")
        if not isinstance(nodes, list):
            continue
        graph_running = graph_id in (None, GROUP) or graph_id in running
        names = [step["name"] for step in path]
        selectable = set()  # promoted widget values: an instance may select an inner model
        for ancestor in chain:
            selectable |= instance_strings.get(ancestor, set())
        for index, node in enumerate(nodes):
            if not isinstance(node, dict):
                scan.problem(f"nodes[{index}]{_in(path)}", "not a node object; skipped")
                continue
            node_type = node.get("type")
            node_id = _ident(node.get("id", node.get("index")))
            if not isinstance(node_type, str) or not node_type:
                scan.problem(f"node {node_id}{_in(path)}", "has no type; skipped")
                continue
            if (
                node_type in definition_ids
                or node_type.startswith(("workflow>", "workflow/"))
                or node_type in loaders.FRONTEND_ONLY
            ):
                continue  # subgraph or group-node instance (its insides are walked), or a note
            scan.node_count += 1
            active = graph_running and node.get("mode") not in INACTIVE_MODES
            source = {
                "workflow": scan.path,
                "node_id": node_id,
                "node_type": shown(node_type, 120),
                "subgraph": names,
                "active": active,
            }
            where = _Where(node_id, node_type, path)
            if not active and not include_inactive:
                scan.ignore(where, None, "the node is bypassed, muted or in an unused subgraph")
                continue
            properties = node.get("properties")
            if properties is None:
                properties = {}
            elif not isinstance(properties, dict):
                scan.problem(where, "properties is not an object; read as empty")
                properties = {}
            widgets = node.get("widgets_values")
            strings = _strings(widgets) if top_names or "models" in properties else _NONE
            for name in strings & top_names:
                selected_by.setdefault(name, []).append(source)
            _identity(scan, node_type, properties, source, where)
            declared = _declared_models(scan, properties, strings, selectable, source, where)
            for name, directory in declared.items():
                declared_dirs.setdefault(name, directory)
            for input_name, folder, value in loaders.loader_files(node_type, widgets):
                if value not in declared:
                    pending_loaders.append((source, input_name, folder, value, where))

    for entry in top_models:
        sources = selected_by.get(entry["name"]) or [
            {
                "workflow": scan.path,
                "node_id": None,
                "node_type": None,
                "subgraph": [step["name"] for step in entry["path"]],
                "active": True,
            }
        ]
        for source in sources:
            if scan.room():
                scan.models.append(dict(entry["model"], source=dict(source, via="workflow_models")))
    # A loader's file the workflow declares elsewhere goes where that declaration says.
    for source, input_name, folder, value, where in pending_loaders:
        _loader_mention(scan, source, input_name, folder, value, where, declared_dirs)


def _in(path):
    return (" in " + " > ".join(f"subgraph '{step['name']}'" for step in path)) if path else ""


def _nodes_of(graph):
    nodes = graph.get("nodes")
    return nodes if isinstance(nodes, list) else ()


def _collect_definitions(scan, container, path, chain, graphs):
    definitions = container.get("definitions")
    if definitions is None:
        return
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, dict) else None
    if not isinstance(subgraphs, list):
        scan.problem(f"definitions{_in(path)}", "definitions.subgraphs is not a list; skipped")
        return
    for index, definition in enumerate(subgraphs):
        if not isinstance(definition, dict):
            scan.problem(f"definitions.subgraphs[{index}]{_in(path)}", "not a subgraph object; skipped")
            continue
        raw_id = definition.get("id")
        graph_id = raw_id if isinstance(raw_id, str) and raw_id else None
        name = definition.get("name") if isinstance(definition.get("name"), str) else graph_id
        step = {"id": shown(graph_id, 64) if graph_id else None, "name": shown(name or "?", 80)}
        if graph_id is None:
            scan.problem(f"definitions.subgraphs[{index}]{_in(path)}", "subgraph has no id; its nodes count as unused")
            graph_id = f"unnamed-{len(chain)}-{index}"
        if len(chain) >= MAX_SUBGRAPH_DEPTH:
            scan.problem(f"subgraph '{step['name']}'", f"nested deeper than {MAX_SUBGRAPH_DEPTH} subgraphs; skipped")
            continue
        graphs.append((definition, path + [step], graph_id, chain + (graph_id,)))
        _collect_definitions(scan, definition, path + [step], chain + (graph_id,), graphs)


def _collect_group_nodes(scan, doc, graphs):
    extra = doc.get("extra")
    groups = extra.get("groupNodes") if isinstance(extra, dict) else None
    if not isinstance(groups, dict):
        return
    for name, group in groups.items():
        if isinstance(group, dict) and isinstance(group.get("nodes"), list):
            graphs.append((group, [{"id": None, "name": "group node " + shown(name, 80)}], GROUP, ()))
        else:
            scan.problem(f"extra.groupNodes '{shown(name, 80)}'", "not a group node definition; skipped")


def _model_entry(scan, entry, where):
    """A checked model declaration, or None (and a problem) when it names no safe destination."""
    if not isinstance(entry, dict):
        scan.problem(where, "not a model object; skipped")
        return None
    try:
        name = file_name(entry.get("name"))
        directory = model_folder(entry.get("directory"))
    except BadValue as exc:
        scan.problem(where, f"{exc}; skipped")
        return None
    url = entry.get("url")
    if url in (None, ""):
        url = None
    else:
        try:
            url = download_url(url)
        except BadValue as exc:
            scan.problem(where, f"{exc}; the model is listed as unresolved")
            url = None
    try:
        sha256, note = model_hash(entry.get("hash"), entry.get("hash_type"))
    except BadValue as exc:
        scan.problem(where, f"{exc}; it is not verified")
        sha256, note = None, None
    if note:
        scan.ignore(where, shown(entry.get("hash"), 80), note)
    return {"directory": directory, "name": name, "url": url, "sha256": sha256}


def _top_level_models(scan, graphs):
    found = []
    for graph, path, graph_id, _chain in graphs:
        if graph_id == GROUP or "models" not in graph:
            continue
        models = graph.get("models")
        if not isinstance(models, list):
            scan.problem(f"models{_in(path)}", "the workflow's models is not a list; skipped")
            continue
        for index, entry in enumerate(models):
            model = _model_entry(scan, entry, f"models[{index}]{_in(path)}")
            if model:
                found.append({"name": model["name"], "directory": model["directory"], "model": model, "path": path})
    return found


def _declared_models(scan, properties, strings, promoted, source, where):
    """properties.models of one node -> mentions; returns {name: directory} of those checked."""
    models = properties.get("models")
    if models is None:
        return {}
    if not isinstance(models, list):
        scan.problem(where.at("properties.models"), "not a list; skipped")
        return {}
    selectable = strings | promoted
    declared = {}
    for index, entry in enumerate(models):
        field = where.at(f"properties.models[{index}]")
        model = _model_entry(scan, entry, field)
        if not model:
            continue
        declared[model["name"]] = model["directory"]
        if strings and model["name"] not in selectable:
            scan.ignore(field, model["name"], "declared but not selected in the node's widgets (stale metadata)")
            continue
        if scan.room():
            scan.models.append(dict(model, source=dict(source, via="node_models")))
    return declared


def _loader_mention(scan, source, input_name, folder, value, where, declared_dirs):
    field = where.at(input_name)
    try:
        name = file_name(value)
    except BadValue as exc:
        scan.problem(field, f"{exc}; not provisioned")
        return
    if scan.room():
        scan.models.append(
            {
                "directory": declared_dirs.get(name, folder),
                "name": name,
                "url": None,
                "sha256": None,
                "source": dict(source, via="loader_input", input=input_name),
            }
        )


def _identity(scan, node_type, properties, source, where):
    raw_cnr, raw_aux, raw_ver = properties.get("cnr_id"), properties.get("aux_id"), properties.get("ver")
    if raw_cnr == BUILTIN_CNR_ID:
        scan.builtin += 1
        return
    pack_cnr = pack_aux = None
    if raw_cnr is not None:
        try:
            pack_cnr = cnr_id(raw_cnr)
        except BadValue as exc:
            scan.problem(where.at("properties.cnr_id"), str(exc))
    if raw_aux is not None:
        try:
            pack_aux = aux_id(raw_aux)
        except BadValue as exc:
            scan.problem(where.at("properties.aux_id"), str(exc))
    if pack_cnr is None and pack_aux is None:
        if raw_cnr is None and raw_aux is None and node_type in loaders.LOADER_WIDGETS:
            scan.builtin += 1  # an older save of a core loader, before pack ids were recorded
        elif scan.room():
            scan.unidentified.append({"node_type": shown(node_type, 120), "source": source})
        return
    try:
        ver, ver_kind = node_version(raw_ver)
    except BadValue as exc:
        scan.problem(where.at("properties.ver"), f"{exc}; the pack is not pinned")
        ver, ver_kind = None, None
    if scan.room():
        scan.nodes.append(
            {
                "cnr_id": pack_cnr,
                "aux_id": pack_aux,
                "ver": ver,
                "ver_kind": ver_kind,
                "source": dict(source, via="node_identity"),
            }
        )
