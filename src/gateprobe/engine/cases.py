"""The conformance cases: requests and what a conformant gateway answers to each.

Data only: ``probe.py`` sends a case, ``checks`` judge the exchange. The pytest suite in
``conformance/`` parametrizes over these lists by category (its markers), and the proof tests
run them against every fault of the reference gateway.
"""

from __future__ import annotations

import functools
import io
import struct
import wave
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateprobe.core.checks import Exchange, Expectation, Family
from gateprobe.core.errors import ConfigError
from gateprobe.core.golden import Golden, fill_models, golden_dir, load_dir
from gateprobe.core.targets import Target

Category = Literal["endpoint", "stream", "errors", "auth", "legacy_prompt", "golden"]
Encoding = Literal["json", "form", "multipart"]
Auth = Literal["default", "none", "bad", "wrong_style", "no_permission"]

MARKERS = {
    "endpoint": "one plain request per endpoint, answer checked against the spec",
    "stream": "every streaming endpoint, checked by its stream grammar",
    "errors": "bad input gets the family's 4xx in its envelope, never a 5xx",
    "auth": "bad, missing, wrongly sent keys and missing model permissions",
    "legacy_prompt": "the \\n\\nHuman: / \\n\\nAssistant: prompt format",
    "golden": "answers compared with golden answers recorded from a trusted gateway",
    "fuzz": "schemathesis fuzzing of every operation in specs/, with gateprobe's checks",
    "sdk": "the official openai and anthropic SDKs as clients",
    "management": "the gateway's key management API: a key's life, permissions, isolation "
                  "(targets that declare management: true)",
    "billing": "balance and used_fee move by usage x rate; streams, refusals, max_fee "
               "(targets that declare management: true)",
    "propagation": "the reference as the gateway's upstream, scripted: truncation, "
                   "Retry-After, status, keys, headers, usage, parameters, cancellation, "
                   "retries (targets that declare upstream:)",
}
"""The suite's markers: its categories (and the ones still to come). Here, not in the pytest
plugin, so that the CLI can check a selection without importing the plugin before pytest."""

BAD_KEY = "gp-invalid-key-000000"
"""A key no gateway issues; sending it must get 401."""


@dataclass(frozen=True, slots=True)
class Case:
    """One request of the suite."""

    name: str
    category: Category
    method: str
    path: str
    family: Family
    body: Any = None
    """JSON body; ``bytes`` are sent as they are (malformed JSON)."""
    auth: Auth = "default"
    expect: Expectation = field(default_factory=Expectation)
    headers: Mapping[str, str] = field(default_factory=dict)
    golden: Golden | None = None
    """The stored golden this case comes from (``--record-golden`` writes back to it)."""
    encoding: Encoding = "json"
    """How ``body`` is sent: JSON, form-urlencoded fields, or multipart (``bytes`` values
    become file parts)."""
    requires: tuple[str, ...] = ()
    """Its preconditions beyond the endpoint being served (names of ``PRECONDITIONS``): where
    one does not hold, the case is not sent."""

    @property
    def id(self) -> str:
        """A readable pytest id."""
        return f"{self.path} {self.name}"


SAY = [{"role": "user", "content": "Say test"}]
LONG_ANSWER = [{"role": "user", "content": "Count from one to twenty in words."}]
WEATHER_TOOL = {"name": "get_weather", "description": "The weather now in a city.",
                "schema": {"type": "object", "required": ["city"],
                           "properties": {"city": {"type": "string"},
                                          "unit": {"type": "string", "enum": ["c", "f"]}}}}
TIME_TOOL = {"name": "get_time", "description": "The local time in a time zone.",
             "schema": {"type": "object", "required": ["zone"],
                        "properties": {"zone": {"type": "string"}}}}
TOOL_ASK = [{"role": "user", "content": "Call get_weather for Paris and get_time for "
                                        "Europe/Paris, both at once."}]
"""Two tools named in the prompt: a model calls both, in parallel where it can."""


