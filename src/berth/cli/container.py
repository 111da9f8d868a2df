"""``berth container …`` (and the top-level ``run``, ``ps``, ``rm`` …).

Each command is the docker CLI's: same flags, same API calls in the same
order, same output and exit codes.  ``run`` follows docker's sequence exactly:
create (pulling the image if it is missing), attach before start, register
the wait, start, then stream until the container's output ends.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from berth.cli.context import CliContext, CliExit, as_int
from berth.cli.flags import Command, ParsedFlags
from berth.cli.formatting import ContainerContext, render_rows
from berth.cli.inspect import fetch, inspect_objects, typed_container
from berth.cli.progress import StreamError, display_stream
from berth.cli.runconfig import (
    ConfigError,
    CreateRequest,
    add_container_flags,
    build_create,
    read_kv_files,
)
from berth.cli.streams import (
    ResizeMonitor,
    SignalProxy,
    Streamer,
    is_terminal,
    terminal_size,
    terminal_width,
)
from berth.client import credentials
from berth.client.engine import APIError, Client, ClientError, Hijacked, filters_json, path_escape
from berth.images.reference import ReferenceError, parse_normalized
from berth.stdstream import DEFAULT_DETACH_KEYS, parse_detach_keys
from berth.template.gotemplate import Template, TemplateError

FORMAT_HELP = """Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"""

INSPECT_FORMAT_HELP = """Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"""


def cid_path(ref: str) -> str:
    return path_escape(ref)


# --------------------------------------------------------------------------
# run / create


def with_help(message: str, command: str) -> str:
    """docker's withHelp: ``berth: <msg>`` + a pointer to ``--help``."""
    return f"berth: {message}\n\nRun 'berth {command} --help' for more information"


def status_error(exc: Exception, command: str = "run") -> CliExit:
    """docker's toStatusError: 127 for missing executables, 126 for permissions, else 125.

    ``create`` returns the daemon's error as it is (exit 1), as docker does.
    """
    message = str(exc)
    if command == "create":
        return CliExit(message, 1)
    status = 125
    if (
        "executable file not found" in message
        or "no such file or directory" in message
        or "system cannot find the file specified" in message
    ):
        status = 127
    elif "permission denied" in message or "is a directory" in message:
        status = 126
    return CliExit(with_help(message, command), status)


def pull_image(cli: CliContext, image: str, platform: str, quiet: bool) -> None:
    """POST /images/create for ``image`` and show progress on stderr (as docker run does)."""
    ref = parse_normalized(image)
    tag = ref.digest or ref.tag or "latest"
    params = {"fromImage": ref.name, "tag": tag, "platform": platform or None}
    auth = credentials.registry_auth_header(ref.domain, cli.config)
    resp = cli.client.request("POST", "/images/create", params, headers={"X-Registry-Auth": auth})
    from berth.client.engine import iter_json_stream

    out = open(os.devnull, "w") if quiet else sys.stderr  # noqa: SIM115
    try:
        display_stream(iter_json_stream(resp.iter_chunks()), out, is_terminal=is_terminal(2), width=terminal_width(2))
    finally:
        if quiet:
            out.close()


def create_container(cli: CliContext, req: CreateRequest, command: str) -> str:
    """docker's createContainer: create, on "no such image" pull and retry; print warnings."""
    client = cli.client
    image = req.body["Image"]
    named = None
    try:
        named = parse_normalized(image)
    except ReferenceError:
        named = None
    if req.cidfile and os.path.exists(req.cidfile):
        raise CliExit(with_help(f"container ID file found, make sure the other container isn't running or delete {req.cidfile}", command), 125)
    params = {"name": req.name or None, "platform": req.platform or None}
    if req.pull == "always" and named is not None:
        _pull_for_create(cli, image, req, command)
    try:
        resp = client.post_json("/containers/create", params, req.body)
    except APIError as exc:
        if exc.not_found and named is not None and req.pull == "missing" and "image" in exc.message.lower():
            if not req.quiet:
                cli.err(f"Unable to find image '{named.with_default_tag().familiar_string()}' locally")
            _pull_for_create(cli, image, req, command)
            try:
                resp = client.post_json("/containers/create", params, req.body)
            except ClientError as retry_exc:
                raise status_error(retry_exc, command) from None
        else:
            raise status_error(exc, command) from None
    except ClientError as exc:
        raise status_error(exc, command) from None
    cid = str((resp or {}).get("Id") or "")
    for warning in (resp or {}).get("Warnings") or []:
        cli.err(f"WARNING: {warning}")
    for warning in req.warnings:
        cli.err(f"WARNING: {warning}")
    if req.cidfile:
        try:
            with open(req.cidfile, "w") as fh:
                fh.write(cid)
        except OSError as exc:
            raise CliExit(with_help(f"failed to write the container ID to the file: {exc}", command), 125) from None
    return cid


def _pull_for_create(cli: CliContext, image: str, req: CreateRequest, command: str) -> None:
    try:
        pull_image(cli, image, req.platform, req.quiet)
    except StreamError as exc:
        raise status_error(Exception(exc.message), command) from None
    except ClientError as exc:
        raise status_error(exc, command) from None


def _build(flags: ParsedFlags, command: str) -> CreateRequest:
    image = flags.args[0]
    try:
        return build_create(flags, image, flags.args[1:])
    except ConfigError as exc:
        raise CliExit(with_help(str(exc), command), 125) from None


def _set_console_size(req: CreateRequest) -> None:
    """A TTY container starts with the size of the terminal on stdout."""
    size = terminal_size(1)
    if size and req.body.get("Tty"):
        req.host_config["ConsoleSize"] = [size[0], size[1]]


def run_create(cli: CliContext, flags: ParsedFlags) -> int:
    req = _build(flags, "create")
    _set_console_size(req)
    cid = create_container(cli, req, "create")
    cli.out(cid)
    return 0


