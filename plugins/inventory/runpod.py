# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: runpod
short_description: The pods of a RunPod account as a fleet inventory
version_added: 0.1.0
author:
  - aiclipse team (@aiclipse)
description:
  - Lists the pods of the RunPod account of E(RUNPOD_API_KEY) through RunPod's GraphQL API and makes
    each pod with a public SSH port a host of group O(group), reached at its public IP and the
    public port RunPod maps to the pod's port 22.
  - The key is sent only in an C(Authorization) header over HTTPS, never in a URL, and appears in no
    output and no cache file at any verbosity. Redirects are not followed.
  - A pod that passes the filters but has no public SSH port (still starting, stopped, no 22/tcp
    exposed, or no public IP) is left out with a warning that names it and says why; the
    P(aiclipse.comfyui.fleet_summary#callback) of a fleet run lists it as C(skipped) with that reason
    and puts it in the retry file.
  - Of the pod's environment only the settings in O(env_names) reach the host variables and the
    cache, and never one whose name holds TOKEN, SECRET, KEY, PASSWORD, PASSWD or CREDENTIAL;
    credentials inside URLs are masked. The pod keeps every value (the pod_env role reads them on
    the pod over SSH).
  - Host variables set for each pod are C(ansible_host), C(ansible_port), C(runpod_id),
    C(runpod_name), C(runpod_status), C(runpod_image), C(runpod_gpu), C(runpod_gpu_count),
    C(runpod_location), C(runpod_machine_id), C(runpod_cost_per_hr), C(runpod_env) (the allowed
    settings) and C(runpod_env_withheld) (names of the variables kept back).
  - The configuration file name must end with C(runpod.yml) or C(runpod.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    type: str
    required: true
    choices: [aiclipse.comfyui.runpod]
  api_key:
    description:
      - RunPod API key; read access to pods is enough.
      - Leave it to the environment variable; a key written into this file ends up wherever the
        file goes (git, backups).
    type: str
    env:
      - name: RUNPOD_API_KEY
  api_url:
    description:
      - RunPod's GraphQL endpoint. Must be https; plain http only to a loopback address (test servers).
    type: str
    default: https://api.runpod.io/graphql
    env:
      - name: RUNPOD_API_URL
  timeout:
    description: Seconds to wait for the API.
    type: int
    default: 30
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
  group:
    description: Group every listed pod joins (the playbooks target C(pods)).
    type: str
    default: pods
  hostnames:
    description:
      - What names a pod's host. V(name) uses the pod's name (pods whose names clash become
        C(<name>-<id>), with a warning); V(id) uses RunPod's pod id.
    type: str
    default: name
    choices: [name, id]
  name_prefixes:
    description: Only pods whose name starts with one of these.
    type: list
    elements: str
    default: []
  gpu_types:
    description: Only pods on one of these GPU types (RunPod's display name such as C(RTX 4090); shell patterns, any case).
    type: list
    elements: str
    default: []
  statuses:
    description: Only pods in one of these states (C(desiredStatus)); only running pods have an SSH endpoint.
    type: list
    elements: str
    default: [RUNNING]
  images:
    description: Only pods running one of these images (the template's image; shell patterns such as C(aiclipse/comfyui:*)).
    type: list
    elements: str
    default: []
  env_names:
    description:
      - The pod environment variables whose values become C(runpod_env). Names that look secret are
        withheld even when listed here.
    type: list
    elements: str
    default: [TEMPLATE_TYPE, TEMPLATE_VERSION, COMFY_ARGS, ENABLE_SAGE_ATTENTION, DOWNLOAD_MODELS,
              DOWNLOAD_IN_FOREGROUND, INSTALL_CUSTOM_NODES, MODELS_MANIFEST, NODES_MANIFEST, COMFYUI_VERSION,
              AUTO_UPDATE, CONFIG_BRANCH, FORCE_WORKFLOW_RESET, GPU_TYPE]
notes:
  - RunPod's pod list is not paged (C(myself { pods }) takes no arguments), so one request lists the whole account.
  - With O(cache) on, the cache holds the pods as this plugin keeps them (withheld values already gone),
    never the key. Use C(--flush-cache) to ask the API again.
  - Set C([inventory] any_unparsed_is_failed = true) (this collection's C(ansible.cfg) does) so that an
    API failure stops the run instead of leaving an empty inventory.
seealso:
  - name: RunPod GraphQL API
    description: The schema of the pod query used here.
    link: https://graphql-spec.runpod.io/
"""

EXAMPLES = r"""
# inventories/runpod/runpod.yml; run with RUNPOD_API_KEY exported:
#   ansible-inventory -i inventories/runpod --graph
#   ansible-playbook -i inventories/runpod playbooks/fleet.yml
plugin: aiclipse.comfyui.runpod
name_prefixes: [comfy-]
gpu_types: ["RTX 4090", "RTX A6000"]
keyed_groups:
  - key: runpod_gpu
    prefix: gpu
  - key: runpod_env.TEMPLATE_TYPE | default('none')
    prefix: template
compose:
  ansible_user: "'root'"

---
# Pod ids as host names, every state listed (stopped pods are left out with a warning), cached
# for ten minutes in JSON files.
plugin: aiclipse.comfyui.runpod
hostnames: id
statuses: [RUNNING, EXITED]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: .cache/runpod-inventory
cache_timeout: 600
"""

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet import runpod_hosts
from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet.fleet_outcomes import note_left_out
from ansible_collections.aiclipse.comfyui.plugins.plugin_utils._fleet.runpod_api import RunPodApiError, RunPodClient


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """aiclipse.comfyui.runpod: the account's pods, reached over their public SSH port."""

    NAME = "aiclipse.comfyui.runpod"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("runpod.yml", "runpod.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        allowed = self.get_option("env_names")
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        records = None
        if use_cache and cache:
            try:
                records = [runpod_hosts.reapply_env_policy(rec, allowed) for rec in self._cache[cache_key]]
            except KeyError:
                records = None
        if records is None:
            records = self._fetch(allowed)
            if use_cache:
                self._cache[cache_key] = records
        self._populate(records)

    def _fetch(self, allowed):
        try:
            client = RunPodClient(
                self.get_option("api_key"),
                self.get_option("api_url"),
                timeout=self.get_option("timeout"),
                validate_certs=self.get_option("validate_certs"),
            )
            pods = client.pods()
        except RunPodApiError as exc:
            raise AnsibleParserError(f"{self.NAME}: {exc}") from None
        self.display.vvv(f"{self.NAME}: {len(pods)} pods in the account at {client.url}")
        return [runpod_hosts.record(pod, allowed) for pod in pods if isinstance(pod, dict)]

    def _populate(self, records):
        chosen = [
            rec
            for rec in records
            if runpod_hosts.matches(
                rec,
                self.get_option("name_prefixes"),
                self.get_option("gpu_types"),
                self.get_option("statuses"),
                self.get_option("images"),
            )
        ]
        reachable = []
        # Named as it would be if it were reachable, so the retry file brings it in once it is.
        names_of_all, dummy = runpod_hosts.hostnames(chosen, self.get_option("hostnames"))
        for rec in chosen:
            if rec["ssh_host"]:
                reachable.append(rec)
            else:
                self.display.warning(
                    f"{self.NAME}: pod {rec['name'] or '(no name)'} ({rec['id']}) is left out "
                    f"of the inventory: {rec['ssh_problem']}."
                )
                note_left_out(names_of_all[rec["id"]], f"left out of the inventory: {rec['ssh_problem']}")
        names, clashes = runpod_hosts.hostnames(reachable, self.get_option("hostnames"))
        for clash in clashes:
            self.display.warning(
                f"{self.NAME}: several pods are named {clash!r}; their hosts are named "
                f"{clash}-<pod id> (or set hostnames: id)."
            )
        group = self.inventory.add_group(self.get_option("group"))
        strict = self.get_option("strict")
        for rec in reachable:
            host = self.inventory.add_host(names[rec["id"]], group=group)
            for key, value in runpod_hosts.host_vars(rec).items():
                self.inventory.set_variable(host, key, value)
            variables = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
