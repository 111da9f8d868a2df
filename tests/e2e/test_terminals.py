"""Terminals and attach, as under Docker: the pty's line discipline, the window size,
the detach keys (ctrl-p ctrl-q, `--detach-keys`, the CLI config's `detachKeys`) through
the docker CLI, docker-py and `berth`, attach's `logs=1&stream=0`, and the websocket
attach endpoint `/containers/{id}/attach/ws` through a real websocket client."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from helpers.cli import Cli, describe

from .test_interactive import Tmux

pytestmark = pytest.mark.usefixtures("busybox")

# What `stty -a` shows on a fresh Linux pty, which neither runc nor containerd's shim
# changes (runc clears onlcr only on a terminal of its own foreground mode): cooked,
# echoing, CR-LF on output.
DOCKER_TTY_FLAGS = {"icrnl", "ixon", "-inlcr", "-igncr", "opost", "onlcr", "-ocrnl", "isig", "icanon",
                    "iexten", "echo", "echoe", "echok", "-echonl", "echoctl", "echoke", "cs8", "cread"}


def _stty_flags(text: str) -> set[str]:
    return {word.strip(";") for word in text.split()}


@pytest.fixture
def tmux(docker_env: dict[str, str]) -> Iterator[Tmux]:
    t = Tmux(docker_env)
    yield t
    t.kill()


def _wait_gone(tmux: Tmux, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "the client did not end:\n" + tmux.screen()


def _state(docker: Cli, name: str) -> str:
    return docker.ok("inspect", "-f", "{{.State.Status}}", name).strip()


def _events(docker_client: Any, container: str, since: int) -> list[dict[str, Any]]:
    return list(docker_client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                         filters={"container": container}))


def _recv_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the daemon sends until it closes the stream; fails if it never does."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _recv_until(sock: socket.socket, marker: bytes, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before {marker!r}: {data!r}"
        data += chunk
    return data


# -- the terminal ------------------------------------------------------------------------


def test_tty_is_in_dockers_cooked_mode(docker: Cli, new_name: Callable[[str], str]) -> None:
    out = docker.ok("run", "--rm", "-t", "busybox", "stty", "-a")
    assert DOCKER_TTY_FLAGS <= _stty_flags(out), out
    assert "intr = ^C; quit = ^\\; erase = ^?; kill = ^U; eof = ^D;" in out, out
    name = new_name("tty")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    out = docker.ok("exec", "-t", name, "sh", "-c", "echo hi; stty -a")
    assert out.startswith("hi\r\n"), out
    assert DOCKER_TTY_FLAGS <= _stty_flags(out), out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["run", "exec"])
def test_tty_follows_the_clients_window_size(how: str, tmux: Tmux, docker: Cli,
                                             new_name: Callable[[str], str]) -> None:
    name = new_name("winsz")
    host = shlex.quote(tmux.env["DOCKER_HOST"])
    if how == "exec":
        docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
        tmux.start(f"env DOCKER_HOST={host} docker exec -it {name} sh")
    else:
        tmux.start(f"env DOCKER_HOST={host} docker run -it --name {name} busybox sh")
    tmux.wait_for_line("/ #")
    tmux.send("stty size", "Enter")
    tmux.wait_for_line("40 120")
    tmux.run("resize-window", "-t", tmux.session, "-x", "90", "-y", "30")
    # the CLI resizes on SIGWINCH, a moment after: ask until the new size shows
    deadline = time.monotonic() + 20
    while True:
        tmux.send("clear; stty size", "Enter")
        try:
            tmux.wait_for_line("30 90", timeout=1)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    tmux.send("exit", "Enter")
    _wait_gone(tmux)


# -- detach keys through the docker CLI ---------------------------------------------------


@pytest.mark.timeout(120)
def test_docker_run_it_detaches_with_ctrl_p_ctrl_q_and_attach_with_detach_keys(
        tmux: Tmux, docker: Cli, new_name: Callable[[str], str], berth_root: Path) -> None:
    name = new_name("det")
    status = berth_root / f"det-{uuid.uuid4().hex[:8]}"
    host = shlex.quote(tmux.env["DOCKER_HOST"])
    tmux.start(f"env DOCKER_HOST={host} docker run -it --name {name} busybox sh; echo $? > {status}; sleep 30")
    tmux.wait_for_line("/ #")
    tmux.send("echo $((6*7))", "Enter")
    tmux.wait_for_line("42")
    tmux.send("C-p", "C-q")
    deadline = time.monotonic() + 15
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.exists(), "docker run -it did not detach:\n" + tmux.screen()
    assert status.read_text().strip() == "0"  # run: a detach is a success, silently
    assert _state(docker, name) == "running"
    tmux.kill()

    # attach again, with keys of our own: they detach, ctrl-p ctrl-q do not
    attach = Tmux(tmux.env)
    try:
        attach.start(f"env DOCKER_HOST={host} docker attach --detach-keys ctrl-x,x {name}"
                     f" 2> {status}.err; echo $? > {status}.2; sleep 30")
        time.sleep(1)
        attach.send("echo $((7*8))", "Enter")
        attach.wait_for_line("56")
        attach.send("C-p", "C-q")  # to the shell now (its line editor's ^P), then a new line
        attach.send("C-c")
        attach.send("echo $((8*9))", "Enter")
        attach.wait_for_line("72")
        attach.send("C-x", "x")
        deadline = time.monotonic() + 15
        done = Path(f"{status}.2")
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.exists(), "docker attach did not detach:\n" + attach.screen()
        assert done.read_text().strip() == "1"
        assert Path(f"{status}.err").read_text().strip() == "read escape sequence"
        assert _state(docker, name) == "running"
    finally:
        attach.kill()


@pytest.mark.timeout(90)
def test_docker_exec_it_detaches_and_the_exec_goes_on(tmux: Tmux, docker: Cli, new_name: Callable[[str], str],
                                                     berth_root: Path) -> None:
    name = new_name("exdet")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    status = berth_root / f"exdet-{uuid.uuid4().hex[:8]}"
    host = shlex.quote(tmux.env["DOCKER_HOST"])
    tmux.start(f"env DOCKER_HOST={host} docker exec -it {name} sh -c 'echo ready; cat > /tmp/typed'"
               f" 2> {status}.err; echo $? > {status}; sleep 30")
    tmux.wait_for_line("ready")
    tmux.send("typed-before", "Enter")
    tmux.send("C-p", "C-q")
    deadline = time.monotonic() + 15
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.exists(), tmux.screen()
    assert status.read_text().strip() == "1"
    assert Path(f"{status}.err").read_text().strip() == "read escape sequence"
    assert docker.ok("exec", name, "cat", "/tmp/typed") == "typed-before\n"
    assert "cat" in docker.ok("top", name)  # the exec's process goes on


@pytest.mark.timeout(90)
@pytest.mark.parametrize("client", ["docker", "berth"])
def test_detach_keys_from_the_cli_config(client: str, tmux: Tmux, docker: Cli, new_name: Callable[[str], str],
                                         berth_root: Path) -> None:
    """config.json's detachKeys replace ctrl-p ctrl-q for `run -it`, in the docker CLI and in berth."""
    from helpers.daemon import BERTH

    program = "docker" if client == "docker" else BERTH
    config = berth_root / f"cfg-{uuid.uuid4().hex[:8]}"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"detachKeys": "ctrl-x,y"}))
    name = new_name("cfgdet")
    status = berth_root / f"cfgdet-{uuid.uuid4().hex[:8]}"
    host = shlex.quote(tmux.env["DOCKER_HOST"])
    tmux.start(f"env DOCKER_HOST={host} DOCKER_CONFIG={config} {program} run -it --name {name} busybox sh;"
               f" echo $? > {status}; sleep 30")
    tmux.wait_for_line("/ #")
    tmux.send("C-p", "C-q")
    tmux.send("echo not-detached", "Enter")
    tmux.wait_for_line("not-detached")
    tmux.send("C-x", "y")
    deadline = time.monotonic() + 15
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.exists(), tmux.screen()
    assert status.read_text().strip() == "0"
    assert _state(docker, name) == "running"


