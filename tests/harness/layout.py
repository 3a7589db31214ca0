"""The workspace layout a user is promised, written down once for the tests.

SHORTCUTS maps each shortcut under /workspace to the folder of the vault it shows. It is the
contract, kept apart from the role's defaults on purpose: a default changed by mistake fails
the tests instead of moving their expectations along.
"""

SHORTCUTS = {
    "ComfyUI": "ComfyUI",
    "models": "models",
    "workflows": "user/default/workflows",
    "input": "input",
    "output": "output",
    "logs": "logs",
    "custom_nodes": "custom_nodes",
}
