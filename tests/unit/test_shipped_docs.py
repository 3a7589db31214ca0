"""What the published collection tells its reader is true and stands on its own.

A reader of the published collection has the collection only: no product contract to look up
by section and no earlier system to compare with. Each role has a README that sends the reader
to its argument_specs, and a role variable any document names is one the roles really have.
"""

import re

import pytest
import yaml

from harness.paths import REPO

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())

# Shipped documentation and YAML (the Python files carry their own DOCUMENTATION).
SHIPPED_TEXT = sorted(
    [REPO / "README.md", REPO / "BENCHMARKS.md", REPO / "galaxy.yml", REPO / "site.yml"]
    + [
        p
        for top in ("docs", "roles", "playbooks", "examples", "inventories", "changelogs", "meta")
        for p in (REPO / top).rglob("*")
        if p.is_file() and p.suffix != ".py"
    ]
)
# What only the project's own history knows: a section of its contract, or the system it replaced.
UNPUBLISHED_REFERENCES = re.compile(r"\bSPEC\b|\bsection \d|§|original system|\bthe original's\b|\blike the original\b")


def role_options():
    options = set()
    for role in ROLES:
        specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
        for entry_point in specs["argument_specs"].values():
            options.update(entry_point.get("options") or {})
    return options


def test_the_scan_covers_the_documents():
    names = {str(p.relative_to(REPO)) for p in SHIPPED_TEXT}
    assert {"README.md", "docs/DEVELOPING.md", "roles/pod_env/defaults/main.yml", "examples/Containerfile"} <= names


@pytest.mark.parametrize("path", SHIPPED_TEXT, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_text_cites_nothing_a_reader_lacks(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    hits = [
        f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for m in UNPUBLISHED_REFERENCES.finditer(text)
    ]
    assert not hits, hits


@pytest.mark.parametrize("role", ROLES)
def test_each_role_has_a_readme_pointing_at_its_argument_specs(role):
    readme = REPO / "roles" / role / "README.md"
    assert readme.is_file(), f"roles/{role} has no README.md"
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(f"# aiclipse.comfyui.{role}\n")
    assert "(meta/argument_specs.yml)" in text
    assert f"ansible-doc -t role aiclipse.comfyui.{role}" in text
    for section in ("## Variables", "## Example", "## Requirements", "## What it writes"):
        assert f"\n{section}\n" in text, f"roles/{role}/README.md has no {section!r} section"
    example = re.search(r"## Example\n+```yaml\n(.*?)```", text, re.S)
    assert example, f"roles/{role}/README.md: the example is not a yaml block"
    plays = yaml.safe_load(example.group(1))
    used = {r["role"] if isinstance(r, dict) else r for play in plays for r in play.get("roles", [])}
    used |= {t[k]["name"] for play in plays for t in play.get("tasks", []) for k in t if k.endswith("import_role")}
    assert f"aiclipse.comfyui.{role}" in used


DOCUMENTS_NAMING_VARIABLES = [REPO / "README.md", REPO / "docs" / "DEVELOPING.md"] + [
    REPO / "roles" / r / "README.md" for r in ROLES
]


@pytest.mark.parametrize("path", DOCUMENTS_NAMING_VARIABLES, ids=lambda p: str(p.relative_to(REPO)))
def test_role_variables_named_in_docs_exist(path):
    # A renamed or removed variable leaves a README telling users to set something that does
    # nothing. Names are taken from code spans: `models_foreground` or `models_foreground: true`.
    prefixes = tuple(f"{role}_" for role in ROLES)
    modules = {p.stem for p in (REPO / "plugins" / "modules").glob("*.py")}
    modules |= {p.stem for p in (REPO / "plugins" / "module_utils").rglob("*.py")}
    # Besides the variables: module and module_utils names (`comfyui_install`,
    # `workspace_links`) and the prefixes themselves.
    known = role_options() | modules | set(prefixes)
    text = path.read_text(encoding="utf-8")
    named = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        for name in re.findall(r"(?<![\w./<-])([a-z][a-z0-9_]*)", span):
            if name.startswith(prefixes):
                named.add(name)
    unknown = sorted(named - known)
    assert not unknown, f"{path.relative_to(REPO)} names role variables no role has: {unknown}"
