"""`/containers/{id}/exec` and `/exec/{id}/…`: create, start (hijacked), resize, inspect."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

from aiohttp import web

from berth.api import hijack, versions
from berth.api.server import Routes, context, json_body, json_response, query_int
from berth.containers.execs import Exec, ExecService
from berth.errors import BerthError, InvalidParameter
from berth.stdstream import STDOUT, EscapeScanner, encode_frame, parse_detach_keys

routes = Routes()


def _execs(request: web.Request) -> ExecService:
    return context(request).execs


def _strings(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"json: cannot unmarshal {key}: it must be an array of strings")
    return list(value)


def _any_case(doc: dict[str, Any], key: str) -> Any:
    """A field named in any case, as Go's JSON decoding finds it (docker-py sends
    "detachKeys")."""
    if key in doc:
        return doc[key]
    lowered = key.lower()
    return next((v for k, v in doc.items() if k.lower() == lowered), None)


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    size = body.get("ConsoleSize") or [0, 0]
    if not versions.client_at_least(request, versions.EXEC_CONSOLE_SIZE):
        size = [0, 0]
    e = _execs(request).create(
        request.match_info["id"], _strings(body, "Cmd"), tty=bool(body.get("Tty")),
        attach_stdin=bool(body.get("AttachStdin")), attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")), env=_strings(body, "Env"), user=str(body.get("User") or ""),
        working_dir=str(body.get("WorkingDir") or ""), privileged=bool(body.get("Privileged")),
        detach_keys=str(_any_case(body, "DetachKeys") or ""),
        console_size=(int(size[0] or 0), int(size[1] or 0)) if isinstance(size, list) and len(size) == 2 else (0, 0))
    if e.working_dir and not e.working_dir.startswith("/"):
        raise InvalidParameter(f"the working directory '{e.working_dir}' is invalid, it needs to be an absolute path")
    return json_response({"Id": e.id}, status=201)


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    body = await json_body(request, required=False)
    service = _execs(request)
    e = service.get(request.match_info["id"])
    if body.get("Tty") is not None:
        e.tty = bool(body["Tty"])
    size = body.get("ConsoleSize")
    # as dockerd: only from 1.42, and no console size without a tty asked at the start
    if (isinstance(size, list) and len(size) == 2 and body.get("Tty")
            and versions.client_at_least(request, versions.EXEC_CONSOLE_SIZE)):
        e.console_size = (int(size[0] or 0), int(size[1] or 0))
    if body.get("Detach"):
        await service.start(e.id, attach=False)
        return web.Response(status=200)
    reader, writer, _response = await hijack.hijack(request, hijack.stream_type(request, e.tty))
    try:
        try:
            streams = await service.start(e.id, attach=True)
        except BerthError as err:  # the stream is open already: the error goes down it, as stdout
            text = str(err).encode() + b"\r\n"
            writer.write(text if e.tty else encode_frame(STDOUT, text))
            await writer.drain()
            streams = None
        if streams is not None:
            keys = parse_detach_keys(e.detach_keys) if e.detach_keys else b""
            stdin_tty = e.tty and e.attach_stdin
            if await hijack.pump(*hijack.stream_client(reader, writer), *streams,
                                 escape=EscapeScanner(keys) if stdin_tty else None, input_end_ends=stdin_tty):
                service.detached(e.id)
            else:
                # the output has ended: the exit code is a moment away, and the CLI asks
                # for it as soon as the stream closes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(service.wait(e.id), 2.0)
    except (ConnectionError, OSError):
        pass
    return await hijack.finish(request, writer)


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    height = query_int(request, "h", 0) or 0
    width = query_int(request, "w", 0) or 0
    await _execs(request).resize(request.match_info["id"], height, width)
    return web.Response(status=200)


def render(e: Exec) -> dict[str, Any]:
    return {
        "CanRemove": False,
        "ContainerID": e.container_id,
        # dockerd keeps the keys as bytes, and Go's JSON writes bytes in base64
        "DetachKeys": base64.b64encode(parse_detach_keys(e.detach_keys)).decode() if e.detach_keys else "",
        "ExitCode": e.exit_code,
        "ID": e.id,
        "OpenStderr": e.attach_stderr,
        "OpenStdin": e.attach_stdin,
        "OpenStdout": e.attach_stdout,
        "ProcessConfig": {"arguments": e.argv[1:], "entrypoint": e.argv[0], "privileged": e.privileged,
                          "tty": e.tty, "user": e.user},
        "Running": e.running,
        "Pid": e.pid if e.running else 0,
    }


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    return json_response(render(_execs(request).get(request.match_info["id"])))
