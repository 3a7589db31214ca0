"""Stand-in for ComfyUI's main.py (standard library only): the ``main.py`` of the harness's
ComfyUI repositories (git_repos.make_comfyui_repo).

It reads the folders the way ComfyUI's ``folder_paths`` and ``main.py`` do: the base directory
is ``--base-directory`` or the directory of this file; ``models/<folder>`` of it for every
model folder ComfyUI registers (``unet`` and ``diffusion_models`` both feed
``diffusion_models``, ``clip`` and ``text_encoders`` feed ``text_encoders``), ``custom_nodes``,
``input``, ``output``, ``temp`` and ``user`` under it unless ``--*-directory`` overrides one,
then ``extra_model_paths.yaml`` next to this file and every ``--extra-model-paths-config``
(``base_path``, ``is_default``, one or more paths per folder, the legacy names mapped), and the
output folder's checkpoints/clip/vae/diffusion_models/loras as extra model folders.

When run it writes ``{"argv", "cwd", "executable", "pid"}`` as JSON to the file named by
``FAKE_COMFYUI_ARGV_FILE`` (default /tmp/fake-comfyui-argv.json) and exits 0. With
``FAKE_COMFYUI_SERVE=1`` it loads the custom nodes as ComfyUI does (every folder with an
``__init__.py`` and every ``.py`` file of each custom_nodes path, ``*.disabled`` and
``__pycache__`` skipped, ``NODE_CLASS_MAPPINGS`` read) and serves, on ``--listen``/``--port``
(127.0.0.1:8188 by default), with ComfyUI's response shapes, with or without the ``/api``
prefix:

    GET /models                      the model folder names
    GET /models/<folder>             the model files of a folder (ComfyUI's extension filter,
                                     recursive, links followed, .git skipped); 404 if unknown
    GET /userdata?dir=workflows      the user's files (recurse, full_info, split as ComfyUI)
    GET /object_info                 every node class of the loaded custom nodes, with its
                                     python_module (custom_nodes.<name>)
    GET /aiclipse/standin            stand-in only: the folders it resolved, the custom node
                                     modules it loaded and the ones that failed

Like ComfyUI it installs no SIGTERM handler (the default, dying, applies) and stops with
"Stopped server" and exit code 0 on SIGINT (KeyboardInterrupt).
"""

import glob
import http.server
import importlib.util
import json
import os
import sys
import urllib.parse

DEFAULT_ARGV_FILE = "/tmp/fake-comfyui-argv.json"
PT = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
# folder name -> (subfolders of models/, extensions), as ComfyUI's folder_paths registers them.
MODEL_FOLDERS = {
    "checkpoints": (["checkpoints"], PT),
    "configs": (["configs"], {".yaml"}),
    "loras": (["loras"], PT),
    "vae": (["vae"], PT),
    "text_encoders": (["text_encoders", "clip"], PT),
    "diffusion_models": (["unet", "diffusion_models"], PT),
    "clip_vision": (["clip_vision"], PT),
    "style_models": (["style_models"], PT),
    "embeddings": (["embeddings"], PT),
    "diffusers": (["diffusers"], {"folder"}),
    "vae_approx": (["vae_approx"], PT),
    "controlnet": (["controlnet", "t2i_adapter"], PT),
    "gligen": (["gligen"], PT),
    "upscale_models": (["upscale_models"], PT),
    "latent_upscale_models": (["latent_upscale_models"], PT),
    "hypernetworks": (["hypernetworks"], PT),
    "photomaker": (["photomaker"], PT),
    "classifiers": (["classifiers"], {""}),
    "model_patches": (["model_patches"], PT),
    "audio_encoders": (["audio_encoders"], PT),
}
LEGACY = {"unet": "diffusion_models", "clip": "text_encoders"}
HERE = os.path.dirname(os.path.realpath(__file__))


def option(args, name, default=None, many=False):
    """Value(s) of --name in args (argparse's last-one-wins; many: every occurrence)."""
    found = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == name]
    found += [arg.split("=", 1)[1] for arg in args if arg.startswith(name + "=")]
    if many:
        return found
    return found[-1] if found else default


