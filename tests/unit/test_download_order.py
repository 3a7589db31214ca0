"""The download queue's order (module_utils._downloads.download_order), in-process on real files:
which workflow is the default, which models it needs, and the queue with those first."""

import json
import sys

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import download_order  # noqa: E402


def api_workflow(*loaders):
    """An API-format prompt of loader nodes: (class_type, input name, file name)."""
    return json.dumps({str(n): {"class_type": t, "inputs": {i: f}} for n, (t, i, f) in enumerate(loaders, start=1)})


def entry(dest, name=None):
    return {"dest": dest, "name": name or dest.rsplit("/", 2)[-2] + "/" + dest.rsplit("/", 1)[-1]}


def test_a_folder_means_its_default_json_else_its_first_workflow_by_name(tmp_path):
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    # The folder's own files come before its subfolders'.
    assert download_order.find_default_workflow(str(tmp_path)) == (str(tmp_path / "b.json"), "")
    (tmp_path / "default.json").write_text("{}")
    assert download_order.find_default_workflow(str(tmp_path)) == (str(tmp_path / "default.json"), "")
    assert download_order.find_default_workflow(str(tmp_path / "sub" / "a.json")) == (
        str(tmp_path / "sub" / "a.json"),
        "",
    )


def test_no_default_workflow_says_why(tmp_path):
    (tmp_path / "empty").mkdir()
    assert download_order.find_default_workflow("") == (None, "no default workflow is set")
    assert download_order.find_default_workflow("x.json")[1] == "the default workflow x.json is not an absolute path"
    assert download_order.find_default_workflow(str(tmp_path / "gone.json"))[1].endswith("does not exist")
    assert download_order.find_default_workflow(str(tmp_path / "empty"))[1].endswith("holds no workflow file")


def test_the_default_workflows_models_lead_the_queue_each_group_in_plan_order(tmp_path):
    models = tmp_path / "models"
    workflow = tmp_path / "default.json"
    workflow.write_text(
        api_workflow(
            ("VAELoader", "vae_name", "ae.safetensors"),
            ("CheckpointLoaderSimple", "ckpt_name", "sd.safetensors"),
            ("LoraLoaderModelOnly", "lora_name", "not-in-the-plan.safetensors"),
        )
    )
    dests, warnings = download_order.default_workflow_dests(str(workflow), str(models))
    assert sorted(dests) == sorted(
        [
            str(models / "vae/ae.safetensors"),
            str(models / "checkpoints/sd.safetensors"),
            str(models / "loras/not-in-the-plan.safetensors"),
        ]
    )
    assert warnings == []
    plan = [
        entry(str(models / "loras/a.safetensors")),
        entry(str(models / "checkpoints/sd.safetensors")),
        entry(str(models / "loras/b.safetensors")),
        entry(str(models / "vae/ae.safetensors")),
    ]
    ordered, first = download_order.default_first(plan, dests)
    assert [e["name"] for e in ordered] == [
        "checkpoints/sd.safetensors",
        "vae/ae.safetensors",
        "loras/a.safetensors",
        "loras/b.safetensors",
    ]
    assert first == ordered[:2]
    # Nothing needed: the plan order stays, nothing is lost or repeated.
    assert download_order.default_first(plan, [])[0] == plan


def test_an_unreadable_default_workflow_is_a_warning_not_an_error(tmp_path):
    workflow = tmp_path / "default.json"
    workflow.write_text("{not json")
    dests, warnings = download_order.default_workflow_dests(str(workflow), str(tmp_path / "models"))
    assert dests == []
    assert warnings and "default.json is not read" in warnings[0]
