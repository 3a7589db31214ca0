"""A vault of the older layout, the one pods made before the vault became ComfyUI's base directory.

    /workspace/aiclipse/ComfyUI/models -> /workspace/aiclipse/models   (a link inside the checkout)
    ComfyUI's git told to look away: non-cone sparse checkout "/*" + "!/models/",
    sparse.expectFilesOutsideOfPatterns=true, skip-worktree on every tracked models/ file,
    "/models" in .git/info/exclude
    custom nodes, input, output and user data inside the checkout
    template workflows in both aiclipse/workflows and ComfyUI/user/default/workflows
    /workspace/input -> aiclipse/ComfyUI/input, ... /workspace/workflows -> aiclipse/workflows

``make_old_vault(root, upstream)`` builds it by hand, step by step as the old workspace role
did (its git settings are the ones its git_link_guard module wrote), and fills it with the user's things:
every file gets unique bytes, so a lost file cannot hide behind a duplicate.
``file_contents(root)`` is the set of every regular file's bytes under root (ComfyUI's .git
left out: git rewrites its index), for "no byte lost" checks.
"""

import os
import subprocess
from pathlib import Path

from .git_repos import git

OLD_SHORTCUTS = {
    "ComfyUI": "ComfyUI",
    "models": "models",
    "workflows": "workflows",
    "input": "ComfyUI/input",
    "output": "ComfyUI/output",
    "logs": "logs",
    "custom_nodes": "ComfyUI/custom_nodes",
}

# The user's things, relative to the vault (ComfyUI/... is inside the checkout).
USER_FILES = {
    "models/checkpoints/mine.safetensors": b"a user's checkpoint",
    "models/loras/nested/deep.safetensors": b"a nested lora",
    "models/my_folder/note.txt": b"a folder the user made under models",
    "ComfyUI/custom_nodes/MyNode/__init__.py": b"NODE_CLASS_MAPPINGS = {'MyNodeClass': object}\n",
    "ComfyUI/custom_nodes/single_file_node.py": b"NODE_CLASS_MAPPINGS = {'SingleFileNode': object}\n",
    "ComfyUI/input/photo.png": b"the user's input photo",
    "ComfyUI/output/ComfyUI_00001_.png": b"a render",
    "ComfyUI/output/sub/ComfyUI_00002_.png": b"a render in a subfolder",
    "ComfyUI/user/default/comfy.settings.json": b'{"Comfy.Theme": "dark"}',
    "ComfyUI/user/comfyui.db": b"ComfyUI's own database, kept where ComfyUI writes it",
    # The two workflow folders: the same template in both, one edited on each side, one only here.
    "ComfyUI/user/default/workflows/template.json": b'{"template": 1}',
    "ComfyUI/user/default/workflows/edited.json": b'{"edited": "in ComfyUI"}',
    "ComfyUI/user/default/workflows/ui-only.json": b'{"saved": "from the UI"}',
    "workflows/template.json": b'{"template": 1}',
    "workflows/edited.json": b'{"edited": "through /workspace/workflows"}',
    "workflows/video/shortcut-only.json": b'{"dropped": "into /workspace/workflows"}',
    "logs/provision.log": b"an old log",
}


def apply_old_git_tricks(checkout):
    """What the older layout's git_link_guard did so that `git pull` ignored models/ once it was a link."""
    info = Path(git(checkout, "rev-parse", "--absolute-git-dir")) / "info"
    info.mkdir(exist_ok=True)
    (info / "sparse-checkout").write_text("/*\n!/models/\n")
    with open(info / "exclude", "a", encoding="utf-8") as handle:
        handle.write("/models\n")
    git(checkout, "config", "sparse.expectFilesOutsideOfPatterns", "true")
    git(checkout, "config", "core.sparseCheckoutCone", "false")
    git(checkout, "config", "core.sparseCheckout", "true")
    tracked = git(checkout, "ls-files", "-z", "--", "models/").split("\0")
    subprocess.run(
        ["git", "-C", str(checkout), "update-index", "-z", "--skip-worktree", "--stdin"],
        input="\0".join(p for p in tracked if p) + "\0",
        text=True,
        check=True,
    )


def make_old_vault(root, upstream, user_files=None):
    """An older-layout pod under root (root/aiclipse the vault); returns the vault path."""
    root = Path(root)
    vault = root / "aiclipse"
    checkout = vault / "ComfyUI"
    vault.mkdir(parents=True)
    git(vault, "clone", "-q", upstream.url, str(checkout))
    # ComfyUI/models moved into the vault (placeholders included), then linked back.
    os.rename(checkout / "models", vault / "models")
    os.symlink(str(vault / "models"), checkout / "models")
    apply_old_git_tricks(checkout)
    for rel, data in (USER_FILES if user_files is None else user_files).items():
        path = vault / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # The node is a git checkout of its own, as ComfyUI-Manager or a git clone makes it.
    git(checkout / "custom_nodes" / "MyNode", "init", "-q")
    git(checkout / "custom_nodes" / "MyNode", "add", "-A")
    git(checkout / "custom_nodes" / "MyNode", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "node")
    for name, target in OLD_SHORTCUTS.items():
        (vault / target).mkdir(parents=True, exist_ok=True)
        os.symlink(str(vault / target), root / name)
    return vault


def file_contents(root, skip=()):
    """The set of bytes of every regular file under root, ComfyUI's own .git and the folders in
    ``skip`` left out."""
    found = set()
    skip = {os.path.abspath(p) for p in skip}
    for current, dirs, names in os.walk(root):
        if os.path.basename(current) == "ComfyUI" and ".git" in dirs:
            dirs.remove(".git")
        dirs[:] = [d for d in dirs if os.path.join(os.path.abspath(current), d) not in skip]
        for name in names:
            path = os.path.join(current, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found.add(handle.read())
    return found


def git_is_pristine(checkout):
    """(pristine?, details): no change git sees, nothing hidden from it, nothing linked in."""
    details = {
        "status": git(checkout, "status", "--porcelain", "--untracked-files=all"),
        "skip_worktree": [line for line in git(checkout, "ls-files", "-v").splitlines() if line.startswith("S ")],
        "sparse": subprocess.run(
            ["git", "-C", str(checkout), "config", "--get", "core.sparseCheckout"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "links": [str(p) for p in Path(checkout).iterdir() if p.is_symlink()],
        "exclude": [
            line
            for line in (Path(checkout) / ".git/info/exclude").read_text().splitlines()
            if line.strip() == "/models"
        ],
    }
    pristine = details["sparse"] in ("", "false") and not any(v for k, v in details.items() if k != "sparse")
    return pristine, details
