"""Provisioning from workflows, end to end: a template that ships workflows alone (empty
manifests) gets its models from a loopback origin (nginx) and its custom nodes from local git
servers, one of them found through the Comfy Registry stand-in; real site.yml and role runs.

What a user sees is asserted: the play's rc and changed count, the files in the vault, the
checkouts' commits, the warnings and the reports in aiclipse/logs.
"""

import hashlib

import pytest

from harness.ansible_run import run_playbook
from harness.comfy_registry import RegistryStandIn
from harness.git_repos import make_comfyui_repo, make_node_repo
from harness.git_servers import SmartHttpGit, publish
from harness.nginx import NginxOrigin, write_file
from harness.paths import REPO
from harness.python_env import make_venv
from harness.site_pod import site_vars
from harness.workflows import ui_node, ui_workflow

SITE = REPO / "site.yml"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model(name, url, directory, sha256=None):
    item = {"name": name, "url": url, "directory": directory}
    if sha256:
        item.update(hash=sha256, hash_type="sha256")
    return item


class World:
    """Origin, git server and registry, the node repositories and the pod's image folders."""

    def __init__(self, root, origin, git_server, registry):
        self.root, self.origin, self.git_server, self.registry = root, origin, git_server, registry
        self.files = {
            name: write_file(origin.files_dir / name, 40_000 + index, seed=index)
            for index, name in enumerate(
                (
                    "flux.safetensors",
                    "lora.safetensors",
                    "vae-wf.safetensors",
                    "vae-manifest.safetensors",
                    "bad.safetensors",
                )
            )
        }
        git_root = root / "git"
        # A pack named by aux_id (a GitHub owner/repo, cloned from the configurable base URL).
        self.aux = make_node_repo(root / "src/ComfyUI-AuxPack")
        publish(self.aux, git_root, "acme/ComfyUI-AuxPack")
        # A pack named by cnr_id only: the registry gives its repository; the workflow pins 1.0.0.
        self.reg = make_node_repo(root / "src/ComfyUI-RegPack")
        self.reg_v1 = self.reg.tag("v1.0.0")
        self.reg.commit({"later.py": "# after 1.0.0\n"}, "after the release")
        self.reg.tag("v1.1.0")
        publish(self.reg, git_root, "regowner/ComfyUI-RegPack")
        registry.add("comfyui-regpack", git_server.url("regowner/ComfyUI-RegPack"), versions=("1.0.0", "1.1.0"))

    def url(self, name):
        return f"{self.origin.url}/public/{name}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf-world")
    with NginxOrigin(root / "served") as origin, SmartHttpGit(
        root / "git"
    ) as git_server, RegistryStandIn() as registry:
        yield World(root, origin, git_server, registry)


class Pod:
    def __init__(self, root, world, template="wf"):
        self.root, self.world = root, world
        self.vault = root / "workspace/aiclipse"
        make_comfyui_repo(root / "upstream/ComfyUI")
        make_venv(root / "venv")
        (root / "workflows").mkdir()
        (root / "manifests").mkdir()
        self.vars = {
            **site_vars(root, template),
            "custom_nodes_github_url": world.git_server.url("").rstrip("/"),
            "custom_nodes_registry_endpoint": world.registry.url,
        }
        self.env = {
            "PROVISION_FROM_WORKFLOWS": "",
            "AICLIPSE_SKIP_UNCHANGED_START": "false",
            "ANSIBLE_CALLBACK_FORMAT_PRETTY": "0",
        }

    def template(self, name, text):
        path = self.root / "workflows" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def start(self, **env):
        return run_playbook(SITE, self.vars, env={**self.env, **env})

    def model(self, key):
        return self.vault / "models" / key

    def node(self, name):
        return self.vault / "custom_nodes" / name

    def head(self, name):
        from harness.git_repos import git

        return git(self.node(name), "rev-parse", "HEAD")

    def report(self, which):
        return (self.vault / "logs" / f"workflow-{which}.txt").read_text()


def text_of(run):
    return run.stdout + run.stderr


def the_template(world):
    """One workflow: a model with a sha256 from the origin, a LoRA, a registry pack pinned to a
    version, a GitHub pack, and ComfyUI's own nodes (never installed)."""
    return ui_workflow(
        ui_node(
            1,
            "UNETLoader",
            ["flux.safetensors", "default"],
            [
                model(
                    "flux.safetensors",
                    world.url("flux.safetensors"),
                    "diffusion_models",
                    world.files["flux.safetensors"],
                )
            ],
            cnr_id="comfy-core",
            ver="0.3.64",
        ),
        ui_node(
            2,
            "LoraLoaderModelOnly",
            ["lora.safetensors", 1.0],
            [model("lora.safetensors", world.url("lora.safetensors"), "loras")],
            cnr_id="comfy-core",
            ver="0.3.64",
        ),
        ui_node(3, "RegPackResize", [512], cnr_id="comfyui-regpack", ver="1.0.0"),
        ui_node(4, "AuxPackColor", ["red"], aux_id="acme/ComfyUI-AuxPack", ver="unknown"),
        ui_node(5, "KSampler", [0, "fixed", 20, 8, "euler", "normal", 1.0]),
    )