class Waiter:
    """``POST /containers/{id}/wait`` registered now, answered when the container exits."""

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        self.status: int | None = None
        self.error = ""
        self._done = threading.Event()
        params = {"condition": condition} if condition else None
        try:
            self._resp = client.request("POST", f"/containers/{cid_path(cid)}/wait", params)
        except ClientError as exc:
            self.error = f"error waiting for container: {exc}"
            self.status = 125
            self._done.set()
            return
        threading.Thread(target=self._read, name="wait", daemon=True).start()

    def _read(self) -> None:
        try:
            body = self._resp.json() or {}
            err = body.get("Error")
            if err and err.get("Message"):
                self.error = f"Error waiting for container: {err['Message']}"
                self.status = 125
            else:
                self.status = as_int(body.get("StatusCode"), 125)
        except (ClientError, ValueError, OSError) as exc:
            self.error = f"error waiting for container: {exc}"
            self.status = 125
        finally:
            self._done.set()

    def wait(self) -> int:
        while not self._done.wait(0.2):
            pass
        return self.status if self.status is not None else 125


def _attach(
    cli: CliContext, cid: str, stdin: bool, stdout: bool, stderr: bool, detach_keys: str
) -> Hijacked:
    params: dict[str, Any] = {"stream": 1, "stdin": stdin, "stdout": stdout, "stderr": stderr}
    if detach_keys:
        params["detachKeys"] = detach_keys
    return cli.client.hijack(f"/containers/{cid_path(cid)}/attach", params)


def _resizer(cli: CliContext, path: str) -> Callable[[int, int], None]:
    def resize(height: int, width: int) -> None:
        if height or width:
            cli.client.post(path, {"h": height, "w": width})

    return resize


def _detach_key_bytes(spec: str) -> bytes:
    """The bytes of keys CliContext.detach_keys has checked; "" is ctrl-p ctrl-q."""
    return parse_detach_keys(spec) if spec else DEFAULT_DETACH_KEYS


@contextmanager
def _signal_proxy(client: Client, cid: str, enabled: bool) -> Iterator[None]:
    """Forward the signals berth receives to the container (``kill``) while the block runs."""
    proxy: SignalProxy | None = None
    if enabled:
        proxy = SignalProxy(lambda sig: client.post(f"/containers/{cid_path(cid)}/kill", {"signal": sig}))
        proxy.start()
    try:
        yield
    finally:
        if proxy is not None:
            proxy.stop()


def _wait_and_start(client: Client, cid: str, conn: Hijacked | None, auto_remove: bool) -> Waiter:
    """Register the wait, then start; a failed start closes ``conn`` (and waits for ``--rm``) and raises."""
    waiter = Waiter(client, cid, "removed" if auto_remove else "next-exit")
    try:
        client.post(f"/containers/{cid_path(cid)}/start")
    except ClientError:
        if conn is not None:
            conn.close()
        if auto_remove:
            waiter.wait()
        raise
    return waiter


def _stream(
    cli: CliContext,
    conn: Hijacked,
    resize_path: str | None,
    *,
    tty: bool,
    stdin: bool,
    stdout: bool = True,
    stderr: bool = True,
    detach_keys: str,
    resize_first: bool = False,
) -> str:
    """Stream ``conn`` until the output ends or the user detaches; then close it.

    With ``resize_path`` the remote TTY follows the local terminal's size while
    streaming (``resize_first``: nudge it once first, as ``attach`` does).
    """
    monitor: ResizeMonitor | None = None
    if resize_path is not None:
        resize = _resizer(cli, resize_path)
        if resize_first:
            size = terminal_size(1)
            if size:
                try:
                    resize(size[0] + 1, size[1] + 1)
                except ClientError:
                    pass
        monitor = ResizeMonitor(resize)
        monitor.start()
    streamer = Streamer(
        conn, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr,
        detach_keys=_detach_key_bytes(detach_keys), raw_terminal=True,
    )
    try:
        return streamer.run()
    finally:
        if monitor is not None:
            monitor.stop()
        conn.close()


def _container_resize_path(cli: CliContext, cid: str, tty: bool) -> str | None:
    return f"/containers/{cid_path(cid)}/resize" if tty and cli.stdout_is_tty() else None


def _exit_status(cli: CliContext, waiter: Waiter, outcome: str) -> int:
    """``run``/``start -a``: 0 when detached, else the container's exit code."""
    if outcome == "detached":
        return 0
    status = waiter.wait()
    if waiter.error:
        cli.err(waiter.error)
    return status


def run_run(cli: CliContext, flags: ParsedFlags) -> int:
    req = _build(flags, "run")
    config = req.body
    detach = flags["detach"]
    detach_keys = cli.detach_keys(flags["detach-keys"])
    if not detach:
        if config["Tty"] and config["AttachStdin"] and not cli.stdin_is_tty():
            raise CliExit("the input device is not a TTY", 1)
    else:
        if flags["attach"]:
            raise CliExit("conflicting options: cannot specify both --attach and --detach", 1)
        config["AttachStdin"] = config["AttachStdout"] = config["AttachStderr"] = False
        config["StdinOnce"] = False
    _set_console_size(req)

    cid = create_container(cli, req, "run")
    attach = config["AttachStdin"] or config["AttachStdout"] or config["AttachStderr"]
    if not attach:
        try:
            _wait_and_start(cli.client, cid, None, req.auto_remove)
        except ClientError as exc:
            raise status_error(exc, "run") from None
        cli.out(cid)
        return 0
    return start_attached(cli, cid, tty=config["Tty"], stdin=config["AttachStdin"], stdout=config["AttachStdout"],
                          stderr=config["AttachStderr"], auto_remove=req.auto_remove,
                          detach_keys=detach_keys, sig_proxy=flags["sig-proxy"])


def start_attached(cli: CliContext, cid: str, *, tty: bool, stdin: bool, stdout: bool = True, stderr: bool = True,
                   auto_remove: bool = False, detach_keys: str = "", sig_proxy: bool = True) -> int:
    """Attach to a created container, start it, stream until it ends (or the user
    detaches) and return its exit code: `run` without -d, and `compose run`."""
    client = cli.client
    with _signal_proxy(client, cid, sig_proxy and not tty):
        try:
            conn = _attach(cli, cid, stdin, stdout, stderr, detach_keys)
        except ClientError as exc:
            raise CliExit(str(exc), 1) from None
        try:
            waiter = _wait_and_start(client, cid, conn, auto_remove)
        except ClientError as exc:
            raise status_error(exc, "run") from None
        outcome = _stream(cli, conn, _container_resize_path(cli, cid, tty), tty=tty, stdin=stdin,
                          stdout=stdout, stderr=stderr, detach_keys=detach_keys)
        return _exit_status(cli, waiter, outcome)


# --------------------------------------------------------------------------
# ps


