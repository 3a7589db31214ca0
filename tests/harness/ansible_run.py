"""Run the collection's modules and playbooks the way users do: through ansible itself.

Modules are addressed by FQCN from the checkout (ansible.cfg points collections_path at the
`collections/` symlink), so these runs exercise exactly what `ansible-playbook site.yml` runs.
"""

import json
import os
import subprocess
from dataclasses import dataclass

from .paths import REPO, VENV_BIN


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
            "ANSIBLE_LOCALHOST_WARNING": "0",
        }
    )
    env.update(extra or {})
    return env


def module_argv(module, args, *options):
    """`ansible localhost -m <module> -a <args>` as a user types it; `options` go before -m."""
    fqcn = module if "." in module else f"aiclipse.comfyui.{module}"
    return [
        str(VENV_BIN / "ansible"),
        "localhost",
        "-c",
        "local",
        "-i",
        "localhost,",
        "-e",
        "ansible_python_interpreter={{ ansible_playbook_python }}",
        *options,
        "-m",
        fqcn,
        # `-a {}` would be a raw parameter ansible refuses: a module without arguments gets none.
        *(["-a", json.dumps(args)] if args else []),
    ]


def json_result_env(extra=None):
    """ansible_env() with the ansible.posix.json stdout callback, for module_result()."""
    return ansible_env(
        {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", **(extra or {})}
    )


def module_result(stdout, stderr=""):
    """The one module result in a json-callback run's stdout (at -v and up, after ansible's own
    lines: the document starts at the first line that is "{")."""
    if not stdout.startswith("{") and "\n{\n" in stdout:
        stdout = stdout[stdout.index("\n{\n") + 1 :]
    try:
        return json.loads(stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(f"no module result ({exc}):\n{stdout}\n{stderr}") from None


def run_module(module, args, check=False, diff=False, env=None, verbosity=0, timeout=600):
    """Run one module on localhost; return (result dict, completed process).

    The result is what the module returned (ansible.posix.json callback), with `failed`,
    `changed` and `msg` as the play sees them.
    """
    options = (["--check"] if check else []) + (["--diff"] if diff else [])
    if verbosity:
        options.append("-" + "v" * verbosity)
    cmd = module_argv(module, args, *options)
    proc = subprocess.run(
        cmd, cwd=REPO, env=json_result_env(env), capture_output=True, text=True, check=False, timeout=timeout
    )
    return module_result(proc.stdout, proc.stderr), proc


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    stats: dict

    def host_stats(self, host="localhost"):
        return self.stats.get(host, {})

    @property
    def changed(self):
        return sum(s.get("changed", 0) for s in self.stats.values())

    @property
    def failed(self):
        return sum(s.get("failures", 0) + s.get("unreachable", 0) for s in self.stats.values())


def run_playbook(
    playbook,
    extra_vars=None,
    inventory=None,
    check=False,
    diff=False,
    env=None,
    verbosity=0,
    json_output=True,
    timeout=1200,
    args=(),
):
    """Run a playbook; with json_output the per-host stats are parsed from the json callback."""
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    cmd += list(args)
    extra = dict(env or {})
    if json_output:
        extra.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    proc = subprocess.run(
        cmd, cwd=REPO, env=ansible_env(extra), capture_output=True, text=True, check=False, timeout=timeout
    )
    stats = {}
    if json_output:
        try:
            stats = json.loads(proc.stdout[proc.stdout.index("{") :]).get("stats", {})
        except ValueError:
            stats = {}
    else:
        stats = _parse_recap(proc.stdout)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, stats)


def _parse_recap(stdout):
    stats = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line:
            host, _sep, rest = line.partition(":")
            fields = dict(item.split("=") for item in rest.split() if "=" in item)
            stats[host.strip()] = {
                "changed": int(fields.get("changed", 0)),
                "failures": int(fields.get("failed", 0)),
                "unreachable": int(fields.get("unreachable", 0)),
                "ok": int(fields.get("ok", 0)),
            }
    return stats
