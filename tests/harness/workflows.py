"""Workflows shaped as ComfyUI's frontend saves them (UI schema 0.4), for tests and benches.

ui_node(1, "LoraLoader", ["detail.safetensors", 1.0, 1.0], models=[...], cnr_id="comfy-core")
ui_workflow(node, ...)                  # the JSON text of a workflow holding those nodes
loader_workflow(("CheckpointLoaderSimple", "sd15.safetensors"),
                ("LoraLoader", "d.safetensors", "loras", "https://host/d.safetensors"))
"""

import json


def ui_node(node_id, node_type, widgets, models=(), **identity):
    """A node; `identity` (cnr_id, aux_id, ver) and `models` go into its properties."""
    properties = {"Node name for S&R": node_type, **identity}
    if models:
        properties["models"] = list(models)
    return {
        "id": node_id,
        "type": node_type,
        "pos": [0, 0],
        "size": [315, 98],
        "flags": {},
        "order": node_id,
        "mode": 0,
        "inputs": [],
        "outputs": [],
        "properties": properties,
        "widgets_values": list(widgets),
    }


def ui_workflow(*nodes):
    return json.dumps(
        {
            "id": "0f7e4c2a-1111-4b8e-b7d6-c5b4a3928170",
            "revision": 0,
            "last_node_id": len(nodes),
            "last_link_id": 0,
            "nodes": list(nodes),
            "links": [],
            "groups": [],
            "config": {},
            "extra": {},
            "version": 0.4,
        },
        indent=1,
    )


def loader_workflow(*loaders):
    """Loader nodes, each (node type, file name) or (node type, file name, folder, url): a url
    makes the node carry the model's download link, as the official templates do."""
    nodes = []
    for number, loader in enumerate(loaders, start=1):
        node_type, name, folder, url = (tuple(loader) + (None, None))[:4]
        models = [{"name": name, "url": url, "directory": folder}] if url else ()
        widgets = [name, 1.0, 1.0] if node_type == "LoraLoader" else [name]
        nodes.append(ui_node(number, node_type, widgets, models))
    return ui_workflow(*nodes)
