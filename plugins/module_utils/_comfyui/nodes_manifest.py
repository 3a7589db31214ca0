# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The custom-nodes manifest: parse, validate and merge.

One node a line, ``#`` comments and blank lines ignored, spaces around fields trimmed::

    repo_url|branch|category|description[|commit]

Only ``repo_url`` is required; an empty branch means the repository's default branch; the
optional fifth field pins a commit (7 to 40 hex digits). A commit id written in the branch
field (and no fifth field) is taken as the pin, as ``comfyui_version`` takes it: git cannot
clone a commit as a branch, and 7 to 40 hex digits are not a branch name anybody uses. The
node's directory under ``custom_nodes/`` is the last part of the URL without ``.git``. Later
sources replace earlier ones node by node (base, then user, then template), so a template can
re-pin a base node. Files are UTF-8, with or without a byte order mark. Every error names the
file and line and says what to fix.
"""

from __future__ import annotations

import re

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import credentials_problem

FIELDS = ("url", "branch", "category", "description", "commit")
_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
# The staging directories of git_checkout carry a '+' so that they can never be one of these.
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|([\s~^:?*\[\\])|(@\{)|(/$)|(\.lock$)|(\.$)")


class ManifestError(ValueError):
    """A manifest problem; the message names where and what to do."""


def node_name(url):
    """Directory name of a node: the URL's last path part without ``.git``."""
    tail = url.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]
    return tail[:-4] if tail.endswith(".git") else tail


def validate_entry(fields, origin):
    """Turn raw fields {url, branch, category, description, commit} into a node entry."""
    url = (fields.get("url") or "").strip()
    if not url:
        raise ManifestError(f"{origin}: the repository URL (first field) is empty; "
                            "write repo_url|branch|category|description[|commit]")
    if not (url.startswith(_SCHEMES) or url.startswith("/") or _SCP_LIKE.match(url)):
        raise ManifestError(f"{origin}: {url!r} is not a git URL; use https://host/owner/repo, "
                            "ssh://..., git@host:owner/repo, file:///path or an absolute path")
    problem = credentials_problem(url)
    if problem:
        raise ManifestError(f"{origin}: {problem}")
    name = node_name(url)
    if not _NAME.match(name) or name in (".", ".."):
        raise ManifestError(f"{origin}: cannot take a directory name from {url!r}; the URL must "
                            "end in the repository name (letters, digits, '.', '_', '-')")
    branch = (fields.get("branch") or "").strip()
    if branch and _BAD_REF.search(branch):
        raise ManifestError(f"{origin}: {branch!r} is not a valid branch or tag name")
    commit = (fields.get("commit") or "").strip()
    if branch and not commit and _COMMIT.match(branch):
        branch, commit = "", branch
    if commit and not _COMMIT.match(commit):
        raise ManifestError(f"{origin}: commit pin {commit!r} must be 7 to 40 hex digits "
                            "(the fifth field pins a commit; leave it out to follow the branch)")
    return {
        "name": name,
        "url": url,
        "branch": branch,
        "commit": commit.lower(),
        "category": (fields.get("category") or "").strip(),
        "description": (fields.get("description") or "").strip(),
        "origin": origin,
    }


def parse_text(text, source):
    """Entries of one manifest's text; ``source`` names it in errors (usually the path)."""
    entries = []
    seen = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        origin = f"{source}:{number}"
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > len(FIELDS):
            raise ManifestError(f"{origin}: {len(parts)} fields, at most {len(FIELDS)} "
                                "(repo_url|branch|category|description|commit); "
                                "a description may not contain '|'")
        entry = validate_entry(dict(zip(FIELDS, parts)), origin)
        if entry["name"] in seen:
            raise ManifestError(f"{origin}: node {entry['name']!r} is already listed at "
                                f"{seen[entry['name']]}; keep one line per node")
        seen[entry["name"]] = origin
        entries.append(entry)
    return entries


def parse_file(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the nodes manifest ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")  # a BOM (Windows editors) is not part of line 1
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not UTF-8 text; save the manifest as UTF-8") from None
    return parse_text(text, path)


def parse_list(items, source="nodes"):
    """Entries of a YAML list (Ansible vars): dicts with url (or repo_url), branch, ..."""
    entries = []
    for index, item in enumerate(items or []):
        origin = f"{source}[{index}]"
        if isinstance(item, str):
            entries.extend(dict(entry, origin=origin) for entry in parse_text(item, origin))
            continue
        if not isinstance(item, dict):
            raise ManifestError(f"{origin}: expected a mapping with url/branch/category/"
                                f"description/commit or a manifest line, got {type(item).__name__}")
        fields = dict(item)
        if "repo_url" in fields and "url" not in fields:
            fields["url"] = fields.pop("repo_url")
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise ManifestError(f"{origin}: unknown keys {', '.join(unknown)}; "
                                f"allowed: {', '.join(FIELDS)} (or repo_url)")
        entries.append(validate_entry({k: "" if v is None else str(v) for k, v in fields.items()},
                                      origin))
    return entries


def merge(*sources):
    """One list from several entry lists; a later entry replaces an earlier one of the same
    name (in the earlier one's position), new names are appended in order."""
    merged = {}
    for entries in sources:
        for entry in entries:
            merged[entry["name"]] = entry
    return list(merged.values())
