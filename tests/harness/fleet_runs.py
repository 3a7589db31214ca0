"""Running playbooks/fleet.yml-shaped plays against the RunPod API stand-in and reading the
fleet summary the aiclipse.comfyui.fleet_summary callback prints."""

import re

from .ansible_run import run_playbook

OUTCOMES = "provisioned with failures|provisioned|failed|unreachable|skipped"


def fleet_summary(output):
    """(header line "N pods: ...", {pod: (outcome, detail)}) of the run's FLEET SUMMARY."""
    block = output[output.index("FLEET SUMMARY") :]
    head = re.search(r"^\d+ pods: .*$", block, re.M)
    rows = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(rf"^  (\S+)\s+({OUTCOMES}): (.*)$", block, re.M)}
    return head.group(0) if head else None, rows


def run_fleet_playbook(playbook, inventory, api_key, retry_file, *args, extra_vars=None):
    """The play through the runpod inventory (api_key in RUNPOD_API_KEY, never in its output)."""
    run = run_playbook(
        playbook,
        extra_vars,
        inventory=inventory,
        json_output=False,
        args=args,
        env={"RUNPOD_API_KEY": api_key, "AICLIPSE_FLEET_RETRY_FILE": str(retry_file)},
    )
    assert api_key not in run.stdout + run.stderr
    return run
