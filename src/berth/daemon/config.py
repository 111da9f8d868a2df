"""berthd's configuration: dockerd's flags, and daemon.json merged under them.

As with dockerd, a setting given both as a flag and in the file is an error.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field

from berth import __version__

DEFAULT_SOCKET = "unix:///run/berth/berth.sock"


class ConfigError(Exception):
    pass


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_SOCKET])
    data_root: str = "/var/lib/berth"
    exec_root: str = "/run/berth"
    pidfile: str = "/run/berth/berthd.pid"
    log_level: str = "info"
    debug: bool = False
    live_restore: bool = False
    bridge: str = ""  # "none": no default bridge network (networking lands with issue 6)
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> binary path
    default_runtime: str = "berth"
    config_file: str = "/etc/berth/daemon.json"
    storage_driver: str = ""  # "overlay2" or "vfs"; "" = overlay2, or vfs where overlayfs cannot mount
    log_driver: str = "json-file"  # containers' log driver when they name none
    log_opts: dict[str, str] = field(default_factory=dict)  # and its options
    registry_mirrors: list[str] = field(default_factory=list)  # for docker.io pulls, in order
    insecure_registries: list[str] = field(default_factory=list)  # "host:port" or CIDRs (loopback always)
    max_concurrent_downloads: int = 3  # layers a pull fetches at once
    max_concurrent_uploads: int = 5  # layers a push sends at once
    authorization_plugins: list[str] = field(default_factory=list)  # docker.authz/1.0 plugins, in order
    seccomp_profile: str = "builtin"  # "builtin" (berth's default, Docker's), "unconfined" or a file's path
    seccomp_profile_text: str = ""  # that file's content, read at start as dockerd reads it
    signature_policy: str = "/etc/berth/policy.json"  # containers-policy.json for pulls (absent: no check)
    icc: bool = True  # traffic between containers on the default bridge
    userland_proxy: bool = True  # relay [::]:PORT of published ports to IPv4-only containers
    no_new_privileges: bool = False  # containers' default for --security-opt no-new-privileges
    default_ulimits: list[tuple[str, int, int]] = field(default_factory=list)  # (name, soft, hard), -1 unlimited
    userns_remap: str = ""  # "default" or USER[:GROUP]: containers' ids from their /etc/subuid ranges
    # the API over TCP: None = not said (neither flag nor daemon.json), which a listener
    # off loopback refuses, as dockerd's "explicit intent" check
    tls: bool | None = None
    tlsverify: bool | None = None
    tlscacert: str = ""  # defaults: ca.pem, cert.pem, key.pem in $DOCKER_CERT_PATH or ~/.docker
    tlscert: str = ""
    tlskey: str = ""


_FILE_KEYS = {"hosts": "hosts", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
              "log-level": "log_level", "debug": "debug", "live-restore": "live_restore",
              "bridge": "bridge", "storage-driver": "storage_driver", "log-driver": "log_driver",
              "seccomp-profile": "seccomp_profile",
              "signature-policy": "signature_policy",
              "icc": "icc", "userland-proxy": "userland_proxy", "no-new-privileges": "no_new_privileges",
              "userns-remap": "userns_remap",
              "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert",
              "tlskey": "tlskey"}
_BOOL_KEYS = ("debug", "live-restore", "icc", "userland-proxy", "no-new-privileges")


def _shown(value: object) -> str:
    """A setting as dockerd prints it in its messages (Go's %v: true, not True)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _go_bool(text: str) -> bool:
    """A boolean flag's value as Go's strconv.ParseBool reads it (`--icc=false`)."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f'parse error on "{text}": invalid syntax')


_TLS_DEFAULT_HOST = "tcp://localhost:2376"  # dockerd's with --tls and no -H


def default_cert_dir() -> str:
    """Where dockerd looks for ca.pem, cert.pem and key.pem when no --tls* path is
    given: $DOCKER_CERT_PATH, else $DOCKER_CONFIG, else ~/.docker."""
    return (os.environ.get("DOCKER_CERT_PATH") or os.environ.get("DOCKER_CONFIG")
            or os.path.join(os.path.expanduser("~"), ".docker"))


def parse_args(argv: list[str] | None) -> DaemonConfig:
    p = argparse.ArgumentParser(prog="berthd", description="berth's container engine daemon (dockerd's flags)")
    p.add_argument("-H", "--host", action="append", dest="hosts", metavar="HOST",
                   help="daemon socket(s) to listen on: unix:///path or tcp://addr:port (repeatable)")
    p.add_argument("--data-root", help="root of persistent state (default /var/lib/berth)")
    p.add_argument("--exec-root", help="root of runtime state (default /run/berth)")
    p.add_argument("-p", "--pidfile", help="path of the daemon's PID file (default /run/berth/berthd.pid)")
    p.add_argument("--config-file", help="daemon.json (default /etc/berth/daemon.json)")
    p.add_argument("-l", "--log-level", choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true", default=None, help="debug mode")
    p.add_argument("--live-restore", type=_go_bool, nargs="?", const=True, metavar="BOOL",
                   help="keep containers running while berthd is down")
    p.add_argument("-b", "--bridge", help='attach containers to a network bridge ("none" to disable)')
    p.add_argument("-s", "--storage-driver", choices=["overlay2", "vfs"],
                   help="storage driver for containers' roots (default overlay2, vfs where overlayfs is unavailable)")
    p.add_argument("--log-driver", help="default log driver for containers (default json-file)")
    p.add_argument("--log-opt", action="append", dest="log_opts", metavar="KEY=VALUE",
                   help="default log driver option for containers (repeatable)")
    p.add_argument("--registry-mirror", action="append", dest="registry_mirrors", metavar="URL",
                   help="preferred registry mirror for docker.io (repeatable)")
    p.add_argument("--insecure-registry", action="append", dest="insecure_registries", metavar="HOST",
                   help="registry (host:port or CIDR) reached without TLS verification (repeatable)")
    p.add_argument("--max-concurrent-downloads", type=int, metavar="N",
                   help="layers a pull downloads at once (default 3)")
    p.add_argument("--max-concurrent-uploads", type=int, metavar="N",
                   help="layers a push uploads at once (default 5)")
    p.add_argument("--authorization-plugin", action="append", dest="authorization_plugins", metavar="PLUGIN",
                   help="authorization plugin to ask about every request (repeatable)")
    p.add_argument("--seccomp-profile", metavar="FILE",
                   help='path to seccomp profile; "unconfined" disables the default seccomp profile')
    p.add_argument("--signature-policy", metavar="FILE",
                   help="signature policy for pulls, containers-policy.json format (default /etc/berth/policy.json)")
    p.add_argument("--icc", type=_go_bool, nargs="?", const=True, metavar="BOOL",
                   help="allow traffic between containers on the default bridge (default true)")
    p.add_argument("--userland-proxy", type=_go_bool, nargs="?", const=True, metavar="BOOL",
                   help="relay IPv6 connections to published ports of IPv4-only containers (default true)")
    p.add_argument("--no-new-privileges", type=_go_bool, nargs="?", const=True, metavar="BOOL",
                   help="set no-new-privileges for new containers by default")
    p.add_argument("--default-ulimit", action="append", dest="default_ulimits", metavar="NAME=SOFT[:HARD]",
                   help="default ulimit for containers (repeatable)")
    p.add_argument("--userns-remap", metavar="USER[:GROUP]",
                   help='user/group for user namespaces ("default": the user dockremap, made if need be)')
    p.add_argument("--tls", nargs="?", const=True, type=_go_bool, metavar="BOOL",
                   help="use TLS; implied by --tlsverify (--tls=false: plain TCP, on purpose)")
    p.add_argument("--tlsverify", nargs="?", const=True, type=_go_bool, metavar="BOOL",
                   help="use TLS and verify the remote (clients need a certificate from --tlscacert)")
    p.add_argument("--tlscacert", metavar="FILE", help="trust certs signed only by this CA (default ca.pem)")
    p.add_argument("--tlscert", metavar="FILE", help="path to TLS certificate file (default cert.pem)")
    p.add_argument("--tlskey", metavar="FILE", help="path to TLS key file (default key.pem)")
    p.add_argument("-v", "--version", action="version", version=f"berthd version {__version__}")
    args = p.parse_args(argv)
    config = DaemonConfig()
    explicit_file = args.config_file is not None
    config.config_file = args.config_file or config.config_file
    from_file = _load_file(config.config_file, required=explicit_file)
    flags = {"hosts": args.hosts, "data_root": args.data_root, "exec_root": args.exec_root,
             "pidfile": args.pidfile, "log_level": args.log_level, "debug": args.debug,
             "live_restore": args.live_restore, "bridge": args.bridge,
             "storage_driver": args.storage_driver, "log_driver": args.log_driver,
             "seccomp_profile": args.seccomp_profile,
             "signature_policy": args.signature_policy,
             "icc": args.icc, "userland_proxy": args.userland_proxy, "no_new_privileges": args.no_new_privileges,
             "userns_remap": args.userns_remap,
             "tls": args.tls, "tlsverify": args.tlsverify, "tlscacert": args.tlscacert,
             "tlscert": args.tlscert, "tlskey": args.tlskey}
    for key, attr in _FILE_KEYS.items():
        if key in from_file:
            if key in _BOOL_KEYS and not isinstance(from_file[key], bool):
                raise ConfigError(f"unable to configure the daemon with file {config.config_file}: "
                                  f"{key} must be true or false, not {json.dumps(from_file[key])}")
            if flags[attr] is not None:
                raise ConfigError(f"the following directives are specified both as a flag and in the "
                                  f"configuration file: {key}: (from flag: {_shown(flags[attr])}, "
                                  f"from file: {_shown(from_file[key])})")
            setattr(config, attr, from_file[key])
    for attr, value in flags.items():
        if value is not None:
            setattr(config, attr, value)
    if args.exec_root and not args.pidfile and "pidfile" not in from_file:
        config.pidfile = os.path.join(config.exec_root, "berthd.pid")
    if config.debug:
        config.log_level = "debug"
    config.runtimes, config.default_runtime = _runtimes(from_file)
    config.log_opts = _log_opts(from_file, args.log_opts)
    _registry_options(config, from_file, args)
    config.authorization_plugins = _authorization_plugins(from_file, args.authorization_plugins)
    config.default_ulimits = _default_ulimits(from_file, args.default_ulimits)
    _tls_options(config, hosts_given=args.hosts is not None or "hosts" in from_file)
    _check_log_config(config.log_driver, config.log_opts)
    _seccomp_profile(config)
    if config.storage_driver not in ("", "overlay2", "vfs"):
        raise ConfigError(f"error initializing graphdriver: driver not supported: {config.storage_driver}")
    _check_signature_policy(config.signature_policy,
                            required=args.signature_policy is not None or "signature-policy" in from_file)
    config.data_root = os.path.abspath(config.data_root)
    config.exec_root = os.path.abspath(config.exec_root)
    return config


def _check_signature_policy(path: object, required: bool) -> None:
    """A policy named explicitly must exist; any policy must parse (its keys read)."""
    from berth.trust import policy

    if not isinstance(path, str) or not path:
        raise ConfigError("signature-policy in daemon.json must be a path")
    try:
        loaded = policy.load(path)
    except policy.PolicyError as e:
        raise ConfigError(str(e)) from None
    if loaded is None and required:
        raise ConfigError(f"unable to configure the daemon: open {path}: no such file or directory")


def _default_ulimits(doc: dict[str, object], flags: list[str] | None) -> list[tuple[str, int, int]]:
    """--default-ulimit NAME=SOFT[:HARD] or daemon.json's default-ulimits
    ({"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}), not both, as dockerd."""
    from berth.runtime import rlimits

    raw = doc.get("default-ulimits")
    if raw is not None and flags:
        raise ConfigError(f"the following directives are specified both as a flag and in the configuration "
                          f"file: default-ulimits: (from flag: [{' '.join(flags)}], from file: {json.dumps(raw)})")
    out: dict[str, tuple[str, int, int]] = {}
    try:
        for text in flags or []:
            limit = rlimits.parse_ulimit(text).as_docker()
            out[limit[0]] = limit
    except rlimits.UlimitError as e:
        raise ConfigError(f"invalid argument \"{text}\" for \"--default-ulimit\" flag: {e}") from None
    if raw is None:
        return list(out.values())
    if not isinstance(raw, dict):
        raise ConfigError("default-ulimits in daemon.json must be an object of {\"Name\", \"Soft\", \"Hard\"}")
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"default-ulimits in daemon.json: {name} must be an object of "
                              "{\"Name\", \"Soft\", \"Hard\"}")
        soft, hard = entry.get("Soft"), entry.get("Hard")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (soft, hard)):
            raise ConfigError(f"default-ulimits in daemon.json: {name} needs whole numbers Soft and Hard")
        assert isinstance(soft, int) and isinstance(hard, int)
        limit_name = entry.get("Name") or name
        try:
            limit = rlimits.parse_ulimit(f"{limit_name}={soft}:{hard}").as_docker()
        except rlimits.UlimitError as e:
            raise ConfigError(f"default-ulimits in daemon.json: {e}") from None
        out[limit[0]] = limit
    return list(out.values())


def _tls_options(config: DaemonConfig, hosts_given: bool) -> None:
    """dockerd's rules: --tlsverify (true or false) turns TLS on; --tls alone also
    verifies clients unless --tlsverify=false; with TLS and no -H the daemon listens
    on tcp://localhost:2376."""
    for key in ("tls", "tlsverify"):
        if getattr(config, key) is not None and not isinstance(getattr(config, key), bool):
            raise ConfigError(f"{key} in daemon.json must be a boolean")
    for key in ("tlscacert", "tlscert", "tlskey"):
        if not isinstance(getattr(config, key), str):
            raise ConfigError(f"{key} in daemon.json must be a string")
    if config.tlsverify is not None:
        config.tls = True
    elif config.tls is not None:
        config.tlsverify = config.tls
    cert_dir = default_cert_dir()
    config.tlscacert = config.tlscacert or os.path.join(cert_dir, "ca.pem")
    config.tlscert = config.tlscert or os.path.join(cert_dir, "cert.pem")
    config.tlskey = config.tlskey or os.path.join(cert_dir, "key.pem")
    if config.tls and not hosts_given:
        config.hosts = [_TLS_DEFAULT_HOST]


def _authorization_plugins(doc: dict[str, object], flag: list[str] | None) -> list[str]:
    """--authorization-plugin or daemon.json's authorization-plugins (not both, as dockerd)."""
    raw = doc.get("authorization-plugins")
    if raw is not None and flag:
        raise ConfigError(f"the following directives are specified both as a flag and in the configuration "
                          f"file: authorization-plugins: (from flag: {flag}, from file: {raw})")
    values = flag or raw or []
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError("authorization-plugins in daemon.json must be a list of strings")
    return list(values)


def _registry_options(config: DaemonConfig, doc: dict[str, object], args: argparse.Namespace) -> None:
    """registry-mirrors, insecure-registries, max-concurrent-downloads/uploads: from the
    flags or daemon.json (not both, as dockerd)."""
    for key, attr in (("registry-mirrors", "registry_mirrors"), ("insecure-registries", "insecure_registries")):
        flag = getattr(args, attr)
        raw = doc.get(key)
        if raw is not None and flag:
            raise ConfigError(f"the following directives are specified both as a flag and in the "
                              f"configuration file: {key}: (from flag: {flag}, from file: {raw})")
        values = flag or raw or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"{key} in daemon.json must be a list of strings")
        setattr(config, attr, list(values))
    for mirror in config.registry_mirrors:
        scheme, sep, rest = mirror.partition("://")
        if not sep or scheme not in ("http", "https") or not rest.strip("/"):
            raise ConfigError(f"invalid mirror: unsupported scheme {scheme!r} in {mirror!r}" if sep
                              else f"invalid mirror: no scheme specified for {mirror!r}: must use either "
                                   "'https://' or 'http://'")
    for key, attr in (("max-concurrent-downloads", "max_concurrent_downloads"),
                      ("max-concurrent-uploads", "max_concurrent_uploads")):
        flag = getattr(args, attr)
        raw = doc.get(key)
        if raw is not None and flag is not None:
            raise ConfigError(f"the following directives are specified both as a flag and in the "
                              f"configuration file: {key}: (from flag: {flag}, from file: {raw})")
        value = flag if flag is not None else raw
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"invalid {key}: {value} (it must be a whole number of at least 1)")
        setattr(config, attr, value)


