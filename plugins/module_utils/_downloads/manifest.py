# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model manifests: parse the legacy pipe format and YAML lists, validate, merge into a plan.

Pipe format, one entry a line (read by _common.manifest_lines: ``#`` comments and blank lines
ignored, spaces trimmed, CRLF and a byte order mark accepted, lines end at ``\n`` only)::

    source|identifier|filename|subdir[|sha256]
    repo_id|filename|subdir[|sha256]            3 fields (or 4 with a sha256): huggingface

A 4-field line is the source form when its first field is a known source (or alias); otherwise
it is the Hugging Face form with a sha256 when its first field looks like a repo id
(``org/repo``), and an unknown source when it does not.

Every problem is collected with its origin (``file:line``) and raised together as one
:class:`ManifestError`, so a person fixes all of them at once and nothing is downloaded from a
manifest that is partly wrong. URLs are checked as the downloader will use them (scheme, host,
port) by http_origin.check_url. Only the standard library is used.
"""

import os
import posixpath
import re

from urllib.parse import quote

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import is_sha256_hex
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.manifest_lines import (
    ManifestError,
    manifest_lines,
    read_manifest,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_origin import check_url

SOURCES = ("huggingface", "civitai", "url", "r2")
ALIASES = {"hf": "huggingface", "direct": "url", "cloudflare": "r2"}
HTTP_SOURCES = ("huggingface", "civitai", "url")
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_CIVITAI_ENDPOINT = "https://civitai.com"

FIELDS = ("source", "identifier", "filename", "subdir", "sha256")
# A YAML item (a pod lock's models among them) may also give the size in bytes to verify.
ITEM_FIELDS = FIELDS + ("size",)
# YAML items may name the identifier the way people think of it.
ITEM_KEY_ALIASES = {
    "repo": "identifier",
    "repo_id": "identifier",
    "url": "identifier",
    "key": "identifier",
    "id": "identifier",
}

_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?$")
_CIVITAI_ID = re.compile(r"^[0-9]+$")
NO_BUCKET = "r2 key '%s' names no bucket and R2_BUCKET is not set: set R2_BUCKET or write bucket/key in the manifest"
_KNOWN = "huggingface, civitai, url or r2 (aliases: hf, direct, cloudflare)"


SUBJECT = "the model manifests"
OUTCOME = "nothing was downloaded"


def canonical_source(value):
    """`hf` -> `huggingface` etc.; None when the name is not a source."""
    name = (value or "").strip().lower()
    name = ALIASES.get(name, name)
    return name if name in SOURCES else None


def _safe_relative(value, what):
    """Normalized relative POSIX path, or raise ValueError saying what is wrong."""
    if not value:
        raise ValueError(f"{what} is empty")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL byte")
    if value.startswith("/") or value.startswith("~"):
        raise ValueError(f"{what} '{value}' is absolute; give a path relative to the models folder")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what} '{value}' contains '..'; entries may not write outside the models folder")
    if not parts:
        raise ValueError(f"{what} '{value}' names no folder or file")
    return "/".join(parts)


def _check_sha256(value):
    value = (value or "").strip()
    if not value:
        return None
    if value.lower().startswith("sha256:"):
        value = value[len("sha256:") :]
    if not is_sha256_hex(value):
        raise ValueError(f"sha256 '{value}' is not 64 hexadecimal characters")
    return value.lower()


def _check_identifier(source, identifier):
    if not identifier:
        raise ValueError("identifier is empty")
    if source == "huggingface":
        repo, _sep, revision = identifier.partition("@")
        if not _HF_REPO.match(repo) or ".." in repo.split("/"):
            raise ValueError(f"'{identifier}' is not a Hugging Face repo id (org/repo, optionally @revision)")
        if _sep and (not revision or re.search(r"\s", revision)):
            raise ValueError(f"revision after '@' in '{identifier}' is empty or has spaces")
    elif source == "civitai":
        if not _CIVITAI_ID.match(identifier):
            raise ValueError(f"civitai identifier '{identifier}' must be a model version id (digits only)")
    elif source == "url":
        check_url(identifier)
    elif source == "r2":
        if identifier.startswith("/"):
            raise ValueError(f"r2 key '{identifier}' starts with '/'; write key or bucket/key")


def split_line(line):
    """Fields of one pipe line as a dict with the FIELDS keys (values stripped).

    Raises ValueError for a line that does not have 3 to 5 fields or an unknown source.
    """
    fields = [field.strip() for field in line.split("|")]
    count = len(fields)
    if count < 3 or count > 5:
        raise ValueError(
            "expected source|identifier|filename|subdir[|sha256] or "
            f"repo_id|filename|subdir[|sha256], found {count} field{('' if count == 1 else 's')}"
        )
    source = canonical_source(fields[0])
    if count == 3 or (count == 4 and source is None and "/" in fields[0]):
        # The Hugging Face form: repo_id|filename|subdir[|sha256].
        return dict(zip(FIELDS, ["huggingface"] + fields))
    if source is None:
        if count == 4:
            raise ValueError(
                f"unknown source '{fields[0]}': use {_KNOWN}, or repo_id|filename|subdir[|sha256] for Hugging Face"
            )
        raise ValueError(f"unknown source '{fields[0]}': use {_KNOWN}")
    return dict(zip(FIELDS, fields))


class ManifestParser:
    """Turns raw fields into validated entries for one models folder and endpoints."""

    def __init__(
        self, models_dir, hf_endpoint=DEFAULT_HF_ENDPOINT, civitai_endpoint=DEFAULT_CIVITAI_ENDPOINT, r2_bucket=None
    ):
        if not os.path.isabs(models_dir):
            raise ValueError(f"models_dir '{models_dir}' must be an absolute path")
        self.models_dir = os.path.normpath(models_dir)
        self.hf_endpoint = (hf_endpoint or DEFAULT_HF_ENDPOINT).rstrip("/")
        self.civitai_endpoint = (civitai_endpoint or DEFAULT_CIVITAI_ENDPOINT).rstrip("/")
        for option, endpoint in (("hf_endpoint", self.hf_endpoint), ("civitai_endpoint", self.civitai_endpoint)):
            try:
                check_url(endpoint)
            except ValueError as exc:
                raise ValueError(f"{option}: {exc}") from exc
        self.r2_bucket = (r2_bucket or "").strip() or None

    def entry(self, raw, origin):
        """A normalized entry dict from raw field values; ValueError names the first problem."""
        source = canonical_source(raw.get("source"))
        if source is None:
            raise ValueError(f"unknown source '{raw.get('source') or ''}': use {_KNOWN}")
        for field in ("identifier", "filename", "subdir"):
            if not raw.get(field):
                raise ValueError(f"missing {field}")
        identifier = raw["identifier"]
        _check_identifier(source, identifier)
        filename = _safe_relative(raw["filename"], "filename")
        subdir = _safe_relative(raw["subdir"], "subdir")
        sha256 = _check_sha256(raw.get("sha256"))
        basename = posixpath.basename(filename)
        entry = {
            "source": source,
            "identifier": identifier,
            "filename": filename,
            "subdir": subdir,
            "sha256": sha256,
            "name": posixpath.join(subdir, basename),
            "dest": os.path.join(self.models_dir, subdir, basename),
            "origin": origin,
        }
        size = (raw.get("size") or "").strip()
        if size:
            if not size.isdigit():
                raise ValueError(f"size '{size}' is not a number of bytes")
            entry["size"] = int(size)
        entry.update(self._locate(source, identifier, filename))
        return entry

    def _locate(self, source, identifier, filename):
        if source == "huggingface":
            repo, _sep, revision = identifier.partition("@")
            revision = revision or "main"
            url = f"{self.hf_endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename, safe='/')}"
            return {"repo": repo, "revision": revision, "url": url}
        if source == "civitai":
            return {"url": f"{self.civitai_endpoint}/api/download/models/{identifier}"}
        if source == "url":
            return {"url": identifier}
        if self.r2_bucket:
            return {"bucket": self.r2_bucket, "key": identifier}
        bucket, _sep, key = identifier.partition("/")
        if not key:
            # Not a manifest error: the same template works on a pod that has R2_BUCKET.
            return {"bucket": None, "key": identifier}
        return {"bucket": bucket, "key": key}

    def parse_text(self, text, name):
        """(entries, problems) of one pipe-format manifest; problems are (origin, message)."""
        entries, problems = [], []
        for origin, line in manifest_lines(text, name):
            try:
                entries.append(self.entry(split_line(line), origin))
            except ValueError as exc:
                problems.append((origin, str(exc)))
        return entries, problems

    def parse_items(self, items, name):
        """(entries, problems) of a YAML list: dicts with the FIELDS keys or pipe strings."""
        entries, problems = [], []
        if not isinstance(items, (list, tuple)):
            return [], [(name, f"expected a list of entries, got {type(items).__name__}")]
        for number, item in enumerate(items, start=1):
            origin = f"{name} item {number}"
            try:
                if isinstance(item, dict):
                    raw = self._item_fields(item)
                elif isinstance(item, str):
                    raw = split_line(item.strip())
                else:
                    raise ValueError(f"expected a mapping or a pipe-format string, got {type(item).__name__}")
                entries.append(self.entry(raw, origin))
            except ValueError as exc:
                problems.append((origin, str(exc)))
        return entries, problems

    @staticmethod
    def _item_fields(item):
        raw = {}
        for key, value in item.items():
            field = ITEM_KEY_ALIASES.get(key, key)
            if field not in ITEM_FIELDS:
                raise ValueError(f"unknown key '{key}' (keys: {', '.join(ITEM_FIELDS)})")
            if field in raw:
                raise ValueError(f"identifier given twice (as '{key}')")
            raw[field] = "" if value is None else str(value).strip()
        # A YAML entry without a source reads like the 3-field line: Hugging Face.
        raw.setdefault("source", "huggingface")
        return raw


def check_duplicates(entries):
    """Problems for entries of one manifest that land on the same destination."""
    seen, problems = {}, []
    for entry in entries:
        first = seen.setdefault(entry["dest"], entry)
        if first is not entry:
            problems.append((entry["origin"], f"destination {entry['name']} is already written by {first['origin']}"))
    return problems


def merge(layers):
    """Merge lists of entries, lowest precedence first.

    An entry of a later layer replaces every earlier entry with the same destination
    (models/<subdir>/<file name>); entries only an earlier layer has stay. Returns
    ``(entries, replaced)`` where replaced lists ``{"name", "origin", "replaced_by"}``.
    """
    merged, replaced = {}, []
    for entries in layers:
        for entry in entries:
            previous = merged.pop(entry["dest"], None)
            if previous is not None:
                replaced.append({"name": entry["name"], "origin": previous["origin"], "replaced_by": entry["origin"]})
            merged[entry["dest"]] = entry
    return list(merged.values()), replaced


class ManifestSource:
    """One layer of the merge: a manifest file on this host or a list of entries."""

    def __init__(self, path=None, entries=None, name=None, required=False):
        self.path = path
        self.entries = entries
        self.name = name or path or "entries"
        self.required = required


def build_plan(sources, parser):
    """Read, validate and merge the layers (lowest precedence first).

    Returns a dict with ``entries``, ``replaced``, ``skipped`` (valid entries this host cannot
    fetch: an r2 key without a bucket when no default bucket is set) and ``manifests`` (what
    was read from where); raises :class:`ManifestError` listing every problem of every layer.
    """
    layers, problems, report = [], [], []
    for source in sources:
        if source.path is not None:
            try:
                text = read_manifest(
                    source.path,
                    missing_ok=not source.required,
                    missing_message="manifest file does not exist (check the path, e.g. MODELS_MANIFEST)",
                )
            except ManifestError as exc:
                problems.extend(exc.problems)
                continue
            if text is None:
                report.append({"name": source.name, "path": source.path, "status": "missing", "entries": 0})
                continue
            entries, found = parser.parse_text(text, source.name)
        else:
            entries, found = parser.parse_items(source.entries, source.name)
        problems.extend(found)
        problems.extend(check_duplicates(entries))
        layers.append(entries)
        report.append({"name": source.name, "path": source.path, "status": "read", "entries": len(entries)})
    if problems:
        raise ManifestError(problems, SUBJECT, OUTCOME)
    merged, replaced = merge(layers)
    entries, skipped = [], []
    for entry in merged:
        if entry["source"] == "r2" and not entry["bucket"]:
            skipped.append(
                {
                    "name": entry["name"],
                    "origin": entry["origin"],
                    "dest": entry["dest"],
                    "reason": NO_BUCKET % entry["identifier"],
                }
            )
        else:
            entries.append(entry)
    return {"entries": entries, "replaced": replaced, "skipped": skipped, "manifests": report}
