"""Tokens never leave their origin, whatever the origin does (aria2_batch through real ansible).

The origin and a foreign host are fault servers that log every request's server, Host header,
scheme and headers, and answer HEAD, plain GET and each ranged GET as the test scripts them.
Each shape below is one way a redirect can point somewhere else; for each, the invariant is the
same: a request carrying the token reached the origin's server, addressed to the origin's
Host, over the origin's scheme, and nothing else ever saw it.
"""

import hashlib
from pathlib import Path

import pytest

from harness.ansible_run import run_module
from harness.fault_fixtures import assert_secret_only_at, requests_with_secret
from harness.fault_server import Redirect, Serve, Status

TOKEN = "hf_secret_token_0123456789abcdef"
MIB = 1024 * 1024


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def needs_token(request, then):
    """An origin path that refuses requests without the token, like a private repo."""
    if request.authorization != f"Bearer {TOKEN}":
        return Status(401)
    return then


def starts_at(request):
    """First byte a request asks for (0 without a Range header)."""
    if not request.range:
        return 0
    return int(request.range.split("=", 1)[1].split("-", 1)[0])


def shapes(origin, foreign):
    """name -> (rule for /model at the origin, expected status, extra routes)."""
    o, f = origin.authority, foreign.authority
    big = "/files/big.bin"
    return {
        # Same origin: the token may follow (Hugging Face serves small private files this way).
        "relative": (
            lambda r: needs_token(r, Redirect("/private-big")),
            "downloaded",
            {"/private-big": lambda r: needs_token(r, Serve("big.bin"))},
        ),
        "absolute-same-origin": (
            lambda r: needs_token(r, Redirect(f"http://{o}/private-big")),
            "downloaded",
            {"/private-big": lambda r: needs_token(r, Serve("big.bin"))},
        ),
        # Someone else: the token must stay home.
        "absolute-foreign": (lambda r: needs_token(r, Redirect(f"http://{f}{big}?sig=1")), "downloaded", {}),
        "protocol-relative": (lambda r: needs_token(r, Redirect(f"//{f}{big}?sig=1")), "downloaded", {}),
        "protocol-relative-other-name": (
            lambda r: needs_token(r, Redirect(f"//localhost:{origin.port}{big}")),
            "downloaded",
            {},
        ),
        "relative-then-protocol-relative": (
            lambda r: needs_token(r, Redirect("/step")),
            "downloaded",
            {"/step": lambda r: needs_token(r, Redirect(f"//{f}{big}"))},
        ),
        "other-port": (
            lambda r: needs_token(r, Redirect(f"http://127.0.0.1:{foreign.port}{big}")),
            "downloaded",
            {},
        ),
        "comes-back-to-origin": (
            lambda r: needs_token(r, Redirect(f"http://{f}/bounce")),
            "failed",
            {
                "/bounce@foreign": lambda r: Redirect(f"http://{o}/private-big"),
                "/private-big": lambda r: needs_token(r, Serve("big.bin")),
            },
        ),
        "permanent-redirect-308": (lambda r: needs_token(r, Redirect(f"//{f}{big}", 308)), "downloaded", {}),
        # The origin answers the probe one way and the download another.
        "head-200-get-302": (
            lambda r: Serve("big.bin") if r.method == "HEAD" else needs_token(r, Redirect(f"http://{f}{big}")),
            "downloaded",
            {},
        ),
        "later-range-redirect": (
            lambda r: needs_token(r, Serve("big.bin") if starts_at(r) < MIB else Redirect(f"http://{f}{big}")),
            "downloaded",
            {},
        ),
        "second-get-redirects": (
            lambda r: needs_token(
                r, Serve("big.bin") if r.method == "HEAD" or r.count <= 2 else Redirect(f"//{f}{big}")
            ),
            "downloaded",
            {},
        ),
    }


