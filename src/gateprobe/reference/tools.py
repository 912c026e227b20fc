"""The fake model's tool calls: deterministic, and only when the request asks for them.

Our reading of when a model calls a tool, for both families: never without ``tools`` or with
``tool_choice`` none; always when the choice forces one (OpenAI ``{"type": "function",
"function": {"name"}}``, Anthropic ``{"type": "tool", "name"}``: that tool) or requires one
(OpenAI ``"required"``, Anthropic ``{"type": "any"}``: the tools the last user turn names, else
the first); under ``auto``, the tools the last user turn names (by their name), in the order
declared. More than one is called in parallel unless the request turns that off
(``parallel_tool_calls: false``, ``disable_parallel_tool_use: true``). The arguments are the
smallest instance of the tool's JSON schema that names every property (``example_of``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from gateprobe.core.tokenizer import tokenize
from gateprobe.reference.validate import invalid

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the fake model makes."""

    id: str
    name: str
    arguments: str
    """The arguments as the JSON text a client reassembles."""

    @property
    def pieces(self) -> tuple[str, ...]:
        """The arguments as token pieces: a stream sends one per event, the usage counts them."""
        return tuple(tokenize(self.arguments))


def declared(family: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, JSON schema of the input) per declared tool; a malformed one is a 400."""
    tools = body.get("tools") or []
    out = []
    for i, tool in enumerate(tools):
        spec = tool.get("function") if family == "openai" and isinstance(tool, dict) else tool
        where = f"tools[{i}]" if family == "openai" else f"tools.{i}"
        if family == "openai" and (not isinstance(tool, dict) or tool.get("type") != "function"):
            _bad(family, where, "a tool's type is 'function'")
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not NAME.match(name):
            _bad(family, where, "a tool needs a name of 1-64 letters, digits, '_' or '-'")
        assert isinstance(spec, dict) and isinstance(name, str)
        schema = spec.get("parameters" if family == "openai" else "input_schema",
                          {"type": "object"})
        if not isinstance(schema, dict):
            _bad(family, where, "a tool's input schema is an object")
        strict = spec.get("strict")
        if not isinstance(spec.get("description", ""), str) or \
                strict is not None and not isinstance(strict, bool):
            _bad(family, where, "a tool's description is a string and strict a boolean")
        out.append((name, schema))
    return out


def _bad(family: str, where: str, message: str) -> NoReturn:
    if family == "openai":
        invalid("openai", where, f"Invalid '{where}': {message}.", "")
    invalid("anthropic", where, "", f"{where}: {message}")


def chosen(family: str, body: dict[str, Any], last_user_text: str,
           required_as_auto: bool = False) -> list[tuple[str, Any]]:
    """(name, schema) of each tool the model calls for this request (see the module);
    ``required_as_auto``: the ``tool-required-as-auto`` fault."""
    tools = declared(family, body)
    choice = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else choice
    if required_as_auto and kind in ("required", "any"):
        kind = "auto"
    if not tools or kind == "none":
        return []
    forced = (choice.get("function") or {}).get("name") if kind == "function" and \
        isinstance(choice, dict) else choice.get("name") if kind == "tool" and \
        isinstance(choice, dict) else None
    if forced is not None:
        return [t for t in tools if t[0] == forced][:1]
    named = [t for t in tools if re.search(rf"\b{re.escape(t[0])}\b", last_user_text)]
    calls = named or (tools[:1] if kind in ("required", "any") else [])
    parallel = body.get("parallel_tool_calls", True) is not False and not (
        isinstance(choice, dict) and choice.get("disable_parallel_tool_use"))
    return calls if parallel else calls[:1]


def calls_for(family: str, body: dict[str, Any], last_user_text: str,
              request_id: str, required_as_auto: bool = False) -> list[ToolCall]:
    """The calls, with ids in the family's form (``call_...``, ``toolu_...``)."""
    prefix = "call_" if family == "openai" else "toolu_"
    out = []
    for i, (name, schema) in enumerate(chosen(family, body, last_user_text,
                                              required_as_auto)):
        digest = hashlib.blake2b(f"{request_id}\x00{i}".encode(), digest_size=12).hexdigest()
        out.append(ToolCall(prefix + digest, name,
                            json.dumps(example_of(schema), separators=(",", ": "))))
    return out


def example_of(schema: Any, depth: int = 0) -> Any:
    """The smallest value of ``schema`` that names every property: the first enum value or
    const, a string, the minimum number, an array of one item. A schema it cannot read (a
    client's mistake) gives null rather than an error."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_of(schema[key][0], depth + 1)
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties")
        return {str(name): example_of(sub, depth + 1)
                for name, sub in (properties.items() if isinstance(properties, dict) else ())}
    if kind == "array":
        return [example_of(schema.get("items") or {"type": "string"}, depth + 1)]
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        low = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 0
        return math.ceil(low) if kind == "integer" else float(low) + 0.5
    if kind == "boolean":
        return True
    if kind == "string":
        return "Paris"
    return None
