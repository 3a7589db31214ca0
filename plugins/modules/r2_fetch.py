#!/usr/bin/python
# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: r2_fetch
short_description: Download private models from Cloudflare R2 (or any S3 store), parallel, resumable and verified
version_added: 0.1.0
description:
  - Fetches a list of objects from Cloudflare R2 with boto3 into their destination paths. Objects
    are fetched in parallel, and objects of at least O(multipart_threshold) bytes as parallel ranged
    GETs of O(part_size) bytes, all sharing one pool of O(max_concurrency) connections.
  - Nothing partial is ever visible at a destination. Bytes land in a pre-allocated staging file
    under O(state_dir) (on the same filesystem as the models), and the file is renamed into
    place only after its size, its sha256 (when given) and its content (not an error page)
    check out. This is the same staging, ledger and publish as M(aiclipse.comfyui.aria2_batch).
    The sha256 is computed while the parts download (from the first byte on, as the parts
    complete), so it is ready a moment after the last byte; a digest that differs from the
    expected one is checked by reading the whole file before the object fails.
  - A killed run resumes inside every part. The bytes on disk of each part are journalled next to
    the staging file as they are written, so after a SIGKILL the next run fetches again at most the
    one 256 KiB chunk that was in flight per part, as long as the object's size and ETag are
    unchanged. Every ranged GET carries C(If-Match) with the ETag, so bytes of two versions of
    an object are never mixed. SIGTERM to the module stops it cleanly (see NOTES).
  - A destination recorded in the ledger whose size and modification time on disk and whose
    ETag on the server (one C(HEAD) request) still match is reported as present without any
    C(GET) and without reading the file. The C(HEAD) is what notices a model re-uploaded under
    the same key. When that C(HEAD) fails (endpoint down, credentials revoked), a recorded file
    is still reported present, so a pod keeps the models it verified before.
  - Every object is attempted and gets a result. Failures get a clear reason (no such key, no
    such bucket, access denied, bad credentials, endpoint unreachable, verification failed, not
    enough disk space); with O(fail_on_error) the task fails at the end when any object failed.
    Results, counts, diff and messages have the same shape as M(aiclipse.comfyui.aria2_batch)'s.
  - Missing credentials or endpoint fail every object with that reason (and the task) before any
    network request is made; a bad item of O(objects) fails only that object.
  - Before downloading, the sizes are compared with the free space of the staging filesystem; what
    fits is downloaded, every object that does not fit fails with what it needs and what is free.
  - Set up for R2's quirks - region C(auto), path-style addressing, checksums only when
    required (boto3 1.36 and later otherwise send checksum headers that R2 rejects), and the
    classic HTTP client rather than the CRT transfer client, which ignores a custom endpoint.
  - Credentials are read on the target, by name, from the module's environment or else from
    O(env_file) (C(R2_ACCESS_KEY_ID), C(R2_SECRET_ACCESS_KEY); C(R2_ACCOUNT_ID), C(R2_ENDPOINT_URL) and
    C(R2_BUCKET) the same way when their options are not given), so they need not be module arguments,
    which ansible keeps in temporary files for as long as the module runs. The secret key is passed to
    boto3 only; it never appears in the results, the log file, the ledger or any process's argv.
author:
  - aiclipse team (@aiclipse)
requirements:
  - boto3 >= 1.36 and botocore >= 1.36 (on the host that runs the module, the pod); an older one
    fails the module with what to install, before any request
