"""workflow_requirements through real ansible, on the fixture workflows: malformed and hostile
files are warnings and never fail the task, the module reads only (check mode gives the same
answer, nothing on disk changes), links out of the workflow folders are not followed, and a
password in a workflow URL never reaches ansible's output."""

import json
import os
import shutil

from harness.ansible_run import run_module, run_playbook
from harness.paths import FIXTURES

WORKFLOWS = FIXTURES / "workflows"


def snapshot(top):
    state = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            state[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def pod(tmp_path):
    """Template workflows as an image carries them, a models folder with one model present, and
    a link to a workflow outside the folders."""
    templates = tmp_path / "opt" / "workflows"
    shutil.copytree(WORKFLOWS / "templates", templates)
    shutil.copytree(WORKFLOWS / "hostile", templates / "shared")
    secret = tmp_path / "elsewhere" / "secret.json"
    secret.parent.mkdir()
    shutil.copy(WORKFLOWS / "templates" / "flux_schnell.json", secret)
    os.symlink(secret, templates / "linked.json")
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    (models / "vae" / "ae.safetensors").write_bytes(b"present")
    return templates, models


def test_reads_every_format_and_never_fails_on_bad_workflows(tmp_path):
    templates, models = pod(tmp_path)
    args = {"paths": [str(templates), str(tmp_path / "no-vault-workflows-yet")], "models_dir": str(models)}
    before = snapshot(tmp_path)

    result, proc = run_module("workflow_requirements", args)
    assert not result.get("failed") and result["changed"] is False, proc.stdout + proc.stderr
    counts = result["counts"]
    assert (counts["workflows"], counts["present"], counts["node_packs"]) == (5, 1, 4)
    assert counts["workflows_not_read"] == 4  # broken, not a workflow, the outside link, the missing folder
    status = {os.path.relpath(w["path"], templates): w["status"] for w in result["workflows"]}
    assert status["broken.json"] == "invalid" and status["linked.json"] == "skipped"
    models_by_key = {m["key"]: m for m in result["models"]}
    assert models_by_key["vae/ae.safetensors"]["status"] == "present"
    assert models_by_key["diffusion_models/flux1-dev-fp8.safetensors"]["dest"] == str(
        models / "diffusion_models" / "flux1-dev-fp8.safetensors"
    )
    # Each bad file is a warning naming it.
    warnings = "\n".join(result.get("warnings", []))
    for name in (
        "broken.json is not read",
        "not_a_workflow.json is not read",
        "linked.json not read: a link to",
        "shared/hostile.json: ",
    ):
        assert name in warnings, warnings
    assert "no-vault-workflows-yet" not in warnings
    assert result["report"].startswith("Workflow requirements: 5 workflows read, 4 not read;")
    assert "hunter2" not in proc.stdout + proc.stderr
    assert "c1v1ta1-s3cret" not in result["report"]
    assert snapshot(tmp_path) == before, "the module changed something on disk"

    checked, proc = run_module("workflow_requirements", args, check=True, diff=True)
    assert not checked.get("failed") and checked["changed"] is False and not checked.get("diff")
    for key in ("workflows", "models", "node_packs", "unidentified_nodes", "problems", "ignored", "counts", "report"):
        assert checked[key] == result[key], key
    assert snapshot(tmp_path) == before


def test_a_playbook_writes_the_report_where_a_person_reads_it(tmp_path):
    templates, models = pod(tmp_path)
    log = tmp_path / "logs" / "workflow-requirements.txt"
    playbook = tmp_path / "plan.yml"
    tasks = [
        {
            "name": "Read the workflows",
            "aiclipse.comfyui.workflow_requirements": {"paths": [str(templates)], "models_dir": str(models)},
            "register": "needs",
        },
        {
            "name": "Write the report",
            "ansible.builtin.copy": {"content": "{{ needs.report }}", "dest": str(log), "mode": "0644"},
        },
        {
            "name": "Models to download",
            "ansible.builtin.assert": {
                "that": [
                    "needs.models | selectattr('status', 'equalto', 'to_download') | list | length == 15",
                    "needs.node_packs | map(attribute='key') | list | length == 4",
                ]
            },
        },
    ]
    playbook.write_text(
        json.dumps(
            [
                {
                    "name": "Plan from workflows",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": tasks,
                }
            ]
        )
    )
    (tmp_path / "logs").mkdir()
    run = run_playbook(
        playbook, {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, inventory="localhost,"
    )
    assert run.rc == 0 and run.failed == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = log.read_text()
    assert "== %s (ui, schema 0.4, 10 nodes)" % (templates / "flux_dev_subgraph.json") in text
    assert "  model present      vae/ae.safetensors" in text
    assert "NOT READ" in text and "\u202e" not in text