def _seccomp_profile(config: DaemonConfig) -> None:
    """--seccomp-profile / daemon.json seccomp-profile: "" or "builtin" is berth's default,
    "unconfined" none; anything else names a file, read now as dockerd reads it (its
    content is decoded, as dockerd decodes it, when a container starts)."""
    profile = config.seccomp_profile
    if not isinstance(profile, str):
        raise ConfigError("seccomp-profile in daemon.json must be a string")
    if profile in ("", "builtin", "unconfined"):
        config.seccomp_profile = profile or "builtin"
        return
    try:
        with open(profile, encoding="utf-8", errors="surrogateescape") as f:
            config.seccomp_profile_text = f.read()
    except OSError as e:
        raise ConfigError(f"opening seccomp profile ({profile}) failed: open {profile}: "
                          f"{(e.strerror or str(e)).lower()}") from None


def _runtimes(doc: dict[str, object]) -> tuple[dict[str, str], str]:
    """daemon.json's `runtimes` ({"crun": {"path": "/usr/bin/crun"}}) and `default-runtime`."""
    runtimes: dict[str, str] = {}
    raw = doc.get("runtimes") or {}
    if not isinstance(raw, dict):
        raise ConfigError("runtimes in daemon.json must be an object")
    for name, entry in raw.items():
        if name in ("berth",):
            raise ConfigError(f"runtime name '{name}' is reserved")
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ConfigError(f"runtime {name} in daemon.json needs a path")
        runtimes[name] = entry["path"]
    default = doc.get("default-runtime") or "berth"
    if not isinstance(default, str):
        raise ConfigError("default-runtime in daemon.json must be a string")
    return runtimes, default