options:
  objects:
    description:
      - The objects to fetch.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description:
          - Object key in the bucket, for example V(loras/v12.safetensors).
          - Required. An item without it, like any item with a bad value, fails alone (see RV(results)).
        type: str
      bucket:
        description:
          - Bucket of this object; defaults to O(bucket).
        type: str
      dest:
        description:
          - Absolute path of the final file. Its directory is created when missing.
          - Required. An item without it fails alone.
        type: path
      sha256:
        description:
          - Expected sha256 of the file (64 hex digits). Checked before the file is placed.
          - When omitted, the object's own sha256 is used when its C(HEAD) gives one - a whole-object
            C(ChecksumSHA256) (not the composite checksum of a multipart upload) or C(x-amz-meta-sha256)
            metadata. When both exist they must agree, or the object fails naming both.
        type: str
      name:
        description:
          - Label for results and the log. Defaults to C(s3://<bucket>/<key>).
        type: str
  bucket:
    description:
      - Default bucket for objects that do not name one.
      - Defaults to E(R2_BUCKET) of the target (environment, else O(env_file)).
    type: str
  access_key_id:
    description:
      - R2 access key id, for calling the module by hand.
      - Defaults to E(R2_ACCESS_KEY_ID) of the target (environment, else O(env_file)); roles rely on that.
    type: str
  secret_access_key:
    description:
      - R2 secret access key, for calling the module by hand. Prefer leaving it to the target's
        E(R2_SECRET_ACCESS_KEY) (environment, else O(env_file)), the default, so the secret never
        rests in ansible's temporary files.
    type: str
  account_id:
    description:
      - Cloudflare account id; the endpoint is C(https://<account_id>.r2.cloudflarestorage.com).
      - Defaults to E(R2_ACCOUNT_ID) of the target. Not needed with O(endpoint_url).
    type: str
  endpoint_url:
    description:
      - Use this S3-compatible endpoint instead of the account's R2 endpoint (MinIO, a test server,
        an R2 jurisdiction endpoint such as C(https://<account>.eu.r2.cloudflarestorage.com)).
      - Defaults to E(R2_ENDPOINT_URL) of the target.
    type: str
  env_file:
    description:
      - The pod's environment file (C(export NAME='value') lines, as the pod_env role writes
        C(/etc/rp_environment)), read for the R2 settings that are neither options nor in the module's
        environment (over SSH a module does not see the pod's environment).
      - Read only when it is a regular file owned by the user the module runs as, with mode C(0600);
        otherwise every object fails saying what to fix.
    type: path
  state_dir:
    description:
      - Model state directory shared with the other downloaders, normally
        C({{ aiclipse_vault }}/.state/models). Holds C(staging/) and C(ledger.json).
      - Must be on the same filesystem as the destinations.
    type: path
    required: true
  log_file:
    description:
      - Append progress and a final summary here, for a person to read (for example
        C({{ aiclipse_vault }}/logs/models.log)). Holds object names and sizes, never credentials.
      - Not written in check mode.
    type: path
  max_concurrency:
    description:
      - Connections used at the same time, over all objects and parts.
      - The default was chosen by C(bench/r2_fetch_bench.py) (4 x 256 MiB over connections
        throttled to 20 MB/s each, 2 busy cores) - 4 connections 12.7 s, 8 7.6 s, 16 5.5 s, 32 2.1 s
        with 8 MiB parts. Each connection holds a 256 KiB buffer.
    type: int
    default: 32
  part_size:
    description:
      - Size of one ranged GET for objects of at least O(multipart_threshold). Accepts units
        (V(8MB), V(64M)). Larger parts mean fewer requests; smaller parts lose less on a kill and
        spread one big object over more connections. 8 MiB was the fastest of 8, 16 and 64 MiB
        at 32 connections in the benchmark.
    type: raw
    default: 8MB
  multipart_threshold:
    description:
      - Objects of at least this size are fetched as parallel ranged GETs; smaller ones with one GET.
    type: raw
    default: 16MB
  fail_on_error:
    description:
      - Fail the task (after every object was attempted) when any object failed.
      - With V(false) the task succeeds and the failures are in RV(results) and RV(failed_count).
    type: bool
    default: true
extends_documentation_fragment:
  - aiclipse.comfyui.attributes
attributes:
  check_mode:
    support: full
    details: Sends C(HEAD) requests to find sizes and changed objects, downloads nothing, and lists
      every object that would be fetched as V(would_download) with its size.
  diff_mode:
    support: full
    details: Shows the destinations that are (or would be) downloaded.
  idempotent:
    support: full
    details: A second run with the same objects reports V(present) for all of them, issues no
      C(GET) and reads no file.
seealso:
  - module: aiclipse.comfyui.aria2_batch
  - name: Cloudflare R2 S3 API compatibility
    description: What R2 supports of the S3 API.
    link: https://developers.cloudflare.com/r2/api/s3/api/
notes:
  - Fixed modes, not file arguments - each model C(0644) (model folders made with the umask),
    O(state_dir) C(0700) holding the ledger and the staged downloads C(0600), O(log_file) C(0644)
    (appended; names, sizes and reasons, never credentials).
  - The C(HEAD) requests of the present check need the same credentials as downloads, so check
    mode fails the same way when credentials are missing.
  - Stopping a download. While the module runs, C(<state_dir>/r2_fetch.run.lock) holds its PID (one line).
    SIGTERM (or SIGINT) to that PID stops it within a couple of seconds - every part journal is current, the
    log gets one line saying the run was stopped and resumes at the next start, every unfinished object's
    result says so, and the module exits with its result. Killing C(ansible-playbook) or its process group
    does not stop a running module - ansible's worker calls C(setsid) and an async job's wrapper daemonizes,
    so the module lives in a session of its own.
  - "What failures look like in a result's C(reason): C(R2 credentials missing: set R2_ACCESS_KEY_ID (option
    access_key_id) on the pod ...); C(no such key: s3://models/loras/typo.safetensors does not exist);
    C(not enough disk space: needs 6.00 GB, 2.10 GB free on /workspace ...); C(stopped by SIGTERM before it
    finished (...); the next start resumes it)."
"""

EXAMPLES = r"""
- name: Fetch private LoRAs from the pod's R2 bucket (credentials from the pod's environment)
  aiclipse.comfyui.r2_fetch:
    objects:
      - key: loras/v12_xelios_it.safetensors
        dest: /workspace/aiclipse/models/loras/v12_xelios_it.safetensors
      - key: hk_v1_final.safetensors
        bucket: other-bucket
        dest: /workspace/aiclipse/models/loras/hk_v1_final.safetensors
        sha256: 4f2c0d5e8c1b9a7f6e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a10
    state_dir: /workspace/aiclipse/.state/models
    log_file: /workspace/aiclipse/logs/models.log

- name: Fetch from another S3-compatible store, keys from the pod's env file, keep going on failures
  aiclipse.comfyui.r2_fetch:
    objects: "{{ models_r2_objects }}"
    endpoint_url: https://minio.example.net
    bucket: models
    env_file: /etc/rp_environment
    state_dir: "{{ aiclipse_vault }}/.state/models"
    max_concurrency: 32
    part_size: 16MB
    fail_on_error: false
  register: r2

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ r2.results | selectattr('status', 'eq', 'failed') | map(attribute='reason') }}"
"""

RETURN = r"""
results:
  description: One entry per object, in the order of O(objects) (the same shape as M(aiclipse.comfyui.aria2_batch)'s).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The object's name (O(objects[].name), else C(s3://bucket/key)).
      type: str
      sample: loras/v12.safetensors
    dest:
      description: Final path.
      type: str
    source:
      description: The object as C(s3://bucket/key).
      type: str
      sample: s3://models/loras/v12.safetensors
    status:
      description: V(downloaded), V(present), V(failed) or, in check mode, V(would_download).
      type: str
      sample: downloaded
    reason:
      description: Why, for V(present), V(failed) and V(would_download) (and resume details for V(downloaded)).
      type: str
      sample: "no such key: s3://models/loras/typo.safetensors does not exist"
    bytes:
      description: Size of the object (0 when unknown because it failed before that).
      type: int
    fetched_bytes:
      description: Bytes transferred by this run (less than RV(results[].bytes) after a resume).
      type: int
    seconds:
      description: Wall time spent on this object.
      type: float
    sha256:
      description:
        - The sha256 the file was verified against (present or downloaded), or is expected to have; null
          when neither the entry nor its source gives one.
      type: str
      sample: 4a4f1e8b0f1c5b7d8e2a9c3d6f0b1e2a3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f
    sha256_from:
      description:
        - Where RV(results[].sha256) came from - V(manifest) (the entry's O(objects[].sha256)), V(huggingface)
          (X-Linked-Etag), V(civitai) (the model-version API), V(s3) (the object's checksum or metadata) or
          V(download) (hashed as downloaded, nothing to compare with); null without a sha256.
      type: str
      sample: huggingface
  sample:
    - name: loras/v12.safetensors
      dest: /workspace/aiclipse/models/loras/v12.safetensors
      source: s3://models/loras/v12.safetensors
      status: downloaded
      reason: ""
      bytes: 151000000
      fetched_bytes: 151000000
      seconds: 4.2
downloaded:
  description: Number of objects downloaded by this run.
  returned: always
  type: int
present:
  description: Number of objects that were already in place.
  returned: always
  type: int
failed_count:
  description:
    - Number of objects that failed.
    - Named so because Ansible treats any true C(failed) key as a failed task (same as M(aiclipse.comfyui.aria2_batch)).
  returned: always
  type: int
hashed:
  description: How many files were read to compute a sha256 in this run (0 when everything was recorded).
  returned: always
  type: int
would_download:
  description: In check mode, the number of objects that would be fetched.
  returned: always
  type: int
bytes_needed:
  description: In check mode, the bytes still to download.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import r2_client
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.pipeline import (
    Unusable,
    run_module_downloads,
)
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.r2_fetcher import R2Fetcher, r2_entries
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.stop import StopSignals
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import TargetSecrets


def _size_option(params, name, problems):
    value = params[name]
    try:
        size = human_to_bytes(value) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        problems.append(f"{name} must be a size such as 16MB or 16777216, got {value!r}")
        return None
    if size < 1024 * 1024:
        problems.append(f"{name} must be at least 1MB, got {value!r}")
    return size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    # Checked per entry by the pipeline, so one bad item fails alone.
                    key=dict(type="str", no_log=False),
                    bucket=dict(type="str"),
                    dest=dict(type="path"),
                    sha256=dict(type="str"),
                    name=dict(type="str"),
                ),
            ),
            bucket=dict(type="str"),
            access_key_id=dict(type="str", no_log=True),
            secret_access_key=dict(type="str", no_log=True),
            account_id=dict(type="str"),
            endpoint_url=dict(type="str"),
            env_file=dict(type="path"),
            state_dir=dict(type="path", required=True),
            log_file=dict(type="path"),
            max_concurrency=dict(type="int", default=32),
            part_size=dict(type="raw", default="8MB"),
            multipart_threshold=dict(type="raw", default="16MB"),
            fail_on_error=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    with StopSignals() as signals:
        params = module.params
        problems = []
        if not r2_client.HAS_BOTO3:
            problems.append(missing_required_lib("boto3"))
        else:
            problems.append(r2_client.sdk_version_problem() or "")
        if params["max_concurrency"] < 1:
            problems.append(f"max_concurrency must be at least 1, got {params['max_concurrency']}")
        part_size = _size_option(params, "part_size", problems)
        multipart_threshold = _size_option(params, "multipart_threshold", problems)
        problems = [problem for problem in problems if problem]
        if problems:
            # Every object fails with the reason, and the models log says so (a background job
            # has nobody else to tell).
            fetcher = Unusable("r2_fetch", "objects", "; ".join(problems))
        else:
            settings = dict(
                (option, params[option])
                for option in ("access_key_id", "secret_access_key", "account_id", "endpoint_url", "bucket")
            )
            fetcher = R2Fetcher(
                settings,
                TargetSecrets(params["env_file"]),
                max_concurrency=params["max_concurrency"],
                part_size=part_size,
                multipart_threshold=multipart_threshold,
            )
        run_module_downloads(
            module, fetcher, r2_entries(params["objects"], params["bucket"]), params["fail_on_error"], signals
        )


if __name__ == "__main__":
    main()
