"""The hand-written OpenAPI documents in ``specs/``, and validators for their schemas.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so one ``jsonschema`` validator per component
serves every runner; ``$ref`` inside a document resolves against the document itself.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SpecName = Literal["openai", "anthropic", "management", "gateway"]
SPEC_NAMES: tuple[SpecName, ...] = ("openai", "anthropic", "management", "gateway")

_PACKAGED = Path(__file__).resolve().parents[1] / "_specs"
_SOURCE = Path(__file__).resolve().parents[3] / "specs"


def spec_path(name: SpecName) -> Path:
    """Where a spec lives: packaged inside a wheel, ``specs/`` in a checkout."""
    packaged = _PACKAGED / f"{name}.yaml"
    return packaged if packaged.exists() else _SOURCE / f"{name}.yaml"


@cache
def load_spec(name: SpecName) -> dict[str, Any]:
    """The parsed OpenAPI document (cached: specs do not change while gateprobe runs)."""
    # libyaml's loader where PyYAML has it (the same safe subset, some ten times faster: the
    # OpenAI spec alone took a second to parse in pure Python, in every process that judges).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec: dict[str, Any] = yaml.load(spec_path(name).read_text(encoding="utf-8"), Loader=loader)
    return spec


@cache
def _registry(name: SpecName) -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(load_spec(name),
                                                     default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(f"urn:gateprobe:spec:{name}", resource)
    return registry


@cache
def validator(name: SpecName, component: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<component>`` of a spec."""
    if component not in load_spec(name)["components"]["schemas"]:
        raise KeyError(f"{name} spec has no schema {component!r}")
    ref = {"$ref": f"urn:gateprobe:spec:{name}#/components/schemas/{component}"}
    return Draft202012Validator(ref, registry=_registry(name))


def schema_errors(name: SpecName, component: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks the component's schema, as ``path: message`` lines, in
    order of path and message. (Not sorted by ``str(error)``: that pretty-prints the whole
    schema and instance of every error, and was most of the CPU time of judging an answer.)"""
    lines = {f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
             for e in validator(name, component).iter_errors(instance)}
    return sorted(lines)


def conforms(name: SpecName, component: str, instance: object) -> bool:
    """Whether ``instance`` meets the component's schema (stops at the first error)."""
    return bool(validator(name, component).is_valid(instance))


def event_payload_schemas(name: SpecName, component: str) -> list[str]:
    """The component names an SSE event's JSON ``data`` may match, for a stream event schema
    whose ``data`` has ``contentSchema`` (possibly inside an ``anyOf`` beside ``[DONE]``)."""
    data = load_spec(name)["components"]["schemas"][component]["properties"]["data"]
    branches = data.get("anyOf", [data])
    refs: list[str] = []
    for branch in branches:
        for ref in branch.get("contentSchema", {}).get("anyOf", []):
            refs.append(ref["$ref"].rsplit("/", 1)[1])
    return refs
