# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The custom-nodes manifest: parse, validate and merge.

One node a line (read by _common.manifest_lines: ``#`` comments and blank lines ignored, spaces
around fields trimmed, CRLF and a byte order mark accepted, lines end at ``\\n`` only)::

    repo_url|branch|category|description[|commit]

Only ``repo_url`` is required; an empty branch means the repository's default branch; the
optional fifth field pins a commit (7 to 40 hex digits). A commit id written in the branch
field (and no fifth field) is taken as the pin, as ``comfyui_version`` takes it: git cannot
clone a commit as a branch, and 7 to 40 hex digits are not a branch name anybody uses. The
node's directory under ``custom_nodes/`` is the last part of the URL without ``.git``. Later
sources replace earlier ones node by node (base, then user, then template), so a template can
re-pin a base node. Every problem of every source is collected, each with its file and line and
what to fix, and raised as one ManifestError.
"""

from __future__ import annotations

import re

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import credentials_problem
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.manifest_lines import (
    ManifestError,
    manifest_lines,
    read_manifest,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_location

SUBJECT = "the nodes manifests"
FIELDS = ("url", "branch", "category", "description", "commit")
_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
# The staging directories of git_checkout carry a '+' so that they can never be one of these.
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|([\s~^:?*\[\\])|(@\{)|(/$)|(\.lock$)|(\.$)")


def node_name(url):
    """Directory name of a node: the URL's last path part without ``.git``."""
    tail = url.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]
    return tail[:-4] if tail.endswith(".git") else tail


def validate_entry(fields, origin):
    """Turn raw fields {url, branch, category, description, commit} into a node entry.

    Raises ValueError saying what is wrong and what to write instead (the caller adds where).
    A message quotes the URL with its credentials masked: an error goes to the pod's logs.
    """
    url = (fields.get("url") or "").strip()
    if not url:
        raise ValueError(
            "the repository URL (first field) is empty; write repo_url|branch|category|description[|commit]"
        )
    if not (url.startswith(_SCHEMES) or url.startswith("/") or _SCP_LIKE.match(url)):
        raise ValueError(
            f"{masked_location(url)!r} is not a git URL; use https://host/owner/repo, "
            "ssh://..., git@host:owner/repo, file:///path or an absolute path"
        )
    problem = credentials_problem(url)
    if problem:
        raise ValueError(problem)
    name = node_name(url)
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"cannot take a directory name from {masked_location(url)!r}; the URL must "
            "end in the repository name (letters, digits, '.', '_', '-')"
        )
    branch = (fields.get("branch") or "").strip()
    if branch and _BAD_REF.search(branch):
        raise ValueError(f"{branch!r} is not a valid branch or tag name")
    commit = (fields.get("commit") or "").strip()
    if branch and not commit and _COMMIT.match(branch):
        branch, commit = "", branch
    if commit and not _COMMIT.match(commit):
        raise ValueError(
            f"commit pin {commit!r} must be 7 to 40 hex digits "
            "(the fifth field pins a commit; leave it out to follow the branch)"
        )
    return {
        "name": name,
        "url": url,
        "branch": branch,
        "commit": commit.lower(),
        "category": (fields.get("category") or "").strip(),
        "description": (fields.get("description") or "").strip(),
        "origin": origin,
    }


def _split_line(line):
    parts = [part.strip() for part in line.split("|")]
    if len(parts) > len(FIELDS):
        raise ValueError(
            f"{len(parts)} fields, at most {len(FIELDS)} "
            "(repo_url|branch|category|description|commit); "
            "a description may not contain '|'"
        )
    return dict(zip(FIELDS, parts))


def _text_entries(text, source):
    """(entries, problems) of one manifest's text; problems are (origin, message)."""
    entries, problems, seen = [], [], {}
    for origin, line in manifest_lines(text, source):
        try:
            entry = validate_entry(_split_line(line), origin)
        except ValueError as exc:
            problems.append((origin, str(exc)))
            continue
        if entry["name"] in seen:
            problems.append(
                (origin, f"node {entry['name']!r} is already listed at {seen[entry['name']]}; keep one line per node")
            )
            continue
        seen[entry["name"]] = origin
        entries.append(entry)
    return entries, problems


def _list_entries(items, source):
    """(entries, problems) of a YAML list (Ansible vars): dicts with url (or repo_url), branch,
    ... or manifest lines."""
    entries, problems = [], []
    for index, item in enumerate(items or []):
        origin = f"{source}[{index}]"
        if isinstance(item, str):
            found, line_problems = _text_entries(item, origin)
            entries.extend(dict(entry, origin=origin) for entry in found)
            problems.extend(line_problems)
            continue
        if not isinstance(item, dict):
            problems.append(
                (
                    origin,
                    "expected a mapping with url/branch/category/description/commit "
                    f"or a manifest line, got {type(item).__name__}",
                )
            )
            continue
        fields = dict(item)
        if "repo_url" in fields and "url" not in fields:
            fields["url"] = fields.pop("repo_url")
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            problems.append((origin, f"unknown keys {', '.join(unknown)}; allowed: {', '.join(FIELDS)} (or repo_url)"))
            continue
        try:
            entries.append(validate_entry({k: "" if v is None else str(v) for k, v in fields.items()}, origin))
        except ValueError as exc:
            problems.append((origin, str(exc)))
    return entries, problems


def _checked(entries, problems):
    if problems:
        raise ManifestError(problems, SUBJECT)
    return entries


def parse_text(text, source):
    """Entries of one manifest's text; ``source`` names it in errors (usually the path)."""
    return _checked(*_text_entries(text, source))


def load(paths, items=(), source="nodes"):
    """The merged nodes of the manifest files `paths` (lowest precedence first), then `items`.

    Raises ManifestError listing every problem of every file and item, not only the first.
    """
    layers, problems = [], []
    for path in paths:
        try:
            text = read_manifest(path, "the nodes manifest")
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        entries, found = _text_entries(text, path)
        layers.append(entries)
        problems.extend(found)
    entries, found = _list_entries(items, source)
    layers.append(entries)
    problems.extend(found)
    return merge(*_checked(layers, problems))


def merge(*sources):
    """One list from several entry lists; a later entry replaces an earlier one of the same
    name (in the earlier one's position), new names are appended in order."""
    merged = {}
    for entries in sources:
        for entry in entries:
            merged[entry["name"]] = entry
    return list(merged.values())
