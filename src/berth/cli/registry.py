"""`berth login` and `berth logout`, in docker's grammar: the daemon checks the
credentials against the registry (`POST /auth`), the client keeps them in its
config.json (berth.client.credentials), as the docker CLI does."""

from __future__ import annotations

import getpass
import sys

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.client import credentials
from berth.client.engine import APIError


def run_login(cli: CliContext, flags: ParsedFlags) -> int:
    server = flags.args[0] if flags.args else ""
    key = credentials.server_key(server)
    username: str = flags["username"] or ""
    password: str = flags["password"] or ""
    if password and flags["password-stdin"]:
        raise CliExit("--password and --password-stdin are mutually exclusive", 1)
    if flags["password-stdin"]:
        if not username:
            raise CliExit("Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        cli.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if not username or not password:
        stored = credentials.auth_config(key, cli.config)
        if not username and not password and stored.get("username") and (stored.get("password")
                                                                         or stored.get("identitytoken")):
            username = stored["username"]
            password = stored.get("password", "")
        elif not sys.stdin.isatty():
            raise CliExit("Error: Cannot perform an interactive login from a non TTY device", 1)
        else:
            if not username:
                hint = f" ({stored['username']})" if stored.get("username") else ""
                username = input(f"Username{hint}: ").strip() or stored.get("username", "")
            if not password:
                password = getpass.getpass("Password: ")
        if not username:
            raise CliExit("Error: Non-null Username Required", 1)
        if not password:
            raise CliExit("Error: Password Required", 1)
    body = {"username": username, "password": password, "serveraddress": key}
    try:
        answer = cli.client.post_json("/auth", None, body) or {}
    except APIError as exc:
        raise CliExit(str(exc), 1) from None
    token = str(answer.get("IdentityToken") or "")
    try:
        path = credentials.store(key, username, password, token, cli.config)
    except (OSError, ValueError) as exc:
        raise CliExit(f"Error saving credentials: {exc}", 1) from None
    if not token:
        cli.err(f"WARNING! Your credentials are stored unencrypted in '{path}'.\n"
                "Configure a credential helper to remove this warning. See\n"
                "https://docs.docker.com/go/credential-store/\n")
    cli.out(str(answer.get("Status") or "Login Succeeded"))
    return 0


def run_logout(cli: CliContext, flags: ParsedFlags) -> int:
    server = flags.args[0] if flags.args else ""
    key = credentials.server_key(server)
    try:
        removed = credentials.erase(key, cli.config)
    except (OSError, ValueError) as exc:
        raise CliExit(f"WARNING: could not erase credentials: {exc}", 1) from None
    if not removed:
        cli.out(f"Not logged in to {key}")
        return 0
    cli.out(f"Removing login credentials for {key}")
    return 0


def make_login() -> Command:
    cmd = Command(
        "login",
        use="login [OPTIONS] [SERVER]",
        short="Authenticate to a registry",
        run=run_login,
        args=("max", 0, 1),
        category="top",
        order=8,
    )
    cmd.flags.add("password", "p", "string", "Password or Personal Access Token (PAT)")
    cmd.flags.add("password-stdin", "", "bool", "Take the Password or Personal Access Token (PAT) from stdin")
    cmd.flags.add("username", "u", "string", "Username")
    return cmd


def make_logout() -> Command:
    return Command(
        "logout",
        use="logout [SERVER]",
        short="Log out from a registry",
        run=run_logout,
        args=("max", 0, 1),
        category="top",
        order=9,
    )


def top_level_commands() -> list[Command]:
    return [make_login(), make_logout()]
