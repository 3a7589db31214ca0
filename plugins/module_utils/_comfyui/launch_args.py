# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argv that starts ComfyUI, and the launch file the pod entrypoint executes.

COMFY_ARGS is split the way a POSIX shell splits words (``shlex.split``): quotes group words and
are removed, backslashes escape, and nothing is expanded, globbed or executed: ``$HOME``, ``*``
and ``$(cmd)`` stay literal text. The entrypoint runs the resulting list directly, so no
shell ever sees the value again.
"""

from __future__ import annotations

import json
import os
import shlex

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic

BASE_ARGS = ("main.py", "--listen", "0.0.0.0", "--port", "8188")
SAGE_ATTENTION_FLAG = "--use-sage-attention"
# Bumped when the launch file's shape changes; the entrypoint refuses versions it does not know.
LAUNCH_FILE_VERSION = 1


class LaunchArgsError(Exception):
    """COMFY_ARGS or the launch settings are unusable; the message says what to fix."""


def split_comfy_args(comfy_args):
    """Words of COMFY_ARGS as a shell would split them (no expansion); [] for empty or blank."""
    if comfy_args is None:
        return []
    if not isinstance(comfy_args, str):
        raise LaunchArgsError(f"COMFY_ARGS must be a string, got {type(comfy_args).__name__}")
    try:
        return shlex.split(comfy_args, comments=False, posix=True)
    except ValueError as exc:
        # shlex says "No closing quotation" / "No escaped character"; say where and what to do.
        raise LaunchArgsError(
            f"COMFY_ARGS cannot be split into arguments ({to_native(exc).lower()}): {comfy_args!r}. Close every quote you open "
            "(use \"...\" or '...' around a value with spaces) and do not end it with a lone "
            "backslash."
        ) from None


def build_argv(python, comfy_args="", enable_sage_attention=False, listen="0.0.0.0", port=8188, base_directory=None):
    """The full argv: python main.py --listen ... --port ... [--base-directory DIR] plus COMFY_ARGS.

    ``--base-directory`` comes before COMFY_ARGS, so a ``--base-directory`` there wins (argparse
    keeps the last). ``--use-sage-attention`` is added only when COMFY_ARGS has no words at
    all: a user who sets COMFY_ARGS owns the whole argument list.
    """
    if not python or not os.path.isabs(python):
        raise LaunchArgsError(f"the Python that runs ComfyUI must be an absolute path, got {python!r}")
    if base_directory and not os.path.isabs(base_directory):
        raise LaunchArgsError(f"the base directory must be an absolute path, got {base_directory!r}")
    extra = split_comfy_args(comfy_args)
    argv = [python, "main.py", "--listen", str(listen), "--port", str(port)]
    if base_directory:
        argv += ["--base-directory", base_directory]
    if extra:
        argv.extend(extra)
    elif enable_sage_attention:
        argv.append(SAGE_ATTENTION_FLAG)
    return argv


def launch_env(comfyui_dir, base_directory=None):
    """Variables the entrypoint sets for ComfyUI when the pod has none of its own.

    ComfyUI-Manager's helpers (cm-cli, install scripts) find ComfyUI's code by COMFYUI_PATH and
    the folders by COMFYUI_FOLDERS_BASE_PATH; without them they assume both are the checkout.
    """
    env = {"COMFYUI_PATH": comfyui_dir}
    if base_directory:
        env["COMFYUI_FOLDERS_BASE_PATH"] = base_directory
    return env


def render_launch_file(argv, cwd, env=None):
    """Canonical JSON of the launch file (stable bytes, so rewrites happen only on change)."""
    if not cwd or not os.path.isabs(cwd):
        raise LaunchArgsError(f"the ComfyUI directory must be an absolute path, got {cwd!r}")
    doc = {"version": LAUNCH_FILE_VERSION, "cwd": cwd, "argv": list(argv)}
    if env:
        doc["env"] = dict(env)
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


class LaunchFile:
    """Writes the launch file atomically, only when its bytes differ, honouring check mode."""

    def __init__(self, module, path, argv, cwd, mode="0600", env=None):
        self.module = module
        self.path = path
        self.argv = argv
        self.cwd = cwd
        self.mode = mode
        self.env = dict(env or {})
        self.content = render_launch_file(argv, cwd, self.env)

    def _read_current(self):
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LaunchArgsError(f"cannot read {self.path}: {to_native(exc)}") from None

    def apply(self):
        directory = os.path.dirname(self.path) or "."
        current = self._read_current()
        content_changed = current != self.content
        result = {
            "path": self.path,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "env": dict(self.env),
            "changed": False,
            "diff": {
                "before_header": self.path,
                "after_header": self.path,
                "before": current.decode("utf-8", "replace") if current is not None else "",
                "after": self.content.decode("utf-8"),
            },
        }
        if content_changed and not self.module.check_mode:
            self._write(directory)
        result["changed"] = content_changed
        # Mode drift on an otherwise right file is fixed too (reported, not written, in check mode).
        if os.path.exists(self.path):
            file_args = self.module.load_file_common_arguments({"path": self.path, "mode": self.mode})
            result["changed"] = self.module.set_fs_attributes_if_different(file_args, result["changed"])
        return result

    def _write(self, directory):
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, 0o700)
            except OSError as exc:
                raise LaunchArgsError(f"cannot create {directory}: {to_native(exc)}") from None
        # The wanted mode is set before the file takes its name (apply() fixes the owner).
        write_file_atomic(
            self.path,
            self.content,
            mode=0o600,
            tmp_prefix=".launch-",
            prepare=lambda tmp: self.module.set_mode_if_different(tmp, self.mode, False),
        )