def run_ps(cli: CliContext, flags: ParsedFlags) -> int:
    fmt: str = flags["format"]
    quiet: bool = flags["quiet"]
    if fmt and quiet:
        cli.err("WARNING: Ignoring custom format, because both --format and --quiet are set.")
    size = flags["size"]
    if fmt:
        try:
            tmpl = Template(fmt)
        except TemplateError as exc:
            raise CliExit(f"failed to parse template: {exc}", 1) from None
        try:
            tmpl.execute(ContainerContext({}, trunc=False))
        except TemplateError as exc:
            raise CliExit(f"failed to execute template: {exc}", 1) from None
        if not quiet and not size and "size" not in flags.changed and _uses_field(fmt, "Size"):
            size = True
    limit = flags["last"]
    if flags["latest"] and limit == -1:
        limit = 1
    params: dict[str, Any] = {
        "all": flags["all"] or None,
        "limit": limit if limit > 0 else None,
        "size": size or None,
        "filters": filters_json(flags["filter"]),
    }
    containers = cli.client.get_json("/containers/json", params) or []
    if not fmt or fmt == "table":
        if quiet:
            fmt = "{{.ID}}"
        else:
            fmt = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
            if size:
                fmt += "\t{{.Size}}"
    elif fmt == "raw":
        fmt = (
            "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n"
            "state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
            "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n"
        )
        if quiet:
            fmt = "container_id: {{.ID}}"
    elif quiet:
        fmt = "{{.ID}}"
    now = time.time()
    rows = [ContainerContext(c, trunc=not flags["no-trunc"], now=now) for c in containers]
    try:
        text = render_rows(fmt, rows, ContainerContext.HEADER)
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None
    cli.out(text, end="")
    return 0


def _uses_field(fmt: str, name: str) -> bool:
    import re

    return re.search(r"\." + name + r"\b", fmt) is not None


# --------------------------------------------------------------------------
# simple lifecycle commands


def for_each_ref(cli: CliContext, refs: list[str], op: Callable[[str], Any]) -> int:
    """Apply ``op`` to each ref, printing the refs it succeeds for; the errors, one a line, end it with 1."""
    errors: list[str] = []
    for ref in refs:
        try:
            op(ref)
        except ClientError as exc:
            errors.append(str(exc))
            continue
        cli.out(ref)
    if errors:
        raise CliExit("\n".join(errors), 1)
    return 0


def run_rm(cli: CliContext, flags: ParsedFlags) -> int:
    errors: list[str] = []
    for ref in flags.args:
        name = ref.strip("/")
        if not name:
            errors.append("container name cannot be empty")
            continue
        try:
            cli.client.delete(
                f"/containers/{cid_path(name)}",
                {"v": flags["volumes"] or None, "link": flags["link"] or None, "force": flags["force"] or None},
            )
        except APIError as exc:
            if flags["force"] and exc.not_found:
                cli.err(str(exc))
                continue
            errors.append(str(exc))
            continue
        except ClientError as exc:
            errors.append(str(exc))
            continue
        cli.out(ref)
    if errors:
        raise CliExit("\n".join(errors), 1)
    return 0


def _stop_params(flags: ParsedFlags) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if flags["signal"]:
        params["signal"] = flags["signal"]
    if "timeout" in flags.changed:
        params["t"] = flags["timeout"]
    elif "time" in flags.changed:
        params["t"] = flags["time"]
    return params


def run_stop(cli: CliContext, flags: ParsedFlags) -> int:
    params = _stop_params(flags)
    return for_each_ref(cli, flags.args, lambda ref: cli.client.post(f"/containers/{cid_path(ref)}/stop", params))


def run_restart(cli: CliContext, flags: ParsedFlags) -> int:
    params = _stop_params(flags)
    return for_each_ref(cli, flags.args, lambda ref: cli.client.post(f"/containers/{cid_path(ref)}/restart", params))


def run_kill(cli: CliContext, flags: ParsedFlags) -> int:
    params = {"signal": flags["signal"] or None}
    return for_each_ref(cli, flags.args, lambda ref: cli.client.post(f"/containers/{cid_path(ref)}/kill", params))


def run_pause(cli: CliContext, flags: ParsedFlags) -> int:
    return for_each_ref(cli, flags.args, lambda ref: cli.client.post(f"/containers/{cid_path(ref)}/pause"))


def run_unpause(cli: CliContext, flags: ParsedFlags) -> int:
    return for_each_ref(cli, flags.args, lambda ref: cli.client.post(f"/containers/{cid_path(ref)}/unpause"))


def run_wait(cli: CliContext, flags: ParsedFlags) -> int:
    errors: list[str] = []
    for ref in flags.args:
        try:
            body = cli.client.post_json(f"/containers/{cid_path(ref)}/wait") or {}
        except ClientError as exc:
            errors.append(str(exc))
            continue
        err = body.get("Error")
        if err and err.get("Message"):
            errors.append(str(err["Message"]))
            continue
        cli.out(str(as_int(body.get("StatusCode"))))
    if errors:
        raise CliExit("\n".join(errors), 1)
    return 0


def run_rename(cli: CliContext, flags: ParsedFlags) -> int:
    old, new = flags.args[0].strip(), flags.args[1].strip()
    if not old or not new:
        raise CliExit("Error: Neither old nor new names may be empty", 1)
    try:
        cli.client.post(f"/containers/{cid_path(old)}/rename", {"name": new})
    except ClientError as exc:
        cli.err(str(exc))
        raise CliExit(f"Error: failed to rename container named {old}", 1) from None
    return 0


def run_start(cli: CliContext, flags: ParsedFlags) -> int:
    if flags["attach"] or flags["interactive"]:
        if len(flags.args) > 1:
            raise CliExit("you cannot start and attach multiple containers at once", 1)
        return _start_attached(cli, flags, flags.args[0])
    failed: list[str] = []
    for ref in flags.args:
        try:
            cli.client.post(f"/containers/{cid_path(ref)}/start")
        except ClientError as exc:
            cli.err(str(exc))
            failed.append(ref)
            continue
        cli.out(ref)
    if failed:
        raise CliExit(f"Error: failed to start containers: {', '.join(failed)}", 1)
    return 0


def _inspect_container(cli: CliContext, ref: str) -> dict[str, Any]:
    data = cli.client.get_json(f"/containers/{cid_path(ref)}/json")
    if not isinstance(data, dict):
        raise ClientError("unable to read inspect data")
    return data


