"""Checks of the media families: images, speech, transcriptions, moderations.

Each judges what a client of that family relies on and a schema cannot say: an image that
decodes, in the asked format and size; a URL a browser can open from anywhere; audio whose
label and bytes are the asked format; a transcript in the asked format's shape; moderation
results that line up with their inputs. No check fetches anything (checks do no I/O): a
``url`` answer is judged by its form, its picture by the ``b64_json`` cases.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from gateprobe.core.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, check
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.specs import SpecName

IMAGE_PATHS = frozenset({"/v1/images/generations", "/v1/images/edits"})
SPEECH_PATH = "/v1/audio/speech"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
MODERATIONS_PATH = "/v1/moderations"
OWN_CONTENT_TYPE = frozenset({SPEECH_PATH, TRANSCRIPTIONS_PATH})
"""Endpoints whose successful answers are not JSON by design: their own checks judge the
label (``speech.content_type``, ``transcription.format``), not ``response.content_type``."""
RESPONSE_SCHEMAS: Mapping[str, tuple[SpecName, str, str | None]] = {
    "/v1/images/generations": ("openai", "ImagesResponse", None),
    "/v1/images/edits": ("openai", "ImagesResponse", None),
    MODERATIONS_PATH: ("openai", "ModerationResponse", None),
}
"""The JSON answers ``response.schema`` validates (transcriptions: by ``transcription.format``,
as text formats are not JSON)."""

IMAGE_MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "jpeg": (b"\xff\xd8\xff",), "webp": (b"RIFF",)}
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
SPEECH_TYPES: Mapping[str, frozenset[str]] = {
    "mp3": frozenset({"audio/mpeg", "audio/mp3"}),
    "opus": frozenset({"audio/opus", "audio/ogg"}),
    "aac": frozenset({"audio/aac", "audio/aacp", "audio/x-aac"}),
    "flac": frozenset({"audio/flac", "audio/x-flac"}),
    "wav": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    "pcm": frozenset({"audio/pcm", "audio/l16", "application/octet-stream"}),
}
"""``response_format`` -> the labels that name it (OpenAI's first; common aliases after)."""
_MP3_SYNC = re.compile(rb"\A\xff[\xe2\xe3\xf2\xf3\xfa\xfb]")
"""An MPEG audio frame sync with layer III (MPEG 1, 2 or 2.5): ADTS (AAC) has layer 00."""
CONTAINERS = (b"RIFF", b"ID3", b"OggS", b"fLaC", b"\xff\xf1", b"\xff\xf9", b"\xff\xfb")
"""Headers raw PCM must not start with: a file format where none was asked for."""
_SRT_CUE = re.compile(r"\A\s*1\r?\n\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}\r?\n")
_VTT_CUE = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}")
MODERATION_PROBES: Mapping[str, bool] = {
    "Say test": False,
    "I will kill you and burn your house down.": True,
}
"""Texts whose verdict no moderation model disputes: sent together, their flags show whether
the results come back in the inputs' order."""
EVIDENCE_CHARS = 300


def _finding(ctx: Context, ex: Exchange, check_id: str, expected: str, observed: str,
             severity: Severity = Severity.HIGH) -> Finding:
    evidence = ex.body[:EVIDENCE_CHARS].decode("utf-8", "replace")
    return Finding(check_id, ex.endpoint, severity, expected, ctx.redactor.text(observed),
                   ctx.redactor.text(evidence))


def _ok(ex: Exchange, endpoints: frozenset[str] | str) -> bool:
    wanted = {endpoints} if isinstance(endpoints, str) else endpoints
    return ex.endpoint in wanted and ex.status is not None and 200 <= ex.status < 300 \
        and ex.transport_error is None


def _asked(ex: Exchange, name: str, default: str) -> str:
    """A request field as text (form bodies carry strings), or its upstream default."""
    value = ex.request.get(name) if isinstance(ex.request, dict) else None
    return default if value is None else str(value)


def _items(ex: Exchange) -> list[Any] | None:
    try:
        payload = json.loads(ex.body)
    except ValueError:
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    return data if isinstance(data, list) else None


def image_problem(raw: bytes, fmt: str, size: str) -> str | None:
    """Why ``raw`` is not a ``fmt`` picture of ``size`` (``WxH``, or ``auto``), or None."""
    if not raw.startswith(IMAGE_MAGIC.get(fmt, (b"",))) or \
            (fmt == "webp" and raw[8:12] != b"WEBP"):
        return f"bytes starting {raw[:12]!r} are not a {fmt.upper()} file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a decompression bomb is a problem, not a crash
            image = Image.open(io.BytesIO(raw))
            image.load()
    except Exception as exc:  # Pillow raises many kinds for a broken file
        return f"a {fmt.upper()} header, but the image does not decode ({type(exc).__name__})"
    if image.format != PILLOW_FORMATS.get(fmt):
        return f"decodes as {image.format}, not {fmt.upper()}"
    if size != "auto" and f"{image.size[0]}x{image.size[1]}" != size:
        return f"{image.size[0]}x{image.size[1]} instead of the asked {size}"
    return None


