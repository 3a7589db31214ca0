# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order models are queued in: the default workflow's first, so it runs soonest.

A pod's downloads run in the background while ComfyUI is already up; a person opens the image's
default workflow first. So the plan puts the models that workflow needs at the front (in plan
order among themselves), then every other model in plan order. The downloaders take their
entries in that order (aria2c queues them, ``max_concurrent_downloads`` at a time).

The default workflow is a file, or a folder: then its ``default.json`` when there is one, else
its first workflow file (name order, the folder's own files before its subfolders', as the
workflow reader lists them). Sizes are not known when the plan is made (the downloaders ask the
origins later), so the default workflow's models keep their plan order among themselves: all of
them are needed before it runs, and only the models it needs come before the rest.
"""

from __future__ import annotations

import os

from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows import files
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workflows.plan import plan_workflows

# A template folder's default workflow when it has a file of this name.
DEFAULT_NAME = "default.json"


def find_default_workflow(path):
    """(workflow file or None, reason when there is none)."""
    if not path:
        return None, "no default workflow is set"
    if not os.path.isabs(path):
        return None, f"the default workflow {path} is not an absolute path"
    if os.path.isdir(path):
        conventional = os.path.join(path, DEFAULT_NAME)
        if os.path.isfile(conventional):
            return conventional, ""
        found, _skipped = files.find_workflow_files([path], max_files=1)
        if not found:
            return None, f"the folder {path} holds no workflow file"
        return found[0][0], ""
    if os.path.isfile(path):
        return path, ""
    return None, f"the default workflow {path} does not exist"


def default_workflow_dests(workflow, models_dir):
    """(destinations of the models the workflow needs, warnings); reading never raises."""
    result = plan_workflows([workflow], models_dir=models_dir)
    dests = [
        os.path.normpath(os.path.join(models_dir, model["directory"], model["name"])) for model in result["models"]
    ]
    return dests, result["warnings"]


def default_first(entries, dests):
    """(entries reordered, the ones moved to the front): the entries writing one of ``dests``
    first, each group keeping its own order."""
    wanted = set(dests)
    first = [entry for entry in entries if os.path.normpath(entry["dest"]) in wanted]
    rest = [entry for entry in entries if os.path.normpath(entry["dest"]) not in wanted]
    return first + rest, first
