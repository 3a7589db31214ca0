# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The workspace of a pod: the vault, the links into it and ComfyUI's checkout kept pristine.

PRIVATE to this collection: the leading underscore says so (the community.crypto convention).
Nothing here is a public API; names and shapes may change in any release. The public
interfaces are the modules ``workspace_link``, ``comfyui_layout``, ``workflow_seed``,
``start_stamp``, ``pod_lock`` and ``pod_lock_read`` and the results they document.

One concept a file:

* ``safe_merge``       -- moving a folder's contents into another without losing or
                          overwriting a byte (plan first, then apply; crash-safe moves);
* ``workspace_links``  -- shortcut paths made links into the vault, whatever is found there;
* ``comfyui_layout``   -- ComfyUI's checkout holds code only, the vault is its base directory
                          (and vaults of the older layout are migrated);
* ``workflow_seed``    -- template workflows copied in without losing a user's edit;
* ``start_stamp``      -- what a clean start found, so the next one may skip the roles;
* ``pod_lock``         -- what a clean start put on the pod, as a stable lock file;
* ``lock_source``      -- a lock to provision from (a pod lock or a ComfyUI-Manager snapshot),
                          read from a path or URL and checked line by line;
* ``lock_registry``    -- a snapshot's Comfy Registry nodes as repositories at version tags;
* ``lock_check``       -- whether a start reproduced its lock, and the report saying so.
"""