@check("image.data", Severity.HIGH, "n images, each a real picture of the asked format and size")
def image_data(ctx: Context, ex: Exchange) -> CheckResult:
    """A client decodes ``b64_json`` and displays it: the picture must be the format and size
    it asked for (magic bytes and dimensions read with Pillow), and there are ``n`` of them."""
    items = _items(ex) if _ok(ex, IMAGE_PATHS) else None
    if items is None:
        return NOT_APPLICABLE
    out = []
    n = _asked(ex, "n", "1")
    if n.isdigit() and len(items) != int(n):
        out.append(_finding(ctx, ex, "image.data", f"{n} images (n)", f"{len(items)} images"))
    b64 = _asked(ex, "response_format", "url") == "b64_json"
    fmt, size = _asked(ex, "output_format", "png"), _asked(ex, "size", "1024x1024")
    for i, item in enumerate(items if b64 else []):
        encoded = item.get("b64_json") if isinstance(item, dict) else None
        if not isinstance(encoded, str):
            out.append(_finding(ctx, ex, "image.data", "b64_json on every image",
                                f"image {i} has none"))
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            out.append(_finding(ctx, ex, "image.data", "base64 image data",
                                f"image {i}: b64_json is not base64"))
            continue
        problem = image_problem(raw, fmt, size)
        if problem is not None:
            out.append(_finding(ctx, ex, "image.data", f"a {fmt.upper()} of {size}",
                                f"image {i}: {problem}"))
    return out


@check("image.url", Severity.HIGH, "url answers are absolute http(s) URLs")
def image_url(ctx: Context, ex: Exchange) -> CheckResult:
    """A relative or schemeless URL opens nowhere once it leaves the gateway's own page."""
    items = _items(ex) if _ok(ex, IMAGE_PATHS) else None
    if items is None or _asked(ex, "response_format", "url") != "url":
        return NOT_APPLICABLE
    out = []
    for i, item in enumerate(items):
        url = item.get("url") if isinstance(item, dict) else None
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            out.append(_finding(ctx, ex, "image.url", "an absolute http(s) URL",
                                f"image {i}: url {str(url)[:120]!r}"))
    return out


@check("speech.content_type", Severity.MEDIUM, "speech is labelled as the asked format")
def speech_content_type(ctx: Context, ex: Exchange) -> CheckResult:
    """Players and SDKs pick a decoder by the label: mp3 audio/mpeg, opus audio/opus, ..."""
    if not _ok(ex, SPEECH_PATH):
        return NOT_APPLICABLE
    fmt = _asked(ex, "response_format", "mp3")
    wanted = SPEECH_TYPES.get(fmt)
    if wanted is None or ex.content_type in wanted:
        return []
    return [_finding(ctx, ex, "speech.content_type", f"{fmt} as {' or '.join(sorted(wanted))}",
                     ex.content_type or "no content-type", Severity.MEDIUM)]


def audio_problem(raw: bytes, fmt: str) -> str | None:
    """Why ``raw`` is not audio in ``fmt``, by its magic bytes, or None."""
    if not raw:
        return "no audio bytes"
    ok = {"mp3": raw.startswith(b"ID3") or bool(_MP3_SYNC.match(raw)),
          "opus": raw.startswith(b"OggS") and b"OpusHead" in raw[:64],
          "aac": raw[:2] in (b"\xff\xf1", b"\xff\xf9"),
          "flac": raw.startswith(b"fLaC"),
          "wav": raw.startswith(b"RIFF") and raw[8:12] == b"WAVE",
          "pcm": len(raw) % 2 == 0 and not raw.startswith(CONTAINERS)}.get(fmt, True)
    return None if ok else f"bytes starting {raw[:12]!r} are not {fmt}"


@check("speech.audio", Severity.HIGH, "speech bytes are audio in the asked format")
def speech_audio(ctx: Context, ex: Exchange) -> CheckResult:
    """The asked container's magic bytes (mp3 ID3 or frame sync, Ogg Opus, ADTS, fLaC,
    RIFF/WAVE; raw pcm: whole 16-bit samples and no container header)."""
    if not _ok(ex, SPEECH_PATH):
        return NOT_APPLICABLE
    fmt = _asked(ex, "response_format", "mp3")
    problem = audio_problem(ex.body, fmt)
    return [] if problem is None else [
        _finding(ctx, ex, "speech.audio", f"{fmt} audio", problem)]


