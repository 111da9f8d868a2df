"""`berth compose`: Compose v2's command line over the compose model and engine (issue 17).

The project's flags come before the subcommand, as Compose v2's do: `berth compose -f
a.yaml -f b.yaml -p NAME --project-directory DIR --env-file FILE --profile P up -d`.
Each subcommand is a `Subcommand` in SUBCOMMANDS: its flags, its usage line and its run
function, in the module of its group — config.py (config, version), up.py (what
changes the project: up, down, create, start, stop, restart, kill, pause, unpause, rm,
run, build, pull, push, scale, wait), view.py (what reads it: ps, logs, top, port,
images, events, ls, cp, exec).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, FlagSet, HelpRequested, ParsedFlags, UsageError, parse_flags

if TYPE_CHECKING:
    from berth.cli.compose.project import Subcommand

USAGE = "compose [OPTIONS] COMMAND"

# name -> module that defines it (its SUBCOMMANDS list holds the Subcommand)
_MODULES = ("config", "up", "view")


def subcommands() -> dict[str, Subcommand]:
    found: dict[str, Subcommand] = {}
    for module in _MODULES:
        try:
            mod = importlib.import_module(f"berth.cli.compose.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"berth.cli.compose.{module}":
                raise
            continue
        for sub in mod.SUBCOMMANDS:
            found[sub.name] = sub
    return dict(sorted(found.items()))


def _project_flags() -> FlagSet:
    f = FlagSet()
    f.add("file", "f", "stringArray", "Compose configuration files")
    f.add("project-name", "p", "string", "Project name")
    f.add("project-directory", "", "string", "Specify an alternate working directory\n"
          "(default: the path of the, first specified, Compose file)")
    f.add("env-file", "", "stringArray", "Specify an alternate environment file")
    f.add("profile", "", "stringArray", "Specify a profile to enable")
    f.add("parallel", "", "int", "Control max parallelism, -1 for unlimited", -1)
    f.add("progress", "", "string", 'Set type of progress output (auto, tty, plain, json, quiet)', "auto")
    f.add("ansi", "", "string", 'Control when to print ANSI control characters ("never"|"always"|"auto")', "auto")
    f.add("compatibility", "", "bool", "Run compose in backward compatibility mode")
    f.add("dry-run", "", "bool", "Execute command in dry run mode", hidden=True)
    f.add("all-resources", "", "bool", "Include all resources, even those not used by services")
    return f


def _help(subs: dict[str, Subcommand]) -> str:
    lines = [f"Usage:  berth {USAGE}", "", "Define and run multi-container applications with berth", "",
             "Options:", _project_flags().help_text().rstrip("\n"), "", "Commands:"]
    lines += [f"  {sub.name:<12}{sub.short}" for sub in subs.values() if not sub.hidden]
    lines += ["", "Run 'berth compose COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def run_compose(cli: CliContext, top: ParsedFlags) -> int:
    """The project's flags are the command's own (parsed up to the subcommand's name);
    the subcommand and its flags are what follows. The compose model is loaded only
    here, so that other berth commands do not pay for importing it."""
    from berth.cli.compose.project import ComposeContext

    subs = subcommands()
    if not top.args:
        cli.out(_help(subs), end="")
        return 0
    name, rest = top.args[0], top.args[1:]
    sub = subs.get(name)
    if sub is None:
        raise CliExit(f"unknown docker command: \"compose {name}\"", 1)
    flagset = sub.flags()
    try:
        parsed = parse_flags(flagset, rest, interspersed=sub.interspersed)
    except HelpRequested:
        cli.out(f"Usage:  berth compose {sub.use}\n\n{sub.short}\n")
        if flagset.flags:
            cli.out("Options:\n" + flagset.help_text(), end="")
        return 0
    except UsageError as exc:
        raise CliExit(str(exc), 1) from None
    return sub.run(ComposeContext(cli, top), parsed)


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
