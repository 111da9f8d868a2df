"""`berth-compose-plugin`: berth's compose as the docker CLI's `compose` plugin.

The docker CLI (28.x) finds `docker-compose` in its plugin directories and runs it
twice for `docker [GLOBAL FLAGS] compose ARGS`:

- `PLUGIN docker-cli-plugin-metadata`, with no other argument and no plugin
  environment: the answer is PLUGIN_METADATA as JSON (`berth compose
  docker-cli-plugin-metadata` prints the same). The CLI also asks every plugin this for
  `docker --help` and `docker info`, so this path imports nothing but the package's
  version.
- `PLUGIN [GLOBAL FLAGS] compose ARGS`: the CLI's own argv after `docker`, global flags
  (`-H`, `--context`, `--config`, `-D`, `--log-level` …) included, with
  DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND and DOCKER_CLI_PLUGIN_SOCKET set. Like a Go
  plugin, this one parses the global flags itself and finds the daemon the docker CLI
  would talk to (docker_endpoint), then runs `berth -H ENDPOINT compose ARGS`.
  DOCKER_CLI_PLUGIN_SOCKET names a socket the CLI closes when it was told to stop (a
  SIGINT or SIGTERM while its output is not a terminal); the plugin then gets a SIGINT,
  as Go plugins cancel their context.

Must not: talk to the daemon itself or know compose; that is `berth compose`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence

from berth import __version__

PLUGIN_METADATA = {"SchemaVersion": "0.1.0", "Vendor": "berth", "Version": __version__,
                   "ShortDescription": "Docker Compose"}

METADATA_SUBCOMMAND = "docker-cli-plugin-metadata"
DEFAULT_CONTEXT = "default"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"  # the docker CLI's, not berth's
_INIT_ERROR = "Failed to initialize: unable to resolve docker endpoint: "


class EndpointError(Exception):
    """The daemon's address cannot be found; the message is the docker CLI's."""


def docker_endpoint(hosts: Sequence[str], context: str, config_dir: str,
                    environ: Mapping[str, str]) -> str:
    """The daemon address the docker CLI would use, by its rules: `-H`, else the context
    named by `--context`, DOCKER_HOST (the default context), DOCKER_CONTEXT, the config's
    currentContext, in that order; the default context is DOCKER_HOST or docker's socket."""
    if hosts and context:
        raise EndpointError("conflicting options: cannot specify both --host and --context")
    if hosts:
        if len(hosts) > 1:
            raise EndpointError(_INIT_ERROR + "Specify only one -H")
        return hosts[0]
    name = context
    if not name and environ.get("DOCKER_HOST"):
        name = DEFAULT_CONTEXT
    name = name or environ.get("DOCKER_CONTEXT", "") or _current_context(config_dir) or DEFAULT_CONTEXT
    if name == DEFAULT_CONTEXT:
        return environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    return _context_host(name, config_dir)


def _current_context(config_dir: str) -> str:
    # A config.json the docker CLI cannot read is one it warns about and goes on without.
    try:
        with open(os.path.join(config_dir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return ""
    current = config.get("currentContext") if isinstance(config, dict) else None
    return current if isinstance(current, str) else ""


def _context_host(name: str, config_dir: str) -> str:
    """The docker endpoint of a context in the CLI's store: contexts/meta/<sha256 of the
    name>/meta.json, its TLS files in contexts/tls/<same>/docker/."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_path = os.path.join(config_dir, "contexts", "meta", digest, "meta.json")
    prefix = f'{_INIT_ERROR}context "{name}": '
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise EndpointError(f"{prefix}context not found: open {meta_path}: no such file or directory") from None
    except (OSError, ValueError) as exc:
        raise EndpointError(f"{prefix}cannot read {meta_path}: {exc}") from None
    endpoint = (meta.get("Endpoints") or {}).get("docker") if isinstance(meta, dict) else None
    host = endpoint.get("Host") if isinstance(endpoint, dict) else None
    if not isinstance(host, str) or not host:
        raise EndpointError(f"{prefix}it has no docker endpoint")
    tls_dir = os.path.join(config_dir, "contexts", "tls", digest, "docker")
    if os.path.isdir(tls_dir) and os.listdir(tls_dir):
        raise EndpointError(f"{prefix}its endpoint {host} uses TLS, which berth compose cannot speak yet")
    return host


def _watch_cli_socket(environ: Mapping[str, str]) -> None:
    """Connect to the docker CLI's plugin socket; when the CLI closes it, SIGINT ourselves."""
    name = environ.get("DOCKER_CLI_PLUGIN_SOCKET", "")
    if not name:
        return
    address = "\0" + name[1:] if name.startswith("@") else name  # "@name": Linux abstract socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return

    def wait_for_close() -> None:
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=wait_for_close, name="docker-cli-socket", daemon=True).start()


def berth_argv(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """`berth`'s argv for the plugin's: the global flags the CLI gave, with the daemon's
    address resolved as the docker CLI would (raises EndpointError when it cannot be)."""
    from berth.cli.flags import parse_flags
    from berth.cli.main import build_root
    from berth.client.credentials import config_dir

    glob = parse_flags(build_root().flags, argv, interspersed=False)
    config = glob["config"] or ""
    host = docker_endpoint(glob["host"] or [], glob["context"] or "", config_dir(config), environ)
    out = ["-H", host]
    if config:
        out += ["--config", config]
    if glob["debug"]:
        out.append("-D")
    rest = list(glob.args)
    if rest[:2] == ["help", "compose"]:  # `docker help compose [CMD]` runs `PLUGIN help compose [CMD]`
        return [*out, "compose", *rest[2:], "--help"]
    # Run on its own (`docker-compose up`), not by the docker CLI: every word is compose's.
    return out + (rest if rest[:1] == ["compose"] else ["compose", *rest])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [METADATA_SUBCOMMAND]:
        sys.stdout.write(json.dumps(PLUGIN_METADATA) + "\n")
        return 0
    from berth.cli import main as berth
    from berth.cli.flags import UsageError

    try:
        translated = berth_argv(args, os.environ)
    except UsageError:
        translated = args  # berth's own parser says what is wrong, in docker's words
    except EndpointError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    _watch_cli_socket(os.environ)
    return berth.main(translated)


if __name__ == "__main__":
    sys.exit(main())
