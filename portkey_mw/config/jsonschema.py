"""The JSON Schema of the routing config, generated from the pydantic models.

The generated file ships as ``portkey_mw/config/config.schema.json``; a test fails when it
no longer matches the models (regenerate with ``portkey-mw config schema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portkey_mw.config.schema import Config

SCHEMA_PATH = Path(__file__).with_name("config.schema.json")


def config_json_schema() -> dict[str, Any]:
    """The schema, as pydantic generates it for validation (snake_case keys, as Portkey's).

    The gateway also accepts the camelCase spellings; the schema documents one spelling.
    """
    schema = Config.model_json_schema(mode="validation")
    schema["title"] = "portkey-mw routing config (Portkey-compatible)"
    return schema
