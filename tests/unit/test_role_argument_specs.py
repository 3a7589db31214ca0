"""Every role's meta/argument_specs.yml is complete and true against its defaults/main.yml.

`ansible-doc -t role` and each role's README point a user at argument_specs for the role's
variables, so a default missing there is a knob nobody can find, and an option there that the
role does not define (or defines with another value) is a promise the role does not keep.
"""

import re

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from harness.paths import REPO

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
# Keys of an option the type check below leaves out: documentation, and the default, which is
# checked against defaults/main.yml instead (a computed one is an expression until ansible runs).
NOT_CHECKED = {"description", "version_added", "default"}


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def defaults_of(role):
    return load(REPO / "roles" / role / "defaults" / "main.yml")


def entry_points_of(role):
    return load(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]


def options_of(role):
    """Option name -> (entry point, spec), over every entry point of the role."""
    options = {}
    for entry_point, spec in entry_points_of(role).items():
        for name, option in (spec.get("options") or {}).items():
            assert name not in options, f"{role}: {name} is documented by {options[name][0]} and {entry_point}"
            options[name] = (entry_point, option)
    return options


def is_templated(value):
    return "{{" in yaml.safe_dump(value)


def test_every_role_has_argument_specs():
    assert sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir()) == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented(role):
    undocumented = sorted(set(defaults_of(role)) - set(options_of(role)))
    assert not undocumented, (
        f"roles/{role}/defaults/main.yml sets {undocumented}, which meta/argument_specs.yml does not document"
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_documented_option_has_a_default(role):
    # No entry point has required options: every variable works without being set.
    missing = sorted(set(options_of(role)) - set(defaults_of(role)))
    assert not missing, (
        f"roles/{role}/meta/argument_specs.yml documents {missing}, which defaults/main.yml does not set"
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_option_says_type_description_and_default(role):
    defaults = defaults_of(role)
    problems = []
    for name, (entry_point, option) in options_of(role).items():
        problems += [f"{entry_point}.{name}: no {key}" for key in ("type", "description") if not option.get(key)]
        if "default" not in option:
            problems.append(f"{entry_point}.{name}: no default")
        elif name in defaults and option["default"] != defaults[name]:
            # Computed defaults are documented as the expression itself: what ansible-doc shows is
            # what the role does.
            problems.append(
                f"{entry_point}.{name}: default {option['default']!r} but defaults/main.yml has {defaults[name]!r}"
            )
        if option.get("type") == "list" and "elements" not in option:
            problems.append(f"{entry_point}.{name}: a list without elements")
    assert not problems, f"roles/{role}/meta/argument_specs.yml:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("role", ROLES)
def test_literal_defaults_pass_their_own_spec(role):
    # What ansible checks at the start of the role (validate_argument_spec): a literal default
    # of the wrong type or outside its choices would fail every run that keeps it.
    defaults = defaults_of(role)
    for entry_point, spec in entry_points_of(role).items():
        options = spec.get("options") or {}
        literal = {name: defaults[name] for name in options if name in defaults and not is_templated(defaults[name])}
        argument_spec = {
            name: {k: v for k, v in option.items() if k not in NOT_CHECKED} for name, option in options.items()
        }
        result = ArgumentSpecValidator(argument_spec).validate(literal)
        assert not result.error_messages, f"roles/{role} {entry_point}: {result.error_messages}"


@pytest.mark.parametrize("role", ROLES)
def test_entry_points_are_described(role):
    for entry_point, spec in entry_points_of(role).items():
        assert spec.get("short_description"), f"{role} {entry_point}: no short_description"
        assert spec.get("description"), f"{role} {entry_point}: no description"
    # antsibull-changelog lists a role under "New Roles" of the release its main entry point names.
    assert entry_points_of(role)["main"].get("version_added"), f"{role} main: no version_added"


def defined_in_tasks(node, names):
    """Variables a role's task files define for themselves: registered results, loop
    variables, task vars and facts."""
    if isinstance(node, list):
        for item in node:
            defined_in_tasks(item, names)
    elif isinstance(node, dict):
        if isinstance(node.get("register"), str):
            names.add(node["register"])
        names.add((node.get("loop_control") or {}).get("loop_var", "item"))
        names.update(node.get("vars") or {})
        for fact_module in ("ansible.builtin.set_fact", "set_fact"):
            names.update(k for k in (node.get(fact_module) or {}) if k != "cacheable")
        for block in ("block", "rescue", "always"):
            defined_in_tasks(node.get(block), names)


@pytest.mark.parametrize("role", ROLES)
def test_tasks_read_no_undocumented_role_variable(role):
    # A variable with the role's prefix that the tasks read but neither defaults/main.yml nor
    # the tasks define is a hidden knob (`| default(...)` in a task) that argument_specs misses.
    role_dir = REPO / "roles" / role
    prefix = role + "_"
    defined = set(defaults_of(role))
    texts = []
    for path in sorted((role_dir / "tasks").glob("*.yml")) + [role_dir / "vars" / "main.yml"]:
        if path.is_file():
            defined_in_tasks(load(path), defined)
            texts.append((path, path.read_text(encoding="utf-8")))
    hidden = set()
    for path, text in texts:
        for match in re.finditer(r"(?<![\w.])(" + re.escape(prefix) + r"\w+)", text):
            if match.group(1) not in defined:
                hidden.add(f"{path.relative_to(REPO)}: {match.group(1)}")
    assert not hidden, f"role variables read but not in defaults/main.yml and argument_specs: {sorted(hidden)}"
