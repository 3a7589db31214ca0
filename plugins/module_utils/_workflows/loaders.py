# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ComfyUI's own loader nodes: which input of which node names a file of which model folder.

Read from ComfyUI's ``nodes.py`` and ``comfy_extras`` (``folder_paths.get_filename_list(...)``
inputs, ComfyUI 0.3.6x). A UI workflow stores a node's widget values as a list in widget order
(or, in newer frontends, a mapping by input name); an API prompt stores them by input name.
Each entry lists the node's widgets in order, ``None`` for widgets that are not model files.

A loader's file is a *requirement without a URL*: the workflow says which file it uses, not
where to get it. Entries are only as good as this table; a custom loader is not in it.
"""

from __future__ import annotations

# class_type -> ((input name, model folder or None), ...) in widget order.
LOADER_WIDGETS = {
    "CheckpointLoaderSimple": (("ckpt_name", "checkpoints"),),
    "CheckpointLoader": (("config_name", "configs"), ("ckpt_name", "checkpoints")),
    "unCLIPCheckpointLoader": (("ckpt_name", "checkpoints"),),
    "ImageOnlyCheckpointLoader": (("ckpt_name", "checkpoints"),),
    "LoraLoader": (("lora_name", "loras"), ("strength_model", None), ("strength_clip", None)),
    "LoraLoaderModelOnly": (("lora_name", "loras"), ("strength_model", None)),
    "VAELoader": (("vae_name", "vae"),),
    "ControlNetLoader": (("control_net_name", "controlnet"),),
    "DiffControlNetLoader": (("control_net_name", "controlnet"),),
    "UNETLoader": (("unet_name", "diffusion_models"), ("weight_dtype", None)),
    "CLIPLoader": (("clip_name", "text_encoders"), ("type", None), ("device", None)),
    "DualCLIPLoader": (
        ("clip_name1", "text_encoders"),
        ("clip_name2", "text_encoders"),
        ("type", None),
        ("device", None),
    ),
    "TripleCLIPLoader": (
        ("clip_name1", "text_encoders"),
        ("clip_name2", "text_encoders"),
        ("clip_name3", "text_encoders"),
    ),
    "QuadrupleCLIPLoader": (
        ("clip_name1", "text_encoders"),
        ("clip_name2", "text_encoders"),
        ("clip_name3", "text_encoders"),
        ("clip_name4", "text_encoders"),
    ),
    "CLIPVisionLoader": (("clip_name", "clip_vision"),),
    "StyleModelLoader": (("style_model_name", "style_models"),),
    "GLIGENLoader": (("gligen_name", "gligen"),),
    "UpscaleModelLoader": (("model_name", "upscale_models"),),
    "HypernetworkLoader": (("hypernetwork_name", "hypernetworks"), ("strength", None)),
    "PhotoMakerLoader": (("photomaker_model_name", "photomaker"),),
    "ModelPatchLoader": (("name", "model_patches"),),
    "AudioEncoderLoader": (("audio_encoder_name", "audio_encoders"),),
    "CreateHookLora": (("lora_name", "loras"), ("strength_model", None), ("strength_clip", None)),
    "CreateHookLoraModelOnly": (("lora_name", "loras"), ("strength_model", None)),
    "CreateHookModelAsLora": (("ckpt_name", "checkpoints"), ("strength_model", None), ("strength_clip", None)),
    "CreateHookModelAsLoraModelOnly": (("ckpt_name", "checkpoints"), ("strength_model", None)),
}

# VAELoader offers these without a file in vae/ (taesd from vae_approx, or no VAE at all).
NOT_FILES = {"VAELoader": frozenset(("taesd", "taesdxl", "taesd3", "taef1", "pixel_space"))}

# Frontend-only nodes: they never run on the server and belong to no node pack.
FRONTEND_ONLY = frozenset(("Note", "MarkdownNote", "Reroute", "PrimitiveNode"))


def loader_files(class_type, widget_values):
    """[(input name, folder, value)] for the model inputs a node's widget values name.

    `widget_values` is a list (UI, widget order) or a mapping (API inputs, newer UI). Values
    that are not strings (links, numbers) or are empty are skipped; they name no file.
    """
    widgets = LOADER_WIDGETS.get(class_type)
    if not widgets:
        return []
    skip = NOT_FILES.get(class_type, ())
    found = []
    for index, (name, folder) in enumerate(widgets):
        if folder is None:
            continue
        if isinstance(widget_values, dict):
            value = widget_values.get(name)
        elif isinstance(widget_values, list) and index < len(widget_values):
            value = widget_values[index]
        else:
            value = None
        if isinstance(value, str) and value.strip() and value not in skip:
            found.append((name, folder, value))
    return found
