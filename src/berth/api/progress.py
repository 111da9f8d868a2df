"""Docker's JSON message stream for long operations (pull, push): one JSON object a
line (distribution.progress.to_json), and `errorDetail`/`error` for a failure once
the stream has begun.

The response starts with the first message, not before: an operation that fails
before it has anything to say (no such manifest, refused credentials, a bad name)
answers with its own status code and `{"message": …}`, as dockerd does, so that
docker-py raises NotFound or APIError and the CLI prints "Error response from daemon".
A client that goes away cancels the operation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from berth.distribution.progress import Emit, Message, drain, to_json
from berth.errors import BerthError

log = logging.getLogger(__name__)


def _line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode() + b"\r\n"


async def stream(request: web.Request, work: Callable[[Emit], Awaitable[Any]],
                 headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Run `work(emit)` and stream what it emits, with `headers` besides Content-Type;
    see the module's docstring."""
    response: web.StreamResponse | None = None

    async def start() -> web.StreamResponse:
        nonlocal response
        if response is None:
            response = web.StreamResponse(status=200, headers={**(headers or {}), "Content-Type": "application/json"})
            await response.prepare(request)
        return response

    async def sink(msg: Message) -> None:
        await (await start()).write(_line(to_json(msg)))

    try:
        await drain(work, sink)
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as e:
        if response is None:
            raise  # nothing sent yet: the error's own status code
        if isinstance(e, BerthError):
            message = str(e)
        else:
            log.exception("%s %s failed", request.method, request.path)
            message = f"{type(e).__name__}: {e}"
        await response.write(_line({"errorDetail": {"message": message}, "error": message}))
    done = await start()
    await done.write_eof()
    return done
