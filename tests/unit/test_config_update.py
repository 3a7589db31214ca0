"""aiclipse-config-update's pieces without a remote: the copies kept in the vault and what the
entrypoint's report does to them, the fallback order, which CONFIG_REPO values git is never
given, and what its one log line may contain."""

import importlib.machinery
import importlib.util
import json
import os
import time

import pytest

from harness.paths import REPO

SCRIPT = REPO / "roles" / "launcher" / "files" / "aiclipse-config-update"


def load_script():
    loader = importlib.machinery.SourceFileLoader("aiclipse_config_update", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


cu = load_script()

A, B, C, D = ("a" * 40), ("b" * 40), ("c" * 40), ("d" * 40)
KEYS = "sha256:" + "0" * 64


@pytest.fixture
def store(tmp_path):
    store = cu.ConfigStore(str(tmp_path / "vault" / ".state" / "config"))
    store.prepare()
    return store


@pytest.fixture
def log(tmp_path):
    return cu.BootLog(str(tmp_path / "vault" / "logs" / "config-update.log"))


def make_copy_files(path):
    os.makedirs(os.path.join(path, ".git"), exist_ok=True)
    for name in ("site.yml", "ansible.cfg"):
        with open(os.path.join(path, name), "w", encoding="utf-8") as handle:
            handle.write("---\n")
    return path


def make_copy(store, commit, age=0):
    path = make_copy_files(os.path.join(store.checkouts, commit))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


OLD = cu.HANDOUT_LEASE_SECONDS + 60


@pytest.mark.parametrize(
    "text, shown",
    [
        ("https://user:ghp_token123@github.com/org/config.git", "https://***@github.com/org/config.git"),
        ("http://tok@127.0.0.1:8080/x.git@main", "http://***@127.0.0.1:8080/x.git@main"),
        (
            "fatal: unable to access 'https://a:b@host/r/': timeout",
            "fatal: unable to access 'https://***@host/r/': timeout",
        ),
        # A raw '@' in the password: everything up to the last '@' before the host is userinfo.
        ("https://user:left@RIGHT@host/r.git@main", "https://***@host/r.git@main"),
        ("ssh://git:p@ss@host:22/r.git", "ssh://***@host:22/r.git"),
        ("https://github.com/org/config.git", "https://github.com/org/config.git"),
        ("file:///srv/config.git@main", "file:///srv/config.git@main"),
    ],
)
def test_credentials_in_urls_are_hidden(text, shown):
    assert cu.redact(text) == shown


def test_log_lines_escape_control_characters_so_no_value_starts_a_line(tmp_path, capsys):
    log = cu.BootLog(str(tmp_path / "logs" / "config-update.log"))
    log.write("could not update from file:///r@main\nforged line\r\x1b[2Kx\u2028y: https://u:p@h/x")
    err = capsys.readouterr().err
    assert err == (
        "aiclipse-config-update: could not update from file:///r@main\\nforged line\\r\\x1b[2Kx\\u2028y: "
        "https://***@h/x\n"
    )
    (line,) = (tmp_path / "logs" / "config-update.log").read_text().splitlines()
    assert line.endswith("file:///r@main\\nforged line\\r\\x1b[2Kx\\u2028y: https://***@h/x")


def test_url_credentials_go_to_a_credential_helper_for_that_origin_only(monkeypatch):
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    url, env = cu.split_credentials("https://bot:p%40ss@git.example.com:8443/org/pods.git")
    assert url == "https://git.example.com:8443/org/pods.git"
    assert (env["AICLIPSE_GIT_USERNAME"], env["AICLIPSE_GIT_PASSWORD"]) == ("bot", "p@ss")
    config = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    # Helpers configured elsewhere are reset (a `store` helper would write the token down), and
    # ours answers for this scheme, host and port only: never a header sent to every host.
    assert config["credential.helper"] == ""
    assert config["credential.https://git.example.com:8443.helper"] == cu.CREDENTIAL_HELPER
    assert not [key for key in config if "extraheader" in key.lower()]
    assert "p@ss" not in "".join(config.values())
    raw_at = cu.split_credentials("https://bot:left@RIGHT@h/r.git")
    assert raw_at[0] == "https://h/r.git" and raw_at[1]["AICLIPSE_GIT_PASSWORD"] == "left@RIGHT"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")  # the pod's own GIT_CONFIG_* entries are kept
    assert cu.split_credentials("http://t@h/r.git")[1]["GIT_CONFIG_KEY_2"] == "credential.helper"
    for plain in (
        "https://github.com/org/pods.git",
        "git@github.com:org/pods.git",
        "ssh://git@github.com/org/pods.git",
        "file:///srv/pods.git",
    ):
        assert cu.split_credentials(plain) == (plain, {})


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/pods.git",
        "https://bot:tok@git.example.com:8443/org/pods.git",
        "http://127.0.0.1:8080/config.git",
        "ssh://git@github.com/org/pods.git",
        "ssh://[::1]:2222/r.git",
        "git://127.0.0.1:9418/config.git",
        "file:///srv/config.git",
        "/srv/config.git",
        "git@github.com:org/pods.git",
        "github.com:org/pods.git",
        "git+ssh://git@host/r.git",
    ],
)
def test_plain_git_urls_and_paths_are_accepted(url):
    assert cu.url_problem(url) is None


