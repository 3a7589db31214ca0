#!/usr/bin/python
# -*- coding: utf-8 -*-
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
  - A killed run resumes. Finished parts are recorded next to the staging file, and the next
    run fetches only the parts that are missing, as long as the object's size and ETag are
    unchanged. Every ranged GET carries C(If-Match) with the ETag, so bytes of two versions of
    an object are never mixed.
  - A destination recorded in the ledger whose size and modification time on disk and whose
    ETag on the server (one C(HEAD) request) still match is reported as present without any
    C(GET) and without reading the file. The C(HEAD) is what notices a model re-uploaded under
    the same key. When that C(HEAD) fails (endpoint down, credentials revoked), a recorded file
    is still reported present, so a pod keeps the models it verified before.
  - Every object is attempted and gets a result. Failures get a clear reason (no such key, no
    such bucket, access denied, bad credentials, endpoint unreachable, verification failed);
    with O(fail_on_error) the task fails at the end when any object failed.
  - Missing credentials or endpoint, and bad O(objects), fail the task before any network
    request is made.
  - Set up for R2's quirks - region C(auto), path-style addressing, checksums only when
    required (boto3 1.36 and later otherwise send checksum headers that R2 rejects), and the
    classic HTTP client rather than the CRT transfer client, which ignores a custom endpoint.
  - The secret key is passed to boto3 only; it never appears in the results, the log file, the
    ledger or any process's argv.
author:
  - aiclipse team (@aiclipse)
