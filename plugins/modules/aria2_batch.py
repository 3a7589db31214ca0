#!/usr/bin/python
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aria2_batch
short_description: Download a batch of model files over HTTP with one aria2c, verified and resumable
version_added: 0.1.0
description:
  - Downloads a list of files (Hugging Face, CivitAI, plain URLs) with a single C(aria2c) process
    that fetches several files at once, each over several ranged connections.
  - Files land in a staging area under O(state_dir) on the destination's filesystem and are moved
    into place atomically only after their size (and sha256, when given) check out. A half-written
    model is never visible at its final path. A body that is an HTML or JSON page never becomes a
    model file.
  - A run that is killed (pod stopped, SIGKILL) resumes on the next run from the partial files in
    staging; C(aria2c) exits when the module's process dies and then saves its control files (it
    also saves them every 10 seconds, so a SIGKILL of C(aria2c) itself loses at most that much
    transfer). SIGTERM to the module stops it cleanly (see NOTES).
  - Files already present and recorded in the ledger (O(state_dir)/ledger.json, size, mtime,
    etag, sha256) are skipped without reading their bytes. A present file with a known sha256 but no
    ledger entry is hashed once and recorded; one with neither sha256 nor size is compared with the
    size the origin reports and adopted.
  - Verified by default. When an entry gives no sha256, the one its source publishes is used - Hugging Face's
    C(X-Linked-Etag) and C(X-Linked-Size) on the redirect the probe already meets (no extra request), and for
    a CivitAI download URL (C(/api/download/models/<id>)) the V(SHA256) that C(/api/v1/model-versions/<id>)
    lists for the file. It is recorded in the ledger with where it came from (RV(results[].sha256_from)). A
    given sha256 that the source contradicts fails the entry naming both; a size the source lists that the
    download does not have fails it before any byte is fetched. Without any sha256 the size is checked,
    and the file is still hashed while it downloads, so the ledger and the pod lock hold the sha256 of
    what was fetched (RV(results[].sha256_from) V(download)).
  - A file recorded with a sha256 from its source is asked about again at each run (one request, no
    hashing), so a model replaced upstream under the same URL is noticed and fetched again (the result's
    reason says so). A file recorded against a given sha256 is present without any request.
  - When the source cannot be asked, a recorded file is kept (V(present)) only while its size and mtime
    are as recorded; one truncated or rewritten since fails. An origin that does not answer at all is
    tried once per run (its first request, with its retries); the other files of that origin are then
    judged without asking it.
  - Tokens go only to their origin (same scheme, host and port). The module walks every redirect
    itself, hop by hop, and sends the token only on hops at the origin; once a redirect leaves the
    origin, no later hop carries it, even one that comes back. C(aria2c) never receives a token or
    any secret header - it gets the final, tokenless URL of files served elsewhere (signed storage).
    A file the origin serves itself, so the token is needed for its bytes, is downloaded by the
    module in-process with parallel ranged GETs, each resolved the same way.
  - Every entry is attempted and gets a result (V(downloaded), V(present), V(failed) with a reason);
    one bad entry (a URL with a bad port, a sha256 that is not hex) fails alone. The task fails at
    the end when any entry failed (see O(fail_on_error)).
  - Before downloading, the sizes are compared with the free space of the staging filesystem; what
    fits is downloaded, every entry that does not fit fails with what it needs and what is free.
author:
  - aiclipse team (@aiclipse)