class Folders:
    """folder_paths, as far as these tests need it."""

    def __init__(self, args):
        base = option(args, "--base-directory")
        self.base = os.path.abspath(base) if base else HERE
        self.models_dir = os.path.join(self.base, "models")
        self.paths = {
            name: ([os.path.join(self.models_dir, sub) for sub in subs], exts)
            for name, (subs, exts) in MODEL_FOLDERS.items()
        }
        self.paths["custom_nodes"] = ([os.path.join(self.base, "custom_nodes")], set())
        self.output = os.path.abspath(option(args, "--output-directory") or os.path.join(self.base, "output"))
        self.input = os.path.abspath(option(args, "--input-directory") or os.path.join(self.base, "input"))
        self.temp = os.path.abspath(option(args, "--temp-directory") or os.path.join(self.base, "temp"))
        self.user = os.path.abspath(option(args, "--user-directory") or os.path.join(self.base, "user"))
        configs = [os.path.join(HERE, "extra_model_paths.yaml")] + option(args, "--extra-model-paths-config", many=True)
        for config in configs:
            if os.path.isfile(config):
                self.load_extra(config)
        for name in ("checkpoints", "clip", "vae", "diffusion_models", "loras"):
            self.add(name, os.path.join(self.output, name))

    def add(self, name, path, is_default=False):
        name = LEGACY.get(name, name)
        paths, dummy = self.paths.setdefault(name, ([], set()))
        if path in paths:
            if is_default:
                paths.remove(path)
                paths.insert(0, path)
        elif is_default:
            paths.insert(0, path)
        else:
            paths.append(path)

    def load_extra(self, config):
        groups = _load_yaml(config)
        for conf in (groups or {}).values():
            if not isinstance(conf, dict):
                continue
            conf = dict(conf)
            base = conf.pop("base_path", None)
            if base:
                base = os.path.expanduser(os.path.expandvars(str(base)))
                if not os.path.isabs(base):
                    base = os.path.abspath(os.path.join(os.path.dirname(config), base))
            is_default = str(conf.pop("is_default", False)).lower() == "true"
            for name, value in conf.items():
                for line in str(value).split("\n"):
                    if line.strip():
                        self.add(
                            name,
                            os.path.normpath(os.path.join(base, line.strip()) if base else line.strip()),
                            is_default,
                        )

    def files(self, name):
        name = LEGACY.get(name, name)
        if name not in self.paths:
            return None
        paths, exts = self.paths[name]
        found = set()
        for top in paths:
            if not os.path.isdir(top):
                continue
            for current, dirs, names in os.walk(top, followlinks=True):
                dirs[:] = [d for d in dirs if d != ".git"]
                for file_name in names:
                    rel = os.path.relpath(os.path.join(current, file_name), top)
                    if not exts or os.path.splitext(rel)[1].lower() in exts:
                        found.add(rel)
        return sorted(found)