SHAPES = [
    "relative",
    "absolute-same-origin",
    "absolute-foreign",
    "protocol-relative",
    "protocol-relative-other-name",
    "relative-then-protocol-relative",
    "other-port",
    "comes-back-to-origin",
    "permanent-redirect-308",
    "head-200-get-302",
    "later-range-redirect",
    "second-get-redirects",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_token_reaches_only_its_origin(shape, fault_server, foreign_server, tmp_path):
    rule, expected, extra = shapes(fault_server, foreign_server)[shape]
    fault_server.route("/model", rule)
    for path, extra_rule in extra.items():
        target, _at, where = path.partition("@")
        (foreign_server if where == "foreign" else fault_server).route(target, extra_rule)
    dest = tmp_path / "vault/models/checkpoints/big.safetensors"
    args = {
        "state_dir": str(tmp_path / "vault/.state/models"),
        "log_file": str(tmp_path / "vault/logs/models.log"),
        "downloads": [
            {
                "url": fault_server.url + "/model",
                "dest": str(dest),
                "token": TOKEN,
                "sha256": fault_server.catalog["big.bin"][1],
            }
        ],
        "min_split_size": "1M",
        "retry_wait": 1,
        "max_tries": 2,
        "fail_on_error": False,
    }
    result, proc = run_module("aria2_batch", args)
    assert_secret_only_at(fault_server, [fault_server, foreign_server], TOKEN)
    assert requests_with_secret([fault_server], TOKEN), "the origin itself must get the token"
    got = result["results"][0]
    assert got["status"] == expected, got
    if expected == "downloaded":
        assert sha(dest) == fault_server.catalog["big.bin"][1]
    assert TOKEN not in proc.stdout + proc.stderr


def test_secret_headers_are_treated_like_the_token(fault_server, foreign_server, tmp_path):
    fault_server.route(
        "/model",
        lambda r: (
            Status(401)
            if r.headers.get("X-Api-Key") != TOKEN
            else Redirect(f"//{foreign_server.authority}/files/b.bin")
        ),
    )
    dest = tmp_path / "vault/models/b.bin"
    result, _proc = run_module(
        "aria2_batch",
        {
            "state_dir": str(tmp_path / "vault/.state/models"),
            "downloads": [{"url": fault_server.url + "/model", "dest": str(dest), "headers": {"X-Api-Key": TOKEN}}],
        },
    )
    assert not requests_with_secret([foreign_server], TOKEN), foreign_server.requests
    assert requests_with_secret([fault_server], TOKEN)
    assert result["results"][0]["status"] == "downloaded", result["results"]
    assert sha(dest) == foreign_server.catalog["b.bin"][1]


@pytest.mark.parametrize("target_scheme", ["http", "https"])
def test_a_scheme_change_on_the_same_host_and_port_is_another_origin(tls_fault_server, tmp_path, target_scheme):
    """https://host:port -> http://host:port would send the token in clear text; http -> https
    is another origin too. One server answers both schemes on one port."""
    server = tls_fault_server
    start = server.https_url if target_scheme == "http" else server.url
    server.route("/model", lambda r: needs_token(r, Redirect(f"{target_scheme}://{server.authority}/files/b.bin")))
    dest = tmp_path / "vault/models/b.bin"
    result, _proc = run_module(
        "aria2_batch",
        {
            "state_dir": str(tmp_path / "vault/.state/models"),
            "max_tries": 1,
            "fail_on_error": False,
            "downloads": [{"url": start + "/model", "dest": str(dest), "token": TOKEN}],
        },
        env={"SSL_CERT_FILE": server.ca_file},
    )
    origin_scheme = "https" if target_scheme == "http" else "http"
    assert_secret_only_at(server, [server], TOKEN, scheme=origin_scheme)
    assert [r for r in requests_with_secret([server], TOKEN) if r.path == "/model"], server.requests
    assert not [r for r in server.requests if r.path == "/files/b.bin" and r.authorization], server.requests
    assert result["results"][0]["status"] in ("downloaded", "failed"), result["results"]


def _env_file(path, values, mode=0o600):
    path.write_text("".join("export {}='{}'\n".format(*item) for item in values.items()))
    path.chmod(mode)
    return path


def test_a_token_named_is_read_on_the_target_from_the_env_file(fault_server, foreign_server, tmp_path, monkeypatch):
    """Over SSH a module does not see the pod's environment: the pod's 0600 env file has it."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    fault_server.route("/model", lambda r: needs_token(r, Redirect(f"//{foreign_server.authority}/files/b.bin")))
    env_file = _env_file(tmp_path / "rp_environment", {"HF_TOKEN": TOKEN})
    args = {
        "state_dir": str(tmp_path / "vault/.state/models"),
        "env_file": str(env_file),
        "fail_on_error": False,
        "downloads": [
            {"url": fault_server.url + "/model", "dest": str(tmp_path / "vault/models/b.bin"), "token_name": "HF_TOKEN"}
        ],
    }
    result, proc = run_module("aria2_batch", args)
    assert result["results"][0]["status"] == "downloaded", result["results"]
    assert_secret_only_at(fault_server, [fault_server, foreign_server], TOKEN)
    assert requests_with_secret([fault_server], TOKEN)
    assert TOKEN not in proc.stdout + proc.stderr and '"token_name": "HF_TOKEN"' in proc.stdout

    env_file.chmod(0o644)
    refused, _proc = run_module(
        "aria2_batch", dict(args, downloads=[dict(args["downloads"][0], dest=str(tmp_path / "vault/models/again.bin"))])
    )
    reason = refused["results"][0]["reason"]
    assert refused["results"][0]["status"] == "failed"
    assert reason.startswith(f"cannot read HF_TOKEN: refusing to read secrets from {env_file}: its mode is 0644")
    assert "chmod 600" in reason


def test_the_environment_wins_over_the_env_file(fault_server, tmp_path):
    fault_server.route("/model", lambda r: needs_token(r, Serve("c.bin")))
    env_file = _env_file(tmp_path / "rp_environment", {"HF_TOKEN": "stale-token"})
    result, _proc = run_module(
        "aria2_batch",
        {
            "state_dir": str(tmp_path / "state"),
            "env_file": str(env_file),
            "downloads": [
                {"url": fault_server.url + "/model", "dest": str(tmp_path / "m/c.bin"), "token_name": "HF_TOKEN"}
            ],
        },
        env={"HF_TOKEN": TOKEN},
    )
    assert result["results"][0]["status"] == "downloaded", result["results"]
    assert not [r for r in fault_server.requests if r.authorization and "stale" in r.authorization]