def _start_attached(cli: CliContext, flags: ParsedFlags, ref: str) -> int:
    client = cli.client
    c = _inspect_container(cli, ref)
    cid = str(c.get("Id") or ref)
    config = c.get("Config") or {}
    host_config = c.get("HostConfig") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(flags["interactive"] and config.get("OpenStdin"))
    if tty and stdin and not cli.stdin_is_tty():
        raise CliExit("the input device is not a TTY", 1)
    detach_keys = cli.detach_keys(flags["detach-keys"])
    with _signal_proxy(client, cid, not tty):
        conn = _attach(cli, cid, stdin, True, True, detach_keys)
        waiter = _wait_and_start(client, cid, conn, bool(host_config.get("AutoRemove")))
        outcome = _stream(
            cli, conn, _container_resize_path(cli, cid, tty), tty=tty, stdin=stdin, detach_keys=detach_keys
        )
        return _exit_status(cli, waiter, outcome)


def run_attach(cli: CliContext, flags: ParsedFlags) -> int:
    client = cli.client
    ref = flags.args[0]
    detach_keys = cli.detach_keys(flags["detach-keys"])
    waiter = Waiter(client, ref, "")
    c = _check_attachable(cli, ref)
    cid = str(c.get("Id") or ref)
    config = c.get("Config") or {}
    tty = bool(config.get("Tty"))
    if tty and not flags["no-stdin"] and not cli.stdin_is_tty():
        raise CliExit("the input device is not a TTY", 1)
    stdin = not flags["no-stdin"] and bool(config.get("OpenStdin"))
    with _signal_proxy(client, cid, flags["sig-proxy"] and not tty):
        conn = _attach(cli, cid, stdin, True, True, detach_keys)
        _check_attachable(cli, cid)
        outcome = _stream(
            cli, conn, _container_resize_path(cli, cid, tty), tty=tty, stdin=stdin,
            detach_keys=detach_keys, resize_first=True,
        )
        if outcome == "detached":
            raise CliExit("read escape sequence", 1)
        status = waiter.wait()
        if waiter.error:
            raise CliExit(waiter.error.split(": ", 1)[-1], 1)
        return status


