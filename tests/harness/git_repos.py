"""Local git repositories standing in for ComfyUI upstream and custom-node repos (no internet).

    comfy = make_comfyui_repo(tmp_path / "upstream")       # ComfyUI-shaped, branch master
    comfy.url                                              # file:///.../upstream
    v2 = comfy.commit({"requirements.txt": "fakedep==2.0\\n"}, "bump")
    node = make_node_repo(tmp_path / "ComfyUI-Foo", requirements=["fakedep==1.0"])

The fake ``main.py`` (tests/harness/fake_comfyui_main.py, standard library only) reads the
folders ComfyUI reads (``--base-directory``, ``extra_model_paths.yaml``). When run it writes a
JSON record ``{"argv": [...], "cwd": ..., "executable": ..., "pid": ...}`` to the file named by
the environment variable ``FAKE_COMFYUI_ARGV_FILE`` (default ``/tmp/fake-comfyui-argv.json``),
then exits 0; with ``FAKE_COMFYUI_SERVE=1`` it instead serves, on the ``--listen``/``--port`` it
was given (defaults 127.0.0.1:8188) until stopped, ComfyUI's listings of models, workflows
(``/api/userdata?dir=workflows``) and custom node classes (``/object_info``).

Commits are made with a fixed identity and dates, without the user's git config, so the
repos look the same on every machine.
"""

import os
import subprocess
from pathlib import Path

# ComfyUI's default model folders (each ships a placeholder file tracked in git).
COMFYUI_MODEL_FOLDERS = (
    "audio_encoders",
    "checkpoints",
    "clip",
    "clip_vision",
    "configs",
    "controlnet",
    "diffusers",
    "diffusion_models",
    "embeddings",
    "gligen",
    "hypernetworks",
    "latent_upscale_models",
    "loras",
    "model_patches",
    "photomaker",
    "style_models",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
    "vae_approx",
)

# The stand-in main.py (tests/harness/fake_comfyui_main.py): reads the folders ComfyUI reads,
# records how it was started, and with FAKE_COMFYUI_SERVE=1 lists models, workflows and nodes.
FAKE_MAIN_PY = (Path(__file__).parent / "fake_comfyui_main.py").read_text(encoding="utf-8")
DEFAULT_ARGV_FILE = "/tmp/fake-comfyui-argv.json"

# Shaped like ComfyUI's own .gitignore: user content is ignored, the placeholders are tracked.
COMFYUI_GITIGNORE = """\
__pycache__/
/output/
/input/
!/input/example.png
/models/
/temp/
/custom_nodes/
!custom_nodes/example_node.py.example
/user/
/extra_model_paths.yaml
*.log
"""

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "aiclipse tests",
    "GIT_AUTHOR_EMAIL": "tests@aiclipse.invalid",
    "GIT_COMMITTER_NAME": "aiclipse tests",
    "GIT_COMMITTER_EMAIL": "tests@aiclipse.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(cwd, *args):
    """Run git in cwd with the fixed test identity; return stdout (stripped)."""
    env = dict(os.environ, **_GIT_ENV)
    proc = subprocess.run(
        [
            "git",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
            "-c",
            "safe.directory=*",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"git {' '.join(args)} in {cwd} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


class GitRepo:
    """A non-bare repository tests clone from (by ``url``) and add commits to."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def url(self):
        return self.path.resolve().as_uri()

    @property
    def name(self):
        return self.path.name

    def head(self, ref="HEAD"):
        """Full commit id of ref (default HEAD)."""
        return git(self.path, "rev-parse", f"{ref}^{{commit}}")

    def commit(self, files=None, message="change", remove=(), force_add=()):
        """Write files ({relative path: text or bytes}), delete ``remove``, commit; return the id.

        ``force_add`` lists paths to add even when .gitignore covers them.
        """
        for rel, content in (files or {}).items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        for rel in remove:
            git(self.path, "rm", "-q", "-r", "--", rel)
        git(self.path, "add", "-A")
        if force_add:
            git(self.path, "add", "-f", "--", *force_add)
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def tag(self, name, ref="HEAD"):
        git(self.path, "tag", name, ref)
        return self.head(name)

    def branch(self, name, ref="HEAD"):
        """Create branch name at ref without switching to it."""
        git(self.path, "branch", name, ref)
        return self.head(name)

    def checkout(self, ref):
        git(self.path, "checkout", "-q", ref)


def init_repo(path, branch="main"):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return GitRepo(path)


def make_comfyui_repo(path, requirements=(), branch="master", extra_files=None, model_folders=COMFYUI_MODEL_FOLDERS):
    """A ComfyUI-shaped repository at path, with one commit on ``branch`` (ComfyUI's default).

    Tracked, like upstream: ``main.py`` (the fake above), ``requirements.txt`` (the given
    requirement lines; empty by default so pip has nothing to fetch), ``.gitignore``,
    ``comfy/__init__.py``, ``models/<folder>/put_<folder>_here`` for every default model
    folder, ``input/example.png``, ``output/_output_images_will_be_put_here`` and
    ``custom_nodes/example_node.py.example``. ``user/`` is not tracked (ComfyUI makes it).
    ``model_folders`` (default every one ComfyUI ships) names the placeholder folders.
    """
    repo = init_repo(path, branch)
    files = {
        "main.py": FAKE_MAIN_PY,
        "requirements.txt": "".join(f"{line}\n" for line in requirements),
        ".gitignore": COMFYUI_GITIGNORE,
        "comfy/__init__.py": "",
        "input/example.png": b"\x89PNG\r\n\x1a\nfake",
        "output/_output_images_will_be_put_here": "",
        "custom_nodes/example_node.py.example": "# example custom node\n",
    }
    for folder in model_folders:
        files[f"models/{folder}/put_{folder}_here"] = ""
    files.update(extra_files or {})
    repo.commit(
        files,
        "Fake ComfyUI",
        force_add=[rel for rel in files if rel.split("/")[0] in ("models", "input", "output", "custom_nodes")],
    )
    return repo


def make_node_repo(path, requirements=None, branch="main", extra_files=None):
    """A custom-node repository at path (its name is the directory name) with one commit.

    ``requirements``: None for no requirements.txt, else the list of its lines.
    """
    repo = init_repo(path, branch)
    files = {
        "__init__.py": "NODE_CLASS_MAPPINGS = {}\nNODE_DISPLAY_NAME_MAPPINGS = {}\n",
        "README.md": f"# {Path(path).name}\n",
    }
    if requirements is not None:
        files["requirements.txt"] = "".join(f"{line}\n" for line in requirements)
    files.update(extra_files or {})
    repo.commit(files, f"{Path(path).name}: first commit")
    return repo
