# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_summary
type: aggregate
short_description: One line per pod at the end of a fleet run, and a file to retry the ones that did not finish
version_added: 0.1.0
author:
  - aiclipse team (@aiclipse)
description:
  - At the end of a run of a playbook that sets the play variable C(aiclipse_fleet_summary) to true
    (C(playbooks/fleet.yml) does), prints each pod's outcome, C(provisioned), C(provisioned with
    failures) with what kept its start from being clean (a custom node or ComfyUI's requirements
    that failed - a warning at a pod start, so the play goes on), C(failed) with the task and its
    message, C(unreachable) with the reason, or C(skipped) with why the inventory left it out (a
    pod still starting, or without a public SSH port), and writes the names of the pods that did
    not finish to a retry file for C(--limit @<file>). Other playbooks (a pod's own start) are
    left alone.
  - C(provisioned with failures) comes from the fact C(__aiclipse_start_failures) that
    C(playbooks/site.yml) sets on such a pod; C(skipped) from the
    P(aiclipse.comfyui.runpod#inventory) inventory.
  - A pod whose SSH host key changed since it was pinned in the fleet's known_hosts is reported as
    refused, with the command that forgets the old key if the pod was knowingly replaced.
  - When every pod finished, the retry file is removed, so an old one is never run by mistake.
  - Only host names go to the retry file; messages are printed as the stdout callback prints them.
requirements:
  - Enabled in C(callbacks_enabled) (this collection's C(ansible.cfg) does).
options:
  retry_file:
    description:
      - Where the names of the pods that did not finish (every outcome but C(provisioned)) are
        written, one a line, mode 0600.
      - Default C(<directory of the first inventory source>/<playbook name>.retry), beside the
        fleet's C(known_hosts).
    type: path
    env:
      - name: AICLIPSE_FLEET_RETRY_FILE
    ini:
      - section: callback_fleet_summary
        key: retry_file
"""

import os
import shlex
import sys

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet.fleet_outcomes import (
    UNFINISHED,
    FleetOutcomes,
    left_out,
    render,
    write_retry_file,
)

SWITCH = "aiclipse_fleet_summary"


class CallbackModule(CallbackBase):
    """Per-pod outcomes of a fleet run and the retry file."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "aiclipse.comfyui.fleet_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._active = False
        self._playbook = None
        self._outcomes = FleetOutcomes()

    def v2_playbook_on_start(self, playbook):
        self._playbook = getattr(playbook, "_file_name", None)

    def v2_playbook_on_play_start(self, play):
        if str(play.get_vars().get(SWITCH, "")).lower() in ("true", "yes", "1"):
            self._active = True

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._outcomes.on_failed(result.host.get_name(), result.task.get_name(), result.task.action, result.result)

    def v2_runner_on_ok(self, result):
        self._outcomes.on_ok(result.host.get_name(), result.result)

    def v2_runner_on_unreachable(self, result):
        self._outcomes.on_unreachable(result.host.get_name(), result.result)

    def v2_playbook_on_stats(self, stats):
        if not self._active:
            return
        counts = {host: stats.summarize(host) for host in stats.processed}
        rows = self._outcomes.outcomes(counts, left_out())
        retry = [host for host, outcome, _detail in rows if outcome in UNFINISHED]
        path = self._retry_path()
        try:
            write_retry_file(path, retry)
        except OSError as exc:
            self._display.warning(f"fleet_summary: could not write the retry file {path}: {exc}")
            path = None
        self._display.banner("FLEET SUMMARY")
        for line in render(rows, path if retry else None, self._rerun_command()):
            self._display.display(line)

    def _retry_path(self):
        configured = self.get_option("retry_file")
        if configured:
            return os.path.abspath(configured)
        sources = list(context.CLIARGS.get("inventory") or [])
        first = next((source for source in sources if os.path.exists(source)), None)
        directory = first if first and os.path.isdir(first) else os.path.dirname(os.path.abspath(first or "."))
        name = os.path.splitext(os.path.basename(self._playbook or "fleet.yml"))[0]
        return os.path.join(os.path.abspath(directory), f"{name}.retry")

    @staticmethod
    def _rerun_command():
        """This run's command line without its own --limit."""
        args, skip = [], False
        for arg in sys.argv[1:]:
            if skip:
                skip = False
                continue
            if arg in ("-l", "--limit"):
                skip = True
                continue
            if arg.startswith("--limit=") or (arg.startswith("-l") and not arg.startswith("--")):
                continue
            args.append(arg)
        return " ".join(shlex.quote(arg) for arg in [os.path.basename(sys.argv[0] or "ansible-playbook"), *args])