options:
  downloads:
    description:
      - The files to download.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description:
          - C(http) or C(https) URL at the origin (for example C(https://huggingface.co/<repo>/resolve/main/<file>)).
          - Prefer O(downloads[].token_name) for credentials. A C(user:password@) in the URL is sent as
            HTTP Basic C(Authorization) to the URL's origin only, like a token (the file is then downloaded
            in-process, never by C(aria2c)). A URL holding credentials (C(user:password@), C(?token=)) shows
            in ansible's output and temporary files when given here; the role passes it by
            O(downloads[].secret_url) instead.
          - Required. An item without it, like any item with a bad value, fails alone (see RV(results)).
        type: str
      dest:
        description:
          - Absolute final path of the file. Its directory is created when missing.
          - Required. An item without it fails alone.
        type: path
      name:
        description:
          - Label for results and the log. Defaults to the base name of O(downloads[].dest).
        type: str
      sha256:
        description:
          - Expected sha256 (64 hex digits). When given, a download that does not match is not
            published, and an existing unrecorded file is verified once. When omitted, the sha256 the
            source publishes (Hugging Face, CivitAI) is used; when both exist they must agree.
          - The file is hashed while it downloads - C(aria2c) fetches it lowest pieces first
            (C(--stream-piece-selector=inorder)) and the module hashes what is complete from the
            first byte on, a resumed partial's bytes first - so the check is done a moment after
            the last byte. A digest that differs is checked by reading the whole file before the
            download fails.
        type: str
      size:
        description:
          - Expected size in bytes (a whole number). When omitted, the size the origin reports is used.
          - Any other value fails this item alone.
        type: raw
      token_name:
        description:
          - Name of the variable that holds the bearer token (V(HF_TOKEN), V(CIVITAI_TOKEN)), read on the
            target from the module's environment, else from O(env_file). The token is sent as
            C(Authorization) to the origin only.
          - This keeps the token out of the module's arguments, which ansible stores in temporary
            files for as long as the module runs. Roles use this.
        type: str
      token:
        description:
          - The bearer token itself, for calling the module by hand. Prefer O(downloads[].token_name).
        type: str
      headers:
        description:
          - Extra request headers. They are treated like the token, sent to the origin only.
        type: dict
      secret_url:
        description:
          - The real URL holds credentials and is recorded for O(downloads[].dest) in O(secret_urls_file);
            O(downloads[].url) is its masked form (as M(aiclipse.comfyui.model_manifest) returns it), used to
            check that the record is this entry's.
        type: bool
        default: false
  secret_urls_file:
    description:
      - The file M(aiclipse.comfyui.model_manifest) keeps URLs with credentials in (its O(aiclipse.comfyui.model_manifest#module:secret_urls_file)),
        read for the entries with O(downloads[].secret_url). It must be a regular file of the user the module
        runs as, mode C(0600).
    type: path
  env_file:
    description:
      - The pod's environment file (C(export NAME='value') lines, as the pod_env role writes
        C(/etc/rp_environment)), read for O(downloads[].token_name) values that are not in the module's
        environment (over SSH a module does not see the pod's environment).
      - Read only when it is a regular file owned by the user the module runs as, with mode C(0600);
        otherwise the entries that need it fail saying what to fix.
    type: path
  state_dir:
    description:
      - Model state directory holding C(staging/), C(ledger.json) and C(aria2_batch.run.lock) (normally
        C({{ aiclipse_vault }}/.state/models)). Must be on the same filesystem as the destinations.
    type: path
    required: true
  log_file:
    description:
      - File that gets progress lines, one line per finished entry and a summary, for a person to
        read. Appended to. Never holds a token or a URL query.
    type: path
  max_concurrent_downloads:
    description:
      - Files downloaded at the same time (C(aria2c -j)).
      - The default was measured with C(bench/aria2_batch_bench.py), see NOTES.
    type: int
    default: 4
  split:
    description:
      - Connections used for one file (C(aria2c -s)).
    type: int
    default: 8
  max_connection_per_server:
    description:
      - Connections to one server for one file (C(aria2c -x), at most 16).
    type: int
    default: 8
  min_split_size:
    description:
      - Do not split a file into pieces smaller than this (C(aria2c -k)), for example C(20M). Also the
        part size of in-process downloads.
    type: str
    default: 8M
  connect_timeout:
    description:
      - Seconds to wait for a connection (origin checks and C(aria2c --connect-timeout)).
    type: int
    default: 15
  timeout:
    description:
      - Seconds without data before a connection is given up and retried (C(aria2c --timeout)).
    type: int
    default: 60
  max_tries:
    description:
      - Attempts per request before an entry fails (origin checks and C(aria2c --max-tries)).
      - C(aria2c) gives up on an HTTP 500 or 429 at once; such a download, or one that ran out of
        tries on network errors, is queued again up to two more times and resumes from staging.
    type: int
    default: 5
  retry_wait:
    description:
      - Seconds between attempts (C(aria2c --retry-wait)).
    type: int
    default: 2
  fail_on_error:
    description:
      - Fail the task (after every entry was attempted) when any entry failed.
      - When false, failures are only reported in RV(results) and RV(failed_count).
    type: bool
    default: true
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Asks the origins for sizes and reports what would be downloaded and the bytes needed; writes nothing.
  diff_mode:
    support: full
    details: Lists the destination files present before and after.
  idempotent:
    support: full
    details: A second run with the same list downloads nothing and reports C(changed=false) without hashing the files.
notes:
  - Needs C(aria2c) on the target (Debian package C(aria2)).
  - Fixed modes, not file arguments - each model C(0644) (model folders made with the umask),
    O(state_dir) C(0700) holding the ledger and the staged downloads C(0600), O(log_file) C(0644)
    (appended; names, sizes and reasons, never credentials).
  - >-
    Defaults from C(bench/aria2_batch_bench.py) (4 x 256 MB, nginx throttled to 20 MB/s per connection,
    2 busy cores), plain aria2c C(-j4): C(-s1) 14.7 s, C(-s4) 7.0 s, C(-s8) 5.4 s, C(-s16) 5.3 s.
    C(-s8 -x8) is as fast as C(-s16 -x16) with half the connections per file.
    aria2_batch itself took 1.1 times aria2c plus a sha256 check of the same files, and a quarter of the
    time of a sequential single-connection download.
  - Stopping a download. While the module runs, C(<state_dir>/aria2_batch.run.lock) holds its PID (one line).
    SIGTERM (or SIGINT) to that PID stops it within a couple of seconds - C(aria2c) saves its control files,
    in-process downloads keep their part journals, the log gets one line saying the run was stopped and resumes
    at the next start, every unfinished entry's result says so, and the module exits with its result.
    Killing C(ansible-playbook) or its process group does not stop a running module - ansible's worker calls
    C(setsid) and an async job's wrapper daemonizes, so the module lives in a session of its own.
  - "What failures look like in a result's C(reason): C(HTTP 404 Not Found from https://huggingface.co (no such
    file: check the URL, repo, revision and file name)); C(not enough disk space: needs 6.00 GB, 2.10 GB free on
    /workspace ...); C(https://cdn.example closed the connection before the whole file was sent (a short body)
    (1.20 GB of 6.00 GB in staging; the next run resumes) [aria2c error 1: No URI available.; last cause: Got
    EOF from the server.]); C(downloads[3]: url 'http://host:99999/x' has a bad port: port 99999 is out of
    range (1-65535)); C(stopped by SIGTERM before it finished (...); the next start resumes it)."
  - A ledger write that fails (disk full) leaves the downloaded file in place; its result says C(ledger not
    updated) and a warning names it; the file is checked again at the next run.
seealso:
  - module: aiclipse.comfyui.r2_fetch
requirements:
  - aria2c (aria2 1.35 or later)
"""

EXAMPLES = r"""
- name: Fetch the template's models (tokens read on the pod, by name)
  aiclipse.comfyui.aria2_batch:
    state_dir: /workspace/aiclipse/.state/models
    log_file: /workspace/aiclipse/logs/models.log
    env_file: /etc/rp_environment
    downloads:
      - url: https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev-fp8.safetensors
        dest: /workspace/aiclipse/models/checkpoints/flux1-dev-fp8.safetensors
        token_name: HF_TOKEN
      - url: https://civitai.com/api/download/models/128713
        dest: /workspace/aiclipse/models/loras/detail.safetensors
        token_name: CIVITAI_TOKEN
        sha256: 4a4f1e8b0f1c5b7d8e2a9c3d6f0b1e2a3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f

- name: Report failures without failing the play
  aiclipse.comfyui.aria2_batch:
    state_dir: /srv/models/.state
    downloads: "{{ model_downloads }}"
    fail_on_error: false
  register: fetched

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ fetched.results | selectattr('status', 'equalto', 'failed') | list }}"
"""

RETURN = r"""
results:
  description: One result per entry of O(downloads), in the same order (the same shape as M(aiclipse.comfyui.r2_fetch)'s).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The entry's name.
      type: str
      sample: flux1-dev-fp8.safetensors
    dest:
      description: The final path.
      type: str
      sample: /workspace/aiclipse/models/checkpoints/flux1-dev-fp8.safetensors
    source:
      description: Where the file comes from, C(scheme://host[:port]) of the URL (never a path, query or token).
      type: str
      sample: https://huggingface.co
    status:
      description: V(downloaded), V(present), V(failed) or (check mode) V(would_download).
      type: str
      sample: downloaded
    reason:
      description: Why an entry failed or was considered present, or how a download was resumed.
      type: str
      sample: "HTTP 404 Not Found from https://huggingface.co (no such file: check the URL, repo, revision and file name)"
    bytes:
      description: Size of the file (downloaded or present), or bytes still needed (would_download).
      type: int
      sample: 17246524772
    fetched_bytes:
      description: Bytes this run transferred for the entry (less than RV(results[].bytes) after a resume).
      type: int
      sample: 17246524772
    seconds:
      description: Time spent on the entry in this run.
      type: float
      sample: 42.5
    sha256:
      description:
        - The sha256 the file was verified against (present or downloaded), or is expected to have; null
          when neither the entry nor its source gives one.
      type: str
      sample: 4a4f1e8b0f1c5b7d8e2a9c3d6f0b1e2a3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f
    sha256_from:
      description:
        - Where RV(results[].sha256) came from - V(manifest) (the entry's O(downloads[].sha256)), V(huggingface)
          (X-Linked-Etag), V(civitai) (the model-version API), V(s3) (the object's checksum or metadata) or
          V(download) (hashed as downloaded, nothing to compare with); null without a sha256.
      type: str
      sample: huggingface
downloaded:
  description: Number of files downloaded.
  returned: always
  type: int
  sample: 2
present:
  description: Number of files already present.
  returned: always
  type: int
  sample: 5
failed_count:
  description:
    - Number of entries that failed.
    - Named so because Ansible treats any true C(failed) key as a failed task.
  returned: always
  type: int
  sample: 0
would_download:
  description: Number of files check mode would download.
  returned: always
  type: int
  sample: 0
bytes_needed:
  description: Check mode, bytes still to download for the entries whose size is known.
  returned: always
  type: int
  sample: 0
hashed:
  description:
    - How many files got a sha256 computed in this run, while they downloaded or by reading them
      (a present file without a ledger record); 0 when everything was recorded.
  returned: always
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.http_fetcher import HttpFetcher, http_entries
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import (
    Unusable,
    run_module_downloads,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.secret_urls import SecretUrls
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.stop import StopSignals
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets


def main():
    module = AnsibleModule(
        argument_spec=dict(
            downloads=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    # Checked per entry by the pipeline, so one bad item fails alone.
                    url=dict(type="str"),
                    dest=dict(type="path"),
                    name=dict(type="str"),
                    sha256=dict(type="str"),
                    size=dict(type="raw"),
                    token_name=dict(type="str", no_log=False),
                    token=dict(type="str", no_log=True),
                    headers=dict(type="dict", no_log=True),
                    secret_url=dict(type="bool", default=False),
                ),
            ),
            secret_urls_file=dict(type="path"),
            env_file=dict(type="path"),
            state_dir=dict(type="path", required=True),
            log_file=dict(type="path"),
            max_concurrent_downloads=dict(type="int", default=4),
            split=dict(type="int", default=8),
            max_connection_per_server=dict(type="int", default=8),
            min_split_size=dict(type="str", default="8M"),
            connect_timeout=dict(type="int", default=15),
            timeout=dict(type="int", default=60),
            max_tries=dict(type="int", default=5),
            retry_wait=dict(type="int", default=2),
            fail_on_error=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    with StopSignals() as signals:
        params = module.params
        entries = http_entries(params["downloads"])
        problems = []
        if not 1 <= params["max_connection_per_server"] <= 16:
            problems.append("max_connection_per_server must be between 1 and 16 (an aria2c limit)")
        try:
            part_size = human_to_bytes(params["min_split_size"])
        except ValueError:
            part_size = None
            problems.append(f"min_split_size must be a size such as 8M, got {params['min_split_size']!r}")
        aria2c = module.get_bin_path("aria2c")
        if aria2c is None and not module.check_mode:
            problems.append("aria2c is not installed on this host (install the aria2 package)")
        if problems:
            # Every entry fails with the reason, and the models log says so (a background job
            # has nobody else to tell).
            fetcher = Unusable("aria2_batch", "downloads", "; ".join(problems))
        else:
            fetcher = HttpFetcher(
                aria2c,
                {
                    "max-concurrent-downloads": params["max_concurrent_downloads"],
                    "split": params["split"],
                    "max-connection-per-server": params["max_connection_per_server"],
                    "min-split-size": params["min_split_size"],
                    "timeout": params["timeout"],
                    "max-tries": params["max_tries"],
                    "retry-wait": params["retry_wait"],
                },
                TargetSecrets(params["env_file"]),
                connect_timeout=params["connect_timeout"],
                tries=params["max_tries"],
                retry_wait=params["retry_wait"],
                part_size=part_size,
                connections=params["max_concurrent_downloads"] * params["split"],
                secret_urls=SecretUrls(params["secret_urls_file"]),
                check_mode=module.check_mode,
            )
        run_module_downloads(module, fetcher, entries, params["fail_on_error"], signals)


if __name__ == "__main__":
    main()
