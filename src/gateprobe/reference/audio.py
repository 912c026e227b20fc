"""``/v1/audio/speech`` and ``/v1/audio/transcriptions``, with OpenAI's fields and formats.

Speech answers the asked ``response_format`` as a real little file (``audio_codecs``), sent
with chunked transfer on the gateway's schedule: the first chunk at the time to first token,
the next ones one inter-token interval apart, so a client can measure its time to first audio
byte against the gateway's own truth. Transcriptions take a multipart upload and answer in
json, text, srt, verbose_json or vtt; the "transcript" says how long the audio was.
"""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from gateprobe.reference.audio_codecs import CONTENT_TYPES, ENCODERS, RATE, tone
from gateprobe.reference.call import Call
from gateprobe.reference.faults import (
    SPEECH_WAV_ALWAYS,
    SPEECH_WRONG_CONTENT_TYPE,
    TRANSCRIPTION_SRT_AS_VTT,
)
from gateprobe.reference.media_body import read_body
from gateprobe.reference.streaming import sleep_until
from gateprobe.reference.validate import Field, f, invalid

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage",
          "shimmer", "verse")
SPEECH_FIELDS: tuple[Field, ...] = (
    f("model", "string", required=True),
    f("input", "string", required=True, min_len=1, max_len=4096),
    f("voice", "string", required=True, enum=VOICES),
    f("response_format", "string", enum=tuple(ENCODERS)),
    f("speed", "number", ge=0.25, le=4.0),
    f("instructions", "string", max_len=4096),
    f("stream_format", "string", enum=("audio",)),
)
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
TRANSCRIPTION_FIELDS: tuple[Field, ...] = (
    f("model", "string", required=True),
    f("language", "string"),
    f("prompt", "string"),
    f("response_format", "string", enum=TRANSCRIPTION_FORMATS),
    f("temperature", "number", ge=0, le=1),
    f("timestamp_granularities", "array", item_enum=("word", "segment")),
)
CHUNK_BYTES = 4096
MAX_SPEECH_S = 2.0
"""Spoken length is 60 ms per character of input, at most this long (a test double's audio
need not be long, only real)."""
AUDIO_MAGIC = (b"RIFF", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"OggS", b"fLaC",
               b"\x1a\x45\xdf\xa3", b"\xff\xf1", b"\xff\xf9")
"""The uploads a transcription accepts: WAV, MP3, Ogg, FLAC, WebM, AAC; MP4/M4A by ``ftyp``."""


async def speech(call: Call) -> Response:
    """``POST /v1/audio/speech``: audio bytes, streamed in chunks."""
    call.authenticate()
    body = (await read_body(call, SPEECH_FIELDS)).fields
    model = call.resolve_model(body["model"], "speech")
    call.admit(model)
    fmt = body.get("response_format") or "mp3"
    seconds = min(MAX_SPEECH_S, 0.06 * len(body["input"])) / (body.get("speed") or 1.0)
    faults, endpoint = call.config.faults, call.endpoint
    encoder = ENCODERS["wav" if SPEECH_WAV_ALWAYS.active(faults, endpoint) else fmt]
    audio = encoder(tone(seconds))
    media_type = "audio/mpeg" if SPEECH_WRONG_CONTENT_TYPE.active(faults, endpoint) \
        else CONTENT_TYPES[fmt]
    chunks = [audio[i:i + CHUNK_BYTES] for i in range(0, len(audio), CHUNK_BYTES)]
    offsets = call.content_offsets(len(chunks))

    async def play() -> AsyncIterator[bytes]:
        for chunk, offset in zip(chunks, offsets, strict=True):
            await sleep_until(call.t0_ns + offset)
            yield chunk

    return StreamingResponse(play(), media_type=media_type, headers=call.headers)


async def transcriptions(call: Call) -> Response:
    """``POST /v1/audio/transcriptions``: multipart ``file`` in, the asked format out."""
    call.authenticate()
    body = await read_body(call, TRANSCRIPTION_FIELDS, ("file",))
    upload = body.files.get("file")
    if upload is None:
        invalid("openai", "file", "Missing required parameter: 'file'.", "")
    if not upload.startswith(AUDIO_MAGIC) and upload[4:8] != b"ftyp":
        invalid("openai", "file", "Invalid file format. Supported formats: ['flac', 'm4a', "
                "'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']", "")
    model = call.resolve_model(body.fields["model"], "transcriptions")
    call.admit(model)
    seconds = duration(upload)
    text = f"gateprobe heard {seconds:.1f} seconds of audio."
    fmt = body.fields.get("response_format") or "json"
    if fmt == "srt" and TRANSCRIPTION_SRT_AS_VTT.active(call.config.faults, call.endpoint):
        fmt = "vtt"
    if fmt in ("json", "verbose_json"):
        payload = {"text": text} if fmt == "json" else \
            verbose(text, seconds, body.fields.get("language") or "english",
                    "word" in (body.fields.get("timestamp_granularities") or []))
        return JSONResponse(payload, headers=call.headers)
    rendered = text + "\n" if fmt == "text" else subtitles(text, seconds, fmt)
    return Response(rendered, media_type="text/plain; charset=utf-8", headers=call.headers)


def duration(upload: bytes) -> float:
    """A WAV's own length; for other formats, a guess from the size (16 kB per second)."""
    if upload.startswith(b"RIFF"):
        try:
            with wave.open(io.BytesIO(upload)) as w:
                return float(w.getnframes()) / (w.getframerate() or RATE)
        except (wave.Error, EOFError):
            pass
    return len(upload) / 16_000


def _segments(text: str, seconds: float) -> list[tuple[float, float, str]]:
    """The text in two halves over the audio's length (one segment if it is one word)."""
    words = text.split()
    half = max(1, len(words) // 2)
    parts = [" ".join(words[:half]), " ".join(words[half:])]
    parts = [p for p in parts if p]
    step = max(seconds, 0.1) / len(parts)
    return [(i * step, (i + 1) * step, p) for i, p in enumerate(parts)]


def verbose(text: str, seconds: float, language: str, words: bool) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: language, duration, segments (and words if asked)."""
    segments = [{"id": i, "seek": 0, "start": round(start, 3), "end": round(end, 3),
                 "text": " " + part, "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
                 "compression_ratio": 1.0, "no_speech_prob": 0.01}
                for i, (start, end, part) in enumerate(_segments(text, seconds))]
    answer: dict[str, Any] = {"task": "transcribe", "language": language,
                              "duration": round(seconds, 3), "text": text,
                              "segments": segments}
    if words:
        split = text.split()
        step = max(seconds, 0.1) / len(split)
        answer["words"] = [{"word": w, "start": round(i * step, 3),
                            "end": round((i + 1) * step, 3)} for i, w in enumerate(split)]
    return answer


def _stamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def subtitles(text: str, seconds: float, fmt: str) -> str:
    """SubRip (numbered cues, ``00:00:01,500``) or WebVTT (a header, ``00:00:01.500``)."""
    cues = []
    for i, (start, end, part) in enumerate(_segments(text, seconds), 1):
        if fmt == "srt":
            cues.append(f"{i}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{part}\n")
        else:
            cues.append(f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{part}\n")
    return ("" if fmt == "srt" else "WEBVTT\n\n") + "\n".join(cues)
