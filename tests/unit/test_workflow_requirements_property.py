"""Property: whatever a workflow file holds, planning never raises and never names a path
outside the models folder, and the report stays one line per item.

Hypothesis builds three kinds of input: arbitrary bytes (read as a file), arbitrary JSON built
from the keys a workflow uses (so the walker meets every key in every wrong shape), and
well-shaped UI workflows and API prompts whose names, folders, URLs, hashes, ids and versions
are drawn from hostile text (traversal, separators, NUL and other control characters, bidi
overrides, credentials, odd schemes and ports). Each example runs the whole planner on a real
file, with a models folder.
"""

import json
import os
import sys
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows import files, values  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan import plan_workflows  # noqa: E402

KEYS = [
    "nodes",
    "definitions",
    "subgraphs",
    "properties",
    "models",
    "name",
    "url",
    "directory",
    "hash",
    "hash_type",
    "cnr_id",
    "aux_id",
    "ver",
    "widgets_values",
    "type",
    "id",
    "mode",
    "class_type",
    "inputs",
    "version",
    "extra",
    "groupNodes",
    "prompt",
    "workflow",
    "ckpt_name",
    "lora_name",
    "index",
]
NASTY = [
    "..",
    ".",
    "/",
    "\\",
    "\x00",
    "\n",
    "\r",
    "\u202e",
    "\u200b",
    "\u2028",
    "~",
    "%2e%2e",
    "C:\\",
    "/etc/passwd",
    "../../x",
    "loras",
    "vae",
    "checkpoints",
    "x.safetensors",
    "comfy-core",
    "a/b",
    "1.2.3",
    "deadbeef",
    "https://h.example/x",
    "http://u:p@h.example/x",
    "file:///etc/shadow",
    "http://h.example:99999/x",
    "javascript:x",
    "//h.example/x",
    "https:///x",
    "sha256",
    "SHA256",
    "blake3",
    "0" * 64,
    "f" * 63,
    "CheckpointLoaderSimple",
    "LoraLoader",
    "VAELoader",
    "taesd",
    "\ud800",
    "\x1b[31m",
]

hostile_text = st.one_of(
    st.sampled_from(NASTY), st.text(max_size=40), st.lists(st.sampled_from(NASTY), min_size=1, max_size=4).map("".join)
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 10**6), st.floats(allow_nan=True), hostile_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=6),
    ),
    max_leaves=40,
)

model_entries = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(hostile_text, scalars),
        "url": st.one_of(hostile_text, scalars),
        "directory": st.one_of(hostile_text, scalars),
        "hash": st.one_of(hostile_text, scalars),
        "hash_type": st.one_of(hostile_text, scalars),
    },
)
properties = st.fixed_dictionaries(
    {},
    optional={
        "models": st.one_of(st.lists(st.one_of(model_entries, scalars), max_size=4), scalars),
        "cnr_id": st.one_of(hostile_text, scalars),
        "aux_id": st.one_of(hostile_text, scalars),
        "ver": st.one_of(hostile_text, scalars),
    },
)
ui_nodes = st.fixed_dictionaries(
    {
        "id": st.one_of(st.integers(-5, 50), hostile_text),
        "type": st.one_of(hostile_text, st.sampled_from(["sub-1", "sub-2"])),
        "mode": st.sampled_from([0, 2, 4, "x"]),
        "properties": st.one_of(properties, scalars),
        "widgets_values": st.one_of(
            st.lists(st.one_of(hostile_text, scalars), max_size=4),
            st.dictionaries(hostile_text, hostile_text, max_size=3),
            scalars,
        ),
    }
)
subgraph = st.fixed_dictionaries(
    {"id": st.sampled_from(["sub-1", "sub-2", None, 7]), "name": hostile_text, "nodes": st.lists(ui_nodes, max_size=4)},
    optional={"models": st.lists(model_entries, max_size=3)},
)
ui_docs = st.fixed_dictionaries(
    {"nodes": st.lists(ui_nodes, max_size=6), "version": st.sampled_from([0.4, 1, "x"])},
    optional={
        "models": st.one_of(st.lists(model_entries, max_size=3), scalars),
        "definitions": st.one_of(st.fixed_dictionaries({"subgraphs": st.lists(subgraph, max_size=3)}), scalars),
    },
)
api_docs = st.dictionaries(
    hostile_text,
    st.fixed_dictionaries(
        {
            "class_type": st.one_of(
                st.sampled_from(["CheckpointLoaderSimple", "LoraLoader", "VAELoader", "DualCLIPLoader", "X"]),
                hostile_text,
            ),
            "inputs": st.dictionaries(
                st.sampled_from(["ckpt_name", "lora_name", "vae_name", "clip_name1", "clip_name2", "model"]),
                st.one_of(hostile_text, scalars, st.tuples(hostile_text, st.integers()).map(list)),
                max_size=4,
            ),
        }
    ),
    max_size=5,
)