def _check_attachable(cli: CliContext, ref: str) -> dict[str, Any]:
    c = _inspect_container(cli, ref)
    state = c.get("State") or {}
    if not state.get("Running"):
        raise CliExit("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CliExit("You cannot attach to a paused container, unpause it first", 1)
    if state.get("Restarting"):
        raise CliExit("You cannot attach to a restarting container, wait until it is running", 1)
    return c


# --------------------------------------------------------------------------
# logs


def get_timestamp(value: str, now: float | None = None) -> str:
    """docker's GetTimestamp: a duration ("10m") or a date, as unix seconds for the API."""
    from berth.cli.flags import parse_duration

    reference = time.time() if now is None else now
    if value != "0":
        try:
            return str(int(reference - parse_duration(value)))
        except ValueError:
            pass
    import datetime

    text = value
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        if "-" in value:
            raise CliExit(f'parsing time "{value}": cannot parse', 1) from None
        try:
            float(value)
        except ValueError:
            raise CliExit(f'failed to parse value as time or duration: "{value}"', 1) from None
        return value
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    ts = parsed.timestamp()
    seconds = int(ts // 1)
    nanos = int(round((ts - seconds) * 1e9))
    return f"{seconds}.{nanos:09d}"


def run_logs(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.client.engine import FrameDecoder

    c = _inspect_container(cli, flags.args[0])
    cid = str(c.get("Id") or flags.args[0])
    params: dict[str, Any] = {
        "stdout": 1,
        "stderr": 1,
        "since": get_timestamp(flags["since"]) if flags["since"] else None,
        "until": get_timestamp(flags["until"]) if flags["until"] else None,
        "timestamps": flags["timestamps"] or None,
        "follow": flags["follow"] or None,
        "tail": flags["tail"] or None,
        "details": flags["details"] or None,
    }
    resp = cli.client.request("GET", f"/containers/{cid_path(cid)}/logs", params)
    tty = bool((c.get("Config") or {}).get("Tty"))
    out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    sys.stdout.flush()
    decoder = FrameDecoder()
    from berth.cli.streams import write_all

    for chunk in resp.iter_chunks():
        if tty:
            write_all(out_fd, chunk)
            continue
        for stream, payload in decoder.feed(chunk):
            write_all(err_fd if stream == 2 else out_fd, payload)
    if decoder.pending and not tty:
        raise CliExit("unexpected EOF", 1)
    return 0


# --------------------------------------------------------------------------
# exec


def run_exec(cli: CliContext, flags: ParsedFlags) -> int:
    client = cli.client
    ref = flags.args[0]
    cmd = flags.args[1:]
    try:
        env = read_kv_files(flags["env-file"], lookup_env=True) + [
            e if "=" in e or e not in os.environ else f"{e}={os.environ[e]}" for e in flags["env"]
        ]
    except ConfigError as exc:
        raise CliExit(str(exc), 1) from None
    detach = flags["detach"]
    tty = flags["tty"]
    interactive = flags["interactive"]
    detach_keys = cli.detach_keys(flags["detach-keys"])
    body: dict[str, Any] = {"User": flags["user"], "Privileged": flags["privileged"], "Tty": tty}
    size = terminal_size(1) if tty else None
    if tty:
        body["ConsoleSize"] = [size[0], size[1]] if size else [0, 0]
    body.update(
        {
            "AttachStdin": interactive and not detach,
            "AttachStderr": not detach,
            "AttachStdout": not detach,
            "Detach": detach,
            "DetachKeys": detach_keys,
            "Env": env or None,
            "WorkingDir": flags["workdir"],
            "Cmd": cmd,
        }
    )
    _inspect_container(cli, ref)
    if not detach and tty and interactive and not cli.stdin_is_tty():
        raise CliExit("the input device is not a TTY", 1)
    created = client.post_json(f"/containers/{cid_path(ref)}/exec", None, body) or {}
    exec_id = str(created.get("Id") or "")
    if not exec_id:
        raise CliExit("exec ID empty", 1)
    start: dict[str, Any] = {"Detach": detach, "Tty": tty}
    if "ConsoleSize" in body:
        start["ConsoleSize"] = body["ConsoleSize"]
    if detach:
        client.post(f"/exec/{exec_id}/start", None, start)
        return 0
    conn = client.hijack(f"/exec/{exec_id}/start", None, start)
    resize_path = f"/exec/{exec_id}/resize" if tty and cli.stdin_is_tty() else None
    outcome = _stream(
        cli, conn, resize_path, tty=tty, stdin=body["AttachStdin"], detach_keys=detach_keys
    )
    if outcome == "detached":
        raise CliExit("read escape sequence", 1)
    try:
        info = client.get_json(f"/exec/{exec_id}/json") or {}
    except APIError as exc:
        raise CliExit(str(exc), 1) from None
    except ClientError:
        return -1 & 0xFF
    return as_int(info.get("ExitCode"))


# --------------------------------------------------------------------------
# inspect, top, port, prune, commit, export, diff


def run_inspect(cli: CliContext, flags: ParsedFlags) -> int:
    params = {"size": 1} if flags["size"] else None
    return inspect_objects(
        cli,
        flags.args,
        flags["format"],
        lambda ref: fetch(cli, f"/containers/{cid_path(ref)}/json", typed_container, params),
    )


def run_top(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.cli.formatting import tabwrite

    ref = flags.args[0]
    ps_args = " ".join(flags.args[1:]) or None
    body = cli.client.get_json(f"/containers/{cid_path(ref)}/top", {"ps_args": ps_args}) or {}
    lines = ["\t".join(body.get("Titles") or [])]
    lines.extend("\t".join(row) for row in body.get("Processes") or [])
    cli.out(tabwrite("\n".join(lines) + "\n", minwidth=20, padding=1), end="")
    return 0


def run_port(cli: CliContext, flags: ParsedFlags) -> int:
    ref = flags.args[0]
    c = _inspect_container(cli, ref)
    ports = ((c.get("NetworkSettings") or {}).get("Ports")) or {}
    out: list[str] = []
    if len(flags.args) > 1:
        want = flags.args[1]
        port, _, proto = want.partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise CliExit(f"Error: No public port '{key}' published for {ref}", 1)
        for b in bindings:
            out.append(_host_port(b))
    else:
        def sort_key(k: str) -> tuple[int, str]:
            p, _, pr = k.partition("/")
            return (as_int(p), pr)

        for key in sorted(ports, key=sort_key):
            for b in ports[key] or []:
                out.append(f"{key} -> {_host_port(b)}")
    for line in out:
        cli.out(line)
    return 0


def _host_port(binding: dict[str, Any]) -> str:
    ip = binding.get("HostIp") or ""
    port = binding.get("HostPort") or ""
    if ":" in ip:
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


def run_prune(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.cli.prune import print_reclaimed, prune_section

    if not flags["force"] and not cli.confirm("WARNING! This will remove all stopped containers."):
        return 0
    space = prune_section(cli, "/containers/prune", flags["filter"], "ContainersDeleted", "Deleted Containers")
    print_reclaimed(cli, space)
    return 0


def run_commit(cli: CliContext, flags: ParsedFlags) -> int:
    ref = flags.args[0]
    repo, tag = "", ""
    if len(flags.args) > 1:
        from berth.images.reference import split_repo_tag

        repo, tag = split_repo_tag(flags.args[1])
    params = {
        "container": ref,
        "repo": repo or None,
        "tag": tag or None,
        "comment": flags["message"] or None,
        "author": flags["author"] or None,
        "pause": flags["pause"],
        "changes": flags["change"] or None,
    }
    body = cli.client.post_json("/commit", params, {}) or {}
    cli.out(str(body.get("Id") or ""))
    return 0


def write_archive(cli: CliContext, output: str, get: Callable[[], Any], via_temp: bool = False) -> None:
    """``export``/``save``: the tar that ``get()`` answers, into ``output`` or to stdout (never a terminal).

    ``via_temp``: write ``output``.berth-tmp, then rename it over ``output``.
    """
    if not output and cli.stdout_is_tty():
        raise CliExit("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    resp = get()
    if output:
        target = output + ".berth-tmp" if via_temp else output
        with open(target, "wb") as fh:
            for chunk in resp.iter_chunks():
                fh.write(chunk)
        if via_temp:
            os.replace(target, output)
    else:
        sys.stdout.flush()
        for chunk in resp.iter_chunks():
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def run_export(cli: CliContext, flags: ParsedFlags) -> int:
    ref = flags.args[0]
    write_archive(cli, flags["output"], lambda: cli.client.request("GET", f"/containers/{cid_path(ref)}/export"))
    return 0


def run_diff(cli: CliContext, flags: ParsedFlags) -> int:
    changes = cli.client.get_json(f"/containers/{cid_path(flags.args[0])}/changes") or []
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in changes:
        cli.out(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0


# --------------------------------------------------------------------------
# command table


def make_run(name: str = "run") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] IMAGE [COMMAND] [ARG...]",
        short="Create and run a new container from an image",
        run=run_run,
        aliases_text="berth container run, berth run",
        args=("min", 1, 0),
        interspersed=False,
        category="top",
        order=1,
    )
    add_container_flags(cmd.flags, run=True)
    return cmd


def make_create(name: str = "create") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] IMAGE [COMMAND] [ARG...]",
        short="Create a new container",
        run=run_create,
        aliases_text="berth container create, berth create",
        args=("min", 1, 0),
        interspersed=False,
    )
    add_container_flags(cmd.flags, run=False)
    return cmd


def make_ps(name: str = "ps", aliases: list[str] | None = None) -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS]",
        short="List containers",
        run=run_ps,
        aliases=aliases or [],
        aliases_text="berth container ls, berth container list, berth container ps, berth ps",
        args=("none", 0, 0),
        category="top",
        order=3,
    )
    f = cmd.flags
    f.add("all", "a", "bool", "Show all containers (default shows just running)")
    f.add("filter", "f", "filter", "Filter output based on conditions provided")
    f.add("format", "", "string", FORMAT_HELP)
    f.add("last", "n", "int", "Show n last created containers (includes all states)", -1, default_text="-1")
    f.add("latest", "l", "bool", "Show the latest created container (includes all states)")
    f.add("no-trunc", "", "bool", "Don't truncate output")
    f.add("quiet", "q", "bool", "Only display container IDs")
    f.add("size", "s", "bool", "Display total file sizes")
    return cmd


def _simple(
    name: str,
    use: str,
    short: str,
    run: Callable[[CliContext, ParsedFlags], int],
    aliases_text: str,
    args: tuple[str, int, int],
    aliases: list[str] | None = None,
) -> Command:
    return Command(name, use=use, short=short, run=run, aliases_text=aliases_text, args=args, aliases=aliases or [])


def make_rm(name: str = "rm", aliases: list[str] | None = None) -> Command:
    cmd = _simple(
        name,
        f"{name} [OPTIONS] CONTAINER [CONTAINER...]",
        "Remove one or more containers",
        run_rm,
        "berth container rm, berth container remove, berth rm",
        ("min", 1, 0),
        aliases,
    )
    cmd.flags.add("force", "f", "bool", "Force the removal of a running container (uses SIGKILL)")
    cmd.flags.add("link", "l", "bool", "Remove the specified link")
    cmd.flags.add("volumes", "v", "bool", "Remove anonymous volumes associated with the container")
    return cmd


def make_logs(name: str = "logs") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER", "Fetch the logs of a container", run_logs,
        "berth container logs, berth logs", ("exact", 1, 1),
    )
    f = cmd.flags
    f.add("details", "", "bool", "Show extra details provided to logs")
    f.add("follow", "f", "bool", "Follow log output")
    f.add(
        "since", "", "string",
        'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)',
    )
    f.add("tail", "n", "string", "Number of lines to show from the end of the logs", "all")
    f.add("timestamps", "t", "bool", "Show timestamps")
    f.add(
        "until", "", "string",
        'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)',
    )
    return cmd


