"""Inside the pod after: first start, an unchanged restart, the user's edits, another restart."""

import json
import shlex

import pytest

# The vault is ComfyUI's --base-directory; the shortcuts show what ComfyUI reads.
from harness.layout import SHORTCUTS

ROOT = "/workspace"
VAULT = "/workspace/aiclipse"
# ComfyUI's default model folders (the stand-in repo ships them with placeholder files).
MODEL_FOLDERS = (
    "checkpoints",
    "clip",
    "clip_vision",
    "controlnet",
    "diffusion_models",
    "embeddings",
    "loras",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
)
WORKFLOWS = f"{VAULT}/user/default/workflows"
GIT = f"git -c safe.directory='*' -C {VAULT}/ComfyUI"


# -- layout --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,target", sorted(SHORTCUTS.items()))
def test_shortcut_is_a_link_to_a_real_vault_folder(pod, name, target):
    link = pod.file(f"{ROOT}/{name}")
    assert link.is_symlink, f"{ROOT}/{name} is not a symlink"
    assert pod.file(link.linked_to).path == f"{VAULT}/{target}"
    real = pod.file(f"{VAULT}/{target}")
    assert real.is_directory and not real.is_symlink


def test_comfyui_checkout_is_exactly_what_git_made(pod):
    # Nothing changed, untracked, hidden from git (sparse checkout, skip-worktree) or linked in.
    assert pod.check_output(f"{GIT} status --porcelain --untracked-files=all") == ""
    assert "S " not in pod.check_output(f"{GIT} ls-files -v | cut -c1-2 | sort -u")
    assert pod.run(f"{GIT} config --get core.sparseCheckout").rc != 0
    assert pod.check_output(f"find {VAULT}/ComfyUI -maxdepth 1 -type l") == ""
    assert pod.file(f"{VAULT}/ComfyUI/models").is_directory and not pod.file(f"{VAULT}/ComfyUI/models").is_symlink
    # Pinned (COMFYUI_VERSION) and still on a branch that follows upstream.
    assert pod.check_output(f"{GIT} rev-parse --abbrev-ref HEAD@{{upstream}}") == "origin/master"


@pytest.mark.parametrize("folder", MODEL_FOLDERS)
def test_default_model_folders_are_in_the_vault(pod, folder):
    assert pod.file(f"{VAULT}/models/{folder}").is_directory
    assert pod.file(f"{VAULT}/models/{folder}/put_{folder}_here").is_file


def test_user_files_under_models_survived_the_restart(pod):
    own = pod.file(f"{ROOT}/models/loras/my-own-lora.safetensors")
    assert own.is_file and own.content_string == "a user's own lora"
    assert pod.file(f"{VAULT}/models/my_folder/note.txt").content_string == "made under /workspace/models"


# -- workflows -----------------------------------------------------------------------------


def test_edited_workflow_is_kept_in_the_one_workflows_folder(pod):
    edited = json.loads(pod.file(f"{WORKFLOWS}/txt2img.json").content_string)
    assert edited.get("edited_by") == "user"
    # The older layout's folder is a link to it; ComfyUI's checkout holds none.
    assert pod.check_output(f"readlink -f {VAULT}/workflows") == WORKFLOWS
    assert not pod.file(f"{VAULT}/ComfyUI/user/default/workflows").exists


def test_new_and_nested_template_workflows_were_added(pod):
    assert json.loads(pod.file(f"{WORKFLOWS}/new-template.json").content_string)["template"] == "new"
    assert json.loads(pod.file(f"{WORKFLOWS}/video/i2v.json").content_string)["template"] == "i2v"


# -- environment ---------------------------------------------------------------------------


def test_env_file_is_private_and_holds_the_new_settings(pod, comfy_args):
    env_file = pod.file("/etc/rp_environment")
    assert env_file.user == "root"
    assert env_file.mode == 0o600
    content = env_file.content_string
    # dash sourcing it gets the value back byte for byte.
    sourced = pod.check_output("env -i sh -c '. /etc/rp_environment; printf %s \"$COMFY_ARGS\"'")
    assert sourced == comfy_args
    assert "export RUNPOD_POD_ID='molecule-pod-1'" in content
    # No timestamps: the file changes only when the settings do.
    assert content.count("COMFY_ARGS=") == 1


