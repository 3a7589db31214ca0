"""site.yml's variables for a pod that lives in one directory instead of this machine's
/workspace, /etc, /root and /usr/local/bin (the same shape as playbooks/vars/local-demo.yml).

The directory holds what a baked image would: ComfyUI's stand-in repository in
upstream/ComfyUI, a venv in venv, template workflows in workflows and the template's manifests
(``<template>_models.txt``, ``<template>_nodes.txt``) in manifests.
"""

# A well-formed key nobody holds: the pod_env role adds it to authorized_keys.
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHARNESSHARNESSHARNESSHARNESSHARNESSHARNESS harness"


def site_vars(root, template):
    """Every role of site.yml pointed at root; models download in the foreground."""
    return {
        "aiclipse_root": str(root / "workspace"),
        "workspace_workflow_templates_dir": str(root / "workflows"),
        "pod_env_file": str(root / "etc/rp_environment"),
        "pod_env_hook_files": [str(root / "root/.bashrc")],
        "pod_env_profile_script": str(root / "etc/profile.d/rp_environment.sh"),
        "pod_env_authorized_keys_file": str(root / "root/.ssh/authorized_keys"),
        "pod_env_host_key_dir": str(root / "etc/ssh"),
        "pod_env_public_key": PUBLIC_KEY,
        "models_manifests_dir": str(root / "manifests"),
        "models_template_type": template,
        "models_foreground": True,
        "comfyui_repo_url": str(root / "upstream/ComfyUI"),
        "comfyui_baked_dir": "",
        "comfyui_venv": str(root / "venv"),
        "custom_nodes_manifests_dir": str(root / "manifests"),
        "custom_nodes_template_type": template,
        "launcher_bin_dir": str(root / "bin"),
    }