def make_start(name: str = "start") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", run_start,
        "berth container start, berth start", ("min", 1, 0),
    )
    f = cmd.flags
    f.add("attach", "a", "bool", "Attach STDOUT/STDERR and forward signals")
    f.add("checkpoint", "", "string", "Restore from this checkpoint", hidden=True)
    f.add("checkpoint-dir", "", "string", "Use a custom checkpoint storage directory", hidden=True)
    f.add("detach-keys", "", "string", "Override the key sequence for detaching a container")
    f.add("interactive", "i", "bool", "Attach container's STDIN")
    return cmd


def _stop_like(name: str, short: str, run: Callable[[CliContext, ParsedFlags], int], verb: str) -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER [CONTAINER...]", short, run,
        f"berth container {verb}, berth {verb}", ("min", 1, 0),
    )
    cmd.flags.add("signal", "s", "string", "Signal to send to the container")
    cmd.flags.add("timeout", "t", "int", "Seconds to wait before killing the container")
    cmd.flags.add("time", "", "int", "Seconds to wait before killing the container (deprecated: use --timeout)", hidden=True)
    return cmd


def make_stop(name: str = "stop") -> Command:
    return _stop_like(name, "Stop one or more running containers", run_stop, "stop")


def make_restart(name: str = "restart") -> Command:
    return _stop_like(name, "Restart one or more containers", run_restart, "restart")


def make_kill(name: str = "kill") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", run_kill,
        "berth container kill, berth kill", ("min", 1, 0),
    )
    cmd.flags.add("signal", "s", "string", "Signal to send to the container")
    return cmd


def make_wait(name: str = "wait") -> Command:
    return _simple(
        name, f"{name} CONTAINER [CONTAINER...]",
        "Block until one or more containers stop, then print their exit codes", run_wait,
        "berth container wait, berth wait", ("min", 1, 0),
    )


def make_rename(name: str = "rename") -> Command:
    return _simple(
        name, f"{name} CONTAINER NEW_NAME", "Rename a container", run_rename,
        "berth container rename, berth rename", ("exact", 2, 2),
    )


def make_pause(name: str = "pause") -> Command:
    return _simple(
        name, f"{name} CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", run_pause,
        "berth container pause, berth pause", ("min", 1, 0),
    )


def make_unpause(name: str = "unpause") -> Command:
    return _simple(
        name, f"{name} CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
        run_unpause, "berth container unpause, berth unpause", ("min", 1, 0),
    )


def make_attach(name: str = "attach") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER",
        "Attach local standard input, output, and error streams to a running container", run_attach,
        "berth container attach, berth attach", ("exact", 1, 1),
    )
    cmd.flags.add("detach-keys", "", "string", "Override the key sequence for detaching a container")
    cmd.flags.add("no-stdin", "", "bool", "Do not attach STDIN")
    cmd.flags.add("sig-proxy", "", "bool", "Proxy all received signals to the process", True, default_text="true")
    return cmd


def make_exec(name: str = "exec") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] CONTAINER COMMAND [ARG...]",
        short="Execute a command in a running container",
        run=run_exec,
        aliases_text="berth container exec, berth exec",
        args=("min", 2, 0),
        interspersed=False,
        category="top",
        order=2,
    )
    f = cmd.flags
    f.add("detach", "d", "bool", "Detached mode: run command in the background")
    f.add("detach-keys", "", "string", "Override the key sequence for detaching a container")
    f.add("env", "e", "list", "Set environment variables")
    f.add("env-file", "", "list", "Read in a file of environment variables")
    f.add("interactive", "i", "bool", "Keep STDIN open even if not attached")
    f.add("privileged", "", "bool", "Give extended privileges to the command")
    f.add("tty", "t", "bool", "Allocate a pseudo-TTY")
    f.add("user", "u", "string", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
    f.add("workdir", "w", "string", "Working directory inside the container")
    return cmd


def make_container_inspect() -> Command:
    cmd = Command(
        "inspect",
        use="inspect [OPTIONS] CONTAINER [CONTAINER...]",
        short="Display detailed information on one or more containers",
        run=run_inspect,
        args=("min", 1, 0),
    )
    cmd.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)
    cmd.flags.add("size", "s", "bool", "Display total file sizes")
    return cmd


def make_top(name: str = "top") -> Command:
    cmd = _simple(
        name, f"{name} CONTAINER [ps OPTIONS]", "Display the running processes of a container", run_top,
        "berth container top, berth top", ("min", 1, 0),
    )
    cmd.interspersed = False  # what follows the container is ps's: `top c -o pid,comm`
    return cmd


def make_port(name: str = "port") -> Command:
    return _simple(
        name, f"{name} CONTAINER [PRIVATE_PORT[/PROTO]]",
        "List port mappings or a specific mapping for the container", run_port,
        "berth container port, berth port", ("range", 1, 2),
    )


