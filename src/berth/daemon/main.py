"""berthd: start-up, the listeners, and an orderly shutdown.

Start-up order: parse flags and daemon.json; take the data root's lock (a second
berthd on the same data root refuses to start); open the metadata database and
reconcile disk with it; restore containers; listen; write the PID file.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import shutil
import signal
import ssl
import sys

from aiohttp import web

from berth.daemon import listeners
from berth.daemon.config import ConfigError, DaemonConfig, parse_args

log = logging.getLogger("berthd")


def _lock_data_root(config: DaemonConfig) -> int:
    os.makedirs(config.data_root, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(config.data_root, "berthd.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = ""
        try:
            other = os.read(fd, 32).decode().strip()
        except OSError:
            pass
        raise ConfigError(f"another berthd (pid {other or '?'}) is already using the data root "
                          f"{config.data_root}; stop it or pass a different --data-root") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _daemon_id(data_root: str) -> str:
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        value = secrets.token_hex(16)
        with open(path + ".tmp", "w") as f:
            f.write(value)
        os.rename(path + ".tmp", path)
        return value


async def _listen(runner: web.AppRunner, host: str,
                  tls: ssl.SSLContext | None) -> web.BaseSite:
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        # dockerd listens with the system's somaxconn: a `docker rm -f` of many containers
        # sends dozens of requests at once
        site: web.BaseSite = web.UnixSite(runner, path, backlog=4096)
        await site.start()
        os.chmod(path, 0o660)
        return site
    if host.startswith("tcp://"):
        addr, port = listeners.split_tcp_host(host)
        site = (listeners.TLSSite(runner, addr, port, tls, backlog=4096) if tls is not None
                else web.TCPSite(runner, addr, port, backlog=4096))
        try:
            await site.start()
        except OSError as e:
            raise ConfigError(f"failed to load listeners: listen tcp {addr}:{port}: bind: "
                              f"{(e.strerror or str(e)).lower()}") from None
        return site
    raise ConfigError(f"invalid daemon host {host!r}: use unix:///path or tcp://addr:port")


async def run(config: DaemonConfig) -> None:
    from berth.api import build as build_api
    from berth.api import containers as containers_api
    from berth.api import distribution as distribution_api
    from berth.api import events as events_api
    from berth.api import execs as execs_api
    from berth.api import images as images_api
    from berth.api import networks as networks_api
    from berth.api import plugins as plugins_api
    from berth.api import swarm as swarm_api
    from berth.api import system as system_api
    from berth.api import volumes as volumes_api
    from berth.api.context import DaemonContext, DaemonInfo
    from berth.api.server import make_app
    from berth.containers.defaults import DaemonDefaults
    from berth.containers.manager import ContainerManager
    from berth.containers.model import LogConfig
    from berth.daemon import remap as remapping
    from berth.distribution.metadata import LayerSources
    from berth.distribution.registry import Registry, RegistryConfig
    from berth.distribution.service import DistributionService
    from berth.events import EventLog
    from berth.images.store import ImageStore
    from berth.layers.store import LayerStore
    from berth.metadata import open_db
    from berth.network.controller import DEFAULT_BRIDGE, NetworkController
    from berth.network.store import SqliteNetworkStore
    from berth.plugins.manager import PluginManager
    from berth.volumes.store import VolumeStore

    # the listeners' configuration is checked before anything is opened or restored
    tls = listeners.server_tls_context(config)
    for host in config.hosts:
        if host.startswith("tcp://"):
            listeners.check_tcp_host(config, host)
    remap = remapping.setup(config.userns_remap)
    if remap is not None:
        config.data_root = remapping.prepare_data_root(config.data_root, remap)
    lock_fd = _lock_data_root(config)
    os.makedirs(config.exec_root, mode=0o700, exist_ok=True)
    db = open_db(os.path.join(config.data_root, "berth.db"))
    layers = LayerStore(config.data_root, db, storage_driver=config.storage_driver,
                        id_maps=remap.maps if remap else None)
    log.info("storage driver: %s", layers.driver)
    events = EventLog()
    images = ImageStore(db, layers)
    images.collect_unused_layers()  # before the content store's collection: their tars go too
    layers.reconcile()
    images.on_event = lambda action, image_id, attrs: events.log("image", action, image_id, attrs)
    volumes = VolumeStore(config.data_root, db, owner=remap.root_pair if remap else None)
    volumes.on_event = lambda action, name, attrs: events.log("volume", action, name, attrs)
    volumes.reconcile()
    network = NetworkController(SqliteNetworkStore(db), config.exec_root, default_bridge=config.bridge or DEFAULT_BRIDGE,
                                icc=config.icc, userland_proxy=config.userland_proxy)
    network.on_event = events.network
    await network.start()
    containers = ContainerManager(config.data_root, config.exec_root, db, images, layers, volumes, network)
    containers.on_event = events.container
    containers.runtimes = dict(config.runtimes)
    containers.default_runtime = config.default_runtime
    containers.default_log = LogConfig(config.log_driver, dict(config.log_opts))
    seccomp = (config.seccomp_profile_text if config.seccomp_profile not in ("builtin", "unconfined")
               else "" if config.seccomp_profile == "builtin" else "unconfined")
    containers.daemon_defaults = DaemonDefaults(config.no_new_privileges, tuple(config.default_ulimits), seccomp)
    if remap is not None:
        containers.remap(remap.maps, remap.root_pair[1])
    containers.load()
    earlier = containers.launcher.end_earlier_zygote()
    if earlier is not None:
        log.warning("ended the shim zygote (pid %d) that an earlier berthd left running", earlier)
    await containers.launcher.start_zygote()
    # plugins first, as dockerd: a restored container may use a plugin's volume
    plugins = PluginManager(config.data_root, config.exec_root, containers.tasks, volumes)
    plugins.on_event = lambda action, plugin_id, name: events.log("plugin", action, plugin_id, {"name": name})
    volumes.managed_plugin = plugins.volume_driver
    plugins.authz_chain = list(config.authorization_plugins)
    containers.log_plugins = plugins
    await plugins.restore(config.live_restore)
    await containers.restore(config.live_restore)
    from berth.builder.builder import Builder
    from berth.builder.cache import BuildCache

    distribution = DistributionService(
        images,
        Registry(RegistryConfig(mirrors=tuple(config.registry_mirrors), insecure=tuple(config.insecure_registries))),
        LayerSources(db), config.max_concurrent_downloads, config.max_concurrent_uploads,
        signature_policy=config.signature_policy)
    plugins.registry = distribution.registry
    builder = Builder(images, containers, BuildCache(db), os.path.join(config.data_root, "build"), distribution)
    shutil.rmtree(builder.tmp_root, ignore_errors=True)  # contexts of builds berthd was killed in
    os.makedirs(builder.tmp_root, mode=0o700, exist_ok=True)
    info = DaemonInfo(daemon_id=_daemon_id(config.data_root), data_root=config.data_root,
                      log_driver=config.log_driver, live_restore=config.live_restore, debug=config.debug,
                      registry_mirrors=tuple(config.registry_mirrors),
                      insecure_registries=tuple(config.insecure_registries),
                      seccomp_profile=config.seccomp_profile,
                      security_options=("name=userns",) if remap else (),
                      warnings=listeners.api_warnings(config))
    ctx = DaemonContext(info=info, events=events, layers=layers,
                        images=images, volumes=volumes, network=network, containers=containers,
                        execs=containers.execs, builder=builder, distribution=distribution,
                        plugins=plugins)
    app = make_app([system_api.routes, containers_api.routes, images_api.routes, volumes_api.routes,
                    networks_api.routes, execs_api.routes, events_api.routes, build_api.routes,
                    distribution_api.routes, swarm_api.routes, plugins_api.routes], ctx)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    for host in config.hosts:
        await _listen(runner, host, tls)
    os.makedirs(os.path.dirname(config.pidfile) or ".", exist_ok=True)
    with open(config.pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(config.pidfile + ".tmp", config.pidfile)
    log.info("berthd listening on %s (data root %s)", ", ".join(config.hosts), config.data_root)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await containers.shutdown(config.live_restore)
    await plugins.shutdown(config.live_restore)
    await network.close()
    await runner.cleanup()
    await distribution.close()
    for host in config.hosts:
        if host.startswith("unix://"):
            try:
                os.unlink(host[len("unix://"):])
            except OSError:
                pass
    db.close()
    os.close(lock_fd)
    # last: whoever waits for the pidfile to go may start a berthd on this data root at once
    try:
        os.unlink(config.pidfile)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    try:
        config = parse_args(argv)
    except ConfigError as e:
        print(f"berthd: {e}", file=sys.stderr)
        sys.exit(1)
    level = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
             "error": logging.ERROR, "fatal": logging.CRITICAL}[config.log_level]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("berthd: must run as root (it creates namespaces, mounts and cgroups)", file=sys.stderr)
        sys.exit(1)
    try:
        asyncio.run(run(config))
    except ConfigError as e:
        print(f"berthd: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