# -- detach keys in the daemon (clients that do not look for them: docker-py) -------------


def test_daemon_detaches_an_attach_at_the_detach_keys(docker: Cli, docker_client: Any,
                                                      new_name: Callable[[str], str]) -> None:
    name = new_name("pydet")
    docker.ok("run", "-dit", "--name", name, "busybox", "sh")
    since = int(time.time())
    for keys, detach in (({}, b"\x10\x11"), ({"detachKeys": "ctrl-x,x"}, b"\x18x")):
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, **keys}
        sock = docker_client.api.attach_socket(name, params=params)._sock
        try:
            sock.sendall(b"echo $((6*7))\n")
            _recv_until(sock, b"42")
            if keys:  # other keys: ctrl-p ctrl-q are the shell's input, the attach goes on
                sock.sendall(b"\x10\x11\x03echo $((7*8))\n")
                _recv_until(sock, b"56")
            sock.sendall(detach)
            _recv_until_closed(sock)  # the daemon ends the attach
        finally:
            sock.close()
        assert _state(docker, name) == "running"
    actions = [e["Action"] for e in _events(docker_client, name, since)]
    assert actions.count("detach") == 2, actions


def test_daemon_detaches_an_exec_at_its_detach_keys(docker: Cli, docker_client: Any,
                                                    new_name: Callable[[str], str]) -> None:
    name = new_name("pyexdet")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "300")
    since = int(time.time())
    # docker-py names the field "detachKeys"; dockerd's JSON decoding ignores case
    e = docker_client.api.exec_create(name, "sh", stdin=True, tty=True, detach_keys="ctrl-x")
    assert docker_client.api.exec_inspect(e["Id"])["DetachKeys"] == "GA=="  # dockerd's bytes, in base64
    sock = docker_client.api.exec_start(e["Id"], socket=True, tty=True)._sock
    try:
        sock.sendall(b"echo $((6*7))\n")
        _recv_until(sock, b"42")
        sock.sendall(b"\x18")
        _recv_until_closed(sock)
    finally:
        sock.close()
    assert docker_client.api.exec_inspect(e["Id"])["Running"] is True
    events = _events(docker_client, name, since)
    assert any(ev["Action"] == "exec_detach" and ev["Actor"]["Attributes"].get("execID") == e["Id"]
               for ev in events), events


