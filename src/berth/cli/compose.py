"""`berth compose`: Compose v2's command line over the compose model (issue 17).

So far only what needs no engine: `config` (the normalized, interpolated project, as
Compose v2 prints it; `--services`, `--volumes`, `--format yaml|json`, `-q`) and
`version`. The project's flags come before the subcommand, as Compose v2's do:
`berth compose -f a.yaml -f b.yaml -p NAME --project-directory DIR --env-file FILE
--profile P config`. The commands that talk to the engine (`up`, `down`, `ps`, …) are
the next part of issue 17.
"""

from __future__ import annotations

import json
import os
import sys

from berth import __version__
from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, FlagSet, HelpRequested, ParsedFlags, UsageError, parse_flags
from berth.compose import (
    ProjectOptions,
    config_json,
    config_services,
    config_volumes,
    config_yaml,
    load_project,
)
from berth.errors import BerthError

USAGE = "compose [OPTIONS] COMMAND"
SUBCOMMANDS = {"config": "Parse, resolve and render compose file in canonical format",
               "version": "Show the Docker Compose version information"}


def _project_flags() -> FlagSet:
    f = FlagSet()
    f.add("file", "f", "stringArray", "Compose configuration files")
    f.add("project-name", "p", "string", "Project name")
    f.add("project-directory", "", "string", "Specify an alternate working directory\n"
          "(default: the path of the, first specified, Compose file)")
    f.add("env-file", "", "stringArray", "Specify an alternate environment file")
    f.add("profile", "", "stringArray", "Specify a profile to enable")
    return f


def _config_flags() -> FlagSet:
    f = FlagSet()
    f.add("services", "", "bool", "Print the service names, one per line.")
    f.add("volumes", "", "bool", "Print the volume names, one per line.")
    f.add("format", "", "string", 'Format the output. Values: [yaml | json]', "yaml")
    f.add("quiet", "q", "bool", "Only validate the configuration, don't print anything")
    return f


def _help() -> str:
    lines = [f"Usage:  berth {USAGE}", "", "Define and run multi-container applications with berth", "",
             "Commands:"]
    lines += [f"  {name:<10}{text}" for name, text in SUBCOMMANDS.items()]
    return "\n".join(lines) + "\n"


def run_compose(cli: CliContext, top: ParsedFlags) -> int:
    """The project's flags are the command's own (parsed up to the subcommand's name);
    the subcommand and its flags are what follows."""
    if not top.args:
        cli.out(_help(), end="")
        return 0
    sub, rest = top.args[0], top.args[1:]
    if sub == "version":
        cli.out(f"berth compose version {__version__}")
        return 0
    if sub == "docker-cli-plugin-metadata":  # what the docker CLI asks a plugin
        cli.out(json.dumps({"SchemaVersion": "0.1.0", "Vendor": "berth", "Version": __version__,
                            "ShortDescription": "Docker Compose"}))
        return 0
    if sub != "config":
        raise CliExit(f"unknown docker command: \"compose {sub}\"\n"
                      f"berth compose has {', '.join(SUBCOMMANDS)} so far", 1)
    try:
        sub_flags = parse_flags(_config_flags(), rest)
    except HelpRequested:
        cli.out(f"Usage:  berth compose config [OPTIONS] [SERVICE...]\n\n{SUBCOMMANDS['config']}\n")
        return 0
    except UsageError as exc:
        raise CliExit(str(exc), 1) from None
    options = ProjectOptions(
        config_files=list(top["file"]), project_name=top["project-name"] or None,
        project_directory=top["project-directory"] or None, env_files=list(top["env-file"]),
        profiles=list(top["profile"]), environment=dict(os.environ), working_directory=os.getcwd(),
        stdin_content=sys.stdin.buffer.read() if "-" in top["file"] else None)
    try:
        project = load_project(options)
    except BerthError as exc:
        raise CliExit(str(exc), 1) from None
    for warning in project.warnings:
        cli.err(f'WARN[0000] {warning}')
    if sub_flags["quiet"]:
        return 0
    if sub_flags["services"]:
        for name in config_services(project):
            cli.out(name)
        return 0
    if sub_flags["volumes"]:
        for name in config_volumes(project):
            cli.out(name)
        return 0
    fmt = sub_flags["format"] or "yaml"
    if fmt not in ("yaml", "json"):
        raise CliExit(f"unsupported format {fmt!r}", 1)
    cli.out(config_json(project) if fmt == "json" else config_yaml(project), end="")
    return 0


def make_compose() -> Command:
    cmd = Command(
        "compose",
        use=USAGE,
        short="Define and run multi-container applications",
        run=run_compose,
        args=("any", 0, 0),
        interspersed=False,
        category="management",
    )
    cmd.flags = _project_flags()
    return cmd
