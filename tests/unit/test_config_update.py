"""aiclipse-config-update's pieces without git or ansible: the copies kept in the vault, the
fallback order, and what its one log line may contain."""
import importlib.machinery
import importlib.util
import os

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

A, B, C = ("a" * 40), ("b" * 40), ("c" * 40)


@pytest.fixture
def store(tmp_path):
    store = cu.ConfigStore(str(tmp_path / "state"))
    store.prepare()
    return store


def make_copy_files(path):
    os.makedirs(path, exist_ok=True)
    for name in ("site.yml", "ansible.cfg"):
        with open(os.path.join(path, name), "w", encoding="utf-8") as handle:
            handle.write("---\n")
    return path


def make_copy(store, commit):
    return make_copy_files(os.path.join(store.checkouts, commit))


@pytest.mark.parametrize("text, shown", [
    ("https://user:ghp_token123@github.com/org/config.git", "https://***@github.com/org/config.git"),
    ("http://tok@127.0.0.1:8080/x.git@main", "http://***@127.0.0.1:8080/x.git@main"),
    ("fatal: unable to access 'https://a:b@host/r/': timeout", "fatal: unable to access 'https://***@host/r/': timeout"),
    ("https://github.com/org/config.git", "https://github.com/org/config.git"),
    ("file:///srv/config.git", "file:///srv/config.git"),
])
def test_credentials_in_urls_are_hidden(text, shown):
    assert cu.redact(text) == shown


def test_url_credentials_become_a_header_for_git_not_part_of_its_argv(monkeypatch):
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    url, config = cu.split_credentials("https://bot:p%40ss@git.example.com:8443/org/pods.git")
    assert url == "https://git.example.com:8443/org/pods.git"
    assert config == {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                      "GIT_CONFIG_VALUE_0": "Authorization: Basic Ym90OnBAc3M="}  # bot:p@ss
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")  # the pod's own GIT_CONFIG_* entries are kept
    assert cu.split_credentials("http://t@h/r.git")[1]["GIT_CONFIG_KEY_2"] == "http.extraHeader"
    for plain in ("https://github.com/org/pods.git", "git@github.com:org/pods.git",
                  "ssh://git@github.com/org/pods.git", "file:///srv/pods.git"):
        assert cu.split_credentials(plain) == (plain, {})


def test_booleans_are_strict_so_a_typo_never_turns_signature_checks_off():
    assert all(cu.parse_bool("X", word) for word in ("true", "True", "1", "yes", " on "))
    assert not any(cu.parse_bool("X", word) for word in ("false", "0", "no", "off", "", None))
    with pytest.raises(cu.UpdateFailed, match="CONFIG_VERIFY_COMMIT='ture' is not a boolean"):
        cu.Settings({"CONFIG_VERIFY_COMMIT": "ture"}).verify_commit()


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/x", "-b", "main branch", "a..b", "main;id", ""])
def test_refs_git_could_read_as_options_are_refused(ref):
    settings = cu.Settings({"CONFIG_BRANCH": ref})
    if not ref:
        assert settings.checked_ref() == "main"
        return
    with pytest.raises(cu.UpdateFailed, match="is not a branch, tag or commit name"):
        settings.checked_ref()


def test_settings_defaults_and_bad_timeouts():
    settings = cu.Settings({"CONFIG_REPO": " https://u:p@h/r.git "})
    assert (settings.ref, settings.timeout(), settings.verify_commit()) == ("main", 120, False)
    assert settings.source == "https://***@h/r.git@main"
    assert cu.Settings({"CONFIG_UPDATE_TIMEOUT": "7"}).timeout() == 7
    for bad in ("0", "-3", "soon"):
        with pytest.raises(cu.UpdateFailed, match="CONFIG_UPDATE_TIMEOUT"):
            cu.Settings({"CONFIG_UPDATE_TIMEOUT": bad}).timeout()


def test_module_result_is_read_after_warnings_and_git_verdict_is_preferred():
    out = ('[WARNING]: Ignoring depth argument.\nlocalhost | FAILED! => {\n    "changed": false,\n'
           '    "msg": "Cloning into \'/x\'...\\nmore",\n    "stderr": "Cloning into \'/x\'...\\n'
           'fatal: repository not found\\n"\n}\n')
    result = cu.module_result(out)
    assert result["changed"] is False
    assert cu.failure_reason(result, out, "") == "Cloning into '/x'...: fatal: repository not found"
    assert cu.module_result("ERROR! no json here") is None
    assert cu.failure_reason(None, "", "line 1\n[ERROR]: boom\n") == "line 1 [ERROR]: boom"


def test_switching_keeps_the_copy_before_as_previous(store):
    for commit in (A, B):
        make_copy(store, commit)
    assert store.switch_to(A) is None
    assert (store.commit_of("current"), store.commit_of("previous")) == (A, None)
    assert store.switch_to(B) == A
    assert (store.commit_of("current"), store.commit_of("previous")) == (B, A)
    assert store.switch_to(B) == B  # same commit: nothing moves
    assert store.commit_of("previous") == A
    assert os.readlink(store.link_path("current")) == os.path.join("checkouts", B)  # relative: the vault may move
    assert not [name for name in os.listdir(store.state_dir) if name.startswith(".current")]