@pytest.fixture(scope="module")
def provisioned(world, tmp_path_factory):
    """A pod whose template is workflows alone, plus a workflow that disagrees with the user's
    manifest, a hostile one and a malformed one; started once."""
    pod = Pod(tmp_path_factory.mktemp("wf-pod"), world)
    pod.template("txt2img.json", the_template(world))
    # Another workflow says vae/shared.safetensors comes from elsewhere, with another hash:
    # the user's manifest names that destination, so the manifest wins and the disagreement is told.
    pod.template(
        "sub/other.json",
        ui_workflow(
            ui_node(
                1,
                "VAELoader",
                ["shared.safetensors"],
                [
                    model(
                        "shared.safetensors", world.url("vae-wf.safetensors"), "vae", world.files["vae-wf.safetensors"]
                    )
                ],
            )
        ),
    )
    pod.vault.mkdir(parents=True)
    (pod.vault / "models_manifest.txt").write_text(
        f"url|{world.url('vae-manifest.safetensors')}|shared.safetensors|vae|{world.files['vae-manifest.safetensors']}\n"
    )
    pod.template(
        "hostile.json",
        ui_workflow(
            ui_node(
                1,
                "LoraLoader",
                ["evil.safetensors", "js.safetensors"],
                [
                    model("evil.safetensors", world.url("bad.safetensors"), "../../../../tmp"),
                    model("js.safetensors", "javascript:alert(1)", "loras"),
                ],
            )
        ),
    )
    pod.template("broken.json", '{"nodes": [ {"id": 1,, }')
    run = pod.start()
    return pod, run


def test_a_template_of_workflows_alone_brings_its_models_and_nodes(world, provisioned):
    pod, run = provisioned
    assert run.rc == 0 and run.failed == 0, text_of(run)[-5000:]
    # The models, from the loopback origin, verified against the workflow's sha256.
    assert sha(pod.model("diffusion_models/flux.safetensors")) == world.files["flux.safetensors"]
    assert sha(pod.model("loras/lora.safetensors")) == world.files["lora.safetensors"]
    # The registry pack at the version the workflow pins (its tag), not the latest.
    assert pod.head("ComfyUI-RegPack") == world.reg_v1
    assert ("GET", "/nodes/comfyui-regpack", "") in world.registry.requests
    # The GitHub pack, cloned from the configured base URL.
    assert pod.head("ComfyUI-AuxPack") == world.aux.head()
    # ComfyUI's own nodes are never installed.
    assert sorted(p.name for p in (pod.vault / "custom_nodes").iterdir() if not p.name.startswith(".")) == [
        "ComfyUI-AuxPack",
        "ComfyUI-RegPack",
    ]
    # The reports, at start and in the logs.
    models = pod.report("models")
    assert models.startswith("Workflow models: 2 to download from workflows, 1 from manifests, 0 present, 2 unresolved")
    assert (
        f"model to download  diffusion_models/flux.safetensors  (<- {world.url('flux.safetensors')}  sha256 " in models
    )
    assert f"model to download  loras/lora.safetensors  (<- {world.url('lora.safetensors')})" in models
    nodes = pod.report("nodes")
    assert "node  installed    registry comfyui-regpack 1.0.0" in nodes
    assert "node  installed    github acme/ComfyUI-AuxPack" in nodes
    assert "node  unknown      KSampler" in nodes
    assert "Workflow node packs: 2 installed, 0 to install, 0 failed, 0 unknown" in run.stdout


def test_a_manifest_wins_over_a_workflow_on_one_destination_and_the_disagreement_is_told(world, provisioned):
    pod, run = provisioned
    assert sha(pod.model("vae/shared.safetensors")) == world.files["vae-manifest.safetensors"]
    told = text_of(run)
    assert "model vae/shared.safetensors:" in told and "the manifest's is used" in told
    assert str(pod.root / "workflows/sub/other.json") in told
    report = pod.report("models")
    assert "vae/shared.safetensors  (from the manifest" in report
    assert f"the workflow's url {world.url('vae-wf.safetensors')} is not used" in report
    assert f"the workflow's sha256 {world.files['vae-wf.safetensors']} is not used" in report


