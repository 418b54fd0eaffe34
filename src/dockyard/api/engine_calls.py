"""Calling the engine from handlers: in a worker thread (engine calls block on disk,
subprocesses and the kernel), with the engine's errors turned into the API's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ..engine import errors as engine_errors
from ._errors import Conflict, Forbidden, InvalidParameter, NotFound, NotModified, ServerError

T = TypeVar("T")

_MAPPING: tuple[tuple[type[engine_errors.EngineError], type[Exception]], ...] = (
    (engine_errors.NotFound, NotFound),
    (engine_errors.Conflict, Conflict),
    (engine_errors.InvalidParameter, InvalidParameter),
    (engine_errors.NotModified, NotModified),
    (engine_errors.Forbidden, Forbidden),
)


def translate(error: engine_errors.EngineError) -> Exception:
    for engine_type, api_type in _MAPPING:
        if isinstance(error, engine_type):
            return api_type(str(error))
    return ServerError(str(error))


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except engine_errors.EngineError as e:
        raise translate(e) from None