def test_without_a_terminal_the_detach_keys_are_input(docker: Cli, docker_client: Any,
                                                      new_name: Callable[[str], str]) -> None:
    name = new_name("notty")
    docker.ok("run", "-di", "--name", name, "busybox", "sh", "-c", "head -c 4 | od -An -tx1")
    sock = docker_client.api.attach_socket(name, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    try:
        sock.sendall(b"a\x10\x11b")
        out = _recv_until_closed(sock)
    finally:
        sock.close()
    assert b"61 10 11 62" in out, out


def test_an_attach_with_a_terminal_ends_with_its_input(docker: Cli, docker_client: Any,
                                                      new_name: Callable[[str], str]) -> None:
    # dockerd ends a terminal's attach when its client's input ends (the docker CLI that
    # detached by itself closes its connection): the attach is not left waiting for output
    name = new_name("ttyeof")
    docker.ok("run", "-dit", "--name", name, "busybox", "sh")
    sock = docker_client.api.attach_socket(name, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    try:
        sock.sendall(b"echo $((6*7))\n")
        _recv_until(sock, b"42")
        sock.shutdown(socket.SHUT_WR)
        _recv_until_closed(sock)
    finally:
        sock.close()
    assert _state(docker, name) == "running"
    # without a terminal, and with StdinOnce (run -i, attached), the end of input is the
    # container's: its output still comes
    name = new_name("eofonce")
    # docker-py sets StdinOnce with stdin_open
    cid = docker_client.api.create_container("busybox", ["sh", "-c", "cat; echo after-eof"], stdin_open=True,
                                             name=name)["Id"]
    sock = docker_client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    try:
        docker_client.api.start(cid)
        sock.sendall(b"typed\n")
        sock.shutdown(socket.SHUT_WR)
        out = _recv_until_closed(sock)
    finally:
        sock.close()
    assert b"typed\n" in out and b"after-eof\n" in out, out


# -- detach keys that do not parse --------------------------------------------------------


def test_detach_keys_that_do_not_parse_are_refused(docker: Cli, docker_client: Any, berth: Cli,
                                                   new_name: Callable[[str], str]) -> None:
    import docker as docker_py

    name = new_name("badkeys")
    docker.ok("run", "-dit", "--name", name, "busybox", "sh")
    with pytest.raises(docker_py.errors.APIError) as err:
        docker_client.api.attach_socket(name, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-p,bogus"})
    assert (err.value.status_code, err.value.explanation) == (400, "Invalid detach keys (ctrl-p,bogus) provided")
    res = docker("attach", "--no-stdin", "--detach-keys", "bogus", name, timeout=20)
    assert res.returncode == 1 and "received 400" in res.stderr, describe(res)
    # exec: dockerd's own error, a 500, and no exec made
    res = docker("exec", "-t", "--detach-keys", "ctrl-", name, "true")
    assert res.returncode == 1, describe(res)
    assert res.stderr.strip() == "Error response from daemon: Invalid escape keys (ctrl-) provided"
    assert json.loads(docker.ok("inspect", "-f", "{{json .ExecIDs}}", name)) is None
    assert _state(docker, name) == "running"
    # berth checks them before it makes anything, as the docker CLI does since 28.3
    before = docker.ok("ps", "-aq").split()
    res = berth("run", "--rm", "-i", "--detach-keys", "bogus", "busybox", "true")
    assert res.returncode == 1, describe(res)
    assert res.stderr.strip() == "invalid detach keys (bogus): Unknown character: 'bogus'"
    assert docker.ok("ps", "-aq").split() == before
    res = berth("exec", "-i", "--detach-keys", "ctrl-", name, "true")
    assert res.returncode == 1 and "invalid detach keys (ctrl-)" in res.stderr, describe(res)


def test_attach_to_a_paused_container_is_refused(docker: Cli, docker_client: Any,
                                                new_name: Callable[[str], str]) -> None:
    import docker as docker_py

    name = new_name("paused")
    docker.ok("run", "-dit", "--name", name, "busybox", "sh")
    docker.ok("pause", name)
    try:
        for attach in (lambda: docker_client.api.attach_socket(name, params={"stdout": 1, "stream": 1}),
                       lambda: docker_client.api.attach(name, logs=True, stream=False)):
            with pytest.raises(docker_py.errors.APIError) as err:
                attach()
            assert (err.value.status_code, err.value.explanation) == (
                409, f"container {name} is paused, unpause the container before attach")
    finally:
        docker.ok("unpause", name)


# -- attach's logs --------------------------------------------------------------------------


def test_attach_with_logs_and_no_stream_returns_what_was_printed(docker: Cli, docker_client: Any,
                                                                 new_name: Callable[[str], str]) -> None:
    name = new_name("alogs")
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    for _ in range(5):  # the head and the logs must not arrive as one read for docker-py
        assert docker_client.api.attach(name, logs=True, stream=False) == b"out\nerr\n"
    out, err = docker_client.api.attach(name, logs=True, stream=False, demux=True)
    assert (out, err) == (b"out\n", b"err\n")


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_attach_logs_replay_the_rotated_files_as_docker_logs_does(docker: Cli, docker_client: Any, socket_path: str,
                                                                  new_name: Callable[[str], str],
                                                                  driver: str) -> None:
    # dockerd replays attach's logs through the log driver's reader: the rotated (and,
    # for `local`, compressed) files too, not only the one being written
    name = new_name("arot")
    docker.ok("run", "--name", name, "--log-driver", driver, "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
              "busybox", "sh", "-c", "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line $i; done")
    logged = docker.ok("logs", name).encode()
    assert logged.endswith(b"line 100\n") and logged.count(b"\n") > 20, logged
    assert docker_client.api.attach(name, logs=True, stream=False) == logged
    got = _ws(socket_path, f"/containers/{name}/attach/ws?logs=1&stream=0&stdout=1&stderr=1", _messages)
    assert b"".join(data for _, data in got) == logged
    assert len(got) == logged.count(b"\n")  # a message a line, as dockerd writes them


# -- the websocket attach --------------------------------------------------------------------


def _ws(socket_path: str, path: str, talk: Callable[[aiohttp.ClientWebSocketResponse], Any]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session:
            async with session.ws_connect(f"http://localhost{path}", timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
                return await asyncio.wait_for(talk(ws), 20)

    return asyncio.run(main())


async def _messages(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[aiohttp.WSMsgType, Any]]:
    return [(msg.type, msg.data) async for msg in ws]


def test_websocket_attach_logs(docker: Cli, socket_path: str, new_name: Callable[[str], str]) -> None:
    name = new_name("wslogs")
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    got = _ws(socket_path, f"/v1.51/containers/{name}/attach/ws?logs=1&stream=0&stdout=1&stderr=1", _messages)
    assert got == [(aiohttp.WSMsgType.BINARY, b"out\n"), (aiohttp.WSMsgType.BINARY, b"err\n")]
    got = _ws(socket_path, f"/v1.51/containers/{name}/attach/ws?logs=1&stream=0&stdout=1", _messages)
    assert got == [(aiohttp.WSMsgType.BINARY, b"out\n")]
    # before 1.42 every stream whatever was asked; before 1.28 in text messages
    got = _ws(socket_path, f"/v1.41/containers/{name}/attach/ws?logs=1&stream=0&stdout=1", _messages)
    assert got == [(aiohttp.WSMsgType.BINARY, b"out\n"), (aiohttp.WSMsgType.BINARY, b"err\n")]
    got = _ws(socket_path, f"/v1.27/containers/{name}/attach/ws?logs=1&stream=0", _messages)
    assert got == [(aiohttp.WSMsgType.TEXT, "out\n"), (aiohttp.WSMsgType.TEXT, "err\n")]


def test_websocket_attach_streams_stdin_and_output(docker: Cli, socket_path: str,
                                                    new_name: Callable[[str], str]) -> None:
    name = new_name("wsio")
    docker.ok("run", "-di", "--name", name, "busybox", "sh", "-c", "read x; echo got $x; echo e >&2")

    async def talk(ws: aiohttp.ClientWebSocketResponse) -> bytes:
        await ws.send_bytes(b"abc\n")
        return b"".join(data for _, data in await _messages(ws))

    out = _ws(socket_path, f"/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1", talk)
    assert sorted(out.splitlines()) == [b"e", b"got abc"], out  # unframed


def test_websocket_attach_detaches_and_refuses_bad_keys(docker: Cli, docker_client: Any, socket_path: str,
                                                         new_name: Callable[[str], str]) -> None:
    name = new_name("wsdet")
    docker.ok("run", "-dit", "--name", name, "busybox", "sh")
    since = int(time.time())

    async def talk(ws: aiohttp.ClientWebSocketResponse) -> bytes:
        await ws.send_str("echo $((6*7))\n")
        seen = b""
        while b"42" not in seen:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            seen += msg.data
        await ws.send_bytes(b"\x10\x11")
        return b"".join(data for _, data in await _messages(ws))  # until the daemon closes

    _ws(socket_path, f"/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1", talk)
    assert _state(docker, name) == "running"
    assert "detach" in [e["Action"] for e in _events(docker_client, name, since)]

    async def bad() -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session:
            async with session.get(f"http://localhost/containers/{name}/attach/ws?stream=1&detachKeys=ctrl-p,zz",
                                   headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                            "Sec-WebSocket-Version": "13",
                                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as resp:
                return resp.status, await resp.json()

    assert asyncio.run(bad()) == (400, {"message": "Invalid detach keys (ctrl-p,zz) provided"})
