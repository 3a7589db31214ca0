"""The fleet summary's reading of a run (plugin_utils._fleet.fleet_outcomes) and the RunPod
record rules (plugin_utils._fleet.runpod_hosts), in-process. The ssh text is what OpenSSH 9.2
prints when a pinned host key changed (captured from a run against a harness pod)."""

import stat
import sys

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet import runpod_hosts  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet.fleet_outcomes import (  # noqa: E402
    FAILED,
    PARTIAL,
    PROVISIONED,
    SKIPPED,
    START_FAILURES_FACT,
    UNREACHABLE,
    FleetOutcomes,
    host_key_change,
    render,
    write_retry_file,
)

CHANGED_KEY_SSH = """timed out waiting for ping module test: Data could not be sent to remote host "127.0.0.1". \
Make sure this host can be reached over ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:k3qkcbTgd746M7En5TV7xb1bBmDTtIUJxZoxWjpVkjM.
Please contact your system administrator.
Add correct host key in /srv/fleet inv/known_hosts to get rid of this message.
Offending ED25519 key in /srv/fleet/known_hosts:3
  remove with:
  ssh-keygen -f "/srv/fleet/known_hosts" -R "[127.0.0.1]:42055"
Host key for [127.0.0.1]:42055 has changed and you have requested strict checking.
Host key verification failed."""


def test_a_changed_host_key_is_recognised_with_file_line_and_address():
    assert host_key_change(CHANGED_KEY_SSH) == {
        "file": "/srv/fleet/known_hosts",
        "line": 3,
        "host": "[127.0.0.1]:42055",
    }
    assert host_key_change("ssh: connect to host 127.0.0.1 port 4: Connection refused") is None


def test_outcomes_name_each_pod_with_task_and_reason():
    outcomes = FleetOutcomes()
    outcomes.on_failed(
        "pod-b", "Wait briefly for the pod's SSH", "ansible.builtin.wait_for_connection", {"msg": CHANGED_KEY_SSH}
    )
    outcomes.on_failed(
        "pod-c",
        "aiclipse.comfyui.models : Read the models manifests",
        "aiclipse.comfyui.model_manifest",
        {"msg": "broken_models.txt:2: unknown source 'hugginface'\n(use huggingface, civitai, url or r2)"},
    )
    # Only the first failure of a pod counts.
    outcomes.on_failed("pod-c", "later task", "ansible.builtin.debug", {"msg": "later"})
    outcomes.on_unreachable(
        "pod-d",
        {
            "msg": "Failed to connect to the host via ssh: ssh: connect to host "
            "127.0.0.1 port 40999: Connection refused",
            "unreachable": True,
        },
    )
    counts = {
        "pod-a": {"changed": 9},
        "pod-e": {"changed": 0},
        "pod-b": {"failures": 1},
        "pod-c": {"failures": 1, "changed": 2},
        "pod-d": {"unreachable": 1},
    }
    rows = outcomes.outcomes(counts)
    assert [(host, outcome) for host, outcome, _d in rows] == [
        ("pod-a", PROVISIONED),
        ("pod-b", UNREACHABLE),
        ("pod-c", FAILED),
        ("pod-d", UNREACHABLE),
        ("pod-e", PROVISIONED),
    ]
    detail = dict((host, d) for host, _o, d in rows)
    assert detail["pod-a"] == "9 changed" and detail["pod-e"] == "nothing to change"
    assert detail["pod-c"] == (
        "aiclipse.comfyui.models : Read the models manifests: broken_models.txt:2: unknown "
        "source 'hugginface' (use huggingface, civitai, url or r2)"
    )
    assert detail["pod-d"].endswith("port 40999: Connection refused")
    assert detail["pod-b"] == (
        "REFUSED: pod-b's SSH host key changed since it was recorded in /srv/fleet/known_hosts (line 3). If you "
        "replaced or rebuilt pod-b, forget the old key with `ssh-keygen -R '[127.0.0.1]:42055' -f "
        "/srv/fleet/known_hosts` and retry it; otherwise something else answers at [127.0.0.1]:42055: do not provision it."
    )
    lines = render(rows, "/srv/fleet/fleet.retry", "ansible-playbook -i inventories/runpod playbooks/fleet.yml")
    assert lines[0] == "5 pods: 2 provisioned, 1 failed, 2 unreachable"
    assert lines[-1] == "  ansible-playbook -i inventories/runpod playbooks/fleet.yml --limit @/srv/fleet/fleet.retry"