@pytest.mark.parametrize(
    "url, problem",
    [
        ("--upload-pack=touch /tmp/x", "starts with '-'"),
        ("-oProxyCommand=x:r.git", "starts with '-'"),
        ("ext::sh -c touch% /tmp/x", "whitespace"),
        ("ext::sh", "remote helper"),
        ("fd::17", "remote helper"),
        ("file:///srv/x.git --upload-pack=x", "whitespace"),
        ("https://host/r.git\n--upload-pack=x", "whitespace"),
        ("ssh://-oProxyCommand=x/r.git", "host"),
        ("https://user@-x/r.git", "host"),
        ("ftp://host/r.git", "scheme 'ftp'"),
        ("https://[::1/r.git", "not a well-formed URL"),
        ("relative/config.git", "absolute path"),
        ("", "empty"),
    ],
)
def test_urls_git_could_read_as_options_or_commands_are_refused(url, problem):
    assert problem in cu.url_problem(url)
    settings = cu.Settings({"CONFIG_REPO": url})
    if url.strip():
        with pytest.raises(cu.UpdateFailed, match="CONFIG_REPO is not a git URL this updater accepts"):
            settings.checked_repo()
        assert settings.source == "CONFIG_REPO@main"  # never echoed: it may hold a token


def test_booleans_are_strict_so_a_typo_never_turns_signature_checks_off():
    assert all(cu.parse_bool("X", word) for word in ("true", "True", "1", "yes", " on "))
    assert not any(cu.parse_bool("X", word) for word in ("false", "0", "no", "off", "", None))
    with pytest.raises(cu.UpdateFailed, match="CONFIG_VERIFY_COMMIT='ture' is not a boolean"):
        cu.Settings({"CONFIG_VERIFY_COMMIT": "ture"}).verify_commit()


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/x", "-b", "main branch", "a..b", "main;id", "main\nx", ""])
def test_refs_git_could_read_as_options_are_refused(ref):
    settings = cu.Settings({"CONFIG_BRANCH": ref})
    if not ref:
        assert settings.checked_ref() == "main"
        return
    with pytest.raises(cu.UpdateFailed, match="is not a branch, tag or commit name"):
        settings.checked_ref()


def test_settings_defaults_bad_timeouts_and_the_keys_a_check_counts_against(tmp_path):
    settings = cu.Settings({"CONFIG_REPO": " https://u:p@h/r.git "})
    assert (settings.ref, settings.timeout(), settings.verify_commit()) == ("main", 120, False)
    assert settings.source == "https://***@h/r.git@main"
    assert cu.Settings({"CONFIG_UPDATE_TIMEOUT": "7"}).timeout() == 7
    for bad in ("0", "-3", "soon"):
        with pytest.raises(cu.UpdateFailed, match="CONFIG_UPDATE_TIMEOUT"):
            cu.Settings({"CONFIG_UPDATE_TIMEOUT": bad}).timeout()
    keys = tmp_path / "keys.asc"
    keys.write_text("key one")
    first = cu.Settings({"CONFIG_TRUSTED_KEYS": str(keys)}).keys_digest()
    keys.write_text("key two")
    assert first.startswith("sha256:") and cu.Settings({"CONFIG_TRUSTED_KEYS": str(keys)}).keys_digest() != first
    assert cu.Settings({}).keys_digest() == "user-keyring"
    assert cu.Settings({"CONFIG_TRUSTED_KEYS": str(tmp_path / "gone")}).keys_digest() == "unreadable"


def test_git_verdicts_are_preferred_over_progress_lines():
    err = "Cloning into '/x'...\nremote: Counting objects\nfatal: repository not found\n"
    assert cu.git_reason(err) == "fatal: repository not found"
    assert cu.git_reason("line 1\nline 2\nline 3\n") == "line 2 line 3"
    assert cu.git_reason("", "exit code 128") == "exit code 128"


