# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render pod settings as a POSIX shell file of ``export NAME='value'`` lines.

The file is sourced by bash and dash in SSH sessions, so every value must come back byte for
byte. Single quotes are the only POSIX quoting in which nothing is special; a single quote
itself is written as ``'\\''`` (close, escaped quote, reopen). Newlines, ``$``, backticks and
backslashes need nothing else.
"""

from __future__ import annotations

import os
import re
import stat

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.printable import escape_text

# What an SSH session needs of the pod's settings; COMFY_ARGS included.
DEFAULT_ALLOW_LIST = (
    "RUNPOD_POD_ID",
    "RUNPOD_POD_NAME",
    "RUNPOD_API_ENDPOINT",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
    "PATH",
    "PYTHONPATH",
    "TEMPLATE_TYPE",
    "TEMPLATE_VERSION",
    "GPU_TYPE",
    "COMFY_ARGS",
    "R2_ACCESS_KEY_ID",
    "R2_SECRET_ACCESS_KEY",
    "R2_ACCOUNT_ID",
    "R2_BUCKET",
    "HF_TOKEN",
    "CIVITAI_TOKEN",
)

# A name holding one of these words is treated as a secret whatever else is configured.
SECRET_NAME_WORDS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "PASSWD", "CREDENTIAL")

MASK = "********"
HEADER = (
    b"# Pod settings for SSH sessions, written by aiclipse.comfyui.rp_env_export.\n"
    b"# Rewritten at every pod start: edit the pod's settings, not this file.\n"
)

_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
# One statement as rendered below: `export NAME=` then single-quoted runs joined by \'
_STATEMENT_RE = re.compile(rb"export ([A-Za-z_][A-Za-z0-9_]*)=((?:'[^']*'|\\')+)\n")
_COMMENT_RE = re.compile(rb"(?:#[^\n]*)?\n")


class EnvExportError(Exception):
    """Bad input; the message says which name and what to do (never a value)."""


def is_valid_name(name):
    return isinstance(name, str) and bool(_NAME_RE.match(name))


def is_secret_name(name, extra_secret_names=()):
    upper = name.upper()
    return name in extra_secret_names or any(word in upper for word in SECRET_NAME_WORDS)


def quote(value):
    """POSIX single-quote `value` (bytes) so any shell reads it back unchanged."""
    return b"'" + value.replace(b"'", b"'\\''") + b"'"


def unquote(quoted):
    """Inverse of quote() for what quote() produces (used to mask an existing file)."""
    return b"".join(part[1:-1] if part.startswith(b"'") else b"'" for part in re.findall(rb"'[^']*'|\\'", quoted))


def render(values):
    """File content for `values` (name -> bytes): header, then one export per name, sorted."""
    lines = [HEADER]
    for name in sorted(values):
        lines.append(b"export " + to_bytes(name) + b"=" + quote(values[name]) + b"\n")
    return b"".join(lines)


def parse(content):
    """Statements of a file in render()'s format as [(name, value)], or None for anything else."""
    pairs = []
    pos = 0
    while pos < len(content):
        match = _STATEMENT_RE.match(content, pos)
        if match:
            pairs.append((to_text(match.group(1)), unquote(match.group(2))))
        else:
            match = _COMMENT_RE.match(content, pos)
            if not match:
                return None
        pos = match.end()
    return pairs


def read_environ_file(path):
    """NAME=VALUE entries separated by NUL, as in /proc/<pid>/environ, as a bytes dict."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise EnvExportError(
            f"Cannot read the environment from {path} ({to_text(exc.strerror or exc)}); run as root or point environ_file "
            "at a readable file."
        ) from exc
    environ = {}
    for entry in data.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep:
            environ[name] = value
    return environ


def explicit_secret_values(variables, secret_names=()):
    """Secret values given as task arguments, to scrub from all output before anything can fail."""
    return [
        to_text(value)
        for name, value in (variables or {}).items()
        if isinstance(name, str)
        and is_secret_name(name, secret_names)
        and isinstance(value, (str, int, float))
        and not isinstance(value, bool)
        and to_text(value)
    ]


def display(value):
    """Text for results and diffs: bytes that are not UTF-8 written as \\xNN (ansible refuses
    anything else), the file itself always holds the exact bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return escape_text(to_text(value, errors="surrogateescape"))


