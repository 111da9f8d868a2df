"""`berth compose config` and `version`, and the docker CLI's plugin metadata call:
what needs no engine."""

from __future__ import annotations

import json

from berth import __version__
from berth.cli.compose.project import ComposeContext, Subcommand
from berth.cli.context import CliExit
from berth.cli.flags import FlagSet, ParsedFlags
from berth.cli.plugin import PLUGIN_METADATA
from berth.compose import config_json, config_services, config_volumes, config_yaml


def _config_flags() -> FlagSet:
    f = FlagSet()
    f.add("services", "", "bool", "Print the service names, one per line.")
    f.add("volumes", "", "bool", "Print the volume names, one per line.")
    f.add("format", "", "string", 'Format the output. Values: [yaml | json]', "yaml")
    f.add("quiet", "q", "bool", "Only validate the configuration, don't print anything")
    return f


def run_config(ctx: ComposeContext, flags: ParsedFlags) -> int:
    project = ctx.project()
    if flags["quiet"]:
        return 0
    if flags["services"]:
        for name in config_services(project):
            ctx.cli.out(name)
        return 0
    if flags["volumes"]:
        for name in config_volumes(project):
            ctx.cli.out(name)
        return 0
    fmt = flags["format"] or "yaml"
    if fmt not in ("yaml", "json"):
        raise CliExit(f"unsupported format {fmt!r}", 1)
    ctx.cli.out(config_json(project) if fmt == "json" else config_yaml(project), end="")
    return 0


def _version_flags() -> FlagSet:
    f = FlagSet()
    f.add("format", "f", "string", 'Format the output. Values: [pretty | json]', "pretty")
    f.add("short", "", "bool", "Shows only Compose's version number")
    return f


def run_version(ctx: ComposeContext, flags: ParsedFlags) -> int:
    if flags["short"]:
        ctx.cli.out(__version__)
    elif flags["format"] == "json":
        ctx.cli.out(json.dumps({"version": __version__}))
    else:
        ctx.cli.out(f"berth compose version {__version__}")
    return 0


def run_metadata(ctx: ComposeContext, flags: ParsedFlags) -> int:
    ctx.cli.out(json.dumps(PLUGIN_METADATA))
    return 0


SUBCOMMANDS = [
    Subcommand("config", "config [OPTIONS] [SERVICE...]",
               "Parse, resolve and render compose file in canonical format", _config_flags, run_config),
    Subcommand("version", "version [OPTIONS]", "Show the Docker Compose version information",
               _version_flags, run_version),
    Subcommand("docker-cli-plugin-metadata", "docker-cli-plugin-metadata", "", FlagSet, run_metadata,
               hidden=True),
]