@pytest.mark.parametrize(
    "shell",
    [
        # An interactive login (ssh pod): bash -l reads /etc/profile -> profile.d, ~/.profile.
        "env -i HOME=/root PATH=/usr/bin:/bin bash -lc",
        # `ssh pod 'cmd'`: sshd runs a non-interactive bash, which reads ~/.bashrc because
        # SSH_CLIENT is set (Debian's bash is built with SSH_SOURCE_BASHRC).
        "env -i HOME=/root PATH=/usr/bin:/bin SSH_CLIENT='127.0.0.1 50000 22' bash -c",
    ],
)
def test_shells_see_the_changed_comfy_args_byte_for_byte(pod, shell, comfy_args):
    # The container's own environment has no COMFY_ARGS: only the file can provide it.
    assert pod.run("printenv COMFY_ARGS").rc != 0
    script = shlex.quote('printf %s "$COMFY_ARGS"')
    out = pod.check_output(f"{shell} {script}")
    assert out == comfy_args


def test_one_hook_line_after_three_starts(pod):
    bashrc = pod.file("/root/.bashrc").content_string
    assert bashrc.count("aiclipse.comfyui pod_env hook") == 1
    assert bashrc.splitlines()[0].endswith("# aiclipse.comfyui pod_env hook")


# -- models --------------------------------------------------------------------------------


def _models(world):
    return world["pods"]["pod"]["models"]


def test_every_manifest_source_was_used(world):
    assert sorted(m["source"] for m in _models(world)) == ["huggingface", "r2", "url"]


@pytest.mark.parametrize("index", range(3))
def test_downloaded_model_has_the_manifest_sha256(pod, world, index):
    model = _models(world)[index]
    path = f"{VAULT}/models/{model['path']}"
    assert pod.file(path).is_file, f"{path} missing ({model['source']})"
    assert pod.file(path).sha256sum == model["sha256"]
    # Seen through the shortcut too.
    assert pod.file(f"{ROOT}/models/{model['path']}").sha256sum == model["sha256"]


def test_no_staging_leftovers(pod):
    leftovers = pod.check_output(
        f"find {VAULT}/models {VAULT}/.state/models -type f "
        r"\( -name '*.aria2' -o -name '*.part' -o -name '*.tmp' -o -path '*/staging/*' \) -print"
    )
    assert leftovers == ""


def test_ledger_is_private_and_token_free(pod, world):
    ledger = pod.file(f"{VAULT}/.state/models/ledger.json")
    assert ledger.mode == 0o600
    assert world["hf_token"] not in ledger.content_string
    assert world["r2_secret"] not in ledger.content_string


def test_no_secret_in_the_pod_logs(pod, world):
    logs = pod.check_output(f"cat {VAULT}/logs/*.log {VAULT}/logs/*.txt 2>/dev/null; true")
    assert "provisioning" in pod.file(f"{VAULT}/logs/provision.log").content_string
    assert world["hf_token"] not in logs
    assert world["r2_secret"] not in logs


# -- ComfyUI, nodes, launch ----------------------------------------------------------------


def test_template_node_is_installed_with_its_requirements(pod, world):
    node = pod.file(f"{VAULT}/custom_nodes/{world['pods']['pod']['node']}")
    assert node.is_directory
    assert pod.file(f"{node.path}/__init__.py").is_file
    assert pod.run("/venv/bin/python -c 'import fakedep'").rc == 0
    # The node's requirements did not replace the pod's torch.
    assert pod.check_output("/venv/bin/python -c 'import faketorch; print(faketorch.__version__)'") == "2.0"


def test_a_node_cloned_by_hand_into_comfyuis_folder_moved_to_the_vault(pod):
    assert pod.file(f"{VAULT}/custom_nodes/HandNode/__init__.py").is_file
    assert pod.run(f"git -c safe.directory='*' -C {VAULT}/custom_nodes/HandNode rev-parse HEAD").rc == 0
    assert not pod.file(f"{VAULT}/ComfyUI/custom_nodes/HandNode").exists


def test_launch_file_has_the_base_directory_and_the_changed_comfy_args(pod, comfy_args):
    launch = json.loads(pod.file(f"{VAULT}/.state/launch.json").content_string)
    assert launch["cwd"] == f"{VAULT}/ComfyUI"
    assert launch["argv"] == [
        "/venv/bin/python",
        "main.py",
        "--listen",
        "0.0.0.0",
        "--port",
        "8188",
        "--base-directory",
        VAULT,
        *shlex.split(comfy_args),
    ]


def test_comfyui_was_started_with_that_argv(pod, comfy_args):
    # The stand-in main.py records the argv the entrypoint started it with.
    started = json.loads(pod.file("/tmp/comfyui-argv.json").content_string)
    assert started["argv"] == [
        "--listen",
        "0.0.0.0",
        "--port",
        "8188",
        "--base-directory",
        VAULT,
        *shlex.split(comfy_args),
    ]
    assert started["cwd"] == f"{VAULT}/ComfyUI"
    assert started["executable"] == "/venv/bin/python"
