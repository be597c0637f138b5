"""The playground: the bot's engine in a local web chat (Gradio), a second adapter beside cogs/.

Importing this package imports nothing optional; ``playground.server`` needs requirements-playground.txt.
Gradio is told here, before anything imports it, to send nothing anywhere: no analytics, no version
check, no Hugging Face Hub.
"""

from __future__ import annotations

import os

for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_RUN_HISTORY": "False",
    "GRADIO_SSR_MODE": "False",
    "GRADIO_MCP_SERVER": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}.items():
    os.environ[_name] = _value

REQUIREMENTS = "requirements-playground.txt"
OPTIONAL_MODULES = ("gradio", "uvicorn", "fastapi")


def missing_dependency() -> str | None:
    """The first optional module that cannot be imported, or None."""
    import importlib

    for name in OPTIONAL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None