requirements:
  - boto3 >= 1.36 (on the host that runs the module, the pod)
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
        type: str
        required: true
      bucket:
        description:
          - Bucket of this object; defaults to O(bucket).
        type: str
      dest:
        description:
          - Absolute path of the final file. Its directory is created when missing.
        type: path
        required: true
      sha256:
        description:
          - Expected sha256 of the file (64 hex digits). Checked before the file is placed.
        type: str
  bucket:
    description:
      - Default bucket for objects that do not name one.
      - Defaults to the environment variable E(R2_BUCKET) of the host running the module.
    type: str
  access_key_id:
    description:
      - R2 access key id.
      - Defaults to the environment variable E(R2_ACCESS_KEY_ID).
    type: str
  secret_access_key:
    description:
      - R2 secret access key. Prefer the environment variable E(R2_SECRET_ACCESS_KEY), which is the
        default, so the secret never passes through task arguments.
    type: str
  account_id:
    description:
      - Cloudflare account id; the endpoint is C(https://<account_id>.r2.cloudflarestorage.com).
      - Defaults to the environment variable E(R2_ACCOUNT_ID). Not needed with O(endpoint_url).
    type: str
  endpoint_url:
    description:
      - Use this S3-compatible endpoint instead of the account's R2 endpoint (MinIO, a test server,
        an R2 jurisdiction endpoint such as C(https://<account>.eu.r2.cloudflarestorage.com)).
      - Defaults to the environment variable E(R2_ENDPOINT_URL).
    type: str
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
        with 8 MiB parts. Each connection holds a 1 MiB buffer.
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
  - The C(HEAD) requests of the present check need the same credentials as downloads, so check
    mode fails the same way when credentials are missing.
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

- name: Fetch from another S3-compatible store, keep going when some objects fail
  aiclipse.comfyui.r2_fetch:
    objects: "{{ models_r2_objects }}"
    endpoint_url: https://minio.example.net
    bucket: models
    state_dir: "{{ aiclipse_vault }}/.state/models"
    max_concurrency: 32
    part_size: 16MB
    fail_on_error: false
  environment:
    R2_ACCESS_KEY_ID: "{{ vault_r2_access_key_id }}"
    R2_SECRET_ACCESS_KEY: "{{ vault_r2_secret_access_key }}"
  register: r2

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ r2.results | selectattr('status', 'eq', 'failed') | map(attribute='reason') }}"
"""

RETURN = r"""
results:
  description: One entry per object, in the order of O(objects).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The object as C(s3://bucket/key).
      type: str
      sample: s3://models/loras/v12.safetensors
    bucket:
      description: Bucket of the object.
      type: str
    key:
      description: Key of the object.
      type: str
    dest:
      description: Final path.
      type: str
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
      description: Wall time spent on this object's download.
      type: float
    etag:
      description: ETag of the object on the server.
      type: str
    resumed_parts:
      description: Parts taken over from a killed earlier run instead of being fetched again.
      type: int
  sample:
    - name: s3://models/loras/v12.safetensors
      bucket: models
      key: loras/v12.safetensors
      dest: /workspace/aiclipse/models/loras/v12.safetensors
      status: downloaded
      reason: ""
      bytes: 151000000
      fetched_bytes: 151000000
      seconds: 4.2
      etag: '"9b2cf535f27731c974343645a3985328-10"'
      resumed_parts: 0
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
  description: Total size of the objects that are (or would be) downloaded.
  returned: always
  type: int
endpoint:
  description: The S3 endpoint used (never holds credentials).
  returned: always
  type: str
  sample: https://0123456789abcdef.r2.cloudflarestorage.com
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads import r2_client
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.model_store import ModelStore, StoreError
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.r2_fetcher import (
    ProgressLog, R2Fetcher, parse_objects, summarize)


def _size_option(module, name):
    value = module.params[name]
    try:
        size = human_to_bytes(value) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        module.fail_json(msg="%s must be a size such as 16MB or 16777216, got %r" % (name, value))
    if size < 1024 * 1024:
        module.fail_json(msg="%s must be at least 1MB, got %r" % (name, value))
    return size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type="list", elements="dict", required=True, options=dict(
                key=dict(type="str", required=True, no_log=False),
                bucket=dict(type="str"),
                dest=dict(type="path", required=True),
                sha256=dict(type="str"),
            )),
            bucket=dict(type="str", fallback=(env_fallback, ["R2_BUCKET"])),
            access_key_id=dict(type="str", no_log=True, fallback=(env_fallback, ["R2_ACCESS_KEY_ID"])),
            secret_access_key=dict(type="str", no_log=True, fallback=(env_fallback, ["R2_SECRET_ACCESS_KEY"])),
            account_id=dict(type="str", fallback=(env_fallback, ["R2_ACCOUNT_ID"])),
            endpoint_url=dict(type="str", fallback=(env_fallback, ["R2_ENDPOINT_URL"])),
            state_dir=dict(type="path", required=True),
            log_file=dict(type="path"),
            max_concurrency=dict(type="int", default=32),
            part_size=dict(type="raw", default="8MB"),
            multipart_threshold=dict(type="raw", default="16MB"),
            fail_on_error=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if not r2_client.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=r2_client.BOTO3_IMPORT_ERROR)
    params = module.params
    if params["max_concurrency"] < 1:
        module.fail_json(msg="max_concurrency must be at least 1, got %d" % params["max_concurrency"])
    part_size = _size_option(module, "part_size")
    threshold = _size_option(module, "multipart_threshold")

    # Everything that needs no network is checked first, so a typo costs no request.
    try:
        specs = parse_objects(params["objects"], params["bucket"])
        endpoint = r2_client.resolve_endpoint(params["account_id"], params["endpoint_url"])
        r2_client.check_credentials(params["access_key_id"], params["secret_access_key"])
        store = ModelStore(params["state_dir"], read_only=module.check_mode)
    except (r2_client.R2ConfigError, StoreError) as exc:
        module.fail_json(msg=str(exc))

    client = r2_client.make_client(endpoint, params["access_key_id"], params["secret_access_key"],
                                   max_pool_connections=params["max_concurrency"])
    # Check mode changes nothing on the host, the log file included.
    log = ProgressLog(None if module.check_mode else params["log_file"])
    fetcher = R2Fetcher(client, endpoint, store, max_concurrency=params["max_concurrency"],
                        part_size=part_size, multipart_threshold=threshold, log=log)
    with store.exclusive_run("r2_fetch", on_wait=log):
        results = fetcher.run(specs, check_mode=module.check_mode)
    counts = summarize(results)
    fetched = [r for r in results if r["status"] in ("downloaded", "would_download")]
    bytes_needed = sum(r["bytes"] for r in fetched)
    log("summary: %d downloaded, %d present, %d failed%s" % (
        counts["downloaded"], counts["present"], counts["failed_count"],
        ", %d would be downloaded" % counts["would_download"] if module.check_mode else ""))

    changed = bool(counts["downloaded"] or counts["would_download"])
    diff = {"before": "".join("%s: %s\n" % (r["dest"], r["reason"] or "absent") for r in fetched),
            "after": "".join("%s: %s (%d bytes)\n" % (r["dest"], r["name"], r["bytes"]) for r in fetched)}
    output = dict(changed=changed, results=results, endpoint=endpoint, bytes_needed=bytes_needed,
                  hashed=store.hashed, **counts)
    if module._diff:
        output["diff"] = diff
    if counts["failed_count"] and params["fail_on_error"]:
        failures = ["%s: %s" % (r["name"], r["reason"]) for r in results if r["status"] == "failed"]
        module.fail_json(msg="%d of %d R2 objects failed:\n%s" % (counts["failed_count"], len(results), "\n".join(failures)),
                         **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
