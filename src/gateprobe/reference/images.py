"""``/v1/images/generations`` and ``/v1/images/edits``: real pictures of the asked size.

Each image is drawn with Pillow from a digest of the request (prompt, model, seed, index): the
same request draws the same picture, in PNG, JPEG or WebP. A ``url`` answer names a file route
of this gateway whose name carries that digest, size and format, so the file is drawn again on
demand and nothing is stored. Sizes, ``n``, ``quality`` and ``style`` follow OpenAI's per-model
rules (dall-e-2: 256/512/1024 squares, n up to 10, prompt up to 1000 characters; dall-e-3:
n = 1, the three large sizes; ``quality`` and ``style`` are dall-e-3's, ignored by dall-e-2).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
from typing import Any

from PIL import Image, ImageDraw, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateprobe.core.families import PATHS
from gateprobe.reference.call import Call
from gateprobe.reference.config import Model
from gateprobe.reference.faults import IMAGE_RELATIVE_URL, IMAGE_WRONG_SIZE
from gateprobe.reference.media_body import read_body
from gateprobe.reference.validate import Field, f, invalid

FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"),
           "webp": ("WEBP", "image/webp")}
SIZES = {"dall-e-2": ("256x256", "512x512", "1024x1024"),
         "dall-e-3": ("1024x1024", "1792x1024", "1024x1792")}
"""The sizes each model draws (OpenAI's); another model of the images API takes any of them."""
ALL_SIZES = ("256x256", "512x512", "1024x1024", "1792x1024", "1024x1792")
FILE_ROUTE = PATHS["images"] + "/files/{name}"
_FILE_NAME = re.compile(r"(?P<digest>[0-9a-f]{24})-(?P<w>\d{2,4})x(?P<h>\d{2,4})"
                        r"\.(?P<ext>png|jpeg|webp)")

_COMMON: tuple[Field, ...] = (
    f("prompt", "string", required=True, min_len=1, max_len=4000),
    f("model", "string"),
    f("n", "integer", ge=1, le=10),
    f("response_format", "string", enum=("url", "b64_json")),
    f("size", "string", enum=ALL_SIZES),
    f("user", "string"),
    f("output_format", "string", enum=tuple(FORMATS)),
)
GENERATION_FIELDS: tuple[Field, ...] = (
    *_COMMON,
    f("quality", "string", enum=("standard", "hd")),
    f("style", "string", enum=("vivid", "natural")),
)
EDIT_FIELDS: tuple[Field, ...] = _COMMON
EDIT_FILES = ("image", "mask")


async def generations(call: Call) -> Response:
    """``POST /v1/images/generations``: JSON or the gateway's documented form body."""
    call.authenticate()
    body = (await read_body(call, GENERATION_FIELDS)).fields
    model = call.resolve_model(body.get("model", "dall-e-2"), "images")  # "" is no model
    size = _size(model, body)  # quality and style: dall-e-3's, ignored by dall-e-2
    call.admit(model)
    return await _answer(call, model, body, size, base=None)


async def edits(call: Call) -> Response:
    """``POST /v1/images/edits``: multipart, a PNG to edit (and an optional mask)."""
    call.authenticate()
    body = await read_body(call, EDIT_FIELDS, EDIT_FILES)
    if "image" not in body.files:
        invalid("openai", "image", "Missing required parameter: 'image'.", "")
    model = call.resolve_model(body.fields.get("model", "dall-e-2"), "images")  # "" too
    if model.id == "dall-e-3":  # OpenAI edits with dall-e-2 only
        invalid("openai", "model", "dall-e-3 does not support image edits.", "")
    size = _size(model, body.fields)
    base = _decoded(body.files["image"], "image")
    if "mask" in body.files:
        mask = _decoded(body.files["mask"], "mask")
        if mask.size != base.size:
            invalid("openai", "mask", "The mask must have the same dimensions as the image.",
                    "")
    call.admit(model)
    return await _answer(call, model, body.fields, size, base=base)


def _size(model: Model, body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size") or "1024x1024"
    allowed = SIZES.get(model.id, ALL_SIZES)
    if size not in allowed:
        invalid("openai", "size", f"'{size}' is not one of {list(allowed)} - 'size' for "
                f"{model.id}.", "")
    if model.id == "dall-e-3" and (body.get("n") or 1) != 1:
        invalid("openai", "n", "You must provide n=1 for this model.", "")
    if model.id == "dall-e-2" and len(body["prompt"]) > 1000:
        invalid("openai", "prompt", "Invalid 'prompt': dall-e-2 takes at most 1000 "
                "characters.", "")
    width, height = size.split("x")
    return int(width), int(height)


def _decoded(data: bytes, param: str) -> Image.Image:
    """An uploaded PNG, or the 400 OpenAI gives for anything else."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        invalid("openai", param, f"Invalid input image - format must be in ['png'], got "
                f"{len(data)} bytes that are not an image.", "")
    if image.format != "PNG":
        invalid("openai", param, f"Invalid input image - format must be in ['png'], got "
                f"{str(image.format).lower()}.", "")
    return image


async def _answer(call: Call, model: Model, body: dict[str, Any], size: tuple[int, int],
                  base: Image.Image | None) -> Response:
    faults, endpoint = call.config.faults, call.endpoint
    if IMAGE_WRONG_SIZE.active(faults, endpoint):
        size = (size[0] // 2, size[1])
    ext = body.get("output_format") or "png"
    seed = f"{model.id}\x00{call.config.seed}\x00{body['prompt']}"
    data = []
    for index in range(body.get("n") or 1):
        digest = hashlib.sha256(f"{seed}\x00{index}".encode()).hexdigest()[:24]
        item: dict[str, Any] = {}
        if body.get("response_format") == "b64_json":
            raw = draw(digest, size, ext, base)
            item["b64_json"] = base64.b64encode(raw).decode()
        else:
            path = FILE_ROUTE.format(name=f"{digest}-{size[0]}x{size[1]}.{ext}")
            relative = IMAGE_RELATIVE_URL.active(faults, endpoint)
            item["url"] = path if relative else str(call.request.base_url).rstrip("/") + path
        if model.id == "dall-e-3":
            item["revised_prompt"] = f"A picture of: {body['prompt']}"
        data.append(item)
    return await call.respond_json({"created": int(time.time()), "data": data}, 0)


def draw(digest: str, size: tuple[int, int], ext: str,
         base: Image.Image | None = None) -> bytes:
    """The picture of ``digest``: two colours from it, a frame and a diagonal; an edit is the
    uploaded image resized, with the same marks drawn over it."""
    colour = tuple(bytes.fromhex(digest[:6]))
    accent = tuple(bytes.fromhex(digest[6:12]))
    image = base.convert("RGB").resize(size) if base is not None else \
        Image.new("RGB", size, colour)
    pen = ImageDraw.Draw(image)
    pen.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=accent, width=4)
    pen.line((0, 0, size[0] - 1, size[1] - 1), fill=accent, width=3)
    out = io.BytesIO()
    image.save(out, FORMATS[ext][0])
    return out.getvalue()


async def image_file(request: Request) -> Response:
    """``GET /v1/images/generations/files/{name}``: the picture a ``url`` answer names. No
    key: like upstream's signed URLs, the name itself is the unguessable part."""
    if request.method != "GET":
        return JSONResponse({"error": {"message": f"Method {request.method} is not allowed.",
                                       "type": "invalid_request_error", "param": None,
                                       "code": None}}, status_code=405,
                            headers={"allow": "GET"})
    match = _FILE_NAME.fullmatch(request.path_params["name"])
    width, height = (int(match["w"]), int(match["h"])) if match else (0, 0)
    if match is None or not (16 <= width <= 2048 and 16 <= height <= 2048):
        return JSONResponse({"error": {"message": "No such image file.",
                                       "type": "invalid_request_error", "param": None,
                                       "code": "not_found"}}, status_code=404)
    raw = draw(match["digest"], (width, height), match["ext"])
    return Response(raw, media_type=FORMATS[match["ext"]][1],
                    headers={"cache-control": "public, max-age=3600"})

