# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ComfyUI itself: its git checkout, its custom nodes, their requirements and its command line.

PRIVATE to this collection: the leading underscore says so (the community.crypto convention).
Nothing here is a public API; names and shapes may change in any release. The public
interfaces are the modules ``comfyui_install``, ``custom_nodes`` and ``launch_config``.

One concept a file:

* ``git_checkout``      -- git without prompts, credentials or hangs; clones staged, then renamed
                           into place;
* ``comfyui_install``   -- a working ComfyUI checkout (seeded, cloned or repaired, never reset);
* ``custom_nodes``      -- node checkouts in parallel, their requirements installed together;
* ``nodes_manifest``    -- the custom-nodes manifest grammar;
* ``pip_requirements``  -- requirements.txt into the pod's venv when it changed, torch protected;
* ``comfy_registry``    -- a Comfy Registry id (+ version) to the repository to clone;
* ``launch_args``       -- the argv that starts ComfyUI and the launch file the entrypoint runs.
"""
