"""Request bodies: size, JSON, valid Unicode, then the endpoint's pydantic model, each problem a 400 in
OpenAI's shape naming the field."""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import Request
from pydantic import ValidationError

from .errors import APIError

MAX_BODY_BYTES = 4 << 20


def _lone_surrogate(value: Any, path: str = "") -> Optional[str]:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _lone_surrogate(k, path) or _lone_surrogate(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _lone_surrogate(v, f"{path}.{i}")
            if found:
                return found
    return None


def _problem(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"{where}: unsupported parameter (this server does not implement it)"
    return f"{where}: {error['msg']}"


async def parse(request: Request, model_cls):
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise APIError(400, "the body nests too deeply") from None
    if not isinstance(body, dict):
        raise APIError(400, f"the body must be a JSON object, got {type(body).__name__}")
    bad = _lone_surrogate(body)
    if bad:
        raise APIError(400, f"{bad}: the text holds a lone UTF-16 surrogate (not valid Unicode)", param=bad)
    try:
        return model_cls.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        param = ".".join(str(p) for p in errors[0]["loc"]) or None
        raise APIError(400, "invalid request: " + "; ".join(_problem(e) for e in errors[:5]), param=param) from None
