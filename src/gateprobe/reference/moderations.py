"""``POST /v1/moderations``: OpenAI's shape, one result per input, in the inputs' order.

The classifier is a deterministic keyword table, not a model: a text naming violence or a
threat is flagged in those categories, anything else scores low. That is enough for a client's
tests and for the harness's order check, which sends one text of each kind and expects the
flags back in the order it sent them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.responses import Response

from gateprobe.reference.call import Call
from gateprobe.reference.faults import MODERATION_REVERSED, MODERATION_SCORE_PERCENT
from gateprobe.reference.media_body import read_body
from gateprobe.reference.validate import Field, f, invalid

CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
              "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
              "sexual", "sexual/minors", "violence", "violence/graphic")
"""OpenAI's categories for ``omni-moderation-latest`` (the text ones)."""
KEYWORDS: dict[str, tuple[str, ...]] = {
    "kill": ("violence", "harassment", "harassment/threatening"),
    "burn": ("violence",),
    "hate": ("hate", "harassment"),
    "blood": ("violence/graphic",),
}
"""A word -> the categories a text containing it is flagged in."""
FIELDS: tuple[Field, ...] = (
    f("input", "string", "array", required=True),
    f("model", "string"),
)
DEFAULT_MODEL = "omni-moderation-latest"


async def moderations(call: Call) -> Response:
    """``POST /v1/moderations``."""
    call.authenticate()
    body = (await read_body(call, FIELDS)).fields
    inputs = _inputs(body["input"])
    model = call.resolve_model(body.get("model", DEFAULT_MODEL), "moderations")  # "" is no model
    call.admit(model)
    results = [classify(text) for text in inputs]
    faults = call.config.faults
    if MODERATION_REVERSED.active(faults, call.endpoint):
        results.reverse()
    if MODERATION_SCORE_PERCENT.active(faults, call.endpoint):
        for result in results:
            result["category_scores"] = {k: round(v * 100, 4)
                                         for k, v in result["category_scores"].items()}
    answer = {"id": "modr-" + call.request_id[4:28], "model": model.served_as,
              "results": results}
    return await call.respond_json(answer, 0)


def _inputs(value: Any) -> list[str]:
    """The texts to classify; OpenAI also takes ``{"type": "text", "text": ...}`` items."""
    items = value if isinstance(value, list) else [value]
    if not items:
        invalid("openai", "input", "'$.input' is invalid: expected at least 1 input.", "")
    texts = []
    for item in items:
        if isinstance(item, dict) and item.get("type") == "text" and \
                isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif isinstance(item, str):
            texts.append(item)
        else:
            invalid("openai", "input", "'$.input' is invalid: expected strings or "
                    "{type: text, text} items.", "")
    return texts


def classify(text: str) -> dict[str, Any]:
    """One result: the keyword table's categories score high, the rest low (a small
    deterministic value per text and category, so scores are not all equal)."""
    lowered = text.lower()
    hit = {c for word, cats in KEYWORDS.items() if word in lowered for c in cats}
    scores = {}
    for category in CATEGORIES:
        digest = hashlib.sha256(f"{category}\x00{text}".encode()).digest()
        low = int.from_bytes(digest[:2], "big") / 65535 * 0.01
        scores[category] = round(0.9 + low, 6) if category in hit else round(low, 6)
    categories = {c: scores[c] > 0.5 for c in CATEGORIES}
    return {"flagged": any(categories.values()), "categories": categories,
            "category_scores": scores,
            "category_applied_input_types": {c: ["text"] for c in CATEGORIES}}
