"""Credentials in git URLs (module_utils._comfyui.git_checkout): what to mask, what git may see and
store, and how the rest reaches git (its credential helper, for the URL's host only)."""

import subprocess
import sys

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import (  # noqa: E402
    credentials_problem,
    git_environment,
    mask_url_credentials,
    public_url,
    redact,
    repo_url_on_target,
    split_credentials,
    stored_credentials,
    url_host,
    url_secrets,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.urls import masked_location  # noqa: E402


@pytest.mark.parametrize(
    "url, secrets",
    [
        ("https://user:ghp_token123@github.com/o/r.git", {"ghp_token123"}),
        ("https://ghp_0123456789abcdefghijklmn@github.com/o/r.git", {"ghp_0123456789abcdefghijklmn"}),
        # A user name is no secret, and masking "git" would garble every message that says git.
        ("ssh://git@github.com/o/r.git", set()),
        ("https://user:x@host/r.git", set()),
        ("https://github.com/o/r.git", set()),
        ("/srv/repos/ComfyUI", set()),
        ("", set()),
        ("https://user:ghp_inline99@host/r.git|main|x|a manifest line", {"ghp_inline99"}),
        # A raw '@' in the password: the user info ends at the last '@' before the host.
        (
            "http://user:left@RIGHTsecretTail987@127.0.0.1:8080/x.git",
            {"left@RIGHTsecretTail987", "RIGHTsecretTail987"},
        ),
        ("https://host/r.git?access_token=ghp_queryToken1", {"ghp_queryToken1"}),
    ],
)
def test_url_secrets(url, secrets):
    assert url_secrets(url) == secrets
    for secret in secrets:
        assert secret not in redact(url)


def test_mask_url_credentials_adds_them_to_ansibles_no_log_values():
    class Module:
        no_log_values = set()

    module = Module()
    mask_url_credentials(module, ["https://u:pass-word@h/r.git", "https://h/r.git"])
    assert module.no_log_values == {"pass-word"}


@pytest.mark.parametrize(
    "url, public, credentials",
    [
        ("https://user:ghp_tok@github.com/o/r.git", "https://github.com/o/r.git", ("user", "ghp_tok")),
        ("http://u%40corp:p%3Ass@127.0.0.1:8080/r.git", "http://127.0.0.1:8080/r.git", ("u@corp", "p:ss")),
        (
            "https://ghp_0123456789abcdefghijklmn@github.com/o/r",
            "https://github.com/o/r",
            ("ghp_0123456789abcdefghijklmn", ""),
        ),
        ("https://github.com/o/r.git", "https://github.com/o/r.git", None),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git", None),
        ("git@github.com:o/r.git", "git@github.com:o/r.git", None),
        ("/srv/repos/ComfyUI", "/srv/repos/ComfyUI", None),
    ],
)
def test_split_credentials(url, public, credentials):
    assert split_credentials(url) == (public, credentials)
    assert public_url(url) == public
    assert stored_credentials(url) is (credentials is not None)


@pytest.mark.parametrize(
    "url, refused",
    [
        ("ssh://git:pw@host/r.git", True),
        ("git://u:pw@host/r.git", True),
        ("ssh://git@host/r.git", False),
        ("https://u:pw@host/r.git", False),
        ("git@host:o/r.git", False),
    ],
)
def test_credentials_problem(url, refused):
    assert bool(credentials_problem(url)) is refused


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://user:tok@github.com/o/r.git", "github.com"),
        ("http://127.0.0.1:4711/r.git", "127.0.0.1:4711"),
        ("git://127.0.0.1:9418/r.git", "127.0.0.1:9418"),
        ("git@github.com:o/r.git", "github.com"),
        ("/srv/repos/ComfyUI", "the local repository"),
        ("file:///srv/repos/ComfyUI", "the local repository"),
    ],
)
def test_url_host_names_no_credentials(url, host):
    assert url_host(url) == host


