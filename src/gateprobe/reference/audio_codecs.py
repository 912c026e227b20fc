"""Tiny real audio files in each format ``/v1/audio/speech`` answers in, from 16-bit PCM.

No codec library: WAV and PCM carry the samples themselves; MP3, AAC, Opus and FLAC are
well-formed containers of *silent* frames (valid MPEG-1 Layer III frames with empty side
information, ADTS headers over a silent raw block, Ogg pages with ``OpusHead``/``OpusTags``
and Opus silence packets, FLAC frames of one CONSTANT subframe), each with the checksums its
format requires. A client's player, or a harness reading magic bytes, sees the real format.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Callable

RATE = 24_000
"""OpenAI's speech PCM: 24 kHz, 16-bit signed little-endian, mono."""


def tone(seconds: float, hz: float = 440.0, amplitude: int = 2000) -> bytes:
    """``seconds`` of a quiet sine as PCM (what the fake voice says, whatever the text)."""
    count = max(1, int(seconds * RATE))
    return struct.pack(f"<{count}h", *(int(amplitude * math.sin(2 * math.pi * hz * i / RATE))
                                       for i in range(count)))


def wav(pcm: bytes) -> bytes:
    """A RIFF/WAVE file around the samples."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return out.getvalue()


def mp3(pcm: bytes) -> bytes:
    """Silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono) lasting as long."""
    seconds = len(pcm) / 2 / RATE
    frames = max(1, math.ceil(seconds * 44_100 / 1152))
    frame = b"\xff\xfb\x90\xc4" + bytes(417 - 4)  # 144 * 128000 / 44100 = 417 bytes
    return frame * frames


def aac(pcm: bytes) -> bytes:
    """ADTS frames (AAC-LC, 24 kHz, mono), each a silent raw data block."""
    seconds = len(pcm) / 2 / RATE
    frames = max(1, math.ceil(seconds * RATE / 1024))
    payload = b"\x00\xc8\x00\x80\x23\x80"  # SCE, global gain, no spectral data, END
    length = 7 + len(payload)
    header = bytes([0xFF, 0xF1, (1 << 6) | (6 << 2) | 0, (1 << 6) | (length >> 11),
                    (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC])
    return (header + payload) * frames


def _crc(data: bytes, poly: int, width: int, table: list[int] | None = None) -> int:
    """MSB-first CRC without reflection, initial value 0 (Ogg's CRC-32, FLAC's CRC-8/16)."""
    top, mask, crc = 1 << (width - 1), (1 << width) - 1, 0
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


def _ogg_page(packet: bytes, serial: int, sequence: int, granule: int, flags: int) -> bytes:
    segments = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = (b"OggS" + bytes([0, flags]) + struct.pack("<qIII", granule, serial, sequence, 0)
              + bytes([len(segments)]) + bytes(segments))
    page = header + packet
    crc = _crc(page, 0x04C11DB7, 32)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def opus(pcm: bytes) -> bytes:
    """An Ogg Opus stream: ``OpusHead``, ``OpusTags``, then 20 ms silence packets."""
    seconds = len(pcm) / 2 / RATE
    serial = 0x67707262  # "gprb"
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, RATE, 0, 0)
    vendor = b"gateprobe"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [_ogg_page(head, serial, 0, 0, 0x02), _ogg_page(tags, serial, 1, 0, 0)]
    packets = max(1, math.ceil(seconds / 0.02))
    for i in range(packets):
        last = i == packets - 1
        pages.append(_ogg_page(b"\xf8\xff\xfe", serial, i + 2, 312 + (i + 1) * 960,
                               0x04 if last else 0))
    return b"".join(pages)


FLAC_BLOCK = 4096


def flac(pcm: bytes) -> bytes:
    """A FLAC stream of silent frames: STREAMINFO, then one CONSTANT subframe per block."""
    blocks = max(1, math.ceil(len(pcm) / 2 / FLAC_BLOCK))
    total = blocks * FLAC_BLOCK
    info = struct.pack(">HH", FLAC_BLOCK, FLAC_BLOCK) + bytes(6)  # frame sizes unknown
    info += ((RATE << 44) | (0 << 41) | (15 << 36) | total).to_bytes(8, "big") + bytes(16)
    out = [b"fLaC", bytes([0x80]) + len(info).to_bytes(3, "big") + info]
    for number in range(blocks):
        header = bytes([0xFF, 0xF8, 0xC7, 0x08]) + _utf8_number(number)
        header += bytes([_crc(header, 0x07, 8)])
        frame = header + b"\x00\x00\x00"  # CONSTANT subframe, value 0
        out.append(frame + _crc(frame, 0x8005, 16).to_bytes(2, "big"))
    return b"".join(out)


def _utf8_number(n: int) -> bytes:
    """FLAC's frame number: UTF-8's variable-length coding of an integer."""
    return chr(n).encode("utf-8", "surrogatepass")


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "mp3": mp3, "opus": opus, "aac": aac, "flac": flac, "wav": wav, "pcm": lambda pcm: pcm}
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac",
                 "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
"""``response_format`` -> the Content-Type OpenAI answers with."""
