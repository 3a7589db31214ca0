"""What workflow files need (module_utils._workflows), in-process on the fixture workflows.

The fixtures (tests/fixtures/workflows) follow ComfyUI frontend's zod schemas: a schema-0.4 UI
workflow with a subgraph holding a nested subgraph, a schema-1 workflow with a top-level
models list, a bypassed node and stale metadata, an API prompt, a second workflow that agrees
and disagrees with the first, a hostile one, a broken one and a file that is no workflow.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from harness.paths import FIXTURES, REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows import files, graph  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan import plan_workflows  # noqa: E402

WORKFLOWS = FIXTURES / "workflows"
TEMPLATES = WORKFLOWS / "templates"
HOSTILE = WORKFLOWS / "hostile"


@pytest.fixture(scope="module")
def templates_plan():
    return plan_workflows([str(TEMPLATES)])


def by_key(items):
    return {item["key"]: item for item in items}


def test_every_template_is_read_or_named_as_not_read(templates_plan):
    workflows = {os.path.relpath(w["path"], TEMPLATES): w for w in templates_plan["workflows"]}
    assert sorted(workflows) == [
        "api/sdxl_api_prompt.json",
        "broken.json",
        "flux_dev_subgraph.json",
        "flux_schnell.json",
        "not_a_workflow.json",
        "video/wan22_i2v_v1.json",
    ]
    assert workflows["broken.json"]["status"] == "invalid"
    assert workflows["broken.json"]["reason"].startswith("invalid JSON at line 1 column")
    assert workflows["not_a_workflow.json"]["status"] == "invalid"
    assert (workflows["flux_dev_subgraph.json"]["format"], workflows["flux_dev_subgraph.json"]["schema_version"]) == (
        "ui",
        "0.4",
    )
    assert (workflows["video/wan22_i2v_v1.json"]["format"], workflows["video/wan22_i2v_v1.json"]["schema_version"]) == (
        "ui",
        "1",
    )
    assert workflows["api/sdxl_api_prompt.json"]["format"] == "api"
    warned = "\n".join(templates_plan["warnings"])
    assert "broken.json is not read: invalid JSON" in warned and "not_a_workflow.json is not read" in warned
    assert ".hidden" not in warned + json.dumps(templates_plan["workflows"])


def test_subgraph_models_carry_their_path_hash_and_url(templates_plan):
    models = by_key(templates_plan["models"])
    flux = models["diffusion_models/flux1-dev-fp8.safetensors"]
    assert flux["url"].endswith("/flux1-dev-fp8.safetensors?download=true")
    assert flux["sha256"] == hashlib.sha256(b"flux1-dev-fp8").hexdigest()  # hash_type "SHA256" upper case
    assert flux["status"] == "to_download" and flux["known_directory"]
    (source,) = flux["required_by"]
    assert source["workflow"] == str(TEMPLATES / "flux_dev_subgraph.json")
    assert (source["node_id"], source["node_type"], source["via"], source["active"]) == (
        "1",
        "UNETLoader",
        "node_models",
        True,
    )
    assert source["subgraph"] == ["Flux Dev text to image"]

    # The nested subgraph's model, also named by the API prompt's loader without a URL: one
    # entry, the URL from the UI workflow, both places listed.
    upscale = models["upscale_models/4x-UltraSharp.pth"]
    assert upscale["status"] == "to_download" and upscale["sha256"] == "5" * 64
    places = [(os.path.basename(s["workflow"]), s["subgraph"], s["via"]) for s in upscale["required_by"]]
    assert places == [
        ("flux_dev_subgraph.json", ["Flux Dev text to image", "Upscale 4x"], "node_models"),
        ("sdxl_api_prompt.json", [], "loader_input"),
    ]
    assert upscale["conflicts"] == []


def test_loaders_without_urls_are_unresolved_with_their_input(templates_plan):
    models = by_key(templates_plan["models"])
    lora = models["loras/my_style_lora.safetensors"]
    assert (lora["status"], lora["url"]) == ("unresolved", None)
    (source,) = lora["required_by"]
    assert (source["via"], source["input"], source["node_type"]) == ("loader_input", "lora_name", "LoraLoaderModelOnly")
    assert models["checkpoints/sd_xl_base_1.0.safetensors"]["status"] == "unresolved"
    assert models["loras/add-detail-xl.safetensors"]["required_by"][0]["node_id"] == "10"
    # VAELoader's taesdxl is no file in vae/.
    assert not [key for key in models if "taesd" in key]


def test_schema_1_top_level_models_stale_metadata_and_bypassed_nodes(templates_plan):
    models = by_key(templates_plan["models"])
    wan = str(TEMPLATES / "video" / "wan22_i2v_v1.json")
    vae = models["vae/wan_2.1_vae.safetensors"]
    # Declared in the workflow's models list, selected by the VAELoader (which declares nothing).
    assert [(s["node_id"], s["via"]) for s in vae["required_by"]] == [("3", "workflow_models"), ("3", "loader_input")]
    assert vae["sha256"] == "6" * 64 and vae["status"] == "to_download"
    assert [(s["node_id"], s["via"]) for s in models["clip_vision/clip_vision_h.safetensors"]["required_by"]] == [
        ("7", "workflow_models"),
        ("7", "loader_input"),
    ]
    # Selected by no node: required by the workflow itself.
    (extra,) = models["loras/wan2.2_t2v_extra_lora.safetensors"]["required_by"]
    assert (extra["node_id"], extra["node_type"], extra["via"]) == (None, None, "workflow_models")
    # Declared but not selected: stale, ignored and said so.
    assert "diffusion_models/wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors" not in models
    stale = [i for i in templates_plan["ignored"] if i["workflow"] == wan]
    assert [(i["value"], "stale" in i["reason"]) for i in stale] == [
        ("wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", True)
    ]
    # A bypassed node still counts (a user may switch it on), marked inactive.
    (lora,) = models["loras/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"]["required_by"]
    assert lora["active"] is False


def test_bypassed_nodes_can_be_left_out():
    plan = plan_workflows([str(TEMPLATES / "video")], include_inactive=False)
    assert "loras/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors" not in by_key(plan["models"])
    assert any("bypassed" in item["reason"] and "LoraLoaderModelOnly" in item["where"] for item in plan["ignored"])


def test_conflicts_between_workflows_are_reported_not_merged(templates_plan):
    models = by_key(templates_plan["models"])
    schnell = str(TEMPLATES / "flux_schnell.json")
    clip = models["text_encoders/clip_l.safetensors"]
    assert clip["sha256"] == "2" * 64  # the first workflow's, in path order
    assert [(c["field"], c["value"], c["chosen"], c["source"]["workflow"]) for c in clip["conflicts"]] == [
        ("sha256", "9" * 64, "2" * 64, schnell)
    ]
    t5 = models["text_encoders/t5xxl_fp8_e4m3fn.safetensors"]
    assert [(c["field"], c["value"]) for c in t5["conflicts"]] == [
        ("url", "https://mirror.example.com/t5xxl_fp8_e4m3fn.safetensors")
    ]
    assert t5["url"].startswith("https://huggingface.co/comfyanonymous/")
    # Same file, host in other case and ?download=true: the same URL, no conflict; the hash of
    # the workflow that gave one is kept.
    ae = models["vae/ae.safetensors"]
    assert ae["conflicts"] == [] and ae["sha256"] == "4" * 64 and len(ae["required_by"]) == 2
    assert templates_plan["counts"]["model_conflicts"] == 2


def test_node_packs_pins_conflicts_and_builtins(templates_plan):
    packs = by_key(templates_plan["node_packs"])
    assert sorted(packs) == [
        "cnr:comfyui-kjnodes",
        "cnr:comfyui-wanvideowrapper",
        "github:ltdrdata/comfyui-impact-pack",
    ]
    kj = packs["cnr:comfyui-kjnodes"]
    assert (kj["ver"], kj["ver_kind"], kj["repository"]) == ("1.1.2", "version", None)  # highest of 1.1.2, 1.0.9
    assert [(c["value"], c["chosen"]) for c in kj["conflicts"]] == [("1.0.9", "1.1.2")]
    assert kj["node_types"] == ["ImageResizeKJv2"]
    # A node of the same type without a pack id counts for the pack.
    vias = [(os.path.basename(s["workflow"]), s["node_id"], s["via"]) for s in kj["required_by"]]
    assert ("flux_schnell.json", "5", "same_node_type") in vias
    impact = packs["github:ltdrdata/comfyui-impact-pack"]
    assert (impact["aux_id"], impact["repository"]) == (
        "ltdrdata/ComfyUI-Impact-Pack",
        "https://github.com/ltdrdata/ComfyUI-Impact-Pack",
    )
    assert (impact["ver"], impact["ver_kind"]) == ("a3c1e9b27f04d5e6c8b9a0f1e2d3c4b5a6978877", "commit")
    assert ("sdxl_api_prompt.json", "13", "same_node_type") in [
        (os.path.basename(s["workflow"]), s["node_id"], s["via"]) for s in impact["required_by"]
    ]
    wrapper = packs["cnr:comfyui-wanvideowrapper"]
    assert (wrapper["ver"], wrapper["ver_kind"]) == ("d1e2f3a", "commit")
    # comfy-core is never a pack; nodes of unknown origin are listed as such.
    assert not [key for key in packs if "comfy-core" in key]
    unknown = {item["node_type"]: item["used_in"] for item in templates_plan["unidentified_nodes"]}
    api = str(TEMPLATES / "api" / "sdxl_api_prompt.json")
    assert unknown == {"EmptyLatentImage": [{"workflow": api, "nodes": 1}], "KSampler": [{"workflow": api, "nodes": 1}]}


def test_what_each_workflow_needs_is_found_from_the_places(templates_plan):
    flux = str(TEMPLATES / "flux_dev_subgraph.json")
    # In the order first needed: the subgraph's declared models, the nested one's, then loader files.
    assert [m["key"] for m in templates_plan["models"] if any(s["workflow"] == flux for s in m["required_by"])] == [
        "diffusion_models/flux1-dev-fp8.safetensors",
        "text_encoders/clip_l.safetensors",
        "text_encoders/t5xxl_fp8_e4m3fn.safetensors",
        "vae/ae.safetensors",
        "upscale_models/4x-UltraSharp.pth",
        "loras/my_style_lora.safetensors",
    ]
    assert sorted(
        p["key"] for p in templates_plan["node_packs"] if any(s["workflow"] == flux for s in p["required_by"])
    ) == ["cnr:comfyui-kjnodes", "github:ltdrdata/comfyui-impact-pack"]
    entry = next(w for w in templates_plan["workflows"] if w["path"] == flux)
    assert entry["nodes_read"] == 10 and entry["builtin_nodes"] == 8


def test_report_names_every_model_and_node_per_workflow(templates_plan):
    report = templates_plan["report"]
    lines = report.splitlines()
    assert lines[0] == (
        "Workflow requirements: 4 workflows read, 2 not read; 15 models: 12 to download, 3 unresolved, "
        "0 present; 3 node packs needed; 2 node types unknown; 3 conflicts; 0 problems"
    )
    assert any(line.startswith("== %s: NOT READ: invalid JSON" % (TEMPLATES / "broken.json")) for line in lines)
    assert "  model to download  vae/ae.safetensors  <- https://huggingface.co/black-forest-labs/" in report
    assert (
        "  model unresolved   loras/my_style_lora.safetensors  (node 4 LoraLoaderModelOnly in Flux Dev text to image lora_name"
        in report
    )
    assert "  node  needed       registry comfyui-kjnodes 1.1.2  (ImageResizeKJv2)" in report
    assert "  node  needed       github ltdrdata/ComfyUI-Impact-Pack @ a3c1e9b27f04" in report
    assert "  node  unknown      KSampler" in report
    assert "  conflict           text_encoders/t5xxl_fp8_e4m3fn.safetensors: url https://mirror.example.com/" in report
    assert "  ignored            node 1 (UNETLoader) properties.models[1]: wan2.2_i2v_low_noise" in report


def test_models_dir_gives_destinations_and_finds_present_files(tmp_path):
    models_dir = tmp_path / "models"
    (models_dir / "vae").mkdir(parents=True)
    (models_dir / "vae" / "ae.safetensors").write_bytes(b"x")
    (models_dir / "clip").mkdir()
    (models_dir / "clip" / "clip_l.safetensors").write_bytes(b"x")  # ComfyUI reads text_encoders from clip/ too
    plan = plan_workflows([str(TEMPLATES)], models_dir=str(models_dir))
    models = by_key(plan["models"])
    assert models["vae/ae.safetensors"]["status"] == "present"
    assert models["vae/ae.safetensors"]["dest"] == str(models_dir / "vae" / "ae.safetensors")
    clip = models["text_encoders/clip_l.safetensors"]
    assert clip["status"] == "present" and clip["present_at"] == str(models_dir / "clip" / "clip_l.safetensors")
    assert clip["dest"] == str(models_dir / "text_encoders" / "clip_l.safetensors")
    assert plan["counts"]["present"] == 2
    assert "  model present      vae/ae.safetensors  (%s)" % (models_dir / "vae" / "ae.safetensors") in plan["report"]
    for model in plan["models"]:
        assert os.path.commonpath([str(models_dir), model["dest"]]) == str(models_dir)
    with pytest.raises(ValueError):
        plan_workflows([str(TEMPLATES)], models_dir="models")


# -- subgraph semantics, on small synthetic graphs -----------------------------------------


def ui(nodes, subgraphs=(), **top):
    doc = {"last_node_id": 99, "last_link_id": 0, "nodes": nodes, "links": [], "version": 0.4}
    if subgraphs:
        doc["definitions"] = {"subgraphs": list(subgraphs)}
    doc.update(top)
    return doc


def n(node_id, node_type, widgets=None, mode=0, **properties):
    node = {
        "id": node_id,
        "type": node_type,
        "pos": [0, 0],
        "size": [10, 10],
        "flags": {},
        "order": 0,
        "mode": mode,
        "properties": properties,
    }
    if widgets is not None:
        node["widgets_values"] = widgets
    return node


def sub(sub_id, name, nodes, subgraphs=()):
    doc = {
        "id": sub_id,
        "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": 0, "lastLinkId": 0, "lastRerouteId": 0},
        "revision": 0,
        "name": name,
        "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]},
        "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]},
        "nodes": nodes,
        "links": [],
    }
    if subgraphs:
        doc["definitions"] = {"subgraphs": list(subgraphs)}
    return doc


def declared(name, directory="loras"):
    return [{"name": name, "url": f"https://example.com/{name}", "directory": directory}]


def test_a_promoted_widget_selects_a_model_inside_the_subgraph():
    inner = n(1, "LoraLoaderModelOnly", ["old.safetensors", 1.0], models=declared("new.safetensors"))
    doc = ui([n(5, "aaaa-1", ["new.safetensors"], proxyWidgets=[["-1", "lora_name"]])], [sub("aaaa-1", "S", [inner])])
    scan = graph.scan_document(doc, "/w.json")
    assert [(m["name"], m["source"]["via"]) for m in scan.models] == [
        ("new.safetensors", "node_models"),
        ("old.safetensors", "loader_input"),
    ]
    assert scan.ignored == []


def test_unused_and_muted_subgraphs_make_their_nodes_inactive():
    used = sub("used-1", "Used", [n(1, "CheckpointLoaderSimple", ["a.safetensors"])])
    unused = sub("unused-1", "Unused", [n(1, "CheckpointLoaderSimple", ["b.safetensors"])])
    muted = sub(
        "muted-1",
        "Muted",
        [n(1, "CheckpointLoaderSimple", ["c.safetensors"])],
        subgraphs=[sub("deep-1", "Deep", [n(1, "CheckpointLoaderSimple", ["d.safetensors"])])],
    )
    muted["nodes"].append(n(2, "deep-1"))
    doc = ui([n(1, "used-1"), n(2, "muted-1", mode=2)], [used, unused, muted])
    scan = graph.scan_document(doc, "/w.json")
    active = {m["name"]: m["source"]["active"] for m in scan.models}
    assert active == {"a.safetensors": True, "b.safetensors": False, "c.safetensors": False, "d.safetensors": False}
    deep = next(m for m in scan.models if m["name"] == "d.safetensors")
    assert deep["source"]["subgraph"] == ["Muted", "Deep"]


def test_a_subgraph_that_instantiates_itself_ends():
    loop = sub("loop-1", "Loop", [n(1, "loop-1"), n(2, "VAELoader", ["v.safetensors"])])
    scan = graph.scan_document(ui([n(1, "loop-1")], [loop]), "/w.json")
    assert [m["name"] for m in scan.models] == ["v.safetensors"]


def test_subgraphs_nested_too_deep_are_a_problem_not_a_crash():
    definition = sub("s-0", "S0", [n(1, "VAELoader", ["v0.safetensors"])])
    top = definition
    for depth in range(1, 60):
        child = sub(f"s-{depth}", f"S{depth}", [n(1, "VAELoader", [f"v{depth}.safetensors"])])
        top["definitions"] = {"subgraphs": [child]}
        top = child
    scan = graph.scan_document(ui([n(1, "s-0")], [definition]), "/w.json")
    assert len(scan.models) == graph.MAX_SUBGRAPH_DEPTH
    assert any("nested deeper than" in p["message"] for p in scan.problems)


def test_legacy_group_nodes_are_read():
    doc = ui(
        [n(3, "workflow>Loaders")],
        extra={
            "groupNodes": {
                "Loaders": {
                    "nodes": [
                        {"type": "CheckpointLoaderSimple", "index": 0, "widgets_values": ["g.safetensors"]},
                        {"type": "FancyNode", "index": 1, "properties": {"cnr_id": "fancy-pack", "ver": "2.0.0"}},
                    ],
                    "links": [],
                    "external": [],
                }
            }
        },
    )
    scan = graph.scan_document(doc, "/w.json")
    assert [(m["name"], m["source"]["subgraph"]) for m in scan.models] == [("g.safetensors", ["group node Loaders"])]
    assert [(p["cnr_id"], p["ver"]) for p in scan.nodes] == [("fancy-pack", "2.0.0")]


def test_api_prompt_inside_a_prompt_request_body_and_widget_mappings():
    body = {
        "client_id": "x",
        "prompt": {
            "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "u.safetensors", "weight_dtype": "default"}},
            "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "a.safetensors", "clip_name2": ["9", 0]}},
        },
    }
    scan = graph.scan_document(body, "/p.json")
    assert scan.format == "api"
    assert [(m["directory"], m["name"], m["source"]["input"]) for m in scan.models] == [
        ("diffusion_models", "u.safetensors", "unet_name"),
        ("text_encoders", "a.safetensors", "clip_name1"),
    ]
    # Newer frontends may save widgets_values as a mapping by input name.
    scan = graph.scan_document(ui([n(1, "CLIPLoader", {"clip_name": "t.safetensors", "type": "wan"})]), "/w.json")
    assert [(m["directory"], m["name"]) for m in scan.models] == [("text_encoders", "t.safetensors")]


def test_a_loader_file_declared_elsewhere_goes_to_the_declared_folder():
    doc = ui([n(1, "UNETLoader", ["x.gguf", "default"]), n(2, "Other", ["x.gguf"], models=declared("x.gguf", "unet"))])
    scan = graph.scan_document(doc, "/w.json")
    assert {(m["directory"], m["source"]["via"]) for m in scan.models} == {
        ("unet", "node_models"),
        ("unet", "loader_input"),
    }


def test_too_many_problems_are_counted_not_listed():
    doc = ui([n(1, "X", None, models=[{"name": f"../x{i}", "directory": "loras"} for i in range(500)])])
    scan = graph.scan_document(doc, "/w.json")
    assert len(scan.problems) == graph.MAX_LISTED and scan.more_problems == 400


# -- hostile values ------------------------------------------------------------------------


def test_hostile_values_are_reported_and_never_become_paths(tmp_path):
    plan = plan_workflows([str(HOSTILE)], models_dir=str(tmp_path / "models"))
    keys = sorted(m["key"] for m in plan["models"])
    assert keys == [
        "ipadapter/ipadapter_plus.safetensors",
        "loras/badhash.safetensors",
        "loras/blake.safetensors",
        "loras/civitai_style.safetensors",
        "loras/creds.safetensors",
        "loras/js.safetensors",
        "loras/passwd.safetensors",
        "loras/port.safetensors",
        "vae/vae.safetensors",
    ]
    models = by_key(plan["models"])
    for key in (
        "loras/passwd.safetensors",
        "loras/js.safetensors",
        "loras/creds.safetensors",
        "loras/port.safetensors",
    ):
        assert (models[key]["status"], models[key]["url"]) == ("unresolved", None)
    assert models["loras/badhash.safetensors"]["sha256"] is None and models["loras/blake.safetensors"]["sha256"] is None
    assert models["ipadapter/ipadapter_plus.safetensors"]["known_directory"] is False
    assert "[folder 'ipadapter' is not one of ComfyUI's own: a custom node must register it]" in plan["report"]
    messages = [f"{p['where']}: {p['message']}" for p in plan["problems"]]
    for expected in (
        "name '../../../../etc/cron.d/evil' has a folder part",
        "directory '../../..' is a path",
        "directory '/etc' is a path",
        "directory 'loras/../../x' is a path",
        "contains control characters",
        "contains a NUL byte",
        "name '.bashrc' is hidden",
        "'file:///etc/passwd' is not http(s)",
        "'javascript:alert(1)' is not http(s)",
        "carries credentials",
        "Port out of range",
        "hash 'zz' is not a sha256",
        "name 42 is not a file name",
        "not a model object",
        "cnr_id ../../etc/passwd is not a Comfy Registry id",
        "aux_id a/b/c is not a GitHub owner/repo",
        "'-bad-' is not a GitHub user",
        "ver 'latest; rm -rf /' is neither",
        "properties.models: not a list",
        "not a node object",
        "has no type",
        "properties is not an object",
        "name 'SDXL/juggernaut.safetensors' has a folder part",
    ):
        assert any(expected in message for message in messages), expected
    # A password in a workflow URL is refused and never repeated; a token in a query string is
    # kept for the download but masked wherever a person reads.
    assert "hunter2" not in json.dumps(plan) and "https://***@evil.example/x" in json.dumps(plan["problems"])
    assert models["loras/civitai_style.safetensors"]["url"].endswith("&token=c1v1ta1-s3cret")
    assert "c1v1ta1-s3cret" not in plan["report"] and "format=SafeTensor&token=***" in plan["report"]
    # The pack with a bad ver is still needed, just not pinned.
    assert [(p["key"], p["ver"]) for p in plan["node_packs"]] == [("cnr:good-pack", None)]
    # The newline in a name cannot forge a report line; the bidi override is escaped.
    lines = plan["report"].split("\n")
    assert not [line for line in lines if line.startswith("== /opt/workflows/fake.json")]
    assert "\u202e" not in plan["report"] and "\\u202e" in plan["report"] and "\x00" not in plan["report"]
    assert plan["counts"]["problems"] == len(plan["problems"]) >= 24
    assert plan["warnings"] and f"hostile.json: {plan['counts']['problems']} problems" in plan["warnings"][0]


# -- files: links, FIFOs, size, depth, encodings -------------------------------------------


def test_links_out_of_the_workflow_folders_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(TEMPLATES / "flux_schnell.json", outside / "secret.json")
    folder = tmp_path / "workflows"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(TEMPLATES / "flux_schnell.json", folder / "sub" / "real.json")
    os.symlink(outside / "secret.json", folder / "escape.json")
    os.symlink(folder / "sub" / "real.json", folder / "alias.json")
    os.symlink(outside, folder / "linked_folder")
    os.symlink("/etc/passwd", folder / "passwd.json")
    plan = plan_workflows([str(folder)])
    status = {os.path.relpath(w["path"], folder): (w["status"], w["reason"]) for w in plan["workflows"]}
    assert status["escape.json"][0] == "skipped" and "outside the workflow folders" in status["escape.json"][1]
    assert status["passwd.json"][0] == "skipped"
    assert status["linked_folder"] == ("skipped", "not read: a link to a folder is not followed")
    # The link inside the folders is followed, and the file it names is read once.
    read = [path for path, (state, _reason) in status.items() if state == "read"]
    assert read == ["alias.json"]
    assert plan["counts"]["workflows"] == 1
    assert any("escape.json" in warning and "outside" in warning for warning in plan["warnings"])


def test_a_fifo_named_like_a_workflow_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    shutil.copy(TEMPLATES / "flux_schnell.json", tmp_path / "ok.json")
    done = []
    worker = threading.Thread(target=lambda: done.append(plan_workflows([str(tmp_path)])), daemon=True)
    worker.start()
    worker.join(20)
    assert done, "reading a FIFO blocked"
    status = {os.path.basename(w["path"]): (w["status"], w["reason"]) for w in done[0]["workflows"]}
    assert status["pipe.json"] == ("skipped", "not read: not a regular file")
    assert status["ok.json"][0] == "read"
    # Named explicitly, a FIFO is not opened either.
    direct = plan_workflows([str(tmp_path / "pipe.json")])
    assert direct["workflows"][0]["status"] == "skipped"


def test_big_deep_undecodable_and_bom_files(tmp_path):
    (tmp_path / "big.json").write_bytes(b'{"nodes": [' + b" " * 2048 + b"]}")
    (tmp_path / "deep.json").write_bytes(b"[" * 200000 + b"]" * 200000)
    (tmp_path / "latin1.json").write_bytes('{"nodes": [], "x": "caf\xe9"}'.encode("latin-1"))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + (TEMPLATES / "flux_schnell.json").read_bytes())
    (tmp_path / "bigint.json").write_bytes(b'{"nodes": [], "x": ' + b"9" * 5000 + b"}")
    plan = plan_workflows([str(tmp_path)], max_bytes=1024 * 1024)
    small = plan_workflows([str(tmp_path / "big.json")], max_bytes=1024)
    assert small["workflows"][0]["reason"] == "2061 bytes, more than the 1024 a workflow may have"
    status = {os.path.basename(w["path"]): (w["status"], w["reason"]) for w in plan["workflows"]}
    assert status["deep.json"] == ("invalid", "invalid JSON: nested too deeply to read")
    assert status["latin1.json"][0] == "invalid" and status["latin1.json"][1].startswith("not UTF-8 text")
    assert status["bom.json"][0] == "read"
    assert status["bigint.json"][0] == "invalid"
    assert status["big.json"][0] == "read"


def test_missing_paths_relative_paths_and_the_file_limit(tmp_path):
    for index in range(5):
        shutil.copy(TEMPLATES / "flux_schnell.json", tmp_path / (f"w{index}.json"))
    plan = plan_workflows([str(tmp_path / "nope"), "relative/dir", str(tmp_path)], max_files=3)
    status = [(os.path.basename(w["path"]), w["status"], w["reason"]) for w in plan["workflows"]]
    assert ("nope", "skipped", "not read: does not exist") in status
    assert ("dir", "skipped", "not read: not an absolute path") in status
    assert [s for s in status if s[1] == "read"] == [
        ("w0.json", "read", None),
        ("w1.json", "read", None),
        ("w2.json", "read", None),
    ]
    assert sum(1 for s in status if s[2] == "not read: more than 3 workflow files") == 2
    assert not [w for w in plan["warnings"] if "does not exist" in w]


def test_the_result_is_the_same_every_time(templates_plan):
    again = plan_workflows([str(TEMPLATES)])
    assert again == templates_plan


def test_read_json_never_blocks_on_a_device(tmp_path):
    doc, reason = files.read_json("/dev/zero")
    assert doc is None and reason == "not a regular file"
    assert files.read_json(str(tmp_path / "none.json"))[1].startswith("cannot open")


def test_the_module_utils_import_only_the_standard_library():
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'collections')!r}); "
        "import ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan; "
        "import ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfy_registry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ansible', 'yaml', 'requests')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
