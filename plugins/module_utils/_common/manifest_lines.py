# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The line reader under every pipe-format manifest, and the one error they all raise.

The models manifest (``source|identifier|filename|subdir[|sha256]``), the custom-nodes manifest
(``repo_url|branch|category|description[|commit]``) and the Comfy Registry node map
(``cnr_id|repository[|version]``) are each a thin grammar over the same lines:

* UTF-8 text, with or without a byte order mark (Windows editors write one); a byte that is
  not UTF-8 is a problem that names its line;
* lines end at ``\\n`` only, a ``\\r`` before it (CRLF) is dropped with the other surrounding
  space: ``str.splitlines()`` would also end a line at U+2028, U+0085, ``\\x0b``, ``\\x0c`` or
  ``\\x1c``-``\\x1e``, and one of those inside a comment would shift every later line number;
* blank lines and lines starting with ``#`` are skipped;
* every line keeps its origin, ``<file>:<number>``.

A grammar collects every problem as ``(origin, message)`` and raises one
:class:`ManifestError` at the end, so a person fixes them all at once and nothing is done from
a manifest that is partly wrong.
"""

from __future__ import annotations


class ManifestError(ValueError):
    """Every problem found in one or more manifests, each ``(origin, message)``.

    One problem reads ``<origin>: <message>``; several read ``N problems in <subject>:`` and
    then one indented ``<origin>: <message>`` line each. ``outcome`` (what was therefore not
    done, say "nothing was downloaded") is added in parentheses.
    """

    def __init__(self, problems, subject="the manifest", outcome=None):
        self.problems = list(problems)
        self.subject = subject
        self.outcome = outcome
        super().__init__(self.describe())

    def describe(self):
        outcome = f" ({self.outcome})" if self.outcome else ""
        if len(self.problems) == 1:
            origin, message = self.problems[0]
            return f"{origin}: {message}{outcome}"
        lines = [f"{len(self.problems)} problems in {self.subject}{outcome}:"]
        lines.extend(f"  {origin}: {message}" for origin, message in self.problems)
        return "\n".join(lines)


def manifest_lines(text, name):
    """``(origin, line)`` of every line of `text` that holds something, stripped; origin is
    ``<name>:<line number>`` (see the module docstring for what counts as a line)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield f"{name}:{number}", line


def read_manifest(path, what="the manifest", missing_ok=False, missing_message=None, max_bytes=None):
    """The text of the manifest file `path`, its byte order mark dropped.

    Raises :class:`ManifestError` naming the file (and, for a byte that is not UTF-8, the line)
    when it cannot be read; `what` names the file in those messages. A missing file is None
    with ``missing_ok``; otherwise its problem is ``missing_message`` when given.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError:
        if missing_ok:
            return None
        message = missing_message or f"cannot read {what}: it does not exist"
        raise ManifestError([(path, message)], what) from None
    except OSError as exc:
        raise ManifestError([(path, f"cannot read {what}: {exc.strerror or exc}")], what) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ManifestError([(path, f"{what} is larger than {max_bytes} bytes")], what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ManifestError(
            [(f"{path}:{line}", f"not UTF-8 text (line {line} is not valid UTF-8); save {what} as UTF-8")], what
        ) from None