def make_commit(name: str = "commit") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        "Create a new image from a container's changes", run_commit,
        "berth container commit, berth commit", ("range", 1, 2),
    )
    f = cmd.flags
    f.add("author", "a", "string", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    f.add("change", "c", "list", "Apply Dockerfile instruction to the created image")
    f.add("message", "m", "string", "Commit message")
    f.add("pause", "p", "bool", "Pause container during commit", True, default_text="true")
    return cmd


def make_export(name: str = "export") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", run_export,
        "berth container export, berth export", ("exact", 1, 1),
    )
    cmd.flags.add("output", "o", "string", "Write to a file, instead of STDOUT")
    return cmd


def make_diff(name: str = "diff") -> Command:
    return _simple(
        name, f"{name} CONTAINER", "Inspect changes to files or directories on a container's filesystem",
        run_diff, "berth container diff, berth diff", ("exact", 1, 1),
    )


def container_command() -> Command:
    group = Command("container", short="Manage containers", category="management")
    prune = Command(
        "prune", use="prune [OPTIONS]", short="Remove all stopped containers", run=run_prune, args=("none", 0, 0)
    )
    prune.flags.add("filter", "", "filter", "Provide filter values (e.g. \"until=<timestamp>\")")
    prune.flags.add("force", "f", "bool", "Do not prompt for confirmation")
    from berth.cli.copy import make_cp

    group.add(
        make_attach(),
        make_commit(),
        make_cp(),
        make_create(),
        make_diff(),
        make_exec(),
        make_export(),
        make_container_inspect(),
        make_kill(),
        make_logs(),
        make_ps("ls", ["ps", "list"]),
        make_pause(),
        make_port(),
        prune,
        make_rename(),
        make_restart(),
        make_rm("rm", ["remove"]),
        make_run(),
        make_start(),
        make_stats(),
        make_stop(),
        make_top(),
        make_unpause(),
        make_update(),
        make_wait(),
    )
    for sub in group.subcommands:
        sub.category = ""
    return group


def top_level_commands() -> list[Command]:
    from berth.cli.copy import make_cp

    cmds = [
        make_attach(),
        make_commit(),
        make_cp(),
        make_create(),
        make_diff(),
        make_exec(),
        make_export(),
        make_kill(),
        make_logs(),
        make_pause(),
        make_port(),
        make_ps(),
        make_rename(),
        make_restart(),
        make_rm(),
        make_run(),
        make_start(),
        make_stats(),
        make_stop(),
        make_top(),
        make_unpause(),
        make_update(),
        make_wait(),
    ]
    return cmds


# --------------------------------------------------------------------------
# stats, update


