# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What happened to each pod of a fleet run, in one line each, and the file to retry the rest.

Used by the fleet_summary callback. A pod is ``provisioned`` (no failure, reachable to the end),
``provisioned with failures`` (the run went on, but what kept the start from being clean - a
custom node that failed, which is a warning at a pod start - is listed), ``failed`` (the first
task that failed and its message), ``unreachable`` (why SSH could not reach it) or ``skipped``
(the inventory left it out: still starting, no public SSH port). A pod whose SSH host key
changed since it was pinned is unreachable, and the line says what to do about it. The retry
file lists every pod that is not plainly provisioned, one a line, for
``ansible-playbook ... --limit @<file>``.
"""

from __future__ import annotations

import os
import re
import shlex

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import write_file_atomic

PROVISIONED, FAILED, UNREACHABLE = "provisioned", "failed", "unreachable"
PARTIAL, SKIPPED = "provisioned with failures", "skipped"
# What keeps a run from being clean: the outcomes the retry file lists.
UNFINISHED = (PARTIAL, FAILED, UNREACHABLE, SKIPPED)
# The fact site.yml sets on a pod whose start was not clean: a list of "<what>: <reason>".
START_FAILURES_FACT = "__aiclipse_start_failures"
# The retry file holds host names only; private to the user who ran the fleet all the same.
RETRY_FILE_MODE = 0o600
# A failure of these tasks means the pod never answered, not that provisioning went wrong.
CONNECTION_ACTIONS = ("wait_for_connection", "ansible.builtin.wait_for_connection")

# Pods an inventory source of this run left out ({host name: why}). Inventory plugins and
# callbacks run in the same controller process; the inventory is read before the callback
# exists, so it leaves its note here.
_LEFT_OUT = {}


def note_left_out(host, reason):
    """Record that the inventory left the pod `host` out of this run, and why."""
    _LEFT_OUT[host] = reason


def left_out():
    """{host name: why} of the pods the inventory left out of this run."""
    return dict(_LEFT_OUT)


_OFFENDING = re.compile(r"Offending \S+ key in (\S+):(\d+)")
_CHANGED_FOR = re.compile(r"Host key for (\S+) has changed")
_KEY_CHANGED_MARKERS = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "has changed and you have requested strict checking")


def one_line(text, limit=300):
    """Whitespace folded into single spaces, cut to `limit` characters."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def result_message(result):
    """The most telling message of a task result (a loop's first failed item included)."""
    for key in ("msg", "stderr", "exception"):
        if result.get(key):
            return str(result[key])
    for item in result.get("results") or []:
        if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
            return result_message(item)
    return "no message"


def host_key_change(text):
    """{'file', 'line', 'host'} when ssh refused the host because its key changed, else None."""
    text = str(text or "")
    if not any(marker in text for marker in _KEY_CHANGED_MARKERS):
        return None
    offending = _OFFENDING.search(text)
    changed_for = _CHANGED_FOR.search(text)
    return {
        "file": offending.group(1) if offending else None,
        "line": int(offending.group(2)) if offending else None,
        "host": changed_for.group(1) if changed_for else None,
    }


def unreachable_reason(host, text):
    change = host_key_change(text)
    if not change:
        return one_line(text)
    where = change["file"] or "the fleet's known_hosts file"
    if change["line"]:
        where += f" (line {change['line']})"
    forget = "ssh-keygen -R " + shlex.quote(change["host"] or "<address>")
    if change["file"]:
        forget += " -f " + shlex.quote(change["file"])
    return (
        f"REFUSED: {host}'s SSH host key changed since it was recorded in {where}. If you replaced "
        f"or rebuilt {host}, forget the old key with `{forget}` and retry it; otherwise something else "
        f"answers at {change['host'] or 'its address'}: do not provision it."
    )


class FleetOutcomes:
    """Collects the first failure or unreachable result of each host during a run."""

    def __init__(self):
        self.failed = {}
        self.unreachable = {}
        self.unfinished = {}

    def on_ok(self, host, result):
        """Note what a pod reported kept its start from being clean (``START_FAILURES_FACT``)."""
        problems = (result.get("ansible_facts") or {}).get(START_FAILURES_FACT)
        if problems and isinstance(problems, list):
            self.unfinished[host] = "; ".join(one_line(problem, 200) for problem in problems)
        elif isinstance(problems, list):
            self.unfinished.pop(host, None)

    def on_failed(self, host, task_name, action, result):
        if host in self.failed or host in self.unreachable:
            return
        message = result_message(result)
        if action in CONNECTION_ACTIONS or result.get("unreachable"):
            self.unreachable[host] = unreachable_reason(host, message)
        else:
            self.failed[host] = f"{task_name}: {one_line(message)}"

    def on_unreachable(self, host, result):
        if host not in self.unreachable:
            self.failed.pop(host, None)
            self.unreachable[host] = unreachable_reason(host, result_message(result))

    def outcomes(self, counts, skipped=None):
        """[(host, outcome, detail)] in host order, from the run's per-host counts
        ({host: {'failures', 'unreachable', 'changed', ...}}), what was collected and the pods
        the inventory left out (`skipped`, {host: why})."""
        rows = []
        for host, why in (skipped or {}).items():
            if host not in counts:
                rows.append((host, SKIPPED, why))
        for host in sorted(counts):
            stat = counts[host]
            if host in self.unreachable or stat.get("unreachable"):
                rows.append((host, UNREACHABLE, self.unreachable.get(host, "SSH could not reach it")))
            elif host in self.failed or stat.get("failures"):
                rows.append((host, FAILED, self.failed.get(host, "a task failed")))
            elif host in self.unfinished:
                rows.append((host, PARTIAL, self.unfinished[host]))
            else:
                changed = stat.get("changed", 0)
                rows.append((host, PROVISIONED, f"{changed} changed" if changed else "nothing to change"))
        return sorted(rows, key=lambda row: row[0])


def render(rows, retry_file=None, rerun=None):
    """The summary as lines of text."""
    total = dict.fromkeys((PROVISIONED, FAILED, UNREACHABLE, PARTIAL, SKIPPED), 0)
    for _host, outcome, _detail in rows:
        total[outcome] += 1
    width = max([len(host) for host, _o, _d in rows] + [4])
    head = (
        f"{len(rows)} pods: {total[PROVISIONED]} provisioned, {total[FAILED]} failed, {total[UNREACHABLE]} unreachable"
    )
    for outcome in (PARTIAL, SKIPPED):
        if total[outcome]:
            head += f", {total[outcome]} {outcome}"
    lines = [head]
    for host, outcome, detail in rows:
        lines.append(f"  {host.ljust(width)}  {outcome}: {detail}")
    if retry_file:
        lines.append(f"Retry only the pods that did not finish ({retry_file} lists them):")
        lines.append(f"  {rerun or 'ansible-playbook ...'} --limit @{retry_file}")
    return lines


def write_retry_file(path, hosts):
    """One host a line (``--limit @path``), atomically (mode ``RETRY_FILE_MODE``); no hosts:
    the file is removed."""
    if not hosts:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    write_file_atomic(path, "".join(f"{host}\n" for host in hosts), mode=RETRY_FILE_MODE, tmp_prefix=".fleet-retry-")