def test_hostile_and_malformed_workflows_are_refused_naming_the_file(world, provisioned):
    pod, run = provisioned
    told = text_of(run)
    hostile, broken = pod.root / "workflows/hostile.json", pod.root / "workflows/broken.json"
    assert f"workflow {hostile}:" in told and "directory '../../../../tmp' is a path" in told
    assert "javascript:alert(1)" in pod.report("models") and "is not http(s)" in pod.report("models")
    assert f"workflow {broken} is not read: invalid JSON" in told
    # Nothing from the hostile workflow was fetched or written anywhere.
    assert not any("bad.safetensors" in line for line in world.origin.log_lines())
    assert not (pod.model("loras/evil.safetensors")).exists() and not (pod.model("loras/js.safetensors")).exists()


def test_a_second_start_changes_nothing_and_an_edited_workflow_means_a_full_start(world, provisioned):
    pod, dummy = provisioned
    again = pod.start()
    assert again.rc == 0 and again.changed == 0, text_of(again)[-4000:]
    assert "model present      diffusion_models/flux.safetensors" in pod.report("models")
    # With the start stamp: the first stamped start records it, the next skips the roles ...
    stamped = pod.start(AICLIPSE_SKIP_UNCHANGED_START="true")
    assert stamped.rc == 0 and stamped.changed == 0
    skipped = pod.start(AICLIPSE_SKIP_UNCHANGED_START="true")
    assert "Skip the roles" in skipped.stdout and "Install the custom nodes" not in skipped.stdout
    # ... until a workflow changes: then every role runs again (and finds the new model).
    write_file(world.origin.files_dir / "late.safetensors", 12_345, seed=9)
    pod.template(
        "txt2img.json",
        the_template(world)
        .replace('"widgets_values": [\n  "lora.safetensors"', '"widgets_values": [\n  "late.safetensors"')
        .replace("lora.safetensors", "late.safetensors"),
    )
    full = pod.start(AICLIPSE_SKIP_UNCHANGED_START="true")
    assert full.rc == 0 and "Full start:" in full.stdout, full.stdout[-3000:]
    assert pod.model("loras/late.safetensors").is_file()


def test_provision_from_workflows_false_changes_nothing(world, tmp_path):
    pod = Pod(tmp_path, world)
    pod.template("txt2img.json", the_template(world))
    run = pod.start(PROVISION_FROM_WORKFLOWS="false")
    assert run.rc == 0 and run.failed == 0, text_of(run)[-4000:]
    assert not (pod.vault / "models/diffusion_models/flux.safetensors").exists()
    assert not (pod.vault / "models/loras/lora.safetensors").exists()
    assert not pod.node("ComfyUI-RegPack").exists() and not pod.node("ComfyUI-AuxPack").exists()
    assert not (pod.vault / "logs/workflow-models.txt").exists()
    assert not (pod.vault / "logs/workflow-nodes.txt").exists()


def test_a_bad_setting_names_itself(world, tmp_path):
    pod = Pod(tmp_path, world)
    run = pod.start(PROVISION_FROM_WORKFLOWS="sometimes")
    assert run.rc != 0
    assert "PROVISION_FROM_WORKFLOWS (models_provision_from_workflows) is 'sometimes'" in text_of(run)


def test_a_workflow_hash_that_does_not_match_the_served_bytes_fails_that_model(world, tmp_path):
    root = tmp_path
    play = root / "play.yml"
    play.write_text(
        "- name: Models\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: aiclipse.comfyui.models\n"
    )
    (root / "workflows").mkdir()
    wrong = "0" * 64
    (root / "workflows/w.json").write_text(
        ui_workflow(
            ui_node(
                1,
                "VAELoader",
                ["bad.safetensors"],
                [model("bad.safetensors", world.url("bad.safetensors"), "vae", wrong)],
            ),
            ui_node(
                2,
                "LoraLoaderModelOnly",
                ["lora.safetensors", 1.0],
                [model("lora.safetensors", world.url("lora.safetensors"), "loras", world.files["lora.safetensors"])],
            ),
        )
    )
    vault = root / "vault"
    run = run_playbook(
        play,
        {
            "aiclipse_vault": str(vault),
            "models_foreground": True,
            "models_env_file": str(root / "env"),
            "models_manifests_dir": str(root / "none"),
            "models_workflow_templates_dir": str(root / "workflows"),
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        },
        env={"PROVISION_FROM_WORKFLOWS": "", "DOWNLOAD_MODELS": "", "MODELS_MANIFEST": "", "TEMPLATE_TYPE": ""},
        args=("-c", "local"),
    )
    assert run.rc != 0
    assert "1 model(s) failed" in text_of(run) and "vae/bad.safetensors" in text_of(run)
    assert not (vault / "models/vae/bad.safetensors").exists()
    # The other model of the same workflow is fine.
    assert sha(vault / "models/loras/lora.safetensors") == world.files["lora.safetensors"]