def _credential_fill(env, url):
    proc = subprocess.run(
        ["git", "credential", "fill"], input=f"url={url}\n\n", env=env, capture_output=True, text=True, check=False
    )
    return proc.returncode, dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def test_git_gets_the_credentials_for_their_host_only_and_no_helper_stores_them(tmp_path, monkeypatch):
    # The user's own git config has a store helper: it must not see (and write) the token.
    store = tmp_path / "git-credentials"
    config = tmp_path / "gitconfig"
    config.write_text(f"[credential]\n\thelper = store --file {store}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")  # somebody else's setting stays
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.abbrev")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "12")
    env = git_environment("https://user:s3cr3t-T0ken@git.example:8443/o/r.git")
    assert env["GIT_CONFIG_KEY_0"] == "core.abbrev" and env["GIT_CONFIG_COUNT"] == "3"
    assert not any("s3cr3t" in value for key, value in env.items() if key.startswith("GIT_CONFIG"))

    assert _credential_fill(env, "https://git.example:8443/o/r.git") == (
        0,
        {"protocol": "https", "host": "git.example:8443", "username": "user", "password": "s3cr3t-T0ken"},
    )
    # Another host, port or scheme (a redirect target) gets nothing (GIT_ASKPASS=true: empty).
    for other in ("https://evil.example/o/r.git", "https://git.example/o/r.git", "http://git.example:8443/r"):
        rc, answer = _credential_fill(env, other)
        assert (answer.get("username", ""), answer.get("password", "")) == ("", ""), (other, answer)
    subprocess.run(
        ["git", "credential", "approve"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        input="protocol=https\nhost=git.example:8443\nusername=user\npassword=s3cr3t-T0ken\n\n",
    )
    assert not store.exists()
    # The token given as the user name, the GitHub way: an empty password, no prompt.
    rc, answer = _credential_fill(
        git_environment("https://ghp_0123456789abcdefghijklmn@github.com/o/r"), "https://github.com/o/r"
    )
    assert (rc, answer["username"], answer["password"]) == (0, "ghp_0123456789abcdefghijklmn", "")
    # Without credentials in the URL nothing is configured (and nothing inherited is kept).
    monkeypatch.setenv("AICLIPSE_GIT_PASSWORD", "stale")
    plain = git_environment("https://github.com/o/r")
    assert plain["GIT_CONFIG_COUNT"] == "1" and "AICLIPSE_GIT_PASSWORD" not in plain


def test_the_url_with_its_token_is_read_on_the_target_for_the_same_repository(tmp_path, monkeypatch):
    """The role passes the URL without the token and the variable's name; over SSH the value is
    in the pod's 0600 env file, at pod start in the environment; another repository is ignored."""
    secret = "https://user:ghp_fromTheEnvFile1@git.example/o/ComfyUI.git"
    env_file = tmp_path / "rp_environment"
    env_file.write_text(f"export COMFYUI_REPO='{secret}'\n")
    env_file.chmod(0o600)
    monkeypatch.delenv("COMFYUI_REPO", raising=False)
    public = "https://git.example/o/ComfyUI.git"
    assert repo_url_on_target(public, "COMFYUI_REPO", str(env_file)) == secret
    assert repo_url_on_target(public, None, str(env_file)) == public
    assert (
        repo_url_on_target("https://other.example/ComfyUI.git", "COMFYUI_REPO", str(env_file))
        == "https://other.example/ComfyUI.git"
    )
    monkeypatch.setenv("COMFYUI_REPO", "https://user:ghp_fromTheEnvironment@git.example/o/ComfyUI.git")
    assert repo_url_on_target(public, "COMFYUI_REPO", str(env_file)).endswith(
        "ghp_fromTheEnvironment@git.example/o/ComfyUI.git"
    )
    env_file.chmod(0o644)
    monkeypatch.delenv("COMFYUI_REPO")
    with pytest.raises(Exception, match="0600|readable"):
        repo_url_on_target(public, "COMFYUI_REPO", str(env_file))


RAW_AT = "http://user:left@RIGHTsecretTail987@127.0.0.1:8080/x.git"


@pytest.mark.parametrize(
    "text, shown",
    [
        (
            f"fatal: unable to access '{RAW_AT}/': 403",
            "fatal: unable to access 'http://***@127.0.0.1:8080/x.git/': 403",
        ),
        ("htps://user:ghp_abcdef@github.com/o/r.git", "htps://***@github.com/o/r.git"),
        ("two: https://a:secret1@h1/x and https://b:secret2@h2/y", "two: https://***@h1/x and https://***@h2/y"),
        ("https://h/x?X-Amz-Signature=abcdef&part=1", "https://h/x?X-Amz-Signature=***&part=1"),
        ("git@github.com:o/r.git and /srv/a@b", "git@github.com:o/r.git and /srv/a@b"),
    ],
)
def test_redact_masks_every_url_in_a_text_up_to_the_last_at_sign(text, shown):
    assert redact(text) == shown


@pytest.mark.parametrize(
    "value, shown",
    [
        (RAW_AT, "http://***@127.0.0.1:8080/x.git"),
        ("htps://user:ghp_abcdef@github.com/o/r.git", "htps://***@github.com/o/r.git"),
        ("user:ghp_abcdef@github.com/o/r.git", "***@github.com/o/r.git"),
        ("ghp_0123456789abcdefghijklmn@github.com/o/r", "***@github.com/o/r"),
        ("git@github.com:o/bad+name.git", "git@github.com:o/bad+name.git"),
        ("https://github.com/o/r+x.git?access_token=ghp_abcdef", "https://github.com/o/r+x.git?access_token=***"),
        ("/srv/repos/x", "/srv/repos/x"),
    ],
)
def test_a_location_in_a_message_shows_no_credential(value, shown):
    assert masked_location(value) == shown


def test_the_inventory_masks_a_raw_at_sign_in_a_pod_setting_whole():
    from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet.runpod_hosts import split_env

    shown, dummy = split_env({"CONFIG_REPO": RAW_AT}, ["CONFIG_REPO"])
    assert shown == {"CONFIG_REPO": "http://********@127.0.0.1:8080/x.git"}