def test_a_pod_whose_start_was_not_clean_and_a_pod_left_out_are_outcomes_of_their_own():
    outcomes = FleetOutcomes()
    facts = {START_FAILURES_FACT: ["custom node ComfyUI-X: clone failed\n(exit 128)", "ComfyUI requirements: pip"]}
    outcomes.on_ok("pod-b", {"ansible_facts": facts})
    outcomes.on_ok("pod-a", {"ansible_facts": {START_FAILURES_FACT: []}})
    outcomes.on_ok("pod-a", {"changed": True})
    # A failure after the note wins: the pod failed.
    outcomes.on_ok("pod-c", {"ansible_facts": facts})
    outcomes.on_failed("pod-c", "later", "ansible.builtin.fail", {"msg": "boom"})
    counts = {"pod-a": {"changed": 1}, "pod-b": {"changed": 3}, "pod-c": {"failures": 1}}
    rows = outcomes.outcomes(counts, {"starting": "left out of the inventory: it has no runtime yet", "pod-a": "x"})
    assert rows == [
        ("pod-a", PROVISIONED, "1 changed"),
        ("pod-b", PARTIAL, "custom node ComfyUI-X: clone failed (exit 128); ComfyUI requirements: pip"),
        ("pod-c", FAILED, "later: boom"),
        ("starting", SKIPPED, "left out of the inventory: it has no runtime yet"),
    ]
    lines = render(rows, "/f.retry")
    assert lines[0] == "4 pods: 1 provisioned, 1 failed, 0 unreachable, 1 provisioned with failures, 1 skipped"
    assert "  pod-b     provisioned with failures: custom node ComfyUI-X" in lines[2]


def test_retry_file_lists_the_pods_and_goes_when_all_finished(tmp_path):
    path = tmp_path / "deeper" / "fleet.retry"
    write_retry_file(str(path), ["pod-b", "pod-d"])
    assert path.read_text() == "pod-b\npod-d\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_retry_file(str(path), [])
    assert not path.exists()
    write_retry_file(str(path), [])  # nothing there: still fine
    assert sorted(p.name for p in path.parent.iterdir()) == []


@pytest.mark.parametrize(
    "entries, expected",
    [
        (["A=1", "B=x=y", "C=", "novalue", "=orphan"], {"A": "1", "B": "x=y", "C": ""}),
        ({"A": "1", "B": None}, {"A": "1", "B": ""}),
        (None, {}),
    ],
)
def test_runpod_env_entries_are_key_value_strings(entries, expected):
    assert runpod_hosts.parse_env(entries) == expected


def test_only_allowed_non_secret_names_keep_their_values():
    env = {
        "TEMPLATE_TYPE": "sdxl",
        "HF_TOKEN": "hf_x",
        "MY_API_KEY": "k",
        "DB_PASSWORD": "p",
        "AWS_CREDENTIALS": "c",
        "REPO": "https://user:tok@host/x.git",
        "OTHER": "o",
    }
    shown, withheld = runpod_hosts.split_env(env, ["TEMPLATE_TYPE", "HF_TOKEN", "MY_API_KEY", "REPO"])
    assert shown == {"TEMPLATE_TYPE": "sdxl", "REPO": "https://********@host/x.git"}
    assert withheld == ["AWS_CREDENTIALS", "DB_PASSWORD", "HF_TOKEN", "MY_API_KEY", "OTHER"]


def test_a_cached_record_follows_a_narrower_allow_list():
    rec = {"env": {"TEMPLATE_TYPE": "sdxl", "COMFY_ARGS": "--cpu"}, "env_withheld": ["HF_TOKEN"]}
    again = runpod_hosts.reapply_env_policy(rec, ["TEMPLATE_TYPE"])
    assert again["env"] == {"TEMPLATE_TYPE": "sdxl"}
    assert again["env_withheld"] == ["COMFY_ARGS", "HF_TOKEN"]
