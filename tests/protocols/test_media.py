"""The media checks on hand-made exchanges: each deviation a gateway could make, named."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
from gateprobe.core.checks import NOT_APPLICABLE, Context, Exchange, get
from gateprobe.protocols.media import audio_problem, image_problem, transcript_problem
from gateprobe.reference.audio_codecs import ENCODERS, tone
from gateprobe.reference.moderations import classify

CTX = Context("openai", "ohmygpt")


def picture(fmt: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, {"png": "PNG", "jpeg": "JPEG",
                                                     "webp": "WEBP"}[fmt])
    return out.getvalue()


def run(check_id: str, endpoint: str, request: Any, body: bytes,
        content_type: str = "application/json") -> list[str]:
    ex = Exchange(endpoint, "POST", request, 200, {"content-type": content_type}, body)
    result = get(check_id).fn(CTX, ex)
    assert result is not NOT_APPLICABLE
    return [f.observed for f in result]  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_a_real_picture_of_the_asked_size_passes(fmt: str) -> None:
    assert image_problem(picture(fmt, (64, 32)), fmt, "64x32") is None


@pytest.mark.parametrize(("raw", "fmt", "size", "problem"), [
    (picture("png", (64, 64)), "png", "32x32", "64x64 instead of the asked 32x32"),
    (picture("jpeg", (8, 8)), "png", "8x8", "not a PNG file"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "png", "8x8", "does not decode"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "webp", "8x8", "not a WEBP file"),
], ids=["wrong size", "jpeg for png", "broken png", "wav for webp"])
def test_image_problems_are_named(raw: bytes, fmt: str, size: str, problem: str) -> None:
    found = image_problem(raw, fmt, size)
    assert found is not None and problem in found


def test_image_data_counts_n_and_decodes_each() -> None:
    good = base64.b64encode(picture("png", (16, 16))).decode()
    request = {"n": 2, "size": "16x16", "response_format": "b64_json"}
    body = json.dumps({"created": 1, "data": [{"b64_json": good}]}).encode()
    assert run("image.data", "/v1/images/generations", request, body) == ["1 images"]
    body = json.dumps({"created": 1, "data": [{"b64_json": good}, {"b64_json": "%%"}]})
    assert run("image.data", "/v1/images/generations", request, body.encode()) == [
        "image 1: b64_json is not base64"]


@pytest.mark.parametrize(("url", "ok"), [
    ("https://cdn.example/a.png", True), ("http://127.0.0.1:8080/x.png", True),
    ("/v1/images/generations/files/a.png", False), ("cdn.example/a.png", False),
    ("ftp://cdn.example/a.png", False)])
def test_image_url_must_be_absolute_http(url: str, ok: bool) -> None:
    body = json.dumps({"created": 1, "data": [{"url": url}]}).encode()
    assert (run("image.url", "/v1/images/edits", {"prompt": "x"}, body) == []) is ok


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_every_reference_audio_format_has_its_magic_and_no_other(fmt: str) -> None:
    audio = ENCODERS[fmt](tone(0.2))
    assert audio_problem(audio, fmt) is None
    others = [other for other in ENCODERS if other != fmt and audio_problem(audio, other) is None]
    assert others == [], f"{fmt} bytes also pass as {others}"


def test_speech_label_follows_the_asked_format() -> None:
    request = {"response_format": "opus"}
    audio = ENCODERS["opus"](tone(0.1))
    assert run("speech.content_type", "/v1/audio/speech", request, audio, "audio/ogg") == []
    assert run("speech.content_type", "/v1/audio/speech", request, audio,
               "audio/mpeg") == ["audio/mpeg"]
    assert run("speech.content_type", "/v1/audio/speech", {}, b"", "audio/mpeg") == []


@pytest.mark.parametrize(("body", "fmt", "ok"), [
    (b'{"text": "hi"}', "json", True),
    (b'{"txt": "hi"}', "json", False),
    (b'{"text": "hi", "language": "en", "duration": 1.0, "segments": []}', "verbose_json",
     True),
    (b'{"text": "hi"}', "verbose_json", False),
    (b"hi\n", "text", True),
    (b'{"text": "hi"}', "text", False),
    (b"1\n00:00:00,000 --> 00:00:01,000\nhi\n", "srt", True),
    (b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhi\n", "srt", False),
    (b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhi\n", "vtt", True),
    (b"1\n00:00:00,000 --> 00:00:01,000\nhi\n", "vtt", False),
])
def test_transcript_shapes(body: bytes, fmt: str, ok: bool) -> None:
    assert (transcript_problem(body, fmt) is None) is ok


def moderation(results: list[dict[str, Any]]) -> bytes:
    return json.dumps({"id": "modr-1", "model": "m", "results": results}).encode()


def test_moderation_results_shape() -> None:
    request = {"input": ["a", "b"]}
    good = [classify("a"), classify("b")]
    assert run("moderation.results", "/v1/moderations", request, moderation(good)) == []
    assert run("moderation.results", "/v1/moderations", request,
               moderation(good[:1])) == ["1 results"]
    percent = {**good[0], "category_scores": {k: 50 for k in good[0]["category_scores"]}}
    [problem] = run("moderation.results", "/v1/moderations", request,
                    moderation([percent, good[1]]))
    assert "not a number in [0, 1]" in problem
    missing = {**good[0], "category_scores": {"hate": 0.1}}
    [problem] = run("moderation.results", "/v1/moderations", request,
                    moderation([missing, good[1]]))
    assert "differ in keys" in problem
    lying = {**good[0], "flagged": True}
    [problem] = run("moderation.results", "/v1/moderations", request,
                    moderation([lying, good[1]]))
    assert "flagged True" in problem


def test_moderation_order_needs_both_probes() -> None:
    pair = ["Say test", "I will kill you and burn your house down."]
    results = [classify(t) for t in pair]
    assert run("moderation.order", "/v1/moderations", {"input": pair}, moderation(results)) == []
    [problem] = run("moderation.order", "/v1/moderations", {"input": pair},
                    moderation(results[::-1]))
    assert "out of the inputs' order" in problem
    ex = Exchange("/v1/moderations", "POST", {"input": ["x", "y"]}, 200, {},
                  moderation(results))
    assert get("moderation.order").fn(CTX, ex) is NOT_APPLICABLE