def test_a_clean_start_promotes_the_copy_and_keeps_the_one_before(store, log, capsys):
    for commit in (A, B):
        make_copy(store, commit)
    assert cu.report(store, log, os.path.join(store.checkouts, A), 0) == 0
    assert (store.commit_of("last-good"), store.commit_of("previous-good")) == (A, None)
    assert cu.report(store, log, os.path.join(store.checkouts, B), 0) == 0
    assert (store.commit_of("last-good"), store.commit_of("previous-good")) == (B, A)
    assert cu.report(store, log, os.path.join(store.checkouts, B), 0) == 0  # again: nothing moves
    assert store.commit_of("previous-good") == A
    assert os.readlink(store.link_path("last-good")) == os.path.join("checkouts", B)  # relative: the vault may move
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"aiclipse-config-update: commit {A[:12]} provisioned cleanly: it is the last good copy now",
        f"aiclipse-config-update: commit {B[:12]} provisioned cleanly: it is the last good copy now (was {A[:12]})",
    ]
    assert not [name for name in os.listdir(store.state_dir) if name.startswith(".")]


def test_a_failed_start_keeps_the_copy_apart_unless_it_once_provisioned(store, log, capsys):
    for commit in (A, B):
        make_copy(store, commit)
    cu.report(store, log, os.path.join(store.checkouts, A), 0)
    cu.report(store, log, os.path.join(store.checkouts, B), 2)
    assert (store.commit_of("last-good"), store.commit_of("failed")) == (A, B)
    assert cu.failed_run(store, B).startswith(f"commit {B[:12]} failed to provision at ")
    assert "ansible-playbook exit code 2" in cu.failed_run(store, B)
    with pytest.raises(cu.UpdateFailed, match="not run again"):
        cu.known_copy(store, B, None)
    assert "the next start runs the last good copy " + A[:12] in capsys.readouterr().err
    # The last good copy failing once (a download, a flaky mirror) does not make it a failed one.
    cu.report(store, log, os.path.join(store.checkouts, A), 4)
    assert cu.failed_run(store, A) is None and store.commit_of("last-good") == A
    assert capsys.readouterr().err == ""
    # Nor does a copy that provisioned cleanly before.
    make_copy(store, C)
    cu.report(store, log, os.path.join(store.checkouts, C), 0)
    cu.report(store, log, os.path.join(store.checkouts, C), 1)
    assert cu.failed_run(store, C) is None and store.commit_of("failed") == B
    # The baked copy and unknown directories are nobody's business here.
    assert cu.report(store, log, "/opt/aiclipse/config", 0) == 0
    assert (
        json.loads(open(os.path.join(store.checkouts, B, cu.OUTCOME_MARK), encoding="utf-8").read())["exit_code"] == 2
    )


def test_vaults_from_before_keep_their_copies_as_good_ones(store):
    for commit in (A, B):
        make_copy(store, commit)
    for name, commit in (("current", B), ("previous", A)):
        os.symlink(os.path.join("checkouts", commit), store.link_path(name))
    store.adopt_legacy_links()
    assert (store.commit_of("last-good"), store.commit_of("previous-good")) == (B, A)
    assert not os.path.lexists(store.link_path("current"))
    # A vault an old image touched again after the new one: the new links win.
    os.symlink(os.path.join("checkouts", A), store.link_path("current"))
    store.adopt_legacy_links()
    assert store.commit_of("last-good") == B and not os.path.lexists(store.link_path("current"))


def test_fallback_order_last_good_then_previous_then_baked(tmp_path, store, log):
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / "site.yml").write_text("---\n")
    (baked / "ansible.cfg").write_text("[defaults]\n")

    assert cu.fallback(store, str(tmp_path / "nothing")) == (
        None,
        "nothing: no copy in the vault and no site.yml in the baked copy %s" % (tmp_path / "nothing"),
    )
    assert cu.fallback(store, str(baked)) == (str(baked), f"the copy baked into the image {baked}")

    make_copy(store, A)
    make_copy(store, B)
    cu.report(store, log, os.path.join(store.checkouts, A), 0)
    cu.report(store, log, os.path.join(store.checkouts, B), 0)
    assert cu.fallback(store, str(baked)) == (os.path.join(store.checkouts, B), "the last good copy " + B[:12])
    assert cu.fallback(store, str(baked), baked_first=True)[0] == str(baked)
    # A copy that failed (never provisioned) is no fallback.
    make_copy(store, C)
    cu.report(store, log, os.path.join(store.checkouts, C), 2)
    assert cu.fallback(store, str(baked))[0] == os.path.join(store.checkouts, B)

    # The last good copy lost a file (or was deleted by hand): the one before it runs.
    os.unlink(os.path.join(store.checkouts, B, "ansible.cfg"))
    assert cu.fallback(store, str(baked)) == (
        os.path.join(store.checkouts, A),
        "the copy before the last good one " + A[:12],
    )