def _log_opts(doc: dict[str, object], flags: list[str] | None) -> dict[str, str]:
    """daemon.json's `log-opts` or the `--log-opt` flags (not both, as dockerd)."""
    raw = doc.get("log-opts")
    if raw is not None and flags:
        raise ConfigError("the following directives are specified both as a flag and in the configuration "
                          f"file: log-opts: (from flag: [{' '.join(flags)}], from file: {raw})")
    if flags:
        out = {}
        for item in flags:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"invalid --log-opt {item!r}: it must be KEY=VALUE")
            out[key] = value
        return out
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("log-opts in daemon.json must be an object of strings")
    return {str(k): v for k, v in raw.items()}


def _check_log_config(driver: object, opts: dict[str, str]) -> None:
    from berth.errors import InvalidParameter
    from berth.logs import drivers

    if not isinstance(driver, str) or not driver:
        raise ConfigError("log-driver in daemon.json must be a string")
    try:
        drivers.validate(driver, opts)
    except InvalidParameter as e:
        raise ConfigError(f"failed to set the default log driver: {e}") from None


def _load_file(path: str, required: bool) -> dict[str, object]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"unable to configure the daemon: open {path}: no such file or directory") from None
        return {}
    except ValueError as e:
        raise ConfigError(f"unable to configure the daemon with file {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"unable to configure the daemon with file {path}: not a JSON object")
    unknown = set(doc) - set(_FILE_KEYS) - {"runtimes", "default-runtime", "log-opts",
                                              "bip", "dns", "registry-mirrors",
                                              "insecure-registries", "max-concurrent-downloads",
                                              "max-concurrent-uploads", "features", "iptables",
                                              "authorization-plugins",
                                              "default-ulimits"}
    if unknown:
        raise ConfigError(f"the following directives don't match any configuration option: {', '.join(sorted(unknown))}")
    return doc
