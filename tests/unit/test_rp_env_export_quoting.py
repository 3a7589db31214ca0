"""The quoting contract of rp_env_export: any value comes back byte for byte in bash and dash.

Property-based: hypothesis writes arbitrary names and values with the module's own renderer,
then real `bash` and `dash` source the file in an empty environment and dump their environment
with `env -0`, which is compared byte for byte.
"""

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment import env_export  # noqa: E402

SHELLS = ["bash", "dash"]

# A prefix keeps generated names clear of variables the shells own (UID, PWD, SHLVL, IFS, ...).
names = st.from_regex(r"\AT_[A-Za-z0-9_]{0,12}\Z", fullmatch=True)
text_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=60).map(
    lambda s: s.encode("utf-8")
)
byte_values = st.binary(max_size=60).map(lambda b: b.replace(b"\0", b""))
tricky = st.sampled_from(
    [
        b"",
        b"'",
        b"''",
        b"'\\''",
        b"\\",
        b"$HOME",
        b"`id`",
        b"$(id)",
        b"\n",
        b"a\nb\n",
        b"\n\n",
        b" lead",
        b"trail ",
        b"\t",
        b"*",
        b"~",
        b"!x",
        b'"q"',
        b"\x01\x7f",
        b"\xff\xfe",
        "κόσμε 🚀".encode(),
    ]
)


def source_and_dump(shell, path, locale="C"):
    """Environment of `shell` after sourcing `path`, starting from an empty environment."""
    proc = subprocess.run(
        ["env", "-i", f"LC_ALL={locale}", shell, "-c", '. "$1" && exec env -0', "sh", str(path)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    dumped = {}
    for entry in proc.stdout.split(b"\0")[:-1]:
        key, _sep, value = entry.partition(b"=")
        dumped[key.decode()] = value
    return dumped


def assert_round_trip(values, path):
    path.write_bytes(env_export.render(values))
    for shell in SHELLS:
        for locale in ("C", "C.UTF-8"):
            dumped = source_and_dump(shell, path, locale)
            got = {name: dumped.get(name) for name in values}
            assert got == values, f"{shell} ({locale}) changed a value"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(names, st.one_of(text_values, byte_values, tricky), max_size=6))
def test_any_value_survives_bash_and_dash(tmp_path, values):
    assert_round_trip(values, tmp_path / "rp_environment")


def test_known_hard_values_survive(tmp_path):
    values = {
        "COMFY_ARGS": b"--listen 0.0.0.0 --preview-method 'auto' --extra \"x y\" $HOME `id`",
        "T_EMPTY": b"",
        "T_NEWLINES": b"line1\nline2\n\n",
        "T_QUOTES": b"it's ''quoted'' \\'",
        "T_UNICODE": "naïve ✓ 模型".encode(),
        "T_BACKSLASH": b"C:\\path\\n\\",
    }
    assert_round_trip(values, tmp_path / "rp_environment")


@given(st.dictionaries(names, st.one_of(text_values, byte_values, tricky), max_size=6))
def test_parse_reads_back_what_render_writes(values):
    assert dict(env_export.parse(env_export.render(values))) == values


def test_render_is_sorted_and_has_no_timestamp():
    first = env_export.render({"B": b"2", "A": b"1"})
    assert first == env_export.render({"A": b"1", "B": b"2"})
    lines = first.decode().splitlines()
    assert [line for line in lines if line.startswith("export")] == ["export A='1'", "export B='2'"]
    assert not any(ch.isdigit() for line in lines if line.startswith("#") for ch in line)


def test_parse_refuses_foreign_content():
    assert env_export.parse(b"export A=unquoted\n") is None
    assert env_export.parse(b"HF_TOKEN=abc\n") is None
    assert env_export.parse(b"# comment\n\nexport A='x'\n") == [("A", b"x")]


@pytest.mark.parametrize(
    "name,ok",
    [
        ("COMFY_ARGS", True),
        ("_x1", True),
        ("1ABC", False),
        ("A-B", False),
        ("", False),
        ("A B", False),
        ("Ä", False),
        ("A\n", False),
    ],
)
def test_name_validation(name, ok):
    assert env_export.is_valid_name(name) is ok


@pytest.mark.parametrize(
    "name", ["HF_TOKEN", "CIVITAI_TOKEN", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "DB_PASSWORD", "my_api_key"]
)
def test_secret_names(name):
    assert env_export.is_secret_name(name)


@pytest.mark.parametrize("name", ["COMFY_ARGS", "R2_BUCKET", "PATH", "RUNPOD_POD_ID"])
def test_plain_names(name):
    assert not env_export.is_secret_name(name)


def test_default_allow_list_has_comfy_args():
    assert "COMFY_ARGS" in env_export.DEFAULT_ALLOW_LIST


class CheckModeModule:
    """Just enough of AnsibleModule for EnvFile in check mode (nothing is written)."""

    check_mode = True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(names, st.one_of(text_values, byte_values, tricky), max_size=6), st.booleans())
def test_any_value_gives_a_result_ansible_accepts(tmp_path, values, secret):
    """Ansible refuses a result that is not valid UTF-8; values that are not UTF-8 are escaped."""
    environ = {name.encode(): value for name, value in values.items()}
    env_file = env_export.EnvFile(
        CheckModeModule(),
        str(tmp_path / "rp_environment"),
        list(values),
        environ=environ,
        secret_names=list(values) if secret else [],
    )
    result = env_file.apply()
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    for name, value in values.items():
        shown = env_export.MASK if secret else value.decode("utf-8", "backslashreplace")
        assert result["variables"][name] == shown
    assert result["not_utf8"] == sorted(name for name, value in values.items() if not _is_utf8(value))


def _is_utf8(value):
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
