# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The custom_nodes module's side of provisioning from workflows: read the workflows, resolve
their node packs (node_sources), and after the install write the report a person reads.

Every problem here is a warning: a workflow, the registry or the map file can never fail the
start.
"""

from __future__ import annotations

import os

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.comfy_registry import (
    DEFAULT_TIMEOUT,
    ComfyRegistry,
    NodeMapError,
    read_node_map,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.plan_file import (
    PlanFileError,
    update_plan_file,
)

from . import node_sources, report
from .plan import plan_workflows


class WorkflowPacks:
    """``entries(manifest_nodes)`` before the install, ``report(results)`` after it."""

    def __init__(self, module, git):
        self.module = module
        self.git = git
        self.needs = None
        self.states = {}

    def _registry(self):
        """The registry client; a setting it cannot use is a warning naming the setting, and
        the packs that need the registry are then unknown (the map file still answers)."""
        params = self.module.params
        node_map = {}
        path = params["registry_map"]
        if path and os.path.exists(path):
            try:
                node_map = read_node_map(path)
            except NodeMapError as exc:
                self.module.warn(f"registry map not used: {exc}")
        timeout = params["registry_timeout"]
        if timeout <= 0:
            self.module.warn(
                f"registry_timeout (custom_nodes_registry_timeout) must be positive, got {timeout}; {DEFAULT_TIMEOUT:g} s is used"
            )
            timeout = DEFAULT_TIMEOUT
        endpoint = (params["registry_endpoint"] or "").strip() or None
        try:
            return ComfyRegistry(endpoint, timeout=timeout, node_map=node_map)
        except ValueError as exc:
            self.module.warn(
                f"registry_endpoint (COMFY_REGISTRY_ENDPOINT): {exc}; the Comfy Registry is not used, so the "
                "custom node packs only it can name are unknown"
            )
            return ComfyRegistry(
                None, timeout=timeout, node_map=node_map, offline_reason="COMFY_REGISTRY_ENDPOINT is not a URL"
            )

    def entries(self, manifest_nodes):
        """Entries to install after the manifests' nodes."""
        params = self.module.params
        try:
            self.needs = plan_workflows(params["workflows"])
        except ValueError as exc:
            self.module.fail_json(msg=f"workflows: {exc}")
        for warning in self.needs.pop("warnings"):
            self.module.warn(warning)
        resolver = node_sources.WorkflowNodes(self._registry(), params["github_url"], params["dest"], self.git)
        entries, self.states = resolver.entries(self.needs["node_packs"], manifest_nodes)
        for warning in resolver.warnings:
            self.module.warn(warning)
        return entries

    def report(self, results):
        """workflow_packs and workflow_report for the result; writes workflow_report_file."""
        states = node_sources.final_states(self.states, results)
        # The workflows' own summary line (models included) is replaced by the packs' outcome.
        text = (
            node_sources.summary_line(states)
            + report.render(self.needs, parts=("nodes",), pack_states=states).split("\n", 1)[1]
        )
        path = self.module.params["workflow_report_file"]
        if path:
            try:
                # A log for people: rewriting it is not a change to the pod.
                update_plan_file(path, text, check_mode=self.module.check_mode)
            except PlanFileError as exc:
                self.module.warn(f"workflow report not written: {exc}")
        packs = [dict(key=key, **state) for key, state in states.items()]
        return {"workflow_packs": packs, "workflow_report": text}
