# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every value a workflow file supplies, checked before it can name a path, a URL or a pin.

Workflow files come from anywhere (a template, a download, a colleague), so each check returns
either the clean value or raises :class:`BadValue` with a sentence a person can act on. Nothing
here touches the filesystem or the network.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from urllib.parse import urlsplit

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import is_sha256_hex
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_url

# ComfyUI's own model folders (folder_paths.py), legacy names included: files there are found
# by ComfyUI without any custom node. Other plain names are accepted (custom nodes register
# their own folders, e.g. ipadapter, sams) and flagged as not ComfyUI's own.
COMFYUI_MODEL_FOLDERS = frozenset(
    (
        "audio_encoders",
        "checkpoints",
        "classifiers",
        "clip",
        "clip_vision",
        "configs",
        "controlnet",
        "diffusers",
        "diffusion_models",
        "embeddings",
        "gligen",
        "hypernetworks",
        "loras",
        "model_patches",
        "photomaker",
        "style_models",
        "t2i_adapter",
        "text_encoders",
        "unet",
        "upscale_models",
        "vae",
        "vae_approx",
    )
)
# Folders ComfyUI searches together: a file in either satisfies a loader of the first.
FOLDER_ALIASES = {
    "text_encoders": ("text_encoders", "clip"),
    "clip": ("clip", "text_encoders"),
    "diffusion_models": ("diffusion_models", "unet"),
    "unet": ("unet", "diffusion_models"),
    "controlnet": ("controlnet", "t2i_adapter"),
    "t2i_adapter": ("t2i_adapter", "controlnet"),
}

MAX_NAME_BYTES = 255  # one path component on Linux filesystems
MAX_FOLDER_CHARS = 100
MAX_URL_CHARS = 4096
SHOWN_CHARS = 160  # hostile values are cut to this in messages and reports

_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_SPACE = re.compile(r"\s")
# The Comfy Registry id and GitHub names, as ComfyUI's frontend validates them.
_REPO_LIKE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_GITHUB_USER = re.compile(r"^(?!-)(?!.*--)[A-Za-z0-9-]+(?<!-)$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([\da-zA-Z-]+(?:\.[\da-zA-Z-]+)*))?(?:\+([\da-zA-Z-]+(?:\.[\da-zA-Z-]+)*))?$"
)
_GIT_HASH = re.compile(r"^[0-9a-fA-F]{4,40}$")

BUILTIN_CNR_ID = "comfy-core"
# Control, format (bidi overrides, zero-width), line/paragraph separators, lone surrogates.
_CONTROL = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))


class BadValue(ValueError):
    """A value a workflow supplied that cannot be used; str() says what is wrong."""


def shown(value, limit=SHOWN_CHARS):
    """`value` made safe for one log line: control and format characters escaped (a newline in
    a file name cannot forge a report line, a bidi override cannot reorder it), cut to `limit`.
    Applying it twice changes nothing more (backslashes are left as they are)."""
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return "(an object)"
    if isinstance(value, list):
        return "(a list)"
    if not isinstance(value, str):
        try:
            value = repr(value)
        except ValueError:  # an int too long to print
            return "(a number)"
    if value.isprintable() and len(value) <= limit:  # the common case, checked in C
        return value
    out = []
    for char in value[:limit]:
        if unicodedata.category(char) in _CONTROL:
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    text = "".join(out)
    if len(value) > limit:
        text += f"...({len(value)} characters)"
    return text


def _has_control(value):
    # isprintable() is false for every character of _CONTROL (and a few harmless ones, like a
    # non-breaking space), so only those strings need the slow look.
    return not value.isprintable() and any(unicodedata.category(char) in _CONTROL for char in value)


def model_folder(value):
    """A model folder name: one plain path component such as ``loras``."""
    if not isinstance(value, str) or not value:
        raise BadValue(f"directory {shown(value)} is not a folder name")
    if "\x00" in value:
        raise BadValue(f"directory {shown(value)} contains a NUL byte")
    if "/" in value or "\\" in value:
        raise BadValue(f"directory '{shown(value)}' is a path; give one ComfyUI model folder name such as 'loras'")
    if value in (".", ".."):
        raise BadValue(f"directory '{shown(value)}' is not a folder name")
    if len(value) > MAX_FOLDER_CHARS or not _FOLDER.match(value):
        raise BadValue(f"directory '{shown(value)}' is not a plain folder name (letters, digits, _ . + -)")
    return value


