"""An example Docker authorization plugin (legacy, v1), for berth's tests.

It serves Docker's AuthZ protocol (Plugin.Activate answering Implements ["authz"],
AuthZPlugin.AuthZReq and AuthZPlugin.AuthZRes, HTTP/1.1 POSTs of JSON) on a UNIX
socket, with the standard library only:

    .venv/bin/python tests/helpers/authz_plugin.py --socket /run/docker/plugins/authz.sock \\
        --deny 'POST /v[0-9.]+/volumes/create' --msg 'no new volumes' --log /tmp/authz.jsonl

A request whose "METHOD PATH" (the path without its query) matches the --deny regular
expression is refused at AuthZReq with --msg; one matching --deny-response is refused at
AuthZRes. Every call is appended to the --log file as one JSON line
{"call": "AuthZPlugin.AuthZReq", "request": <what the daemon sent>}, so that a test can
see what was asked.

The socket is bound under a temporary name and renamed into place once it listens.
SIGTERM (or SIGINT) stops the server and removes the socket.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler
from types import FrameType

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"


class Policy:
    def __init__(self, deny: str | None, deny_response: str | None, msg: str, log_path: str | None) -> None:
        self.deny = re.compile(deny) if deny else None
        self.deny_response = re.compile(deny_response) if deny_response else None
        self.msg = msg
        self.log_path = log_path
        self._lock = threading.Lock()

    def record(self, call: str, request: dict[str, object]) -> None:
        if self.log_path is None:
            return
        with self._lock, open(self.log_path, "a") as f:
            f.write(json.dumps({"call": call, "request": request}) + "\n")

    def answer(self, call: str, request: dict[str, object]) -> dict[str, object]:
        self.record(call, request)
        target = f"{request.get('RequestMethod')} {str(request.get('RequestUri', '')).partition('?')[0]}"
        rule = self.deny if call == "AuthZPlugin.AuthZReq" else self.deny_response
        if rule is not None and rule.search(target):
            return {"Allow": False, "Msg": self.msg}
        return {"Allow": True}


def make_handler(policy: Policy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            call = self.path.lstrip("/")
            if call == "Plugin.Activate":
                self._send(200, {"Implements": ["authz"]})
            elif call in ("AuthZPlugin.AuthZReq", "AuthZPlugin.AuthZRes"):
                try:
                    request = json.loads(raw) if raw.strip() else {}
                except ValueError as e:
                    self._send(500, {"Err": f"{call}: {e}"})
                    return
                self._send(200, policy.answer(call, request))
            else:
                self._send(404, {"Err": f"{call}: not served"})

        def _send(self, status: int, doc: dict[str, object]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(socket_path: str, policy: Policy) -> None:
    """Serve until SIGTERM or SIGINT, then remove the socket."""
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    staging = f"{socket_path}.{os.getpid()}.tmp"
    server = UnixServer(staging, make_handler(policy))

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        os.rename(staging, socket_path)
        print(f"authorization plugin listening on {socket_path}", flush=True)
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        for path in (staging, socket_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An example Docker authorization plugin.")
    parser.add_argument("--socket", required=True, help="UNIX socket to listen on")
    parser.add_argument("--deny", help="refuse requests whose 'METHOD PATH' matches this regular expression")
    parser.add_argument("--deny-response", help="refuse, at AuthZRes, responses to requests that match")
    parser.add_argument("--msg", default="denied", help="the message of a refusal")
    parser.add_argument("--log", help="append every call to this file, one JSON line each")
    args = parser.parse_args(argv)
    serve(args.socket, Policy(args.deny, args.deny_response, args.msg, args.log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