def _load_yaml(path):
    """yaml.safe_load when PyYAML is there, else the subset extra_model_paths.yaml files use."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        import yaml  # pylint: disable=import-outside-toplevel

        return yaml.safe_load(text)
    except ImportError:
        pass
    groups, group, key, block = {}, None, None, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.strip().startswith("#") else ""
        if not line:
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            group = groups.setdefault(line.rstrip(":").strip(), {})
            block = None
        elif block is not None and indent > block:
            group[key] = (group[key] + "\n" if group[key] else "") + line.strip()
        else:
            key, dummy, value = line.strip().partition(":")
            value = value.strip()
            block = indent if value in ("|", ">") else None
            group[key] = "" if block is not None else value
    return groups


def load_custom_nodes(folders):
    classes, loaded, failed = {}, [], []
    for top in folders.paths["custom_nodes"][0]:
        if not os.path.isdir(top):
            continue
        for name in sorted(os.listdir(os.path.realpath(top))):
            path = os.path.join(top, name)
            if name == "__pycache__" or name.endswith(".disabled"):
                continue
            if os.path.isfile(path) and os.path.splitext(path)[1] != ".py":
                continue
            entry = os.path.join(path, "__init__.py") if os.path.isdir(path) else path
            module_name = os.path.splitext(name)[0]
            try:
                spec = importlib.util.spec_from_file_location(f"custom_nodes.{module_name}", entry)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            except Exception as exc:  # pylint: disable=broad-except  # ComfyUI reports and goes on
                failed.append({"module": module_name, "path": path, "error": repr(exc)})
                continue
            loaded.append({"module": module_name, "path": path})
            for cls in getattr(module, "NODE_CLASS_MAPPINGS", {}) or {}:
                classes[cls] = {
                    "name": cls,
                    "display_name": cls,
                    "python_module": f"custom_nodes.{module_name}",
                    "category": "custom",
                    "input": {"required": {}},
                    "output": [],
                }
    return classes, loaded, failed


def userdata(folders, query):
    """ComfyUI's GET /userdata for the default user: (status, body)."""
    directory = query.get("dir", [""])[0]
    if not directory:
        return 400, "Directory not provided"
    root = os.path.join(folders.user, "default")
    path = os.path.abspath(os.path.join(root, urllib.parse.unquote(directory)))
    if os.path.commonpath((root, path)) != root:
        return 403, "Invalid directory"
    if not os.path.exists(path):
        return 404, "Directory not found"
    recurse = query.get("recurse", [""])[0].lower() == "true"
    full_info = query.get("full_info", [""])[0].lower() == "true"
    split = query.get("split", [""])[0].lower() == "true"
    pattern = os.path.join(glob.escape(path), "**", "*") if recurse else os.path.join(glob.escape(path), "*")
    results = []
    for full in glob.glob(pattern, recursive=recurse):
        if not os.path.isfile(full):
            continue
        rel = os.path.relpath(full, path).replace(os.sep, "/")
        if full_info:
            results.append({"path": rel, "size": os.path.getsize(full), "modified": os.path.getmtime(full)})
        elif split:
            results.append([rel] + rel.split("/"))
        else:
            results.append(rel)
    return 200, results


def serve(args, folders):
    classes, loaded, failed = load_custom_nodes(folders)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *dummy):  # quiet, like ComfyUI's access log is
            pass

        def reply(self, status, body):
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's name)
            url = urllib.parse.urlsplit(self.path)
            route = url.path[4:] if url.path.startswith("/api/") else url.path
            query = urllib.parse.parse_qs(url.query)
            if route == "/":
                return self.reply(200, "fake comfyui")
            if route == "/models":
                return self.reply(200, sorted(n for n in folders.paths if n != "custom_nodes"))
            if route.startswith("/models/"):
                files = folders.files(urllib.parse.unquote(route[len("/models/") :]))
                return self.reply(404, "Not found") if files is None else self.reply(200, files)
            if route == "/userdata":
                return self.reply(*userdata(folders, query))
            if route == "/object_info":
                return self.reply(200, classes)
            if route == "/aiclipse/standin":
                return self.reply(
                    200,
                    {
                        "base_directory": folders.base,
                        "models_dir": folders.models_dir,
                        "folders": {n: p for n, (p, dummy) in folders.paths.items()},
                        "input": folders.input,
                        "output": folders.output,
                        "user": folders.user,
                        "custom_nodes": loaded,
                        "import_failed": failed,
                        "pid": os.getpid(),
                    },
                )
            return self.reply(404, "Not found")

    server = http.server.ThreadingHTTPServer(
        (option(args, "--listen", "127.0.0.1").split(",")[0], int(option(args, "--port", "8188"))), Handler
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nStopped server", flush=True)


def main():
    args = sys.argv[1:]
    record = {"argv": args, "cwd": os.getcwd(), "executable": sys.executable, "pid": os.getpid()}
    target = os.environ.get("FAKE_COMFYUI_ARGV_FILE", DEFAULT_ARGV_FILE)
    with open(target + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(target + ".tmp", target)
    if os.environ.get("FAKE_COMFYUI_SERVE") == "1":
        serve(args, Folders(args))


if __name__ == "__main__":
    main()
