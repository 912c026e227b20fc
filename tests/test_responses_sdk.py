"""The official openai SDK as a client of the reference gateway's Responses API, Conversations
and stored chat completions, plain and streamed (``client.responses.stream`` and its event
helpers). If the SDK cannot use an answer, the double is wrong, whatever our checks think."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest

from gateprobe.reference import RunningGateway

pytestmark = pytest.mark.sdk

KEY = "gp-vip-0001"
MODEL = "gpt-4o-mini"
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "required": ["city"],
                          "properties": {"city": {"type": "string"}}}}


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def oai(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=gateway.base_url + "/v1", max_retries=0) as c:
        yield c


@pytest.mark.slow
def test_responses_create_retrieve_input_items_delete(oai: openai.OpenAI) -> None:
    created = oai.responses.create(model=MODEL, input="Say test", instructions="Be brief.",
                                   max_output_tokens=64)
    assert created.status == "completed" and created.output_text
    assert created.usage is not None and created.usage.total_tokens == \
        created.usage.input_tokens + created.usage.output_tokens
    again = oai.responses.retrieve(created.id)
    assert (again.id, again.output_text) == (created.id, created.output_text)
    items = oai.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    oai.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(created.id)
    unstored = oai.responses.create(model=MODEL, input="Say test", store=False)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(unstored.id)


@pytest.mark.slow
def test_responses_stream_helper_events_add_up(oai: openai.OpenAI) -> None:
    deltas, types = [], []
    with oai.responses.stream(model=MODEL, input="Say test", max_output_tokens=64) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "".join(deltas) == final.output_text and final.output_text
    assert oai.responses.retrieve(final.id).output_text == final.output_text


def test_responses_raw_stream_and_function_calls(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model=MODEL, input="Call get_weather for Paris.",
                                       tools=[WEATHER], tool_choice="required", stream=True))
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and "city" in json.loads(done[0].arguments)
    plain = oai.responses.create(model=MODEL, input="Call get_weather for Paris.",
                                 tools=[WEATHER], tool_choice="required")
    [call] = [o for o in plain.output if o.type == "function_call"]
    follow = oai.responses.create(model=MODEL, previous_response_id=plain.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}])
    assert follow.status == "completed" and follow.output_text
    assert follow.usage is not None and plain.usage is not None
    assert follow.usage.input_tokens > plain.usage.input_tokens


def test_responses_json_schema_format_parses(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["city"],
              "properties": {"city": {"type": "string"}}}
    answer = oai.responses.create(model=MODEL, input="Paris as JSON.", text={"format": {
        "type": "json_schema", "name": "city", "schema": schema, "strict": True}})
    assert set(json.loads(answer.output_text)) == {"city"}


def test_responses_background_cancel(oai: openai.OpenAI) -> None:
    queued = oai.responses.create(model=MODEL, input="Write at least 200 words.",
                                  background=True, max_output_tokens=256)
    assert queued.status in ("queued", "in_progress")
    assert oai.responses.cancel(queued.id).status == "cancelled"
    time.sleep(0.6)
    assert oai.responses.retrieve(queued.id).status == "cancelled"


def test_conversations_and_their_items(oai: openai.OpenAI) -> None:
    conversation = oai.conversations.create(items=[{"role": "user", "content": "Hello"}],
                                            metadata={"suite": "gateprobe"})
    assert oai.conversations.retrieve(conversation.id).metadata == {"suite": "gateprobe"}
    updated = oai.conversations.update(conversation.id, metadata={"suite": "again"})
    assert updated.metadata == {"suite": "again"}
    answer = oai.responses.create(model=MODEL, input="Say test", conversation=conversation.id)
    listed = oai.conversations.items.list(conversation.id, order="asc")
    assert [i.type for i in listed.data] == ["message", "message", "message"]
    assert listed.data[-1].id == answer.output[0].id
    added = oai.conversations.items.create(conversation.id, items=[
        {"role": "user", "content": "A note"}])
    item_id = added.data[0].id
    assert oai.conversations.items.retrieve(item_id, conversation_id=conversation.id).id == \
        item_id
    oai.conversations.items.delete(item_id, conversation_id=conversation.id)
    assert item_id not in [i.id for i in oai.conversations.items.list(conversation.id).data]
    assert oai.conversations.delete(conversation.id).deleted
    with pytest.raises(openai.NotFoundError):
        oai.conversations.retrieve(conversation.id)


@pytest.mark.parametrize("stream", [False, True])
def test_stored_chat_completions(oai: openai.OpenAI, stream: bool) -> None:
    asked = [{"role": "user", "content": "Say test"}]
    if stream:
        chunks = list(oai.chat.completions.create(model="gpt-3.5-turbo", messages=asked,  # type: ignore[call-overload]
                                                  store=True, metadata={"run": "s"},
                                                  stream=True))
        cid, text = chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks
                                          if c.choices)
    else:
        made = oai.chat.completions.create(model="gpt-3.5-turbo", messages=asked,  # type: ignore[call-overload]
                                           store=True, metadata={"run": "p"})
        cid, text = made.id, made.choices[0].message.content
    assert cid in [c.id for c in oai.chat.completions.list(metadata={"run": "s" if stream
                                                                     else "p"})]
    assert oai.chat.completions.retrieve(cid).choices[0].message.content == text
    assert [m.content for m in oai.chat.completions.messages.list(cid)] == ["Say test"]
    assert oai.chat.completions.update(cid, metadata={"run": "x"}).id == cid
    assert oai.chat.completions.delete(cid).deleted
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.retrieve(cid)