# Entries valid in every field but one, so the planner's path checks are what stands between a
# hostile name or folder and the filesystem.
FOLDERS = ["loras", "vae", "checkpoints", "text_encoders", "ipadapter"]
targeted_entries = st.one_of(
    st.fixed_dictionaries(
        {"name": hostile_text, "directory": st.sampled_from(FOLDERS), "url": st.just("https://h.example/m")}
    ),
    st.fixed_dictionaries(
        {"name": st.just("m.safetensors"), "directory": hostile_text, "url": st.just("https://h.example/m")}
    ),
    st.fixed_dictionaries(
        {
            "name": st.just("m.safetensors"),
            "directory": st.sampled_from(FOLDERS),
            "url": hostile_text,
            "hash": hostile_text,
            "hash_type": st.sampled_from(["sha256", "SHA256", None]),
        }
    ),
)
targeted_docs = st.one_of(
    st.lists(targeted_entries, min_size=1, max_size=5).map(
        lambda models: {"nodes": [{"id": 1, "type": "X", "mode": 0, "properties": {"models": models}}], "version": 0.4}
    ),
    st.lists(hostile_text, min_size=1, max_size=4).map(
        lambda names: {
            str(i): {"class_type": "LoraLoader", "inputs": {"lora_name": name}} for i, name in enumerate(names)
        }
    ),
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plan_of_bytes(raw):
    with tempfile.TemporaryDirectory() as root:
        folder = os.path.join(root, "workflows")
        models = os.path.join(root, "models")
        os.mkdir(folder)
        with open(os.path.join(folder, "w.json"), "wb") as handle:
            handle.write(raw)
        return plan_workflows([folder], models_dir=models), models


def _check(plan, models_dir):
    root = os.path.normpath(models_dir)
    for model in plan["models"]:
        # Independently of the checks in values: one plain component each.
        for part in (model["directory"], model["name"]):
            assert part not in ("", ".", "..") and "/" not in part and "\\" not in part and "\x00" not in part, part
        # Names and folders are what the checks let through, so the destination is inside.
        assert values.model_folder(model["directory"]) == model["directory"]
        assert values.file_name(model["name"]) == model["name"]
        assert model["key"] == f"{model['directory']}/{model['name']}"
        dest = os.path.normpath(os.path.join(root, model["key"]))
        assert os.path.dirname(os.path.dirname(dest)) == root, model["key"]
        assert model["dest"] == dest
        assert model["url"] is None or values.download_url(model["url"]) == model["url"]
        assert model["sha256"] is None or (len(model["sha256"]) == 64 and model["sha256"] == model["sha256"].lower())
        assert model["status"] in ("to_download", "unresolved", "present")
    for pack in plan["node_packs"]:
        assert pack["cnr_id"] is None or values.cnr_id(pack["cnr_id"])
        assert pack["aux_id"] is None or values.aux_id(pack["aux_id"])
        assert pack["cnr_id"] != values.BUILTIN_CNR_ID
    # One report line per item: no control character but the newlines between lines.
    for line in plan["report"].split("\n"):
        assert not [c for c in line if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")], line
    for warning in plan["warnings"]:
        assert "\n" not in warning


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes(raw):
    plan, models = _plan_of_bytes(raw)
    _check(plan, models)
    assert plan["counts"]["workflows"] + plan["counts"]["workflows_not_read"] == 1


@SETTINGS
@given(json_values)
def test_any_json(doc):
    plan, models = _plan_of_bytes(json.dumps(doc).encode("utf-8", "surrogatepass"))
    _check(plan, models)


@SETTINGS
@given(st.one_of(ui_docs, api_docs, ui_docs.map(lambda d: {"prompt": {}, "workflow": d})))
def test_hostile_workflows(doc):
    plan, models = _plan_of_bytes(json.dumps(doc).encode("utf-8", "surrogatepass"))
    _check(plan, models)


@SETTINGS
@given(targeted_docs)
def test_hostile_names_folders_and_urls(doc):
    plan, models = _plan_of_bytes(json.dumps(doc).encode("utf-8", "surrogatepass"))
    _check(plan, models)


@SETTINGS
@given(st.binary(max_size=200))
def test_read_json_never_raises(raw):
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(raw)
        handle.flush()
        doc, reason = files.read_json(handle.name, max_bytes=100)
    assert reason is None or (doc is None and isinstance(reason, str) and "\n" not in reason)
