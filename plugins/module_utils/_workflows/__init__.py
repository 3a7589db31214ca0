# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ComfyUI workflow files need: models and custom nodes, read from untrusted files.

PRIVATE to this collection: the leading underscore says so. Nothing here is a public API; names
and shapes may change in any release. The public interface is the module
``aiclipse.comfyui.workflow_requirements`` and the result it documents.

One concept a file:

* ``values``   -- checks for every value a workflow file supplies (folder and file names, URLs,
                  hashes, registry ids, versions) and the escaping that keeps them harmless in a
                  log line;
* ``loaders``  -- ComfyUI's own loader nodes: which input names which model folder;
* ``files``    -- finding workflow files under the given paths and reading them within limits;
* ``graph``    -- walking one workflow (UI graphs with subgraphs, API prompts) into mentions;
* ``plan``     -- merging the mentions of every workflow into one deduplicated plan;
* ``report``   -- the plan as text a person reads.
"""
