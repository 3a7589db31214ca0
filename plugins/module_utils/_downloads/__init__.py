# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model download machinery of aiclipse.comfyui. PRIVATE: not an API.

The leading underscore marks this package as internal to the collection (the community.crypto
convention): its modules change with the modules that use them (aria2_batch, r2_fetch,
model_manifest) and may be renamed or removed in any release. Do not import it from outside
this collection.

One pipeline (``pipeline``) runs every download the same way - plan, check present, preflight
the disk, fetch, verify, publish, record, log, report - and the fetchers plug into it:
``http_fetcher`` (aria2c, or an in-process ranged transport when the origin itself serves a
file that needs a token) and ``r2_fetcher`` (boto3 ranged GETs). ``model_store`` owns staging,
the ledger and the run lock; ``manifest`` and ``plan_file`` turn manifests into the plan.
"""