def test_with_signature_checks_on_copies_checked_against_other_keys_are_passed_over(tmp_path, store, log):
    for commit in (A, B):
        make_copy(store, commit)
    cu.mark_verified(os.path.join(store.checkouts, A), KEYS)
    cu.report(store, log, os.path.join(store.checkouts, A), 0)
    cu.report(store, log, os.path.join(store.checkouts, B), 0)  # B was fetched while CONFIG_VERIFY_COMMIT was off
    assert cu.fallback(store, str(tmp_path / "none"))[0] == os.path.join(store.checkouts, B)
    assert cu.fallback(store, str(tmp_path / "none"), verified_with=KEYS) == (
        os.path.join(store.checkouts, A),
        f"the copy before the last good one {A[:12]} (not {B[:12]}: not signature-checked against CONFIG_TRUSTED_KEYS)",
    )
    directory, label = cu.fallback(store, str(tmp_path / "none"), verified_with="sha256:other-keys")
    assert directory is None and label.startswith("nothing: ") and f"not {B[:12]}, {A[:12]}" in label


def test_prune_keeps_the_links_and_every_copy_handed_out_lately(store, log):
    # A, B: last good and the one before; C: failed; D handed to another boot an hour ago.
    for commit in (A, B, C):
        make_copy(store, commit, age=OLD)
    make_copy(store, D, age=3600)
    stale = make_copy(store, "e" * 40, age=OLD)
    cu.report(store, log, os.path.join(store.checkouts, A), 0)
    cu.report(store, log, os.path.join(store.checkouts, B), 0)
    cu.report(store, log, os.path.join(store.checkouts, C), 3)
    os.makedirs(os.path.join(store.state_dir, "incoming-killed", "checkout", ".git"))
    os.makedirs(os.path.join(store.state_dir, "trash-killed", "copy"))
    assert store.prune(None, None) == ["e" * 40]
    assert sorted(os.listdir(store.checkouts)) == [A, B, C, D]
    assert sorted(os.listdir(store.state_dir)) == ["checkouts", "failed", "last-good", "lock", "previous-good"]
    assert not os.path.exists(stale)
    # Handing a copy out renews its lease; the copy this boot runs is never removed.
    then = time.time() - OLD
    os.utime(os.path.join(store.checkouts, D), (then, then))
    store.hand_out(os.path.join(store.checkouts, D))
    assert store.prune(None, None) == []
    os.utime(os.path.join(store.checkouts, D), (then, then))
    assert store.prune(None, os.path.join(store.checkouts, D)) == []
    assert store.prune(None, None) == [D]


def test_discard_needs_no_new_inode(store, monkeypatch):
    """Renamed aside, then deleted: no temporary directory is made (a vault out of inodes)."""
    path = make_copy(store, A)

    def no_inodes(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cu, "make_temp_dir", no_inodes)
    store.discard(path)
    assert os.listdir(store.checkouts) == [] and not [n for n in os.listdir(store.state_dir) if n.startswith("trash-")]


def test_unusable_vault_runs_the_baked_copy(tmp_path, capsys):
    vault = tmp_path / "vault"
    vault.write_text("a file where the vault should be")
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / "site.yml").write_text("---\n")
    (baked / "ansible.cfg").write_text("")
    assert cu.main(["--vault", str(vault), "--baked", str(baked)], env={"CONFIG_REPO": "file:///x"}) == 0
    out, err = capsys.readouterr()
    assert out == f"{baked}\n"
    assert f"cannot use the vault {vault}" in err and "running the copy baked into the image" in err


def test_without_config_repo_only_the_log_line_is_written_to_the_vault(tmp_path, capsys):
    vault = tmp_path / "vault"
    assert cu.main(["--vault", str(vault), "--baked", str(tmp_path / "none")], env={}) == 1
    assert capsys.readouterr().out == ""
    assert [str(p.relative_to(vault)) for p in vault.rglob("*")] == ["logs", "logs/config-update.log"]


def test_a_report_for_the_baked_copy_writes_nothing(tmp_path, capsys):
    vault = tmp_path / "vault"
    assert cu.main(["--vault", str(vault), "--provisioned", str(tmp_path / "baked"), "--exit-code", "0"], env={}) == 0
    assert capsys.readouterr() == ("", "") and not vault.exists()
    with pytest.raises(SystemExit):
        cu.parse_args(["--provisioned", "/x"], {})


def test_vault_and_baked_copy_follow_the_entrypoints_variables():
    args = cu.parse_args([], {"AICLIPSE_ROOT": "/data"})
    assert (args.vault, args.baked) == ("/data/aiclipse", "/opt/aiclipse/config")
    args = cu.parse_args([], {"AICLIPSE_ROOT": "/data", "AICLIPSE_VAULT": "/v", "AICLIPSE_CONFIG_DIR": "/img"})
    assert (args.vault, args.baked) == ("/v", "/img")
