"""``berth plugin …``: managed plugins, with docker's grammar and output (create, ls,
inspect, enable, disable, set, rm, install, push).

Not to be confused with cli/plugin.py, berth compose as the docker CLI's plugin.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

from berth.cli.container import FORMAT_HELP, INSPECT_FORMAT_HELP, for_each_ref
from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.cli.formatting import render_rows, truncate_id
from berth.cli.inspect import fetch, inspect_objects
from berth.cli.network import natural_key
from berth.cli.progress import StreamError, display_stream
from berth.cli.streams import is_terminal, terminal_width
from berth.client import credentials
from berth.client.engine import ClientError, filters_json, iter_json_stream
from berth.images.reference import Reference, ReferenceError, parse_normalized
from berth.template.gotemplate import TemplateError


def _path(name: str) -> str:
    """A plugin name in a URL path: docker sends it unescaped ("localhost:5000/x:latest")."""
    return quote(name, safe=":@/")


def _ellipsis(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


class PluginContext:
    template_type = "*formatter.pluginContext"
    HEADER = {"ID": "ID", "Name": "NAME", "Description": "DESCRIPTION", "Enabled": "ENABLED",
              "PluginReference": "PLUGIN REFERENCE"}
    _JSON = ("Description", "Enabled", "ID", "Name", "PluginReference")

    def __init__(self, plugin: dict[str, Any], trunc: bool) -> None:
        self.p = plugin
        self.trunc = trunc

    def ID(self) -> str:
        ident = str(self.p.get("Id") or "")
        return truncate_id(ident) if self.trunc else ident

    def Name(self) -> str:
        return str(self.p.get("Name") or "")

    def Description(self) -> str:
        desc = str((self.p.get("Config") or {}).get("Description") or "").replace("\n", "").replace("\r", "")
        return _ellipsis(desc, 45) if self.trunc else desc

    def Enabled(self) -> bool:
        return bool(self.p.get("Enabled"))

    def PluginReference(self) -> str:
        return str(self.p.get("PluginReference") or "")


# -- create ---------------------------------------------------------------------------------


def _go_json_error(text: str, err: json.JSONDecodeError) -> str:
    """Go's encoding/json words for what Python's decoder refused."""
    if err.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    ch = text[err.pos]
    if err.msg.startswith("Expecting property name"):
        return f"invalid character '{ch}' looking for beginning of object key string"
    if err.msg.startswith("Expecting value"):
        return f"invalid character '{ch}' looking for beginning of value"
    if err.msg.startswith("Extra data"):
        return f"invalid character '{ch}' after top-level value"
    return f"invalid character '{ch}' after object key:value pair"


def _check_context(directory: str) -> str:
    """docker plugin create's checks: a directory holding a config.json that decodes."""
    path = os.path.abspath(directory)
    try:
        st = os.lstat(path)
    except OSError as e:
        raise CliExit(f"lstat {path}: {(e.strerror or '').lower()}", 1) from None
    if not os.path.isdir(path) or os.path.islink(path) and not os.path.isdir(os.path.realpath(path)):
        raise CliExit("context must be a directory", 1)
    del st
    config = os.path.join(directory, "config.json")
    try:
        with open(config) as f:
            text = f.read()
    except OSError as e:
        raise CliExit(f"open {config}: {(e.strerror or '').lower()}", 1) from None
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise CliExit(_go_json_error(text, e), 1) from None
    return path


