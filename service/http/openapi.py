"""Request body schemas for ``openapi_extra``: a pydantic model's JSON schema with its nested models in place.

Routes that read their body themselves (for speed, or for binary data) describe it with ``openapi_extra``;
FastAPI does not add the nested models of such a schema to the document's components, so a ``$ref`` to them
would point nowhere."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

DEFINITIONS = "#/$defs/"


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith(DEFINITIONS):
                return inline(definitions[reference.removeprefix(DEFINITIONS)])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result
