"""Entry point of the ``berth`` command: global flags, dispatch, exit codes.

Parses the global flags (``-H``, ``-D`` …) up to the first command word, finds
the command (``berth ps``, ``berth container ls`` …), parses its flags and runs
it.  Every error ends here: printed to stderr and turned into docker's exit
code (125 for flag errors, 1 for most failures, the container's status for
``run``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import PROG, Command, HelpRequested, UsageError, parse_flags, resolve
from berth.client.engine import CLIENT_VERSION, ClientError, tls_options

ROOT_USAGE = f"{PROG} [OPTIONS] COMMAND [ARG...]"


def build_root() -> Command:
    from berth.cli import compose, container, image, network, plugin_cmd, registry, system, trust

    root = Command(PROG, use=ROOT_USAGE, short="A self-sufficient runtime for containers")
    f = root.flags
    f.add("config", "", "string", "Location of client config files", default_text='"/root/.docker"')
    f.add(
        "context",
        "c",
        "string",
        'Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and default '
        'context set with "docker context use")',
    )
    f.add("debug", "D", "bool", "Enable debug mode")
    f.add("host", "H", "list", "Daemon socket to connect to")
    f.add("log-level", "l", "string", 'Set the logging level ("debug", "info", "warn", "error", "fatal")', "info")
    f.add("tls", "", "bool", "Use TLS; implied by --tlsverify")
    f.add("tlscacert", "", "string", "Trust certs signed only by this CA", default_text='"/root/.docker/ca.pem"')
    f.add("tlscert", "", "string", "Path to TLS certificate file", default_text='"/root/.docker/cert.pem"')
    f.add("tlskey", "", "string", "Path to TLS key file", default_text='"/root/.docker/key.pem"')
    f.add("tlsverify", "", "bool", "Use TLS and verify the remote")
    f.add("version", "v", "bool", "Print version information and quit")
    root.add(
        compose.make_compose(),
        container.container_command(),
        image.image_command(),
        network.network_command(),
        plugin_cmd.plugin_command(),
        system.system_command(),
        trust.trust_command(),
        network.volume_command(),
        *container.top_level_commands(),
        *image.top_level_commands(),
        *system.top_level_commands(),
        *registry.top_level_commands(),
    )
    return root


def _help_cols() -> int:
    import os

    try:
        return os.get_terminal_size(0).columns - 1
    except OSError:
        return 79


def _print_help(req: HelpRequested, to_stderr: bool = False) -> None:
    stream = sys.stderr if to_stderr or req.to_stderr else sys.stdout
    if req.deprecated_short:
        stream.write("Flag shorthand -h has been deprecated, use --help\n")
    stream.write(req.command.help(_help_cols()))
    stream.flush()


def run(argv: Sequence[str]) -> int:
    root = build_root()
    try:
        glob = parse_flags(root.flags, argv, interspersed=False)
    except HelpRequested as req:
        _print_help(HelpRequested(root, req.deprecated_short))
        return 0
    except UsageError as err:
        raise UsageError(
            f"{err}\n\nUsage:  {ROOT_USAGE}\n\nRun '{PROG} --help' for more information", 125
        ) from None
    if glob["version"]:
        print(f"{PROG} version {CLIENT_VERSION}, build unknown")
        return 0
    if not glob.args:
        _print_help(HelpRequested(root), to_stderr=True)
        return 0
    try:
        cmd, flags = resolve(root, glob.args)
    except HelpRequested as req:
        _print_help(req)
        return 0
    tls = tls_options(glob["tls"], glob["tlsverify"] if "tlsverify" in glob.changed else None,
                      glob["tlscacert"] or "", glob["tlscert"] or "", glob["tlskey"] or "", glob["config"] or "")
    cli = CliContext(hosts=glob["host"] or None, debug=glob["debug"], config=glob["config"] or "", tls=tls)
    assert cmd.run is not None
    status = cmd.run(cli, flags)
    return int(status or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = run(args)
    except CliExit as exc:
        _flush()
        if exc.message:
            sys.stderr.write(exc.message + "\n")
        status = exc.status
    except UsageError as exc:
        _flush()
        sys.stderr.write(str(exc) + "\n")
        status = exc.status
    except ClientError as exc:
        _flush()
        sys.stderr.write(str(exc) + "\n")
        status = exc.status
    except KeyboardInterrupt:
        _flush()
        status = 130
    except BrokenPipeError:
        status = 0
    _flush()
    return status & 0xFF if status >= 0 else (status & 0xFF)


def _flush() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
