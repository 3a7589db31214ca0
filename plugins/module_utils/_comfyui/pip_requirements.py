# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""requirements.txt into the pod's venv: only when it changed, never replacing torch.

The sha256 of each requirements file we installed is recorded in a small JSON ledger inside
the venv (``<venv>/.aiclipse-state/``): the record belongs to the venv it describes, so a
restart skips pip while a new image with a fresh venv installs again. Every install runs
under a constraints file pinning the protected packages (torch, torchvision, torchaudio,
xformers) at the versions the venv has, so a requirement that wants another version fails
instead of replacing the pod's CUDA build.

pip runs without ``-q``: when it refuses, what it says (the "Cannot install ..." verdict and
the "The conflict is caused by:" lines naming packages and versions) is what the user needs,
so ``explain`` keeps exactly those parts. ``dry_run`` asks pip's resolver whether a set of
requirement files can be installed together, without installing anything (pip >= 22.2).
"""

from __future__ import annotations

import json
import os

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import redact
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic

DEFAULT_PROTECTED = ("torch", "torchvision", "torchaudio", "xformers")
STATE_DIRNAME = ".aiclipse-state"

_VERSIONS_CODE = (
    "import importlib.metadata as m, json, sys\n"
    "found = {}\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        found[name] = m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
    "print(json.dumps(found))\n"
)


class PipError(RuntimeError):
    pass


def write_state_file(path, text):
    """A state file in the venv (ledger, constraints): mode 0644, its folder made when missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_file_atomic(path, text, mode=0o644)


class RequirementsLedger:
    """{key: sha256 of the requirements last installed for it}, one JSON file."""

    def __init__(self, path):
        self.path = path
        self.entries = {}
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = json.load(handle)
            if isinstance(loaded, dict):
                self.entries = {str(k): str(v) for k, v in loaded.items()}
        except (OSError, ValueError):
            # Missing or unreadable: everything counts as not installed yet (pip is the cost).
            self.entries = {}
        self._saved = dict(self.entries)

    def matches(self, key, sha256):
        return self.entries.get(key) == sha256

    def record(self, key, sha256):
        self.entries[key] = sha256

    def forget(self, key):
        self.entries.pop(key, None)

    def save(self):
        if self.entries != self._saved:
            write_state_file(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
            self._saved = dict(self.entries)


class VenvPip:
    """pip of one venv, run as ``<venv>/bin/python -m pip``."""

    def __init__(self, module, venv, pip_args=(), protected=DEFAULT_PROTECTED):
        self.module = module
        self.venv = venv
        self.python = os.path.join(venv, "bin", "python")
        self.pip_args = list(pip_args or [])
        self.protected = [name for name in (protected or []) if name]
        self.state_dir = os.path.join(venv, STATE_DIRNAME)

    def check(self):
        if not os.access(self.python, os.X_OK):
            raise PipError(
                f"{self.python} does not exist or is not executable; set the venv "
                "option to the pod's virtualenv (the one that runs ComfyUI)"
            )

    def protected_versions(self):
        """{name: version} of the protected packages installed in the venv."""
        if not self.protected:
            return {}
        rc, out, err = self.module.run_command(
            [self.python, "-c", _VERSIONS_CODE] + self.protected, expand_user_and_vars=False
        )
        if rc:
            raise PipError(f"cannot list the venv's packages with {self.python}: {err.strip()}")
        return json.loads(out)

    def constraints_file(self, versions):
        """Path of the constraints file pinning versions (rewritten only when it changes)."""
        path = os.path.join(self.state_dir, "protected-constraints.txt")
        text = "# Written by aiclipse.comfyui: the pod's packages that requirements may not replace.\n"
        text += "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == text:
                    return path
        except OSError:
            pass
        write_state_file(path, text)
        return path

    def install(self, requirement_files, constraints):
        """Run pip once for all files; return (rc, what pip said went wrong)."""
        return self._pip(requirement_files, constraints)

    def dry_run(self, requirement_files, constraints):
        """Resolve the files together without installing; return (rc, pip's reason)."""
        rc, reason = self._pip(requirement_files, constraints, ["--dry-run"])
        if rc and "no such option: --dry-run" in reason:
            raise PipError(
                f"the pip in {self.venv} is too old to check requirements for conflicts "
                "(pip install --dry-run needs pip 22.2 or later); upgrade pip in that venv"
            )
        return rc, reason

    def _pip(self, requirement_files, constraints, extra=()):
        cmd = [
            self.python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            *extra,
        ]
        for path in requirement_files:
            cmd += ["-r", path]
        if constraints:
            cmd += ["-c", constraints]
        cmd += self.pip_args
        rc, out, err = self.module.run_command(cmd, expand_user_and_vars=False, environ_update={"PIP_NO_INPUT": "1"})
        return rc, (explain(out, err) if rc else "")


_CAUSE_HEADER = "The conflict is caused by:"


def explain(out, err, lines=8):
    """What pip said went wrong: its ERROR lines (stderr) and the "The conflict is caused by:"
    block (stdout), else the last lines of its output. Credentials in URLs are hidden."""
    errors = [
        line.strip() for line in (err or "").splitlines() if line.startswith("ERROR:") and "for help visit" not in line
    ]
    cause = []
    out_lines = (out or "").splitlines()
    if _CAUSE_HEADER in (line.strip() for line in out_lines):
        start = [line.strip() for line in out_lines].index(_CAUSE_HEADER)
        for line in out_lines[start + 1 :]:
            if not line.strip():
                break
            cause.append(line.strip())
    if cause:
        errors.append(_CAUSE_HEADER + " " + "; ".join(cause))
    if not errors:
        kept = [line for line in ((err or "") + "\n" + (out or "")).splitlines() if line.strip()]
        errors = kept[-lines:]
    return redact("\n".join(errors))
