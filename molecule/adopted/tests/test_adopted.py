"""Inside the pod after the first start of an adopted install and an unchanged restart."""

import pytest

ROOT = "/workspace"
VAULT = "/workspace/aiclipse"


@pytest.mark.parametrize("name", ["models", "ComfyUI"])
def test_the_adopted_folder_is_the_vaults_and_the_shortcut_links_to_it(pod, name):
    folder = pod.file(f"{VAULT}/{name}")
    assert folder.is_directory and not folder.is_symlink, f"{VAULT}/{name} is still a link"
    shortcut = pod.file(f"{ROOT}/{name}")
    assert shortcut.is_symlink and shortcut.linked_to == f"{VAULT}/{name}"


def test_every_user_file_kept_its_bytes(pod):
    # The sums were taken before the first start, through the paths the user used. The checkout
    # stays code only, so the user's input moved from ComfyUI/input to the vault's input folder.
    sums = pod.check_output("cat /root/user-files.sha256")
    assert "ComfyUI/input/photo.png" in sums
    pod.run("sed 's#ComfyUI/input/#input/#' /root/user-files.sha256 > /root/user-files-now.sha256")
    for top in (ROOT, VAULT):
        check = pod.run(f"cd {top} && sha256sum -c /root/user-files-now.sha256")
        assert check.rc == 0, check.stdout + check.stderr
    assert not pod.file(f"{VAULT}/ComfyUI/input/photo.png").exists
    assert pod.file(f"{VAULT}/models/checkpoints/big.safetensors").mode == 0o444


def test_comfyuis_default_model_folders_are_in_the_vault(pod):
    assert pod.file(f"{VAULT}/models/vae").is_directory
    assert pod.file(f"{VAULT}/models/checkpoints/big.safetensors").is_file


def test_the_checkout_still_works(pod):
    status = pod.run(f"git -c safe.directory='*' -C {VAULT}/ComfyUI status --porcelain")
    assert status.rc == 0 and "beyond a symbolic link" not in status.stderr, status.stderr


def test_no_scratch_left(pod):
    assert pod.check_output(f"find {VAULT}/.state/workspace/scratch -type f 2>/dev/null | wc -l") == "0"
    assert pod.check_output(f"find {ROOT} -name '.aiclipse-partial-*' ! -name '*-notes' | wc -l") == "0"


def test_the_pod_name_that_is_not_utf8_is_exported_byte_for_byte(pod):
    env_file = pod.file("/etc/rp_environment")
    assert env_file.mode == 0o600 and not env_file.is_symlink
    value = pod.check_output("env -i sh -c '. /etc/rp_environment; printf %s \"$RUNPOD_POD_NAME\" | od -An -c'")
    assert value.split() == ["c", "a", "f", "351", "-", "p", "o", "d"]


def test_comfyui_was_started(pod):
    assert pod.file("/tmp/comfyui-argv.json").exists
