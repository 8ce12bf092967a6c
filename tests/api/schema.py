"""Check API answers against the OpenAPI document the API itself generates (drf-spectacular).

The document is OpenAPI 3.0: ``$ref`` into components and ``nullable`` are turned into plain JSON Schema
(draft 7) for ``jsonschema``; objects are closed (``additionalProperties: false`` unless the document says
otherwise), so a field the document does not declare fails too.
"""

import re

import jsonschema
from django.test import Client

_document = {}


def document() -> dict:
    if not _document:
        response = Client().get("/api/v1/schema/", {"format": "json"})
        assert response.status_code == 200, response.content[:300]
        _document.update(response.json())
    return _document


def to_json_schema(node, components):
    if isinstance(node, list):
        return [to_json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return to_json_schema(components[name], components)
    out = {k: to_json_schema(v, components) for k, v in node.items() if k not in ("nullable", "readOnly", "writeOnly")}
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def operation_for(method: str, path: str) -> tuple[str, dict]:
    """(path template, operation) of the document that this concrete path and method are."""
    for template, operations in document()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def validate(response, seen: set | None = None) -> None:
    """The answer's status is documented for its operation and its JSON body matches that schema."""
    request = response.wsgi_request
    template, operation = operation_for(request.method, request.path)
    status = str(response.status_code)
    assert status in operation["responses"], f"{request.method} {template} answered undocumented {status}"
    content = operation["responses"][status].get("content")
    if content and "application/json" in content:
        schema = to_json_schema(content["application/json"]["schema"], document()["components"]["schemas"])
        jsonschema.Draft7Validator(schema).validate(response.json())
    elif content:  # a file: its type is one the document names
        kind = response["Content-Type"].split(";")[0]
        assert kind in content or "*/*" in content, (template, kind, list(content))
    else:
        assert not response.content, f"{request.method} {template} answered a body the document does not have"
    if seen is not None:
        seen.add((request.method.lower(), template))
