"""Benchmark (not a test): planning what 1,000 workflows need.

``--workflows`` workflow files shaped like the official templates (UI schema 0.4 with a
subgraph holding the loaders and a long markdown note in a third of them, schema 1 with a
top-level models list in another third, API prompts in the rest; 20-30 nodes each, shared base
models plus a LoRA and a node pack pin of their own, so the plan has to merge and find
conflicts), about 25 KB each, in nested folders. Then:

  * the module through ansible, one ``workflow_requirements`` task with ``models_dir`` (so
    every model's presence is looked up too), median of ``--repeat``, next to the same
    one-task no-op playbook; the difference is the module's own time (default callback, as at
    a pod start: the result is registered, not printed);
  * the module's code (plan_workflows) in this process, which is that time without ansible.

The target is under a second for 1,000 workflows.

    .venv/bin/python bench/workflow_plan_bench.py
"""

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clock, median, noop_playbook, run_alone, side_by_side  # noqa: E402
from harness.ansible_run import run_playbook  # noqa: E402

HF = "https://huggingface.co/Comfy-Org/bench/resolve/main"
NOTE = (
    "## Model links\n\n"
    + "".join(f"- [model {i}]({HF}/split_files/model_{i}.safetensors)\n" for i in range(20))
    + "\n"
    + "Storage location: ComfyUI/models/... " * 30
)


def _node(node_id, node_type, widgets, properties, mode=0):
    return {
        "id": node_id,
        "type": node_type,
        "pos": [node_id * 10, 0],
        "size": [315, 98],
        "flags": {},
        "order": node_id,
        "mode": mode,
        "inputs": [{"name": "in", "type": "*", "link": None}],
        "outputs": [{"name": "out", "type": "*", "links": [], "slot_index": 0}],
        "properties": dict({"Node name for S&R": node_type}, **properties),
        "widgets_values": widgets,
    }


def _core(**extra):
    return dict({"cnr_id": "comfy-core", "ver": "0.3.64"}, **extra)


def _model(name, directory):
    return {"name": name, "url": f"{HF}/{directory}/{name}", "directory": directory}


def ui_workflow(number):
    lora = f"style_{number:04d}.safetensors"
    loaders = [
        _node(
            1,
            "UNETLoader",
            ["flux1-dev-fp8.safetensors", "default"],
            _core(models=[_model("flux1-dev-fp8.safetensors", "diffusion_models")]),
        ),
        _node(
            2,
            "DualCLIPLoader",
            ["clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "flux", "default"],
            _core(
                models=[
                    _model("clip_l.safetensors", "text_encoders"),
                    _model("t5xxl_fp8_e4m3fn.safetensors", "text_encoders"),
                ]
            ),
        ),
        _node(3, "VAELoader", ["ae.safetensors"], _core(models=[_model("ae.safetensors", "vae")])),
        _node(
            4,
            "LoraLoaderModelOnly",
            [lora, 0.8],
            _core(models=[_model(lora, "loras")]),
            mode=4 if number % 7 == 0 else 0,
        ),
        _node(
            5,
            "ImageResizeKJv2",
            [1024, 1024, "lanczos", "crop", "0, 0, 0", "center", 2, "cpu"],
            {"cnr_id": "comfyui-kjnodes", "ver": "1.1.%s" % (number % 5)},
        ),
    ]
    others = [
        _node(10 + i, kind, [42, "fixed", 20, 1.0, "euler", "simple", 1.0], _core())
        for i, kind in enumerate(
            [
                "KSampler",
                "CLIPTextEncode",
                "CLIPTextEncode",
                "VAEDecode",
                "EmptySD3LatentImage",
                "ModelSamplingFlux",
                "FluxGuidance",
                "SaveImage",
                "BasicScheduler",
                "RandomNoise",
                "SamplerCustomAdvanced",
                "KSamplerSelect",
                "BasicGuider",
                "ImageScaleBy",
                "PreviewImage",
            ]
        )
    ]
    others.append(_node(40, "MarkdownNote", [NOTE], {}))
    if number % 3 == 0:
        sub_id = f"6a1f2c4e-8b3d-4f5a-9c7e-{number:012d}"
        definition = {
            "id": sub_id,
            "version": 1,
            "state": {"lastGroupId": 0, "lastNodeId": 40, "lastLinkId": 0, "lastRerouteId": 0},
            "revision": 0,
            "name": f"Loaders {number}",
            "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]},
            "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]},
            "nodes": loaders + others[:8],
            "links": [],
        }
        return {
            "id": f"91f6bbe2-ed41-4fd6-bac7-{number:012d}",
            "revision": 0,
            "last_node_id": 99,
            "last_link_id": 0,
            "nodes": [_node(50, sub_id, ["flux1-dev-fp8.safetensors"], _core())] + others[8:],
            "links": [],
            "groups": [],
            "definitions": {"subgraphs": [definition]},
            "version": 0.4,
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        }
    doc = {
        "id": f"0c6f1d7e-2b3a-4c5d-9e8f-{number:012d}",
        "revision": 0,
        "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": 99, "lastLinkId": 0, "lastRerouteId": 0},
        "nodes": loaders + others,
        "links": [],
        "groups": [],
        "extra": {},
    }
    doc["models"] = [_model("ae.safetensors", "vae"), _model(f"extra_{number:04d}.safetensors", "loras")]
    return doc


