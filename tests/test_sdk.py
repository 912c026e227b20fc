"""The official openai and anthropic SDKs as real clients of the reference gateway.

If a real client cannot parse an answer, the double is wrong, whatever our own parser thinks.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from gateprobe.reference import RunningGateway, Timing
from gateway_fixtures import FakeClock, MakeGateway

pytestmark = pytest.mark.sdk

KEY = "gp-vip-0001"
SAY = [{"role": "user", "content": "Say test"}]


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def oai(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=gateway.base_url + "/v1", max_retries=0) as c:
        yield c


@pytest.fixture
def claude(gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    """The gateway's convention: the key as a Bearer token (``auth_token``), not x-api-key."""
    with anthropic.Anthropic(auth_token=KEY, base_url=gateway.base_url, max_retries=0) as c:
        yield c


# -- openai ------------------------------------------------------------------------------------
def test_openai_chat(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=SAY)  # type: ignore[arg-type]
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-3.5-turbo", messages=SAY, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = oai.chat.completions.create(model="gpt-3.5-turbo", messages=SAY)  # type: ignore[arg-type]
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_openai_claude_2_web(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="claude-2-web", messages=SAY)  # type: ignore[arg-type]
    assert completion.choices[0].message.content
    streamed = oai.chat.completions.create(model="claude-2-web", messages=SAY, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == \
        completion.choices[0].message.content


def test_openai_legacy_completions(oai: openai.OpenAI) -> None:
    completion = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say test",
                                        max_tokens=7)
    assert completion.choices[0].finish_reason == "length"
    streamed = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say test",
                                      max_tokens=7, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text


def test_openai_embeddings_default_base64_and_float(oai: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; both must give the same vectors.
    decoded = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    floats = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                   encoding_format="float")
    assert [len(d.embedding) for d in decoded.data] == [1536, 1536]
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]


def test_openai_models(oai: openai.OpenAI) -> None:
    ids = {m.id for m in oai.models.list()}
    assert {"gpt-3.5-turbo", "claude-2-web", "text-embedding-3-small"} <= ids
    assert oai.models.retrieve("claude-2").id == "claude-2"


def test_openai_errors_map_to_sdk_exceptions(gateway: RunningGateway, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        oai.chat.completions.create(model="no-such-model", messages=SAY)  # type: ignore[arg-type]
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="gpt-3.5-turbo", messages=[])
    bad = openai.OpenAI(api_key="gp-bad-key-0000", base_url=gateway.base_url + "/v1",
                        max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    bad.close()


def test_openai_rate_limit_error(make_gateway: MakeGateway) -> None:
    gw = make_gateway(clock=FakeClock(), timing=Timing(0, 0))
    with openai.OpenAI(api_key="gp-free-0001", base_url=gw.base_url + "/v1",
                       max_retries=0) as c:
        for _ in range(12):
            c.chat.completions.create(model="claude-2-web", messages=SAY)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model="claude-2-web", messages=SAY)  # type: ignore[arg-type]
    assert info.value.response.headers["retry-after"] == "60"


# -- anthropic ---------------------------------------------------------------------------------
def test_anthropic_messages(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-3-opus", max_tokens=64, messages=SAY)  # type: ignore[arg-type]
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.output_tokens > 0


def test_anthropic_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-3-sonnet", max_tokens=64, messages=SAY) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    whole = claude.messages.create(model="claude-3-sonnet", max_tokens=64, messages=SAY)  # type: ignore[arg-type]
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_anthropic_raw_stream_events(claude: anthropic.Anthropic) -> None:
    stream = claude.messages.create(model="claude-2", max_tokens=5, messages=SAY, stream=True)  # type: ignore[arg-type]
    types = [event.type for event in stream]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "message_delta" in types


def test_anthropic_count_tokens(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model="claude-3-opus", messages=SAY)  # type: ignore[arg-type]
    used = claude.messages.create(model="claude-3-opus", max_tokens=8, messages=SAY)  # type: ignore[arg-type]
    assert counted.input_tokens == used.usage.input_tokens


def test_anthropic_errors_map_to_sdk_exceptions(gateway: RunningGateway,
                                                claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=5, messages=SAY)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as bad_request:
        claude.messages.create(model="claude-2", max_tokens=0, messages=SAY)  # type: ignore[arg-type]
    assert "max_tokens" in str(bad_request.value)
    # The gateway reads Bearer only: the documented upstream header is refused there.
    wrong_style = anthropic.Anthropic(base_url=gateway.base_url, max_retries=0,
                                      default_headers={"x-api-key": KEY})
    with pytest.raises(anthropic.AuthenticationError):
        wrong_style.messages.create(model="claude-2", max_tokens=5, messages=SAY)  # type: ignore[arg-type]
    wrong_style.close()


def test_anthropic_profile_with_sdk_credentials_and_models(make_gateway: MakeGateway) -> None:
    """Upstream conventions: the SDK's api_key (sent as Bearer by SDK 2.x) or x-api-key."""
    gw = make_gateway(profile="anthropic")
    with anthropic.Anthropic(api_key=KEY, base_url=gw.base_url, max_retries=0) as c:
        message = c.messages.create(model="claude-2", max_tokens=8, messages=SAY)  # type: ignore[arg-type]
        assert message.stop_reason == "max_tokens"
        ids = [m.id for m in c.models.list()]
        assert "claude-3-opus" in ids
    with anthropic.Anthropic(base_url=gw.base_url, max_retries=0,
                             default_headers={"x-api-key": KEY}) as c:
        assert c.messages.count_tokens(model="claude-2", messages=SAY).input_tokens > 0  # type: ignore[arg-type]


def test_anthropic_overloaded_error(make_gateway: MakeGateway) -> None:
    gw = make_gateway(max_inflight=1, timing=Timing(ttft_ms=10_000, itl_ms=1))
    with anthropic.Anthropic(auth_token=KEY, base_url=gw.base_url, max_retries=0) as c:
        held = c.messages.create(model="claude-2", max_tokens=5, messages=SAY, stream=True)  # type: ignore[arg-type]
        try:
            with pytest.raises(anthropic.APIStatusError) as info:
                c.messages.create(model="claude-2", max_tokens=5, messages=SAY)  # type: ignore[arg-type]
            assert info.value.status_code == 529
        finally:
            held.close()
