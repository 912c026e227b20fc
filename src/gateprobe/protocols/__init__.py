"""Wire protocols: one module per family, each with the same shape.

Each of ``openai_chat``, ``openai_completions``, ``anthropic_messages`` and
``anthropic_complete`` exports ``ERROR_SCHEMA`` (the family's error envelope as JSON Schema),
``parse_error(payload)`` and ``StreamGrammar``: a small state machine fed the events of one
streaming answer (``feed(event) -> list[Finding]``, then ``finish() -> list[Finding]``).

Check ids the grammars emit:

| id | severity | meaning |
| --- | --- | --- |
| ``stream.json`` | high | a ``data:`` payload is not JSON |
| ``stream.schema`` | medium | an event lacks a field, or has one of the wrong type or value |
| ``stream.event_name`` | medium | a named OpenAI chunk; an Anthropic name != ``type`` |
| ``stream.order`` | high | events in an order the grammar forbids (delta before its block...) |
| ``stream.block_index`` | high | content block indices not 0, 1, 2, ... in order |
| ``stream.terminator`` | high | the stream ended without its terminator |
| ``stream.error_event`` | high | an error event inside a 200 stream |
| ``stream.usage`` | medium | usage that does not add up, or is missing when asked for |
| ``stream.consistency`` | medium | id, created or model changing within one stream |
| ``stream.framing`` | low-medium | SSE framing lenient clients mishandle (``sse`` notes) |

``openai_responses`` (OpenAI's Responses API, typed semantic events) reports ``responses.*``
ids of its own (event name, sequence, order, items, text, usage, tool arguments, format,
terminator: see the module); ``openai_stateful`` judges the flows across requests.
"""

from __future__ import annotations