def file_name(value):
    """A model file name: a base name, no folder part, nothing a shell or a log could misread."""
    if not isinstance(value, str) or not value:
        raise BadValue(f"name {shown(value)} is not a file name")
    if "\x00" in value:
        raise BadValue(f"name {shown(value)} contains a NUL byte")
    if _has_control(value):
        raise BadValue(f"name '{shown(value)}' contains control characters")
    if "/" in value or "\\" in value:
        raise BadValue(
            f"name '{shown(value)}' has a folder part; only plain file names are provisioned from "
            "workflows (list it in a models manifest instead)"
        )
    if value in (".", "..") or value.startswith("."):
        raise BadValue(f"name '{shown(value)}' is hidden or not a file name")
    if value != value.strip():
        raise BadValue(f"name '{shown(value)}' starts or ends with white space")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadValue(f"name '{shown(value)}' is longer than {MAX_NAME_BYTES} bytes")
    return value


def download_url(value):
    """An http(s) URL with a host and no credentials, returned unchanged."""
    if not isinstance(value, str) or not value:
        raise BadValue(f"url {shown(value)} is not a URL")
    return _checked_url(value)


@functools.lru_cache(maxsize=4096)  # workflows repeat the same few URLs; a BadValue is not cached
def _checked_url(value):
    if len(value) > MAX_URL_CHARS:
        raise BadValue(f"url is longer than {MAX_URL_CHARS} characters")
    if _has_control(value) or _SPACE.search(value):
        raise BadValue(f"url '{shown(masked_url(value))}' contains white space or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise BadValue(f"url '{shown(masked_url(value))}' is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadValue(f"url '{shown(masked_url(value))}' is not http(s); only http and https URLs are downloaded")
    if not parts.hostname:
        raise BadValue(f"url '{shown(masked_url(value))}' names no host")
    if "@" in parts.netloc:
        raise BadValue(
            f"url '{shown(masked_url(value))}' carries credentials; workflows may not (tokens come from HF_TOKEN "
            "and CIVITAI_TOKEN)"
        )
    if port == 0:
        raise BadValue(f"url '{shown(masked_url(value))}' has port 0")
    return value


def same_url(first, second):
    """Whether two checked URLs name the same file: scheme and host case and Hugging Face's
    ``?download=true`` do not matter."""
    return _url_key(first) == _url_key(second)


@functools.lru_cache(maxsize=4096)
def _url_key(url):
    parts = urlsplit(url)
    query = "&".join(item for item in parts.query.split("&") if item and item != "download=true")
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, parts.path, query)


def model_hash(hash_value, hash_type):
    """(sha256 or None, note or None). Only sha256 is verified; a hash of another or no type is
    kept as information and says so in the note."""
    if hash_value is None and hash_type is None:
        return None, None
    if not isinstance(hash_value, str) or not hash_value:
        raise BadValue(f"hash {shown(hash_value)} is not a string")
    if hash_type is None:
        return None, f"hash '{shown(hash_value)}' has no hash_type, so it is not verified"
    if not isinstance(hash_type, str):
        raise BadValue(f"hash_type {shown(hash_type)} is not a string")
    if hash_type.strip().lower() == "sha256":
        if not is_sha256_hex(hash_value):
            raise BadValue(f"hash '{shown(hash_value)}' is not a sha256 (64 hex digits) though hash_type says sha256")
        return hash_value.lower(), None
    return None, f"hash_type '{shown(hash_type)}' is not verified (only sha256 is)"


def cnr_id(value):
    """A Comfy Registry id (``comfyui-kjnodes``); ``comfy-core`` is ComfyUI itself."""
    if not isinstance(value, str) or not value or len(value) > 100 or not _REPO_LIKE.match(value):
        raise BadValue(f"cnr_id {shown(value)} is not a Comfy Registry id (letters, digits, . _ -)")
    return value


def aux_id(value):
    """A GitHub ``owner/repo``."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise BadValue(f"aux_id {shown(value)} is not a GitHub owner/repo")
    owner, repo = value.split("/")
    if not (owner and len(owner) <= 39 and _GITHUB_USER.match(owner)):
        raise BadValue(f"aux_id '{shown(value)}': '{shown(owner)}' is not a GitHub user or organization")
    if not (repo and len(repo) <= 100 and _REPO_LIKE.match(repo)):
        raise BadValue(f"aux_id '{shown(value)}': '{shown(repo)}' is not a GitHub repository name")
    return value


def node_version(value):
    """(version, kind) for a node's ``ver``: kind ``version`` (semver, leading v dropped),
    ``commit`` (4-40 hex digits) or (None, None) for ComfyUI's ``unknown``."""
    if value is None or value == "unknown":
        return None, None
    if not isinstance(value, str):
        raise BadValue(f"ver {shown(value)} is not a version or commit")
    bare = value[1:] if value[:1] in ("v", "V") else value
    if _SEMVER.match(bare):
        return bare, "version"
    if _GIT_HASH.match(value):
        return value.lower(), "commit"
    raise BadValue(f"ver '{shown(value)}' is neither a version (1.2.3) nor a git commit")


def semver_key(version):
    """Sort key of a checked semantic version (pre-releases before their release)."""
    match = _SEMVER.match(version)
    major, minor, patch, pre = int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4)
    return (major, minor, patch, 0 if pre else 1, pre or "")