def transcript_problem(body: bytes, fmt: str) -> str | None:
    """Why ``body`` is not a transcript in ``fmt``'s shape, or None."""
    text = body.decode("utf-8", "replace")
    if fmt in ("json", "verbose_json"):
        try:
            payload = json.loads(text)
        except ValueError:
            return "not JSON"
        wanted: Sequence[tuple[str, type | tuple[type, ...]]] = [("text", str)]
        if fmt == "verbose_json":
            wanted = [*wanted, ("language", str), ("duration", (int, float)),
                      ("segments", list)]
        if not isinstance(payload, dict):
            return "JSON that is not an object"
        missing = [k for k, t in wanted if not isinstance(payload.get(k), t)]
        return f"no valid {', '.join(missing)}" if missing else None
    if fmt == "srt":
        return None if _SRT_CUE.match(text) else "no SubRip cue (1, then 00:00:00,000 --> ...)"
    if fmt == "vtt":
        return None if text.startswith("WEBVTT") and _VTT_CUE.search(text) else \
            "no WEBVTT header with a 00:00:00.000 --> ... cue"
    if not text.strip():
        return "an empty transcript"
    if text.lstrip().startswith(("{", "WEBVTT")) or _SRT_CUE.match(text):
        return "a structured format, not plain text"
    return None


@check("transcription.format", Severity.HIGH, "a transcript in the asked response_format")
def transcription_format(ctx: Context, ex: Exchange) -> CheckResult:
    """json: ``{text}``; verbose_json: text, language, duration, segments; text: plain;
    srt: numbered cues with ``,`` milliseconds; vtt: ``WEBVTT`` and ``.`` milliseconds."""
    if not _ok(ex, TRANSCRIPTIONS_PATH):
        return NOT_APPLICABLE
    fmt = _asked(ex, "response_format", "json")
    problem = transcript_problem(ex.body, fmt)
    if problem is None and fmt in ("json", "verbose_json") and \
            ex.content_type != "application/json":
        problem = f"labelled {ex.content_type or 'nothing'}, not application/json"
    return [] if problem is None else [
        _finding(ctx, ex, "transcription.format", f"a {fmt} transcript", problem)]


def _inputs(request: Any) -> list[Any]:
    value = request.get("input") if isinstance(request, dict) else None
    return value if isinstance(value, list) else [value]


def _moderation_results(ex: Exchange) -> list[Any] | None:
    try:
        payload = json.loads(ex.body)
    except ValueError:
        return None
    results = payload.get("results") if isinstance(payload, dict) else None
    return results if isinstance(results, list) else None


def result_problems(result: Any) -> list[str]:
    """What is wrong with one moderation result's shape."""
    if not isinstance(result, dict):
        return ["a result that is not an object"]
    categories, scores = result.get("categories"), result.get("category_scores")
    if not isinstance(categories, dict) or not isinstance(scores, dict):
        return ["no categories or category_scores object"]
    problems = []
    if set(categories) != set(scores):
        problems.append(f"categories and category_scores differ in keys "
                        f"({sorted(set(categories) ^ set(scores))[:3]})")
    if any(not isinstance(v, bool) for v in categories.values()):
        problems.append("a category that is not a boolean")
    if any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1
           for v in scores.values()):
        bad = next(v for v in scores.values() if isinstance(v, bool) or
                   not isinstance(v, int | float) or not 0 <= v <= 1)
        problems.append(f"a score that is not a number in [0, 1] ({bad!r})")
    if result.get("flagged") is not any(v is True for v in categories.values()):
        problems.append(f"flagged {result.get('flagged')!r} while "
                        f"{'some' if any(categories.values()) else 'no'} category is true")
    return problems


@check("moderation.results", Severity.HIGH,
       "one result per input; boolean categories and [0, 1] scores with the same keys")
def moderation_results(ctx: Context, ex: Exchange) -> CheckResult:
    """A client zips results with its inputs and thresholds the scores: a missing result,
    a percentage or a category without a score breaks it."""
    results = _moderation_results(ex) if _ok(ex, MODERATIONS_PATH) else None
    if results is None:
        return NOT_APPLICABLE
    out = []
    inputs = _inputs(ex.request)
    if len(results) != len(inputs):
        out.append(_finding(ctx, ex, "moderation.results", f"{len(inputs)} results (one per "
                            "input)", f"{len(results)} results"))
    for i, result in enumerate(results):
        problems = result_problems(result)
        if problems:
            out.append(_finding(ctx, ex, "moderation.results", "a well-formed result",
                                f"result {i}: {problems[0]}"))
    return out


@check("moderation.order", Severity.HIGH, "moderation results in the inputs' order")
def moderation_order(ctx: Context, ex: Exchange) -> CheckResult:
    """With a clearly harmful and a clearly harmless probe text among the inputs, each
    result's ``flagged`` must be the one of the input at its position."""
    results = _moderation_results(ex) if _ok(ex, MODERATIONS_PATH) else None
    inputs = _inputs(ex.request)
    known = {i: MODERATION_PROBES[t] for i, t in enumerate(inputs)
             if isinstance(t, str) and t in MODERATION_PROBES}
    if results is None or len(set(known.values())) < 2:
        return NOT_APPLICABLE
    for i, expected in known.items():
        got = results[i].get("flagged") if i < len(results) and \
            isinstance(results[i], dict) else None
        if got is not expected:
            return [_finding(ctx, ex, "moderation.order",
                             f"result {i} flagged {expected} (its input: {inputs[i]!r})",
                             f"flagged {got!r}: results out of the inputs' order")]
    return []