class StatsContext:
    """One row of ``stats`` (docker's statsContext)."""

    template_type = "*container.statsContext"
    HEADER = {
        "Container": "CONTAINER",
        "Name": "NAME",
        "ID": "CONTAINER ID",
        "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %",
        "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    }

    def __init__(self, container: str, entry: dict[str, Any] | None, trunc: bool) -> None:
        self.container = container
        self.e = entry
        self.trunc = trunc

    def Container(self) -> str:
        return self.container

    def Name(self) -> str:
        name = str((self.e or {}).get("name") or "")
        return name[1:] if len(name) > 1 else "--"

    def ID(self) -> str:
        ident = str((self.e or {}).get("id") or "")
        return ident[:12] if self.trunc else ident

    def CPUPerc(self) -> str:
        return "--" if self.e is None else f"{self.e['cpu']:.2f}%"

    def MemUsage(self) -> str:
        from berth.cli.formatting import bytes_size

        if self.e is None:
            return "-- / --"
        return f"{bytes_size(self.e['mem'])} / {bytes_size(self.e['mem_limit'])}"

    def MemPerc(self) -> str:
        return "--" if self.e is None else f"{self.e['mem_perc']:.2f}%"

    def NetIO(self) -> str:
        from berth.cli.formatting import human_size

        if self.e is None:
            return "--"
        return f"{human_size(self.e['rx'], 3)} / {human_size(self.e['tx'], 3)}"

    def BlockIO(self) -> str:
        from berth.cli.formatting import human_size

        if self.e is None:
            return "--"
        return f"{human_size(self.e['blk_read'], 3)} / {human_size(self.e['blk_write'], 3)}"

    def PIDs(self) -> str:
        return "--" if self.e is None else str(self.e["pids"])

    def template_json(self) -> dict[str, Any]:
        return {k: getattr(self, k)() for k in self.HEADER}


def stats_entry(v: dict[str, Any]) -> dict[str, Any]:
    """docker's collect(): CPU %, memory without inactive file cache, net and block I/O."""
    cpu_stats = v.get("cpu_stats") or {}
    pre = v.get("precpu_stats") or {}
    cpu_delta = float((cpu_stats.get("cpu_usage") or {}).get("total_usage") or 0) - float(
        (pre.get("cpu_usage") or {}).get("total_usage") or 0
    )
    system_delta = float(cpu_stats.get("system_cpu_usage") or 0) - float(pre.get("system_cpu_usage") or 0)
    online = float(cpu_stats.get("online_cpus") or len((cpu_stats.get("cpu_usage") or {}).get("percpu_usage") or []))
    cpu = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
    mem_stats = v.get("memory_stats") or {}
    usage = float(mem_stats.get("usage") or 0)
    extra = mem_stats.get("stats") or {}
    mem = usage
    if "total_inactive_file" in extra and extra["total_inactive_file"] < usage:
        mem = usage - extra["total_inactive_file"]
    elif (extra.get("inactive_file") or 0) < usage:
        mem = usage - (extra.get("inactive_file") or 0)
    limit = float(mem_stats.get("limit") or 0)
    rx = tx = 0.0
    for net in (v.get("networks") or {}).values():
        rx += float(net.get("rx_bytes") or 0)
        tx += float(net.get("tx_bytes") or 0)
    blk_read = blk_write = 0.0
    for entry in ((v.get("blkio_stats") or {}).get("io_service_bytes_recursive")) or []:
        op = str(entry.get("op") or "")
        if op[:1] in ("r", "R"):
            blk_read += float(entry.get("value") or 0)
        elif op[:1] in ("w", "W"):
            blk_write += float(entry.get("value") or 0)
    return {
        "name": v.get("name") or "",
        "id": v.get("id") or "",
        "cpu": cpu,
        "mem": mem,
        "mem_limit": limit,
        "mem_perc": mem / limit * 100.0 if limit else 0.0,
        "rx": rx,
        "tx": tx,
        "blk_read": blk_read,
        "blk_write": blk_write,
        "pids": int((v.get("pids_stats") or {}).get("current") or 0),
    }


def run_stats(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.client.engine import iter_json_stream

    names = list(flags.args)
    if not names:
        listed = cli.client.get_json("/containers/json", {"all": flags["all"] or None}) or []
        names = [str(c.get("Id") or "")[:12] for c in listed]
    fmt = flags["format"] or "table"
    if fmt == "table":
        fmt = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
    trunc = not flags["no-trunc"]
    entries: dict[str, dict[str, Any] | None] = {name: None for name in names}
    errors: dict[str, str] = {}
    stream = not flags["no-stream"]

    def collect(name: str) -> None:
        try:
            resp = cli.client.request(
                "GET", f"/containers/{cid_path(name)}/stats", {"stream": stream, "one-shot": None}
            )
            for sample in iter_json_stream(resp.iter_chunks()):
                entries[name] = stats_entry(sample)
                if not stream:
                    return
        except ClientError as exc:
            errors[name] = str(exc)

    threads = [threading.Thread(target=collect, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    if not stream:
        for t in threads:
            t.join(10)
        for name in names:
            if name in errors and flags.args:
                raise CliExit(errors[name], 1)
        rows = [StatsContext(n, entries[n], trunc) for n in names]
        try:
            cli.out(render_rows(fmt, rows, StatsContext.HEADER), end="")
        except TemplateError as exc:
            raise CliExit(str(exc), 1) from None
        return 0
    try:
        while True:
            time.sleep(0.5)
            if flags.args and errors and len(errors) == len(names):
                raise CliExit(next(iter(errors.values())), 1)
            rows = [StatsContext(n, entries[n], trunc) for n in names if n not in errors]
            try:
                text = render_rows(fmt, rows, StatsContext.HEADER)
            except TemplateError as exc:
                raise CliExit(str(exc), 1) from None
            screen = "\033[H" + "".join(line + "\033[K\n" for line in text.rstrip("\n").split("\n")) + "\033[J"
            sys.stdout.write(screen)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130


def run_update(cli: CliContext, flags: ParsedFlags) -> int:
    if not flags.changed:
        raise CliExit("you must provide one or more flags when using this command", 1)
    from berth.cli.runconfig import ConfigError, parse_restart_policy

    body: dict[str, Any] = {
        "BlkioWeight": flags["blkio-weight"],
        "CpusetCpus": flags["cpuset-cpus"],
        "CpusetMems": flags["cpuset-mems"],
        "CpuShares": flags["cpu-shares"],
        "Memory": flags["memory"] or 0,
        "MemoryReservation": flags["memory-reservation"] or 0,
        "MemorySwap": flags["memory-swap"] or 0,
        "CpuPeriod": flags["cpu-period"],
        "CpuQuota": flags["cpu-quota"],
        "CpuRealtimePeriod": flags["cpu-rt-period"],
        "CpuRealtimeRuntime": flags["cpu-rt-runtime"],
        "NanoCpus": flags["cpus"] or 0,
    }
    if flags["pids-limit"]:
        body["PidsLimit"] = flags["pids-limit"]
    try:
        body["RestartPolicy"] = parse_restart_policy(flags["restart"])
    except ConfigError as exc:
        raise CliExit(str(exc), 1) from None
    warnings: list[str] = []
    errors: list[str] = []
    for ref in flags.args:
        try:
            resp = cli.client.post_json(f"/containers/{cid_path(ref)}/update", None, body) or {}
        except ClientError as exc:
            errors.append(str(exc))
            continue
        cli.out(ref)
        warnings.extend(resp.get("Warnings") or [])
    if warnings:
        cli.out("\n".join(warnings))
    if errors:
        raise CliExit("\n".join(errors), 1)
    return 0


def make_stats(name: str = "stats") -> Command:
    cmd = _simple(
        name, f"{name} [OPTIONS] [CONTAINER...]",
        "Display a live stream of container(s) resource usage statistics", run_stats,
        "berth container stats, berth stats", ("any", 0, 0),
    )
    cmd.flags.add("all", "a", "bool", "Show all containers (default shows just running)")
    cmd.flags.add("format", "", "string", FORMAT_HELP)
    cmd.flags.add("no-stream", "", "bool", "Disable streaming stats and only pull the first result")
    cmd.flags.add("no-trunc", "", "bool", "Do not truncate output")
    return cmd


def make_update(name: str = "update") -> Command:
    from berth.cli.flags import parse_ram_bytes

    cmd = _simple(
        name, f"{name} [OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers",
        run_update, "berth container update, berth update", ("min", 1, 0),
    )
    f = cmd.flags
    f.add("blkio-weight", "", "uint16", "Block IO (relative weight), between 10 and 1000, or 0 to disable",
          default_text="0")
    f.add("cpu-period", "", "int", "Limit CPU CFS (Completely Fair Scheduler) period")
    f.add("cpu-quota", "", "int", "Limit CPU CFS (Completely Fair Scheduler) quota")
    f.add("cpu-rt-period", "", "int", "Limit the CPU real-time period in microseconds")
    f.add("cpu-rt-runtime", "", "int", "Limit the CPU real-time runtime in microseconds")
    f.add("cpu-shares", "c", "int", "CPU shares (relative weight)")
    f.add("cpus", "", "decimal", "Number of CPUs")
    f.add("cpuset-cpus", "", "string", "CPUs in which to allow execution (0-3, 0,1)")
    f.add("cpuset-mems", "", "string", "MEMs in which to allow execution (0-3, 0,1)")
    f.add("kernel-memory", "", "bytes", "Kernel memory limit (deprecated)", hidden=True)
    f.add("memory", "m", "bytes", "Memory limit")
    f.add("memory-reservation", "", "bytes", "Memory soft limit")
    f.add("memory-swap", "", "bytes", "Swap limit equal to memory plus swap: -1 to enable unlimited swap",
          convert=lambda v: -1 if v.strip() == "-1" else parse_ram_bytes(v))
    f.add("pids-limit", "", "int", "Tune container pids limit (set -1 for unlimited)")
    f.add("restart", "", "string", "Restart policy to apply when a container exits")
    return cmd
