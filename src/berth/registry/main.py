"""`berth-registry`: the command line. `serve` runs the registry until SIGTERM or
SIGINT; `garbage-collect` marks and sweeps the store.

Exit codes: 0 done, 2 usage errors (argparse's), 1 failures with a one-line message.
It wires settings to the server and owns the process: nothing here speaks HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from berth.registry import config, gc
from berth.registry.storage import Storage


def _version() -> str:
    try:
        return version("berth")
    except PackageNotFoundError:
        return "dev"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berth-registry",
        description="An OCI distribution (Docker Registry HTTP API v2) server.")
    parser.add_argument("--version", action="version", version=f"berth-registry {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the registry")
    serve.add_argument("config_path", nargs="?", metavar="CONFIG",
                       help="a config file (as distribution's `registry serve CONFIG`)")
    serve.add_argument("--config", dest="config_file", metavar="FILE", help="YAML settings")
    serve.add_argument("--addr", metavar="HOST:PORT", help="listen address (127.0.0.1:5000)")
    serve.add_argument("--root", metavar="DIR", help="storage root (/var/lib/registry)")
    serve.add_argument("--htpasswd", metavar="FILE", help="bcrypt htpasswd file: Basic auth")
    serve.add_argument("--htpasswd-realm", metavar="REALM")
    serve.add_argument("--tls-cert", metavar="FILE")
    serve.add_argument("--tls-key", metavar="FILE")
    serve.add_argument("--tls-client-ca", metavar="FILE", help="require client certificates")
    serve.add_argument("--read-only", action="store_const", const=True, default=None)
    serve.add_argument("--token-realm", metavar="URL")
    serve.add_argument("--token-service", metavar="NAME")
    serve.add_argument("--token-issuer", metavar="NAME")
    serve.add_argument("--token-cert", metavar="FILE", help="certificates whose keys sign tokens")
    serve.add_argument("--token-key", metavar="FILE",
                       help="serve GET/POST /token, signing with this key")
    serve.add_argument("--token-ttl", type=int, metavar="SECONDS")
    serve.add_argument("--max-upload-size", metavar="BYTES", help="e.g. 10g; 0 = no limit")
    serve.add_argument("--upload-max-age", metavar="DURATION", help="stale uploads (1h)")
    serve.add_argument("--upload-purge-interval", metavar="DURATION", help="(10m)")
    serve.add_argument("--quiet", "-q", action="store_const", const=True, default=None,
                       help="no log line per request")
    collect = commands.add_parser("garbage-collect", help="delete unreferenced blobs")
    collect.add_argument("config_path", nargs="?", metavar="CONFIG")
    collect.add_argument("--config", dest="config_file", metavar="FILE")
    collect.add_argument("--root", metavar="DIR")
    collect.add_argument("--dry-run", "-d", action="store_true")
    collect.add_argument("--delete-untagged", "-m", action="store_true")
    return parser


def _settings(args: argparse.Namespace, flags: list[str]) -> config.Settings:
    settings = config.Settings()
    path = args.config_file or args.config_path
    if path:
        config.load_file(settings, Path(path))
    config.load_environment(settings)
    config.apply(settings, {name: getattr(args, name, None) for name in flags})
    return settings


_SERVE_FLAGS = ["addr", "root", "htpasswd", "htpasswd_realm", "tls_cert", "tls_key",
                "tls_client_ca", "read_only", "token_realm", "token_service", "token_issuer",
                "token_cert", "token_key", "token_ttl", "max_upload_size", "upload_max_age",
                "upload_purge_interval", "quiet"]


def _ssl_context(settings: config.Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert and not settings.tls_key:
        return None
    if not settings.tls_cert or not settings.tls_key:
        raise config.ConfigError("TLS needs both a certificate and a key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except ssl.SSLError as exc:
        raise config.ConfigError(f"cannot load the TLS certificate {settings.tls_cert} with "
                                 f"the key {settings.tls_key}: {exc.reason or exc}") from exc
    if settings.tls_client_ca:
        try:
            context.load_verify_locations(settings.tls_client_ca)
        except ssl.SSLError as exc:
            raise config.ConfigError(f"cannot load the client CA {settings.tls_client_ca}: "
                                     f"{exc.reason}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _serve(settings: config.Settings) -> None:
    from aiohttp import web

    from berth.registry.server import Registry

    host, port = config.split_addr(settings.addr)
    context = _ssl_context(settings)
    storage = Storage(Path(settings.root))
    registry = Registry(settings, storage, sys.stderr)
    await asyncio.to_thread(storage.create)
    runner = web.AppRunner(registry.app(), access_log=None, handle_signals=False,
                           read_bufsize=1 << 20)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context,
                       reuse_address=True, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        scheme = "https" if settings.tls_cert else "http"
        print(f"berth-registry: listening on {scheme}://{settings.addr} root {settings.root}",
              file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = _settings(args, _SERVE_FLAGS)
            asyncio.run(_serve(settings))
            return 0
        settings = _settings(args, ["root"])
        storage = Storage(Path(settings.root))
        if not storage.root.is_dir():
            raise config.ConfigError(f"no registry store at {settings.root}")
        gc.collect(storage, args.dry_run, args.delete_untagged, lambda line: print(line))
        return 0
    except (config.ConfigError, OSError, ssl.SSLError, ValueError) as exc:
        print(f"berth-registry: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(exc: Any) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
