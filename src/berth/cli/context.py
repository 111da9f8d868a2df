"""What every berth command gets: the API client, the output streams, errors.

``CliExit`` carries the message and exit code a command ends with; ``main``
prints the message (if any) to stderr and exits with the code, as the docker
CLI does with its ``StatusError``.
"""

from __future__ import annotations

import sys
from typing import Any

from berth.cli.streams import is_terminal
from berth.client.engine import Client, TLSOptions, choose_host
from berth.stdstream import DetachKeysError, parse_detach_keys


class CliExit(Exception):
    """End the command: print ``message`` (if not empty) to stderr, exit ``status``."""

    def __init__(self, message: str = "", status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CliContext:
    def __init__(self, hosts: list[str] | None = None, debug: bool = False, config: str = "",
                 tls: TLSOptions | None = None) -> None:
        self._hosts = hosts
        self.tls = tls  # --tls/--tlsverify and their files, for a tcp:// daemon
        self.config = config  # --config: the client's config directory ("" = $DOCKER_CONFIG or ~/.docker)
        self._client: Client | None = None
        self.debug = debug

    @property
    def host(self) -> str:
        return choose_host(self._hosts)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.host, self.tls)
        return self._client

    def detach_keys(self, flag: str) -> str:
        """The detach keys a command uses: its --detach-keys, else the config file's
        "detachKeys" (what the docker CLI sends too); refused before anything is made
        when they do not parse."""
        keys = flag or self._config_string("detachKeys")
        if keys:
            try:
                parse_detach_keys(keys)
            except DetachKeysError as e:
                raise CliExit(f"invalid detach keys ({keys}): {e}", 1) from None
        return keys

    def _config_string(self, key: str) -> str:
        """A string of the client's config.json; "" when it or the file is missing or
        unreadable (the docker CLI warns about such a file and goes on without it)."""
        import json

        from berth.client.credentials import config_path

        try:
            with open(config_path(self.config), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return ""
        value = doc.get(key) if isinstance(doc, dict) else None
        return value if isinstance(value, str) else ""

    # -- output
    @staticmethod
    def out(text: str = "", end: str = "\n") -> None:
        sys.stdout.write(text + end)

    @staticmethod
    def err(text: str = "", end: str = "\n") -> None:
        sys.stdout.flush()
        sys.stderr.write(text + end)
        sys.stderr.flush()

    @staticmethod
    def write_bytes(data: bytes) -> None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    @staticmethod
    def stdin_is_tty() -> bool:
        return is_terminal(0)

    @staticmethod
    def stdout_is_tty() -> bool:
        return is_terminal(1)

    def confirm(self, warning: str) -> bool:
        """docker's PromptForConfirmation: ``warning``, then ``[y/N]``; True on "y" or "yes"."""
        self.out(f"{warning}\nAre you sure you want to continue? [y/N] ", end="")
        sys.stdout.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")


def as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
