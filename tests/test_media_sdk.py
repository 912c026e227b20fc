"""The official openai SDK as a client of the reference gateway's media routes: images,
speech (whole and streamed), transcriptions, moderations. If the SDK cannot use an answer,
the double is wrong, whatever our own checks think."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from PIL import Image

from gateprobe.engine.cases import MODERATION_PAIR, tiny_png, tiny_wav
from gateprobe.protocols.media import audio_problem
from gateprobe.reference import RunningGateway

pytestmark = pytest.mark.sdk

KEY = "gp-vip-0001"


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def oai(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=gateway.base_url + "/v1", max_retries=0) as c:
        yield c


def test_images_generate_b64_json_is_a_picture_of_the_asked_size(oai: openai.OpenAI) -> None:
    result = oai.images.generate(prompt="A red square", model="dall-e-2", size="512x512", n=2,
                                 response_format="b64_json")
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.b64_json is not None
        picture = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert (picture.format, picture.size) == ("PNG", (512, 512))


def test_images_generate_url_opens(oai: openai.OpenAI) -> None:
    result = oai.images.generate(prompt="A cute anime girl", model="dall-e-3",
                                 size="1792x1024", quality="hd", style="vivid")
    assert result.data is not None
    [item] = result.data
    assert item.url is not None and item.url.startswith("http://127.0.0.1:")
    assert item.revised_prompt
    answer = httpx.get(item.url)
    assert answer.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(answer.content)).size == (1792, 1024)


def test_images_edit_takes_a_png_upload(oai: openai.OpenAI) -> None:
    result = oai.images.edit(image=("in.png", tiny_png(), "image/png"), prompt="Add a frame",
                             size="256x256", response_format="b64_json")
    assert result.data is not None and result.data[0].b64_json is not None
    picture = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert picture.size == (256, 256)


def test_images_refuse_a_size_the_model_does_not_draw(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(prompt="x", model="dall-e-2", size="1792x1024")
    assert "size" in str(caught.value)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_create_returns_the_asked_format(oai: openai.OpenAI, fmt: str) -> None:
    audio = oai.audio.speech.create(model="tts-1", voice="alloy", input="Say test",
                                    response_format=fmt)  # type: ignore[arg-type]
    assert audio_problem(audio.content, fmt) is None
    assert audio.response.headers["content-type"].startswith("audio/")


def test_speech_streams_in_chunks(oai: openai.OpenAI) -> None:
    with oai.audio.speech.with_streaming_response.create(
            model="tts-1", voice="nova", input="Say test, slowly and clearly, please.",
            response_format="wav") as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        chunks = list(response.iter_bytes(1024))
    audio = b"".join(chunks)
    assert len(chunks) > 1 and audio.startswith(b"RIFF") and audio[8:12] == b"WAVE"


def test_transcriptions_create_in_every_format(oai: openai.OpenAI) -> None:
    upload = ("speech.wav", tiny_wav(1.5), "audio/wav")
    plain = oai.audio.transcriptions.create(model="whisper-1", file=upload)
    assert "1.5 seconds" in plain.text
    verbose = oai.audio.transcriptions.create(model="whisper-1", file=upload,
                                              response_format="verbose_json",
                                              timestamp_granularities=["word"])
    assert verbose.duration == pytest.approx(1.5)
    assert verbose.segments and verbose.words
    srt = oai.audio.transcriptions.create(model="whisper-1", file=upload, response_format="srt")
    assert isinstance(srt, str) and srt.startswith("1\n00:00:00,000 --> ")
    vtt = oai.audio.transcriptions.create(model="whisper-1", file=upload, response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT")


def test_moderations_create_one_result_per_input_in_order(oai: openai.OpenAI) -> None:
    result = oai.moderations.create(model="omni-moderation-latest", input=MODERATION_PAIR)
    assert [r.flagged for r in result.results] == [False, True]
    flagged = result.results[1]
    assert flagged.categories.violence and flagged.category_scores.violence > 0.5
    reversed_ = oai.moderations.create(input=MODERATION_PAIR[::-1])
    assert [r.flagged for r in reversed_.results] == [True, False]
