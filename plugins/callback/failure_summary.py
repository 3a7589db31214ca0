# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: failure_summary
type: notification
short_description: Write every failed task, with its whole message, to a private JSON file
version_added: 0.1.0
author:
  - aiclipse team (@aiclipse)
description:
  - Records each task that failed (and was not ignored) and each unreachable host, with the
    task's name, role, host and its whole message (several lines when it has them), in a JSON
    file of mode C(0600). The pod entrypoint C(aiclipse-entrypoint) enables it for its
    provisioning runs and prints its C(PROVISIONING FAILED) summary from that file, instead of
    parsing ansible's output for people.
  - The file is rewritten (atomically) at the start of the run and after each failure, so a run
    that is killed half-way still leaves the failures it had. C(complete) turns true when the
    run reaches its recap.
  - A result hidden with C(no_log) stays hidden; the file holds ansible's censored note instead
    of the message, exactly what any other callback sees.
  - "The file: C({\"version\": 1, \"complete\": bool, \"failures\": [{\"task\", \"role\", \"host\",
    \"action\", \"message\", \"unreachable\", \"censored\", \"rescued_by_block\"}]})."
requirements:
  - Enabled in the configuration (C(callbacks_enabled)) or with C(ANSIBLE_CALLBACKS_ENABLED).
options:
  path:
    description:
      - The JSON file to write. Nothing is written when it is not set.
    type: path
    env:
      - name: AICLIPSE_FAILURE_SUMMARY
    ini:
      - section: callback_failure_summary
        key: path
"""

import json
import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic

# The lines of a failed command's stderr kept with its message (the end holds the reason).
STDERR_LINES = 20


def _text(value):
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, default=str)


def _stderr_tail(result):
    stderr = _text(result.get("stderr")).strip()
    return "\n".join(stderr.splitlines()[-STDERR_LINES:])


def _message(result):
    """The whole reason a result gives: msg, the failed loop items' msgs, a command's stderr."""
    if result.get("censored"):
        return _text(result["censored"])
    parts = [_text(result.get("msg")).strip(), _stderr_tail(result)]
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item"))
            if item.get("censored"):
                parts.append(f"item {_text(label)}: {_text(item['censored'])}")
                continue
            parts.append(f"item {_text(label)}: {_text(item.get('msg')).strip()}")
            parts.append(_stderr_tail(item))
    message = "\n".join(part for part in parts if part)
    return message or f"failed without a message (rc {result.get('rc', '?')})"


def _rescued_by_block(task):
    """True when a block around the task has a rescue section (the play handles the failure)."""
    parent = getattr(task, "_parent", None)
    while parent is not None:
        if getattr(parent, "rescue", None):
            return True
        parent = getattr(parent, "_parent", None)
    return False


class CallbackModule(CallbackBase):
    """Failed tasks, with full messages, to the file the pod entrypoint reads."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "aiclipse.comfyui.failure_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.failures = []
        self.path = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.path = self.get_option("path")

    def _write(self, complete):
        if not self.path:
            return
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            text = json.dumps({"version": 1, "complete": complete, "failures": self.failures}, indent=1)
            write_file_atomic(self.path, text, mode=0o600, keep_owner=False, tmp_prefix=".failure-summary-")
        except OSError as exc:
            self._display.warning(f"failure_summary: cannot write {self.path}: {exc}")

    def _record(self, result, unreachable=False):
        data = result.result
        task = result.task
        role = getattr(task, "_role", None)
        self.failures.append(
            {
                "task": task.get_name(),
                "role": role.get_name() if role else None,
                "host": result.host.get_name(),
                "action": task.action,
                "message": _message(data),
                "unreachable": unreachable,
                "censored": bool(data.get("censored")),
                "rescued_by_block": _rescued_by_block(task),
            }
        )
        self._write(complete=False)

    def v2_playbook_on_start(self, playbook):
        self.failures = []
        self._write(complete=False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._record(result)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        self._write(complete=True)