def _tar_context(path: str, out: IO[bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for entry in sorted(os.listdir(path)):
            tar.add(os.path.join(path, entry), arcname=entry)


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(1 << 16):
        yield chunk


def run_create(cli: CliContext, flags: ParsedFlags) -> int:
    name, directory = flags.args
    path = _check_context(directory)
    with tempfile.TemporaryFile() as spool:
        _tar_context(path, spool)
        spool.seek(0)
        cli.client.request("POST", "/plugins/create", {"name": name},
                           headers={"Content-Type": "application/x-tar"}, raw_body=_chunks(spool)).read()
    cli.out(name)
    return 0


# -- ls, inspect ----------------------------------------------------------------------------


def run_ls(cli: CliContext, flags: ParsedFlags) -> int:
    plugins = list(cli.client.get_json("/plugins", {"filters": filters_json(flags["filter"])}) or [])
    plugins.sort(key=lambda p: natural_key(str(p.get("Name") or "")))
    fmt = flags["format"] or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if flags["quiet"] else "table {{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}"
    elif fmt == "raw":
        fmt = "plugin_id: {{.ID}}" if flags["quiet"] else (
            "plugin_id: {{.ID}}\nname: {{.Name}}\ndescription: {{.Description}}\nenabled: {{.Enabled}}\n")
    rows = [PluginContext(p, not flags["no-trunc"]) for p in plugins]
    try:
        cli.out(render_rows(fmt, rows, PluginContext.HEADER), end="")
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None
    return 0


def run_inspect(cli: CliContext, flags: ParsedFlags) -> int:
    return inspect_objects(cli, flags.args, flags["format"],
                           lambda ref: fetch(cli, f"/plugins/{_path(ref)}/json"))


# -- enable, disable, set, rm ---------------------------------------------------------------


def run_enable(cli: CliContext, flags: ParsedFlags) -> int:
    name = flags.args[0]
    timeout = flags["timeout"]
    if timeout < 0:
        raise CliExit(f"negative timeout {timeout} is invalid", 1)
    cli.client.request("POST", f"/plugins/{_path(name)}/enable", {"timeout": timeout}).read()
    cli.out(name)
    return 0


def run_disable(cli: CliContext, flags: ParsedFlags) -> int:
    name = flags.args[0]
    cli.client.request("POST", f"/plugins/{_path(name)}/disable", {"force": flags["force"] or None}).read()
    cli.out(name)
    return 0


def run_set(cli: CliContext, flags: ParsedFlags) -> int:
    name, *settings = flags.args
    cli.client.request("POST", f"/plugins/{_path(name)}/set", None, body=settings).read()
    return 0


def run_rm(cli: CliContext, flags: ParsedFlags) -> int:
    params = {"force": flags["force"] or None}
    return for_each_ref(cli, flags.args, lambda name: cli.client.delete(f"/plugins/{_path(name)}", params))


# -- install, push -------------------------------------------------------------------------


def _show_progress(resp: Any) -> None:
    try:
        display_stream(iter_json_stream(resp.iter_chunks()), sys.stdout, is_terminal(1), terminal_width())
    except StreamError as exc:
        raise CliExit(exc.message, 1) from None


def _go_slice(values: list[Any]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _granted(cli: CliContext, ref: Reference, shown: str, grant_all: bool, headers: dict[str, str],
             what: str) -> list[Any]:
    """The plugin's privileges, asked of the daemon and granted by flag or by the user."""
    privileges = cli.client.request("GET", "/plugins/privileges", {"remote": str(ref)}, headers=headers).json() or []
    if privileges and not grant_all:
        lines = [f'Plugin "{shown}" is requesting the following privileges:']
        lines += [f" - {p.get('Name')}: {_go_slice(list(p.get('Value') or []))}" for p in privileges]
        cli.out("\n".join(lines))
        cli.out("Do you grant the above permissions? [y/N] ", end="")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CliExit(f"permission denied while {what} {shown}", 1)
    return list(privileges)


def _parse_remote(text: str) -> Reference:
    try:
        ref = parse_normalized(text)
    except ReferenceError as exc:
        raise CliExit(str(exc), 1) from None
    return ref if ref.digest else ref.with_default_tag()


def run_install(cli: CliContext, flags: ParsedFlags) -> int:
    remote, *settings = flags.args
    ref = _parse_remote(remote)
    local = ref.familiar_string()
    if flags["alias"]:
        try:
            alias = parse_normalized(flags["alias"])
        except ReferenceError as exc:
            raise CliExit(str(exc), 1) from None
        if alias.digest:
            raise CliExit(f"invalid name: {flags['alias']}", 1)
        local = alias.with_default_tag().familiar_string()
    headers = {"X-Registry-Auth": credentials.registry_auth_header(ref.domain, cli.config)}
    privileges = _granted(cli, ref, remote, flags["grant-all-permissions"], headers, "installing plugin")
    resp = cli.client.request("POST", "/plugins/pull", {"remote": str(ref), "name": local}, body=privileges,
                              headers=headers)
    name = resp.header("Docker-Plugin-Name") or local
    _show_progress(resp)
    if settings:
        cli.client.request("POST", f"/plugins/{_path(name)}/set", None, body=settings).read()
    if not flags["disable"]:
        cli.client.request("POST", f"/plugins/{_path(name)}/enable", {"timeout": 0}).read()
    cli.out(f"Installed plugin {local}")
    return 0


def run_upgrade(cli: CliContext, flags: ParsedFlags) -> int:
    local = flags.args[0]
    try:
        plugin = cli.client.get_json(f"/plugins/{_path(local)}/json")
    except ClientError as exc:
        raise CliExit(f"error reading plugin data: {exc}", 1) from None
    if plugin.get("Enabled"):
        raise CliExit("the plugin must be disabled before upgrading", 1)
    name = str(plugin.get("Name") or local)
    remote = flags.args[1] if len(flags.args) > 1 else str(plugin.get("PluginReference") or "")
    ref = _parse_remote(remote)
    old = _parse_remote(str(plugin.get("PluginReference") or ""))
    if not flags["skip-remote-check"] and str(ref) != str(old):
        if not cli.confirm("Remote reference does not match current reference."):
            raise CliExit("plugin upgrade has been cancelled", 1)
    headers = {"X-Registry-Auth": credentials.registry_auth_header(ref.domain, cli.config)}
    privileges = _granted(cli, ref, remote, flags["grant-all-permissions"], headers, "upgrading plugin")
    resp = cli.client.request("POST", f"/plugins/{_path(name)}/upgrade", {"remote": str(ref)}, body=privileges,
                              headers=headers)
    _show_progress(resp)
    cli.out(f"Upgraded plugin {name} to {remote}")
    return 0


def run_push(cli: CliContext, flags: ParsedFlags) -> int:
    name = flags.args[0]
    try:
        ref = parse_normalized(name)
    except ReferenceError as exc:
        raise CliExit(str(exc), 1) from None
    if ref.digest:
        raise CliExit("invalid name: " + name, 1)
    ref = ref.with_default_tag()
    auth = credentials.registry_auth_header(ref.domain, cli.config)
    resp = cli.client.request("POST", f"/plugins/{_path(ref.familiar_string())}/push", None,
                              headers={"X-Registry-Auth": auth})
    _show_progress(resp)
    return 0


def plugin_command() -> Command:
    group = Command("plugin", short="Manage plugins", category="management")
    create = Command("create", use="create [OPTIONS] PLUGIN PLUGIN-DATA-DIR",
                     short="Create a plugin from a rootfs and configuration. Plugin data directory must contain "
                           "config.json and rootfs directory.", run=run_create, args=("exact", 2, 2))
    create.flags.add("compress", "", "bool", "Compress the context using gzip")

    disable = Command("disable", use="disable [OPTIONS] PLUGIN", short="Disable a plugin", run=run_disable,
                      args=("exact", 1, 1))
    disable.flags.add("force", "f", "bool", "Force the disable of an active plugin")

    enable = Command("enable", use="enable [OPTIONS] PLUGIN", short="Enable a plugin", run=run_enable,
                     args=("exact", 1, 1))
    enable.flags.add("timeout", "", "int", "HTTP client timeout (in seconds)", 30)

    inspect = Command("inspect", use="inspect [OPTIONS] PLUGIN [PLUGIN...]",
                      short="Display detailed information on one or more plugins", run=run_inspect,
                      args=("min", 1, 0))
    inspect.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)

    ls = Command("ls", use="ls [OPTIONS]", short="List plugins", run=run_ls, aliases=["list"],
                 args=("none", 0, 0))
    ls.flags.add("filter", "f", "filter", "Provide filter values (e.g. \"enabled=true\")")
    ls.flags.add("format", "", "string", FORMAT_HELP)
    ls.flags.add("no-trunc", "", "bool", "Don't truncate output")
    ls.flags.add("quiet", "q", "bool", "Only display plugin IDs")

    rm = Command("rm", use="rm [OPTIONS] PLUGIN [PLUGIN...]", short="Remove one or more plugins", run=run_rm,
                 aliases=["remove"], args=("min", 1, 0))
    rm.flags.add("force", "f", "bool", "Force the removal of an active plugin")

    set_ = Command("set", use="set PLUGIN KEY=VALUE [KEY=VALUE...]", short="Change settings for a plugin",
                   run=run_set, args=("min", 2, 0))
    install = Command("install", use="install [OPTIONS] PLUGIN [KEY=VALUE...]", short="Install a plugin",
                      run=run_install, args=("min", 1, 0))
    install.flags.add("alias", "", "string", "Local name for plugin")
    install.flags.add("disable", "", "bool", "Do not enable the plugin on install")
    install.flags.add("disable-content-trust", "", "bool", "Skip image verification", True)
    install.flags.add("grant-all-permissions", "", "bool", "Grant all permissions necessary to run the plugin")

    upgrade = Command("upgrade", use="upgrade [OPTIONS] PLUGIN [REMOTE]", short="Upgrade an existing plugin",
                      run=run_upgrade, args=("range", 1, 2))
    upgrade.flags.add("disable-content-trust", "", "bool", "Skip image verification", True)
    upgrade.flags.add("grant-all-permissions", "", "bool", "Grant all permissions necessary to run the plugin")
    upgrade.flags.add("skip-remote-check", "", "bool",
                      "Do not check if specified remote plugin matches existing plugin image")

    push = Command("push", use="push [OPTIONS] PLUGIN[:TAG]", short="Push a plugin to a registry", run=run_push,
                   args=("exact", 1, 1))
    push.flags.add("disable-content-trust", "", "bool", "Skip image signing", True)
    group.add(create, disable, enable, inspect, install, ls, push, rm, set_, upgrade)
    return group