def is_utf8(value):
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class EnvFile:
    """Decides what the environment file should hold and writes it when it differs.

    `module` is an AnsibleModule; it is used for check mode and file attributes.
    """

    def __init__(
        self,
        module,
        path,
        allow_list,
        variables=None,
        environ=None,
        mode="0600",
        owner=None,
        group=None,
        secret_names=(),
    ):
        self.module = module
        self.path = path
        self.allow_list = list(allow_list)
        self.variables = dict(variables or {})
        self.environ = os.environb if environ is None else environ
        self.mode = mode
        self.owner = owner
        self.group = group
        self.secret_names = list(secret_names)
        self._validate_names()
        self.values = self._collect()
        self.attribute_diff = None
        self.replaced_link = None
        self.secrets = sorted(name for name in self.values if is_secret_name(name, self.secret_names))

    def _validate_names(self):
        for option, names in (
            ("allow_list", self.allow_list),
            ("variables", list(self.variables)),
            ("secret_names", self.secret_names),
        ):
            bad = [name for name in names if not is_valid_name(name)]
            if bad:
                raise EnvExportError(
                    f"Invalid variable name(s) in {option}: {', '.join(repr(to_text(name)) for name in bad)}. A shell variable name is letters, digits and "
                    "underscores, not starting with a digit; rename or remove them."
                )

    def _collect(self):
        """Allow-listed names that are set, explicit variables winning over the environment."""
        values = {}
        for name in self.allow_list:
            value = self.environ.get(to_bytes(name))
            if value is not None:
                values[name] = value
        for name, value in self.variables.items():
            if value is None:
                # An explicit null leaves the name out even when the environment has it.
                values.pop(name, None)
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise EnvExportError(
                    f"variables.{name} must be a string (or a number), not {type(value).__name__}; quote it in YAML, for "
                    f'example {name}: "true".'
                )
            values[name] = to_bytes(to_text(value), errors="surrogate_or_strict")
        nul = sorted(name for name, value in values.items() if b"\0" in value)
        if nul:
            raise EnvExportError(
                f"The value of {', '.join(nul)} holds a NUL byte, which no shell variable can carry; fix the value."
            )
        return values

    def _is_secret(self, name):
        return is_secret_name(name, self.secret_names)

    # Views with secrets masked: the only way values leave this class.
    def masked_values(self):
        return dict(
            (name, MASK if name in self.secrets else display(value)) for name, value in sorted(self.values.items())
        )

    def secret_values(self):
        """Secret values as they could appear in output: as text, and escaped when not UTF-8."""
        values = []
        for name in self.secrets:
            if self.values[name]:
                values.append(display(self.values[name]))
                values.append(to_text(self.values[name], errors="surrogateescape"))
        return [value for value in dict.fromkeys(values) if value]

    def _masked_text(self, content, secret_check, changed_secrets=()):
        pairs = parse(content)
        if pairs is None:
            return (
                f"# ({self.path} is not in rp_env_export format; its content is not shown because it "
                "may hold secrets)\n"
            )
        masked = {}
        for name, value in pairs:
            if secret_check(name):
                # Masked both sides, a new secret value would show no difference at all.
                value = to_bytes(MASK + (" (changed)" if name in changed_secrets else ""))
            masked[name] = value
        return display(render(masked))

    def current(self):
        """The file's bytes; None when it is absent or is a link (it is then replaced).

        The file must be a regular file: a link would leave the secrets wherever it points and
        the mode on that file, so a link is replaced by a regular file (what it pointed to is left
        alone). Anything else there (a folder, a pipe) is refused.
        """
        try:
            info = os.lstat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise EnvExportError(f"Cannot look at {self.path} ({to_text(exc.strerror or exc)}).") from exc
        if stat.S_ISLNK(info.st_mode):
            self.replaced_link = os.readlink(self.path)
            return None
        if not stat.S_ISREG(info.st_mode):
            raise EnvExportError(
                f"{self.path} is not a regular file "
                f"({'a directory' if stat.S_ISDIR(info.st_mode) else 'a special file'}); "
                "move it away so the pod's settings can be "
                "written there, or choose another path."
            )
        with open(self.path, "rb") as handle:
            return handle.read()

    def apply(self):
        """Write when the content differs, then fix mode/owner drift. Returns a result dict."""
        desired = render(self.values)
        existing = self.current()
        content_changed = existing != desired
        written = content_changed and not self.module.check_mode
        if written:
            self._write(desired)
        attrs_changed = self._fix_attributes(written)
        result = dict(
            changed=content_changed or attrs_changed,
            content_changed=content_changed,
            path=self.path,
            exported=sorted(self.values),
            missing=[name for name in self.allow_list if name not in self.values],
            secret_names=self.secrets,
            variables=self.masked_values(),
            not_utf8=sorted(name for name, value in self.values.items() if not is_utf8(value)),
            replaced_link=display(self.replaced_link) if self.replaced_link is not None else None,
        )
        if self.replaced_link is not None:
            self.module.warn(
                f"{self.path} was a symbolic link to {display(self.replaced_link)}; it is "
                f"{'replaced' if written else 'to be replaced'} by a regular file of mode {self.mode}. What it "
                "pointed to is left as it was: check who can read it, it may hold secrets."
            )
        diffs = []
        if content_changed:
            before = dict(parse(existing) or []) if existing is not None else {}
            changed_secrets = [name for name in self.secrets if name in before and before[name] != self.values[name]]
            diffs.append(
                dict(
                    before_header=self.path,
                    after_header=self.path,
                    before=(
                        (f"# (a symbolic link to {display(self.replaced_link)})\n")
                        if self.replaced_link is not None
                        else ""
                        if existing is None
                        else self._masked_text(existing, self._is_secret)
                    ),
                    after=self._masked_text(desired, self._is_secret, changed_secrets),
                )
            )
        if attrs_changed:
            diffs.append(self.attribute_diff)
        if diffs:
            result["diff"] = diffs
        return result

    def _write(self, content):
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            try:
                # The umask decides its mode, as for any directory a shell would create.
                os.makedirs(directory, 0o755)
            except OSError as exc:
                raise EnvExportError(
                    f"Cannot create the directory {directory} ({to_text(exc.strerror or exc)}); create it or choose another path."
                ) from exc
        # The temporary file (0600 from its first byte) gets the wanted mode and owner before it
        # is renamed into place, so the secrets are never readable by anyone else, not even for
        # a moment. A file being replaced keeps its owner unless `owner`/`group` say otherwise;
        # one that replaces a link is ours.
        write_file_atomic(
            self.path,
            content,
            mode=0o600,
            keep_owner=self.replaced_link is None,
            prepare=self._set_attributes,
            tmp_prefix=".rp_env_export.",
        )

    def _set_attributes(self, path):
        self.module.set_mode_if_different(path, self.mode, False)
        self.module.set_owner_if_different(path, self.owner, False)
        self.module.set_group_if_different(path, self.group, False)

    def _fix_attributes(self, written):
        """Mode/owner drift on a file whose content is already right counts as a change."""
        if written or not os.path.exists(self.path):
            return False
        diff = dict(before=dict(path=self.path), after=dict(path=self.path))
        changed = self.module.set_mode_if_different(self.path, self.mode, False, diff)
        changed = self.module.set_owner_if_different(self.path, self.owner, changed, diff)
        changed = self.module.set_group_if_different(self.path, self.group, changed, diff)
        if changed:
            self.attribute_diff = diff
        return changed