def test_fallback_order_last_good_then_previous_then_baked(tmp_path, store):
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / "site.yml").write_text("---\n")
    (baked / "ansible.cfg").write_text("[defaults]\n")

    assert cu.fallback(store, str(tmp_path / "nothing")) == (
        None, "nothing: no copy in the vault and no site.yml in the baked copy %s" % (tmp_path / "nothing"))
    assert cu.fallback(store, str(baked)) == (str(baked), "the copy baked into the image %s" % baked)

    make_copy(store, A)
    make_copy(store, B)
    store.switch_to(A)
    store.switch_to(B)
    assert cu.fallback(store, str(baked)) == (os.path.join(store.checkouts, B), "the last good copy " + B[:12])
    assert cu.fallback(store, str(baked), baked_first=True)[0] == str(baked)

    # The last good copy lost a file (or was deleted by hand): the one before it runs.
    os.unlink(os.path.join(store.checkouts, B, "ansible.cfg"))
    assert cu.fallback(store, str(baked)) == (
        os.path.join(store.checkouts, A), "the copy before the last good one " + A[:12])


def test_with_signature_checks_on_unchecked_copies_are_passed_over(tmp_path, store):
    for commit in (A, B):
        make_copy(store, commit)
    cu.mark_verified(os.path.join(store.checkouts, A))
    store.switch_to(A)
    store.switch_to(B)  # B was fetched while CONFIG_VERIFY_COMMIT was off
    assert cu.fallback(store, str(tmp_path / "none"))[0] == os.path.join(store.checkouts, B)
    assert cu.fallback(store, str(tmp_path / "none"), verified_only=True) == (
        os.path.join(store.checkouts, A),
        "the copy before the last good one %s (not %s: fetched before CONFIG_VERIFY_COMMIT was on)" % (A[:12], B[:12]))
    os.unlink(os.path.join(store.checkouts, A, cu.VERIFIED_MARK))
    directory, label = cu.fallback(store, str(tmp_path / "none"), verified_only=True)
    assert directory is None and label.startswith("nothing: ") and "not %s, %s" % (B[:12], A[:12]) in label


def test_prune_keeps_current_and_previous_and_clears_leftovers_of_killed_runs(store):
    for commit in (A, B, C):
        make_copy(store, commit)
    store.switch_to(A)
    store.switch_to(B)
    os.makedirs(os.path.join(store.state_dir, "incoming-killed", "checkout", ".git"))
    os.makedirs(os.path.join(store.state_dir, "trash-killed", "copy"))
    store.prune()
    assert sorted(os.listdir(store.checkouts)) == [A, B]
    assert sorted(os.listdir(store.state_dir)) == ["checkouts", "current", "previous"]


def test_adopt_gives_the_final_name_only_to_a_complete_copy(store):
    staging = store.new_staging()
    checkout = os.path.join(staging, "checkout")
    os.makedirs(checkout)
    assert store.adopt(checkout, A, False) == os.path.join(store.checkouts, A)
    assert not os.path.exists(checkout)
    # Already there (validated before): the fresh clone is dropped, the known copy kept.
    again = os.path.join(store.new_staging(), "checkout")
    os.makedirs(again)
    open(os.path.join(again, "marker"), "w", encoding="utf-8").close()
    make_copy_files(os.path.join(store.checkouts, A))
    assert store.adopt(again, A, False) == os.path.join(store.checkouts, A)
    assert not os.path.exists(os.path.join(store.checkouts, A, "marker"))
    assert not os.path.exists(again)
    # A copy by that name that lost its files is replaced by the fresh one.
    os.unlink(os.path.join(store.checkouts, A, "site.yml"))
    fresh = os.path.join(store.new_staging(), "checkout")
    make_copy_files(fresh)
    assert store.adopt(fresh, A, True) == os.path.join(store.checkouts, A)
    assert cu.is_usable(os.path.join(store.checkouts, A)) and not os.path.exists(fresh)
    assert cu.is_verified(os.path.join(store.checkouts, A))


def test_unusable_vault_runs_the_baked_copy(tmp_path, capsys):
    vault = tmp_path / "vault"
    vault.write_text("a file where the vault should be")
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / "site.yml").write_text("---\n")
    (baked / "ansible.cfg").write_text("")
    assert cu.main(["--vault", str(vault), "--baked", str(baked)], env={"CONFIG_REPO": "file:///x"}) == 0
    out, err = capsys.readouterr()
    assert out == "%s\n" % baked
    assert "cannot use the vault %s" % vault in err and "running the copy baked into the image" in err


def test_without_config_repo_only_the_log_line_is_written_to_the_vault(tmp_path, capsys):
    vault = tmp_path / "vault"
    assert cu.main(["--vault", str(vault), "--baked", str(tmp_path / "none")], env={}) == 1
    assert capsys.readouterr().out == ""
    assert [str(p.relative_to(vault)) for p in vault.rglob("*")] == ["logs", "logs/config-update.log"]


def test_vault_and_baked_copy_follow_the_entrypoints_variables():
    args = cu.parse_args([], {"AICLIPSE_ROOT": "/data"})
    assert (args.vault, args.baked) == ("/data/aiclipse", "/opt/aiclipse/config")
    args = cu.parse_args([], {"AICLIPSE_ROOT": "/data", "AICLIPSE_VAULT": "/v", "AICLIPSE_CONFIG_DIR": "/img"})
    assert (args.vault, args.baked) == ("/v", "/img")