def openai_tools(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    """Tools in the chat API's form."""
    return [{"type": "function", "function": {"name": t["name"], "description":
                                              t["description"], "parameters": t["schema"]}}
            for t in tools]


def anthropic_tools(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    """Tools in the Messages API's form."""
    return [{"name": t["name"], "description": t["description"], "input_schema": t["schema"]}
            for t in tools]


def tool_bodies(m: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(chat, messages) requests that require a tool call, both tools offered."""
    return ({"model": m["chat"], "messages": TOOL_ASK, "max_tokens": 128,
             "tools": openai_tools(WEATHER_TOOL, TIME_TOOL), "tool_choice": "required"},
            {"model": m["messages"], "messages": TOOL_ASK, "max_tokens": 128,
             "tools": anthropic_tools(WEATHER_TOOL, TIME_TOOL), "tool_choice": {"type": "any"}})
"""A prompt whose answer outruns a small cap (the choices stop at it: ``finish_reason``
``length``)."""


def unprompted_tool_bodies(m: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(chat, messages) requests that require a tool call with a prompt that names none and
    needs none ("Say test"): only ``tool_choice`` makes the model call one, so a gateway that
    treats ``required`` (Anthropic ``any``) as ``auto`` answers text, and is caught."""
    chat, messages = tool_bodies(m)
    return {**chat, "messages": SAY}, {**messages, "messages": SAY}


def documented_extras(t: Target) -> bool:
    """Whether the seeds' gateway's own documented rules apply (its ``claude-2-web`` chat
    model: serialized legacy prompts, a 90k-token input limit, tier limits): under its profile
    only. Another gateway has no such model, and an upstream API would answer 404 for it."""
    return t.profile == "ohmygpt"


def models_family(t: Target) -> Family:
    """``/v1/models`` answers in Anthropic's shape and conventions on an Anthropic target."""
    return "anthropic" if t.profile == "anthropic" else "openai"


def declares_model(t: Target, role: str) -> bool:
    """Whether the target names a model for ``role``: its entry's ``models:`` does, or it
    has none (then the profile's defaults are its models)."""
    return t.declared_models is None or role in t.declared_models


def is_gpt_image(t: Target) -> bool:
    """Whether the images model is one of OpenAI's gpt-image models: ``output_format`` (webp,
    jpeg) is documented for them only; dall-e-2 and dall-e-3 answer PNG whatever it says."""
    return t.models["images"].startswith("gpt-image")


PRECONDITIONS: Mapping[str, tuple[Callable[[Target], bool], str]] = {
    "documented_gateway": (documented_extras, "the seeds' gateway's own rules (profile "
                                              "ohmygpt)"),
    "legacy_chat": (lambda t: declares_model(t, "legacy_chat"),
                    "a legacy_chat model (claude-2-web) among the target's models"),
    "gpt_image": (is_gpt_image, "a gpt-image images model (output_format is documented for "
                                "gpt-image models only)"),
    "openai_models": (lambda t: models_family(t) == "openai",
                      "/v1/models in OpenAI's shape (not under profile anthropic)"),
    "anthropic_models": (lambda t: models_family(t) == "anthropic",
                         "/v1/models in Anthropic's shape (profile anthropic)"),
}
"""Each precondition a case may state: (holds for a target?, what it needs). The endpoint a
case goes to is a precondition of every case (``Target.serves``)."""
CLAUDE_2_WEB = ("documented_gateway", "legacy_chat")
"""What a case of the seeds' claude-2-web chat model needs: the documented gateway's profile
(another gateway has no such model: an upstream answers 404), and the model among the
target's."""


def unmet(requires: Iterable[str], t: Target) -> str:
    """What a case needs that ``t`` does not offer ('' when every precondition holds)."""
    return "; ".join(PRECONDITIONS[name][1] for name in requires
                     if not PRECONDITIONS[name][0](t))


def applies(case: Case, t: Target) -> bool:
    """Whether ``case`` may be sent to ``t``: its endpoint served, its preconditions met."""
    return t.serves(case.path) and not unmet(case.requires, t)


CaseBuilder = Callable[..., list[Case]]


def _served(builder: CaseBuilder) -> CaseBuilder:
    """Only the cases whose preconditions hold (``applies``): nothing is sent outside the
    endpoints the target serves, or to a target that does not offer what a case needs."""
    @functools.wraps(builder)
    def build(t: Target, *args: Any) -> list[Case]:
        return [case for case in builder(t, *args) if applies(case, t)]

    return build


@_served
def endpoint_cases(t: Target) -> list[Case]:
    """One plain request per endpoint, answer checked against the spec."""
    m = t.models
    cases = [
        Case("models", "endpoint", "GET", "/v1/models", models_family(t)),
        Case("chat", "endpoint", "POST", "/v1/chat/completions", "openai",
             {"model": m["chat"], "messages": SAY, "max_tokens": 16}),
        Case("claude-2-web chat", "endpoint", "POST", "/v1/chat/completions", "openai",
             {"model": m["legacy_chat"], "messages": SAY},
             requires=CLAUDE_2_WEB),
        Case("completions", "endpoint", "POST", "/v1/completions", "openai",
             {"model": m["completions"], "prompt": "Say test", "max_tokens": 16}),
        # Two choices cut at a small cap: the usage must bill both (a gateway may refuse n > 1
        # when its upstream has no n, but not bill one choice of two).
        Case("chat n=2", "endpoint", "POST", "/v1/chat/completions", "openai",
             {"model": m["chat"], "messages": LONG_ANSWER, "max_tokens": 4, "n": 2},
             expect=Expectation(statuses=(200, 400))),
        Case("embeddings", "endpoint", "POST", "/v1/embeddings", "openai",
             {"model": m["embeddings"], "input": ["Say", "test"]}),
        Case("chat with tools", "endpoint", "POST", "/v1/chat/completions", "openai",
             tool_bodies(m)[0]),
        Case("chat, tool_choice required, a prompt needing no tool", "endpoint", "POST",
             "/v1/chat/completions", "openai", unprompted_tool_bodies(m)[0]),
    ]
    if t.serves_anthropic:
        cases += [
            Case("messages with tools", "endpoint", "POST", "/v1/messages", "anthropic",
                 tool_bodies(m)[1]),
            Case("messages, tool_choice any, a prompt needing no tool", "endpoint", "POST",
                 "/v1/messages", "anthropic", unprompted_tool_bodies(m)[1]),
            Case("complete", "endpoint", "POST", "/v1/complete", "anthropic",
                 {"model": m["complete"], "prompt": "\n\nHuman: Say test\n\nAssistant:",
                  "max_tokens_to_sample": 16}),
            Case("messages", "endpoint", "POST", "/v1/messages", "anthropic",
                 {"model": m["messages"], "messages": SAY, "max_tokens": 16}),
            Case("count_tokens", "endpoint", "POST", "/v1/messages/count_tokens", "anthropic",
                 {"model": m["messages"], "messages": SAY}),
        ]
    return cases


@_served
def stream_cases(t: Target) -> list[Case]:
    """Every streaming endpoint, in each variant its grammar has."""
    m = t.models

    def stream(name: str, path: str, family: Family, body: dict[str, Any],
               version: str = "2023-06-01", requires: tuple[str, ...] = ()) -> Case:
        headers = {"anthropic-version": version} if family == "anthropic" else {}
        return Case(name, "stream", "POST", path, family, {**body, "stream": True},
                    expect=Expectation(stream_body=body, anthropic_version=version),
                    headers=headers, requires=requires)

    chat = {"model": m["chat"], "messages": SAY, "max_tokens": 24}
    comp = {"model": m["completions"], "prompt": "Say test", "max_tokens": 24}
    cases = [
        stream("chat", "/v1/chat/completions", "openai", chat),
        stream("chat with usage", "/v1/chat/completions", "openai",
               {**chat, "stream_options": {"include_usage": True}}),
        stream("claude-2-web chat", "/v1/chat/completions", "openai",
               {"model": m["legacy_chat"], "messages": SAY},
               requires=CLAUDE_2_WEB),
        stream("chat with tools", "/v1/chat/completions", "openai", tool_bodies(m)[0]),
        stream("chat, tool_choice required, a prompt needing no tool", "/v1/chat/completions",
               "openai", unprompted_tool_bodies(m)[0]),
        stream("completions", "/v1/completions", "openai", comp),
        stream("completions with usage", "/v1/completions", "openai",
               {**comp, "stream_options": {"include_usage": True}}),
    ]
    if t.serves_anthropic:
        legacy = {"model": m["complete"], "prompt": "\n\nHuman: Say test\n\nAssistant:",
                  "max_tokens_to_sample": 24}
        cases += [
            stream("messages", "/v1/messages", "anthropic",
                   {"model": m["messages"], "messages": SAY, "max_tokens": 24}),
            stream("messages with tools", "/v1/messages", "anthropic", tool_bodies(m)[1]),
            stream("messages, tool_choice any, a prompt needing no tool", "/v1/messages",
                   "anthropic", unprompted_tool_bodies(m)[1]),
            stream("complete", "/v1/complete", "anthropic", legacy),
            stream("complete 2023-01-01", "/v1/complete", "anthropic", legacy, "2023-01-01"),
        ]
    return cases


@_served
def error_cases(t: Target) -> list[Case]:
    """Bad input per family: the right 4xx in the right envelope, never a 5xx."""
    m = t.models
    chat = {"model": m["chat"], "messages": SAY}
    cases = [
        Case("malformed JSON", "errors", "POST", "/v1/chat/completions", "openai",
             b'{"model": "x", ', expect=Expectation(400)),
        Case("missing messages", "errors", "POST", "/v1/chat/completions", "openai",
             {"model": m["chat"]}, expect=Expectation(400)),
        Case("wrong type", "errors", "POST", "/v1/chat/completions", "openai",
             {**chat, "max_tokens": "ten"}, expect=Expectation(400)),
        Case("out of range", "errors", "POST", "/v1/chat/completions", "openai",
             {**chat, "temperature": 7}, expect=Expectation(400)),
        Case("unknown model", "errors", "POST", "/v1/chat/completions", "openai",
             {**chat, "model": "gateprobe-no-such-model"}, expect=Expectation(404)),
        Case("claude-2-web input over 90,000 tokens", "errors", "POST",
             "/v1/chat/completions", "openai",
             {"model": m["legacy_chat"],
              "messages": [{"role": "user", "content": " word" * 91_000}]},
             expect=Expectation(400),
             requires=CLAUDE_2_WEB),
        Case("empty input", "errors", "POST", "/v1/embeddings", "openai",
             {"model": m["embeddings"], "input": ""}, expect=Expectation(400)),
        Case("tool without a name", "errors", "POST", "/v1/chat/completions", "openai",
             {**chat, "tools": [{"type": "function", "function": {
                 "parameters": WEATHER_TOOL["schema"]}}]}, expect=Expectation(400)),
    ]
    if t.serves_anthropic:
        legacy = {"model": m["complete"], "prompt": "\n\nHuman: x\n\nAssistant:",
                  "max_tokens_to_sample": 8}
        msg = {"model": m["messages"], "messages": SAY, "max_tokens": 8}
        cases += [
            Case("malformed JSON", "errors", "POST", "/v1/messages", "anthropic",
                 b"{not json", expect=Expectation(400)),
            Case("missing max_tokens", "errors", "POST", "/v1/messages", "anthropic",
                 {"model": m["messages"], "messages": SAY}, expect=Expectation(400)),
            Case("unknown model", "errors", "POST", "/v1/messages", "anthropic",
                 {**msg, "model": "gateprobe-no-such-model"}, expect=Expectation(404)),
            Case("tool without a name", "errors", "POST", "/v1/messages", "anthropic",
                 {**msg, "tools": [{"input_schema": WEATHER_TOOL["schema"]}]},
                 expect=Expectation(400)),
            Case("temperature above 1", "errors", "POST", "/v1/complete", "anthropic",
                 {**legacy, "temperature": 1.5}, expect=Expectation(400)),
            Case("max_tokens_to_sample 0", "errors", "POST", "/v1/complete", "anthropic",
                 {**legacy, "max_tokens_to_sample": 0}, expect=Expectation(400)),
            Case("empty prompt", "errors", "POST", "/v1/complete", "anthropic",
                 {**legacy, "prompt": ""}, expect=Expectation(400)),
        ]
    return cases


@_served
def auth_cases(t: Target) -> list[Case]:
    """Bad key, missing key, wrong auth style for the profile, key without model permission."""
    m = t.models
    chat = {"model": m["chat"], "messages": SAY, "max_tokens": 4}
    msg = {"model": m["messages"], "messages": SAY, "max_tokens": 4}
    cases = [
        Case("bad key", "auth", "POST", "/v1/chat/completions", "openai", chat, "bad",
             Expectation(401, kind="bad_key")),
        Case("missing key", "auth", "POST", "/v1/chat/completions", "openai", chat, "none",
             Expectation(401, kind="missing_key")),
        Case("bad key", "auth", "GET", "/v1/models", models_family(t), None, "bad",
             Expectation(401, kind="bad_key")),
    ]
    if t.serves_anthropic:
        cases += [
            Case("bad key", "auth", "POST", "/v1/messages", "anthropic", msg, "bad",
                 Expectation(401, kind="bad_key")),
            Case("missing key", "auth", "POST", "/v1/complete", "anthropic",
                 {"model": m["complete"], "prompt": "\n\nHuman: x\n\nAssistant:",
                  "max_tokens_to_sample": 4}, "none", Expectation(401, kind="missing_key")),
        ]
    if t.profile == "ohmygpt" and t.serves("/v1/messages"):
        # The gateway documents Bearer, where Anthropic documents x-api-key. Judged only as
        # the target declares it: a gateway that also takes x-api-key, with a valid key, is
        # not wrong unless it says it refuses it; undeclared, what it does is information.
        expect = Expectation(kind="information") if t.auth_styles is None else \
            Expectation() if "x-api-key" in t.auth_styles else \
            Expectation(401, kind="wrong_auth_style")
        cases.append(Case("x-api-key instead of Bearer", "auth", "POST", "/v1/messages",
                          "anthropic", msg, "wrong_style", expect))
    # Judged only with a key that lacks the permission; the suite skips it without one.
    statuses = {"ohmygpt": (401,), "anthropic": (403,), "openai": (404,)}[t.profile]
    cases.append(Case("key without model permission", "auth", "POST",
                          "/v1/chat/completions", "openai",
                          {"model": m["legacy_chat"], "messages": SAY}, "no_permission",
                          Expectation(statuses=statuses, kind="no_permission"),
                          requires=("legacy_chat",)))
    return cases


def information_line(case: Case, exchange: Exchange) -> str:
    """What an information case found, for the report: the target did something it does
    not declare either way, so it is said, never judged."""
    answer = f"status {exchange.status}" if exchange.status is not None else \
        f"no answer ({exchange.transport_error})"
    verdict = "accepted" if exchange.status is not None and 200 <= exchange.status < 300 \
        else "refused"
    return (f"{case.method} {case.path} {case.name}: {verdict} ({answer}); not judged, as "
            f"the target does not declare it (its entry's `auth:` list)")


# (name, prompt, valid): Anthropic's rules, PROTOCOL.md "Anthropic legacy Text Completions".
LEGACY_PROMPTS: list[tuple[str, str, bool]] = [
    ("basic", "\n\nHuman: Say test\n\nAssistant:", True),
    ("system prompt first", "Answer briefly.\n\nHuman: Say test\n\nAssistant:", True),
    ("multi-turn", "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Say test\n\nAssistant:", True),
    ("prefill", "\n\nHuman: Say test\n\nAssistant: Sure,", True),
    ("missing leading newlines (repaired)", "Human: Say test\n\nAssistant:", True),
    ("trailing space (repaired)", "\n\nHuman: Say test\n\nAssistant: ", True),
    ("no turns", "Say test", False),
    ("no assistant turn", "\n\nHuman: Say test", False),
    ("ends with human", "\n\nHuman: a\n\nAssistant: b\n\nHuman: c", False),
    ("starts with assistant", "\n\nAssistant: Hi\n\nHuman: Say test\n\nAssistant:", False),
    ("single-newline assistant", "\n\nHuman: Say test\nAssistant:", False),
    ("single-newline human", "\nHuman: Say test\n\nAssistant:", False),
    ("two human turns", "\n\nHuman: a\n\nHuman: b\n\nAssistant:", False),
    ("two assistant turns", "\n\nHuman: a\n\nAssistant: b\n\nAssistant:", False),
    ("lower-case markers", "\n\nhuman: Say test\n\nassistant:", False),
    ("marker without colon", "\n\nHuman Say test\n\nAssistant", False),
]


@_served
def legacy_prompt_cases(t: Target) -> list[Case]:
    """The ``\\n\\nHuman:`` / ``\\n\\nAssistant:`` format, accepted and rejected, both modes;
    and claude-2-web's chat messages, which the gateway serializes into one such prompt."""
    web = t.models["legacy_chat"]
    serialized = [{"role": "system", "content": "You are Claude2."},
                  {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."},
                  {"role": "user", "content": "Say test"}]
    cases = [
        Case("claude-2-web: several messages serialized into one prompt", "legacy_prompt",
             "POST", "/v1/chat/completions", "openai", {"model": web, "messages": serialized},
             requires=CLAUDE_2_WEB),
        Case("claude-2-web: a single message, not serialized", "legacy_prompt", "POST",
             "/v1/chat/completions", "openai", {"model": web, "messages": SAY},
             requires=CLAUDE_2_WEB),
        Case("claude-2-web: several messages, streamed", "legacy_prompt", "POST",
             "/v1/chat/completions", "openai",
             {"model": web, "messages": serialized, "stream": True},
             expect=Expectation(stream_body={"model": web, "messages": serialized}),
             requires=CLAUDE_2_WEB),
    ]
    if not t.serves_anthropic:
        return cases
    for name, prompt, valid in LEGACY_PROMPTS:
        for stream in (False, True):
            body = {"model": t.models["complete"], "prompt": prompt,
                    "max_tokens_to_sample": 8, "stream": stream}
            kind = "legacy_prompt_valid" if valid else "legacy_prompt_invalid"
            expect = Expectation(200 if valid else 400, kind=kind,
                                 stream_body=body if valid and stream else None)
            cases.append(Case(f"{name}{' stream' if stream else ''}", "legacy_prompt",
                              "POST", "/v1/complete", "anthropic", body, expect=expect))
    return cases


@_served
def golden_cases(t: Target, directory: Path | None = None) -> list[Case]:
    """The stored goldens recorded for the target's profile, with its model names."""
    cases = []
    for g in load_dir(directory or golden_dir()):
        if t.profile not in g.profiles or (g.family == "anthropic" and not t.serves_anthropic):
            continue
        request = fill_models(g.request, t.models)
        expect = Expectation(g.status, has_golden=True, golden=g.response,
                             stream_body={k: v for k, v in request.items() if k != "stream"}
                             if g.stream else None,
                             anthropic_version=g.headers.get("anthropic-version",
                                                             "2023-06-01"))
        family: Family = "anthropic" if g.family == "anthropic" else \
            "gateway" if g.family == "gateway" else "openai"
        encoding: Encoding = "form" if g.encoding == "form" else \
            "multipart" if g.encoding == "multipart" else "json"
        unknown = [name for name in g.requires if name not in PRECONDITIONS]
        if unknown:
            raise ConfigError(f"{g.file}: case {g.name!r} requires {unknown[0]!r}, which is "
                              f"no precondition (known: {', '.join(PRECONDITIONS)})")
        requires = g.requires + (CLAUDE_2_WEB
                                 if g.request.get("model") == "$legacy_chat" else ())
        cases.append(Case(g.name, "golden", g.method, g.endpoint, family,
                          _filled_files(request), expect=expect, headers=g.headers, golden=g,
                          encoding=encoding, requires=tuple(dict.fromkeys(requires))))
    return cases


GOLDEN_FILES: Mapping[str, Callable[[], bytes]] = {"$wav": lambda: tiny_wav()}
"""Files a golden request names by placeholder (YAML holds no audio): built when sent."""


def _filled_files(request: dict[str, Any]) -> dict[str, Any]:
    return {k: GOLDEN_FILES[v]() if isinstance(v, str) and v in GOLDEN_FILES else v
            for k, v in request.items()}


MJ = "/api/v1/ai/draw/mj"
SERPER = "/api/v1/openapi/search/serper/v1"
GOOGLE = "/api/v1/openapi/search/google-search/v1"
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
         "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
"""A 1x1 PNG as a data URI: the reference images blend and describe take."""


@_served
def gateway_api_cases(t: Target) -> list[Case]:
    """The gateway's own APIs (Midjourney tasks, search proxies): a plain request of each,
    JSON and form bodies, bad input and bad keys. A task's life is polled by
    ``conformance/test_tasks.py`` (it needs the id a creation answers)."""
    mj = {"model": "midjourney"}
    imagine = {**mj, "prompt": "a red fox in fresh snow --ar 1:1", "type": "FAST"}

    def c(name: str, category: Category, method: str, path: str, body: Any = None,
          auth: Auth = "default", expect: Expectation | None = None,
          encoding: Encoding = "json") -> Case:
        return Case(name, category, method, path, "gateway", body, auth,
                    expect or Expectation(), encoding=encoding)

    bad = Expectation(400)
    return [
        c("imagine", "endpoint", "POST", f"{MJ}/imagine", imagine),
        c("imagine, form body", "endpoint", "POST", f"{MJ}/imagine", imagine, encoding="form"),
        c("blend", "endpoint", "POST", f"{MJ}/blend", {**mj, "base64Array": [PIXEL, PIXEL],
                                                        "dimensions": "SQUARE"}),
        c("describe", "endpoint", "POST", f"{MJ}/describe", {**mj, "base64": PIXEL}),
        c("tasks page", "endpoint", "POST", f"{MJ}/query-mj-tasks?page=1&pageSize=5", mj),
        c("serper", "endpoint", "POST", SERPER, {"q": "gateprobe", "gl": "us", "hl": "en",
                                                 "num": "5"}, encoding="form"),
        c("google", "endpoint", "GET", f"{GOOGLE}?q=gateprobe"),
        c("imagine without prompt", "errors", "POST", f"{MJ}/imagine", mj, expect=bad),
        c("imagine, another model", "errors", "POST", f"{MJ}/imagine",
          {**imagine, "model": "gpt-4"}, expect=bad),
        c("imagine, malformed JSON", "errors", "POST", f"{MJ}/imagine", b'{"model": ',
          expect=bad),
        c("blend of one image", "errors", "POST", f"{MJ}/blend",
          {**mj, "base64Array": [PIXEL]}, expect=bad),
        c("query of an unknown task", "errors", "POST", f"{MJ}/query",
          {**mj, "taskId": "999999999"}, expect=Expectation(statuses=(400, 404))),
        c("pageSize 50", "errors", "POST", f"{MJ}/query-mj-tasks?page=1&pageSize=50", mj,
          expect=bad),
        c("pageSize 2", "errors", "POST", f"{MJ}/query-mj-tasks?page=1&pageSize=2", mj,
          expect=bad),
        c("serper without q", "errors", "POST", SERPER, {"gl": "us"}, encoding="form",
          expect=bad),
        c("google without q", "errors", "GET", GOOGLE, expect=bad),
        c("bad key", "auth", "POST", f"{MJ}/imagine", imagine, "bad",
          Expectation(401, kind="bad_key")),
        c("missing key", "auth", "POST", f"{MJ}/query-mj-tasks?page=1", mj, "none",
          Expectation(401, kind="missing_key")),
        c("bad key", "auth", "POST", SERPER, {"q": "gateprobe"}, "bad",
          Expectation(401, kind="bad_key"), "form"),
        c("missing key", "auth", "GET", f"{GOOGLE}?q=gateprobe", None, "none",
          Expectation(401, kind="missing_key")),
    ]


def tiny_png(size: int = 64) -> bytes:
    """A real ``size`` x ``size`` grey RGBA PNG (what an image edit uploads), built without an
    image library: signature, IHDR, one IDAT, IEND, each with its CRC."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80\xff" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def tiny_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """``seconds`` of silence as a 16-bit mono WAV (what a transcription uploads)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


MODERATION_PAIR = ["Say test", "I will kill you and burn your house down."]
"""A harmless and a harmful text (``protocols.media.MODERATION_PROBES``): their flags show
whether results come back in the inputs' order."""
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


@_served
def media_cases(t: Target) -> list[Case]:
    """Images, speech, transcriptions and moderations: endpoint (every format and body
    encoding), errors and auth cases, for the targets that declare these families."""
    return (_image_cases(t) + _audio_cases(t) + _moderation_cases(t)
            + _media_auth_cases(t))


def _image_cases(t: Target) -> list[Case]:
    m, gen, edit = t.models["images"], "/v1/images/generations", "/v1/images/edits"
    small = {"model": m, "prompt": "A red square", "size": "256x256"}
    # The gateway's own documented request (its curl sends these fields form-urlencoded).
    documented = {"prompt": "A cute anime girl", "model": "dall-e-3", "n": "1",
                  "quality": "hd", "response_format": "url", "size": "1024x1024",
                  "style": "vivid"}
    edit_body = {**small, "image": tiny_png()}
    bad = Expectation(400)
    return [
        Case("json url", "endpoint", "POST", gen, "openai", small),
        Case("json b64_json webp n=2", "endpoint", "POST", gen, "openai",
             {**small, "n": 2, "response_format": "b64_json", "output_format": "webp"},
             requires=("gpt_image",)),
        Case("json b64_json n=2", "endpoint", "POST", gen, "openai",
             {**small, "n": 2, "response_format": "b64_json"}),
        Case("form as documented (dall-e-3, url)", "endpoint", "POST", gen, "openai",
             documented, encoding="form"),
        Case("form b64_json jpeg", "endpoint", "POST", gen, "openai",
             {**small, "response_format": "b64_json", "output_format": "jpeg"},
             encoding="form", requires=("gpt_image",)),
        Case("form b64_json", "endpoint", "POST", gen, "openai",
             {**small, "response_format": "b64_json"}, encoding="form"),
        Case("multipart b64_json", "endpoint", "POST", edit, "openai",
             {**edit_body, "response_format": "b64_json"}, encoding="multipart"),
        Case("multipart url", "endpoint", "POST", edit, "openai", edit_body,
             encoding="multipart"),
        Case("n above 10", "errors", "POST", gen, "openai", {**small, "n": 11}, expect=bad),
        Case("unknown size", "errors", "POST", gen, "openai", {**small, "size": "333x333"},
             expect=bad),
        Case("unknown quality", "errors", "POST", gen, "openai",
             {**small, "quality": "ultra"}, expect=bad),
        Case("unknown style", "errors", "POST", gen, "openai", {**small, "style": "gothic"},
             expect=bad),
        Case("missing prompt", "errors", "POST", gen, "openai", {"model": m}, expect=bad),
        Case("form n=two", "errors", "POST", gen, "openai", {**small, "n": "two"},
             expect=bad, encoding="form"),
        Case("missing image", "errors", "POST", edit, "openai", small, expect=bad,
             encoding="multipart"),
    ]


def _audio_cases(t: Target) -> list[Case]:
    speech, stt = "/v1/audio/speech", "/v1/audio/transcriptions"
    say = {"model": t.models["speech"], "input": "Say test", "voice": "alloy"}
    heard = {"model": t.models["transcriptions"], "file": tiny_wav()}
    bad = Expectation(400)
    return [
        *(Case(f"{fmt}", "endpoint", "POST", speech, "openai",
               {**say, "response_format": fmt}) for fmt in SPEECH_FORMATS),
        *(Case(f"{fmt}", "endpoint", "POST", stt, "openai", {**heard, "response_format": fmt},
               encoding="multipart") for fmt in TRANSCRIPT_FORMATS),
        Case("missing voice", "errors", "POST", speech, "openai",
             {"model": say["model"], "input": "x"}, expect=bad),
        Case("unknown response_format", "errors", "POST", speech, "openai",
             {**say, "response_format": "ogg"}, expect=bad),
        Case("speed above 4", "errors", "POST", speech, "openai", {**say, "speed": 5},
             expect=bad),
        Case("missing file", "errors", "POST", stt, "openai", {"model": heard["model"]},
             expect=bad, encoding="multipart"),
        Case("not audio", "errors", "POST", stt, "openai",
             {**heard, "file": b"this is not audio"}, expect=bad, encoding="multipart"),
        Case("unknown response_format", "errors", "POST", stt, "openai",
             {**heard, "response_format": "docx"}, expect=bad, encoding="multipart"),
    ]


def _moderation_cases(t: Target) -> list[Case]:
    path, m = "/v1/moderations", t.models["moderations"]
    bad = Expectation(400)
    return [
        Case("two inputs, in order", "endpoint", "POST", path, "openai",
             {"model": m, "input": MODERATION_PAIR}),
        Case("one string", "endpoint", "POST", path, "openai",
             {"model": m, "input": "Say test"}),
        Case("two inputs, reversed", "endpoint", "POST", path, "openai",
             {"model": m, "input": MODERATION_PAIR[::-1]}),
        Case("missing input", "errors", "POST", path, "openai", {"model": m}, expect=bad),
        Case("empty input list", "errors", "POST", path, "openai", {"model": m, "input": []},
             expect=bad),
    ]


def _media_auth_cases(t: Target) -> list[Case]:
    bodies: list[tuple[str, Any, Encoding]] = [
        ("/v1/images/generations", {"prompt": "x", "size": "256x256"}, "json"),
        ("/v1/images/edits", {"prompt": "x", "size": "256x256", "image": tiny_png(16)},
         "multipart"),
        ("/v1/audio/speech", {"model": t.models["speech"], "input": "x", "voice": "alloy"},
         "json"),
        ("/v1/audio/transcriptions", {"model": t.models["transcriptions"],
                                      "file": tiny_wav(0.1)}, "multipart"),
        ("/v1/moderations", {"input": "x"}, "json"),
    ]
    cases = [Case("bad key", "auth", "POST", path, "openai", body, "bad",
                  Expectation(401, kind="bad_key"), encoding=encoding)
             for path, body, encoding in bodies]
    cases += [Case("missing key", "auth", "POST", path, "openai", body, "none",
                   Expectation(401, kind="missing_key"), encoding=encoding)
              for path, body, encoding in bodies[2::2]]
    return cases


RESPONSES = "/v1/responses"
WEATHER_FORMAT = {"type": "json_schema", "name": "weather", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["city", "celsius"],
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}}}}
"""A ``text.format`` the answer must be JSON valid against (strict: every property required,
no others, as OpenAI's strict mode demands of the schema)."""


def response_tools(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    """Tools in the Responses API's flat form."""
    return [{"type": "function", "name": t["name"], "description": t["description"],
             "parameters": t["schema"]} for t in tools]


def response_bodies(t: Target) -> dict[str, dict[str, Any]]:
    """The Responses requests the suite sends, by name (plain; the stream cases add
    ``stream``): text, items with instructions, forced function calls, a JSON schema."""
    base = {"model": t.models["responses"], "max_output_tokens": 64}
    return {
        "text": {**base, "input": "Say test"},
        "items and instructions": {
            **base, "instructions": "Answer in one short sentence.",
            "input": [{"role": "user", "content": [{"type": "input_text",
                                                     "text": "Say test"}]}]},
        "function tools": {**base, "input": TOOL_ASK[0]["content"],
                           "tools": response_tools(WEATHER_TOOL, TIME_TOOL),
                           "tool_choice": "required"},
        "text.format json_schema": {**base, "input": "The weather in Paris now, as JSON.",
                                    "text": {"format": WEATHER_FORMAT}},
    }


@_served
def responses_cases(t: Target) -> list[Case]:
    """The Responses API, Conversations and stored chat completions, for the targets that
    declare them (``responses``, ``conversations``, ``chat_store``): each plain and streamed
    request, bad input and bad keys. What needs an id an answer gave (retrieve, delete,
    cancel, continue) is ``conformance/test_responses.py``'s (``gateprobe.engine.stateful``)."""
    cases: list[Case] = []
    if "responses" in t.served:
        bodies = response_bodies(t)
        cases += [Case(name, "endpoint", "POST", RESPONSES, "openai", body)
                  for name, body in bodies.items()]
        cases += [Case(name, "stream", "POST", RESPONSES, "openai", {**body, "stream": True},
                       expect=Expectation(stream_body=body)) for name, body in bodies.items()]
        cases += _response_error_cases(t, bodies["text"])
    if "conversations" in t.served:
        cases += [
            Case("create", "endpoint", "POST", "/v1/conversations", "openai",
                 {"items": [{"role": "user", "content": "Say test"}],
                  "metadata": {"suite": "gateprobe"}}),
            Case("unknown conversation", "errors", "GET", "/v1/conversations/conv_gateprobe_none",
                 "openai", expect=Expectation(404)),
            Case("bad key", "auth", "POST", "/v1/conversations", "openai", {}, "bad",
                 Expectation(401, kind="bad_key")),
        ]
    if "chat_store" in t.served:
        cases += [
            Case("stored list", "endpoint", "GET", "/v1/chat/completions", "openai"),
            Case("unknown stored completion", "errors", "GET",
                 "/v1/chat/completions/chatcmpl-gateprobe-none", "openai",
                 expect=Expectation(404)),
            Case("stored list, bad key", "auth", "GET", "/v1/chat/completions", "openai",
                 None, "bad", Expectation(401, kind="bad_key")),
        ]
    return cases


def _response_error_cases(t: Target, text: dict[str, Any]) -> list[Case]:
    bad = Expectation(400)
    return [
        Case("malformed JSON", "errors", "POST", RESPONSES, "openai", b'{"model": ',
             expect=bad),
        Case("unknown model", "errors", "POST", RESPONSES, "openai",
             {**text, "model": "gateprobe-no-such-model"}, expect=Expectation(404)),
        Case("max_output_tokens below 16", "errors", "POST", RESPONSES, "openai",
             {**text, "max_output_tokens": 8}, expect=bad),
        Case("input a number", "errors", "POST", RESPONSES, "openai", {**text, "input": 5},
             expect=bad),
        Case("unknown previous_response_id", "errors", "POST", RESPONSES, "openai",
             {**text, "previous_response_id": "resp_gateprobe_none"}, expect=Expectation(404)),
        Case("unknown response", "errors", "GET", RESPONSES + "/resp_gateprobe_none", "openai",
             expect=Expectation(404)),
        Case("bad key", "auth", "POST", RESPONSES, "openai", text, "bad",
             Expectation(401, kind="bad_key")),
        Case("missing key", "auth", "GET", RESPONSES + "/resp_gateprobe_none", "openai", None,
             "none", Expectation(401, kind="missing_key")),
    ]


OPT_IN_BUILDERS: tuple[CaseBuilder, ...] = (gateway_api_cases, media_cases,
                                              responses_cases)
"""Builders of the opt-in families' cases, of several categories each: a category's suite
runs its core builder's cases and theirs of its category."""


def category_cases(category: Category, t: Target) -> list[Case]:
    """The cases of one category from the opt-in families' builders."""
    return [case for build in OPT_IN_BUILDERS for case in build(t) if case.category == category]


def all_cases(t: Target) -> list[Case]:
    """Every case the suite runs (fuzz cases come from the specs)."""
    return (endpoint_cases(t) + stream_cases(t) + error_cases(t) + auth_cases(t)
            + legacy_prompt_cases(t) + golden_cases(t)
            + [case for build in OPT_IN_BUILDERS for case in build(t)])