def api_workflow(number):
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": f"detail_{number:04d}.safetensors",
                "strength_model": 0.7,
                "strength_clip": 0.7,
                "model": ["4", 0],
                "clip": ["4", 1],
            },
        },
    }
    for index in range(20, 45):
        prompt[str(index)] = {
            "class_type": "KSampler",
            "inputs": {
                "seed": index,
                "steps": 20,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
            "_meta": {"title": f"KSampler {index} " + "x" * 400},
        }
    return prompt


def make_workflows(folder, count):
    total = 0
    for number in range(count):
        doc = api_workflow(number) if number % 3 == 2 else ui_workflow(number)
        path = Path(folder) / f"group-{number % 20:02d}" / f"workflow-{number:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(doc, indent=2)
        path.write_text(text)
        total += len(text)
    return total


def module_playbook(directory, workflows, models_dir, count):
    path = Path(directory) / "plan.yml"
    play = [
        {
            "name": "Plan from workflows",
            "hosts": "pods",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Read every workflow",
                    "aiclipse.comfyui.workflow_requirements": {"paths": [workflows], "models_dir": models_dir},
                    "register": "needs",
                },
                {
                    "name": "Every workflow was read",
                    "ansible.builtin.assert": {"that": [f"needs.counts.workflows == {count}"], "quiet": True},
                },
            ],
        }
    ]
    path.write_text(json.dumps(play))
    return path


def timed_playbook(playbook):
    seconds, run = clock(run_playbook, playbook, None, json_output=False)
    if run.rc != 0:
        raise SystemExit(f"{playbook} failed (rc {run.rc}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    return seconds


def in_process(workflows, models_dir, count):
    from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan import plan_workflows

    started = time.monotonic()
    result = plan_workflows([workflows], models_dir=models_dir)
    seconds = time.monotonic() - started
    if result["counts"]["workflows"] != count:
        raise SystemExit(f"in-process plan read {result['counts']['workflows']} of {count} workflows")
    return seconds, result


def measure(table, repeat=5, workflows=1000, workdir=None):
    from common import workdir as make_workdir

    count = workflows
    root = Path(workdir) if workdir else make_workdir("workflow-plan-")
    try:
        workflows = root / "workflows"
        models_dir = root / "models"
        (models_dir / "vae").mkdir(parents=True)
        (models_dir / "vae" / "ae.safetensors").write_bytes(b"present")
        size = make_workflows(workflows, count)
        playbook = module_playbook(root, str(workflows), str(models_dir), count)
        noop = noop_playbook(root)
        run_s, noop_s, _ours, _theirs = side_by_side(
            repeat, lambda: timed_playbook(playbook), lambda: timed_playbook(noop)
        )
        own = [in_process(str(workflows), str(models_dir), count) for _round in range(repeat)]
        own_s = median([seconds for seconds, _result in own])
        counts = own[0][1]["counts"]
        module_s = max(0.0, run_s - noop_s)
        table.add(
            f"workflow plan: workflow_requirements, {count} workflows ({size / 1e6:.0f} MB) "
            "(module time over a 1-task playbook)",
            f"{module_s:.2f} s",
            f"({run_s:.2f} s - {noop_s:.2f} s)",
            None,
            "< 1 s",
            module_s < 1,
        )
        table.add("  the same, module code in-process (no ansible)", f"{own_s:.3f} s", "", None, "< 1 s", own_s < 1)
        table.note(
            f"workflow plan: {counts['models']} models ({counts['to_download']} to download, "
            f"{counts['unresolved']} unresolved, {counts['present']} present), {counts['node_packs']} node packs, "
            f"{counts['model_conflicts'] + counts['node_conflicts']} conflicts"
        )
        return module_s, own_s
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)


def main():
    run_alone(__doc__, measure, repeat=5, workflows=1000)


if __name__ == "__main__":
    main()
