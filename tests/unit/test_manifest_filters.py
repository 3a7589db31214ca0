"""Filters between model_manifest and the downloaders: which entry gets which token.

Run through real ansible templating (a playbook), the way the models role uses them.
"""

import json
import sys

from harness.ansible_run import run_playbook
from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.filter.model_downloads import (  # noqa: E402
    model_download_report,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.manifest import ManifestParser  # noqa: E402

SHA = "cd" * 32
MANIFEST = (
    "hf|org/repo@v2|split_files/a.safetensors|vae|" + SHA + "\n"
    "civitai|4242|b.safetensors|loras\n"
    "url|https://files.example.invalid/c.pth|c.pth|upscale_models\n"
    "r2|loras/d.safetensors|d.safetensors|loras\n"
    "r2|other/loras/e.safetensors|e.safetensors|loras\n"
)


def entries(r2_bucket=None):
    found, problems = ManifestParser("/v/models", r2_bucket=r2_bucket).parse_text(MANIFEST, "m.txt")
    assert problems == []
    return found


def render(tmp_path, expression, variables):
    """Evaluate a Jinja expression with the collection's filters through ansible-playbook."""
    out = tmp_path / "out.json"
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        f'        content: "{{{{ {expression} | to_json }}}}"\n'
        f"        dest: {out}\n        mode: '0600'\n"
    )
    run = run_playbook(
        play,
        inventory="localhost,",
        args=("-c", "local"),
        extra_vars={**variables, "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
    )
    assert run.rc == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


def test_each_http_source_names_only_its_own_token_and_r2_goes_to_r2_fetch(tmp_path):
    plan = entries(r2_bucket=None)
    result = render(
        tmp_path,
        "[plan | aiclipse.comfyui.model_http_downloads,"
        " plan | aiclipse.comfyui.model_r2_objects,"
        " plan | aiclipse.comfyui.model_http_downloads(hf_token_name='MY_HF', civitai_token_name='')]",
        {"plan": plan},
    )
    http, r2, renamed = result
    assert http == [
        {
            "name": "vae/a.safetensors",
            "url": "https://huggingface.co/org/repo/resolve/v2/split_files/a.safetensors",
            "dest": "/v/models/vae/a.safetensors",
            "sha256": SHA,
            "token_name": "HF_TOKEN",
        },
        {
            "name": "loras/b.safetensors",
            "url": "https://civitai.com/api/download/models/4242",
            "dest": "/v/models/loras/b.safetensors",
            "token_name": "CIVITAI_TOKEN",
        },
        {
            "name": "upscale_models/c.pth",
            "url": "https://files.example.invalid/c.pth",
            "dest": "/v/models/upscale_models/c.pth",
        },
    ]
    assert r2 == [
        {
            "name": "loras/d.safetensors",
            "bucket": "loras",
            "key": "d.safetensors",
            "dest": "/v/models/loras/d.safetensors",
        },
        {
            "name": "loras/e.safetensors",
            "bucket": "other",
            "key": "loras/e.safetensors",
            "dest": "/v/models/loras/e.safetensors",
        },
    ]
    assert [item.get("token_name") for item in renamed] == ["MY_HF", None, None]
    assert not any("token" in item for item in http + renamed), "no token value ever passes a filter"


def test_report_counts_every_entry_and_names_a_task_that_failed_as_a_whole():
    http = {
        "results": [
            {"name": "vae/a", "status": "downloaded"},
            {"name": "loras/b", "status": "present"},
            {"name": "x/c", "status": "failed", "reason": "HTTP 404"},
        ]
    }
    r2 = {"failed": True, "msg": "missing credentials: set R2_ACCESS_KEY_ID"}
    skipped = [{"name": "loras/k", "reason": "no bucket"}]
    report = model_download_report({"HTTP downloads": http, "R2 downloads": r2, "none": {"skipped": True}}, skipped)
    assert (report["downloaded"], report["present"], report["failed"]) == (1, 1, 3)
    assert report["failures"] == [
        "x/c: HTTP 404",
        "R2 downloads: missing credentials: set R2_ACCESS_KEY_ID",
        "loras/k: no bucket",
    ]
    assert report["lines"] == [
        "vae/a: downloaded",
        "loras/b: present",
        "x/c: failed (HTTP 404)",
        "loras/k: failed (no bucket)",
    ]


def test_report_accounts_for_every_planned_model_even_when_a_task_returned_nothing():
    planned = [
        {"name": "vae/a", "dest": "/m/vae/a"},
        {"name": "loras/k", "dest": "/m/loras/k"},
        {"name": "loras/r", "dest": "/m/loras/r"},
    ]
    http = {"results": [{"name": "vae/a", "dest": "/m/vae/a", "status": "downloaded"}]}
    r2 = {"failed": False, "msg": "MODULE FAILURE: see stdout/stderr for the exact error"}  # failed_when: false
    report = model_download_report({"HTTP downloads": http, "R2 downloads": r2}, [], planned)
    assert report["failed"] == 2 and report["downloaded"] == 1
    assert report["failures"] == [
        "loras/k: no result: R2 downloads: MODULE FAILURE: see stdout/stderr for the exact error",
        "loras/r: no result: R2 downloads: MODULE FAILURE: see stdout/stderr for the exact error",
    ]
