"""``berth version``, ``berth info``, ``berth inspect`` and ``berth system …``."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

from berth.cli.container import FORMAT_HELP, INSPECT_FORMAT_HELP
from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.cli.formatting import bytes_size, human_size, tabwrite
from berth.cli.inspect import (
    fetch,
    go_value,
    inspect_objects,
    is_skippable,
    typed_container,
    typed_image,
)
from berth.cli.prune import print_reclaimed, prune_section
from berth.client.engine import (
    API_VERSION,
    CLIENT_VERSION,
    ClientError,
    DaemonUnreachable,
    filters_json,
    path_escape,
)
from berth.template.gotemplate import GoStruct, Template, TemplateError, func

VERSION_TEMPLATE = """{{with .Client -}}
Client:{{if ne .Platform nil}}{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}{{end}}
 Version:\t{{.Version}}
 API version:\t{{.APIVersion}}{{if ne .APIVersion .DefaultAPIVersion}} (downgraded from {{.DefaultAPIVersion}}){{end}}
 Go version:\t{{.GoVersion}}
 Git commit:\t{{.GitCommit}}
 Built:\t{{.BuildTime}}
 OS/Arch:\t{{.Os}}/{{.Arch}}
 Context:\t{{.Context}}
{{- end}}

{{- if ne .Server nil}}{{with .Server}}

Server:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}
 {{- range $component := .Components}}
 {{$component.Name}}:
  {{- if eq $component.Name "Engine" }}
  Version:\t{{.Version}}
  API version:\t{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:\t{{index .Details "GoVersion"}}
  Git commit:\t{{index .Details "GitCommit"}}
  Built:\t{{index .Details "BuildTime"}}
  OS/Arch:\t{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:\t{{index .Details "Experimental"}}
  {{- else }}
  Version:\t{{$component.Version}}
  {{- $detailsOrder := getDetailsOrder $component}}
  {{- range $key := $detailsOrder}}
  {{$key}}:\t{{index $component.Details $key}}
   {{- end}}
  {{- end}}
 {{- end}}
 {{- end}}{{- end}}"""


def _ansic(ts: float) -> str:
    """Go's time.ANSIC layout: "Mon Jan _2 15:04:05 2006"."""
    t = time.localtime(ts)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:>2}" + time.strftime(" %H:%M:%S %Y", t)


def _reformat_date(text: str) -> str:
    from berth.cli.formatting import parse_rfc3339

    ts = parse_rfc3339(text) if text else None
    if ts is None:
        return text
    t = time.gmtime(ts) if text.endswith("Z") else time.localtime(ts)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:>2}" + time.strftime(" %H:%M:%S %Y", t)


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}.get(
        machine, machine
    )


def _build_time() -> str:
    try:
        return _ansic(os.stat(__file__).st_mtime)
    except OSError:
        return ""


def client_version(api_version: str, context: str = "default") -> GoStruct:
    info = GoStruct(
        Platform=None,
        Version=CLIENT_VERSION,
        ApiVersion=api_version,
        DefaultAPIVersion=API_VERSION,
        GitCommit="unknown",
        GoVersion="python" + platform.python_version(),
        Os=sys.platform if sys.platform != "linux" else "linux",
        Arch=_arch(),
        BuildTime=_build_time(),
        Context=context,
    )
    info.aliases = {"APIVersion": "ApiVersion"}
    info.omitempty = frozenset(
        {"Platform", "Version", "ApiVersion", "DefaultAPIVersion", "GitCommit", "GoVersion", "Os", "Arch", "BuildTime"}
    )
    return info


def run_version(cli: CliContext, flags: ParsedFlags) -> int:
    fmt = flags["format"]
    text = VERSION_TEMPLATE if not fmt else ("{{json .}}" if fmt == "json" else fmt)
    funcs = {"getDetailsOrder": func(lambda c: sorted((c.get("Details") or {}).keys()), "any")}
    try:
        tmpl = Template(text, funcs, name="version")
    except TemplateError as exc:
        raise CliExit(f"template parsing error: {exc}", 64) from None
    error: ClientError | None = None
    server: Any = None
    try:
        api_version = cli.client.version
        data = cli.client.get_json("/version")
        server = _server_version(data)
    except ClientError as exc:
        error = exc
        api_version = API_VERSION
    data_root = GoStruct(Client=client_version(api_version), Server=server)
    data_root.type_name = "system.versionInfo"
    partial: list[str] = []
    exec_error = ""
    try:
        tmpl.execute(data_root, partial)
    except TemplateError as exc:
        exec_error = str(exc)
    cli.out(tabwrite("".join(partial) + "\n", minwidth=20, padding=1), end="")
    if error is not None:
        raise CliExit(str(error), 1)
    if exec_error:
        raise CliExit(exec_error, 1)
    return 0


def _server_version(data: Any) -> GoStruct:
    if not isinstance(data, dict):
        data = {}
    server = go_value(data)
    assert isinstance(server, GoStruct)
    server.aliases = {"APIVersion": "ApiVersion"}
    server.setdefault("Platform", GoStruct(Name=""))
    if not isinstance(server.get("Platform"), GoStruct):
        server["Platform"] = GoStruct(Name="")
    components = list(server.get("Components") or [])
    found = False
    for comp in components:
        if isinstance(comp, GoStruct) and comp.get("Name") == "Engine":
            found = True
            details = comp.get("Details")
            if isinstance(details, dict) and "BuildTime" in details:
                details = dict(details)
                details["BuildTime"] = _reformat_date(str(details["BuildTime"]))
                comp["Details"] = details
    if not found:
        components.append(
            GoStruct(
                Name="Engine",
                Version=data.get("Version", ""),
                Details={
                    "ApiVersion": data.get("ApiVersion", ""),
                    "MinAPIVersion": data.get("MinAPIVersion", ""),
                    "GitCommit": data.get("GitCommit", ""),
                    "GoVersion": data.get("GoVersion", ""),
                    "Os": data.get("Os", ""),
                    "Arch": data.get("Arch", ""),
                    "BuildTime": _reformat_date(str(data.get("BuildTime", ""))),
                    "Experimental": "true" if data.get("Experimental") else "false",
                },
            )
        )
    for comp in components:
        if isinstance(comp, GoStruct):
            details = comp.get("Details")
            comp["Details"] = dict(details) if isinstance(details, dict) else {}
    server["Components"] = components
    return server


# --------------------------------------------------------------------------
# info


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


def _println(out: list[str], *parts: Any) -> None:
    out.append(" ".join(_go_bool(p) if isinstance(p, bool) else str(p) for p in parts) + "\n")


def _println_nonempty(out: list[str], label: str, value: Any) -> None:
    if value:
        out.append(f"{label} {value}\n")


def run_info(cli: CliContext, flags: ParsedFlags) -> int:
    fmt = flags["format"]
    version = client_version(API_VERSION)
    client_info = GoStruct(Debug=cli.debug)
    for key in ("Version", "DefaultAPIVersion", "GitCommit", "GoVersion", "Os", "Arch", "BuildTime", "Context"):
        client_info[key] = version[key]
    client_info["Plugins"] = []
    client_info["Warnings"] = None
    if fmt:
        return _format_info(cli, fmt, client_info)
    out: list[str] = []
    out.append("Client:\n")
    _println_nonempty(out, " Version:   ", CLIENT_VERSION)
    _println(out, " Context:   ", "default")
    _println(out, " Debug Mode:", cli.debug)
    out.append("\nServer:\n")
    try:
        info = cli.client.get_json("/info") or {}
    except ClientError as exc:
        cli.out("".join(out), end="")
        raise CliExit(str(exc), 1) from None
    warnings = _pretty_server_info(out, info, cli.debug)
    cli.out("".join(out), end="")
    for warning in warnings:
        cli.err(warning)
    return 0


def _pretty_server_info(out: list[str], info: dict[str, Any], client_debug: bool) -> list[str]:
    g = info.get
    _println(out, " Containers:", g("Containers", 0))
    _println(out, "  Running:", g("ContainersRunning", 0))
    _println(out, "  Paused:", g("ContainersPaused", 0))
    _println(out, "  Stopped:", g("ContainersStopped", 0))
    _println(out, " Images:", g("Images", 0))
    _println_nonempty(out, " Server Version:", g("ServerVersion"))
    _println_nonempty(out, " Storage Driver:", g("Driver"))
    for pair in g("DriverStatus") or []:
        out.append(f"  {pair[0]}: {pair[1]}\n")
    for pair in g("SystemStatus") or []:
        out.append(f" {pair[0]}: {pair[1]}\n")
    _println_nonempty(out, " Logging Driver:", g("LoggingDriver"))
    _println_nonempty(out, " Cgroup Driver:", g("CgroupDriver"))
    _println_nonempty(out, " Cgroup Version:", g("CgroupVersion"))
    plugins = g("Plugins") or {}
    _println(out, " Plugins:")
    _println(out, "  Volume:", " ".join(plugins.get("Volume") or []))
    _println(out, "  Network:", " ".join(plugins.get("Network") or []))
    if plugins.get("Authorization"):
        _println(out, "  Authorization:", " ".join(plugins["Authorization"]))
    _println(out, "  Log:", " ".join(plugins.get("Log") or []))
    if g("CDISpecDirs"):
        _println(out, " CDI spec directories:")
        for d in g("CDISpecDirs") or []:
            out.append(f"  {d}\n")
    swarm = g("Swarm") or {}
    state = swarm.get("LocalNodeState", "inactive")
    _println(out, " Swarm:", state)
    if state not in ("inactive", "locked"):
        _println(out, "  NodeID:", swarm.get("NodeID", ""))
        if swarm.get("Error"):
            _println(out, "  Error:", swarm["Error"])
        _println(out, "  Is Manager:", bool(swarm.get("ControlAvailable")))
        cluster = swarm.get("Cluster")
        if cluster and swarm.get("ControlAvailable") and not swarm.get("Error") and state != "error":
            _println(out, "  ClusterID:", cluster.get("ID", ""))
            _println(out, "  Managers:", swarm.get("Managers", 0))
            _println(out, "  Nodes:", swarm.get("Nodes", 0))
            pools = cluster.get("DefaultAddrPool")
            if pools:
                _println(out, "  Default Address Pool:", "".join(p + "  " for p in pools))
                _println(out, "  SubnetSize:", cluster.get("SubnetSize", 0))
            if cluster.get("DataPathPort"):
                _println(out, "  Data Path Port:", cluster["DataPathPort"])
            spec = cluster.get("Spec") or {}
            _println(out, "  Orchestration:")
            _println(
                out,
                "   Task History Retention Limit:",
                (spec.get("Orchestration") or {}).get("TaskHistoryRetentionLimit") or 0,
            )
            raft = spec.get("Raft") or {}
            _println(out, "  Raft:")
            _println(out, "   Snapshot Interval:", raft.get("SnapshotInterval", 0))
            if raft.get("KeepOldSnapshots") is not None:
                out.append(f"   Number of Old Snapshots to Retain: {raft['KeepOldSnapshots']}\n")
            _println(out, "   Heartbeat Tick:", raft.get("HeartbeatTick", 0))
            _println(out, "   Election Tick:", raft.get("ElectionTick", 0))
            from berth.cli.formatting import human_duration

            dispatcher = spec.get("Dispatcher") or {}
            _println(out, "  Dispatcher:")
            _println(out, "   Heartbeat Period:", human_duration((dispatcher.get("HeartbeatPeriod") or 0) / 1e9))
            ca = spec.get("CAConfig") or {}
            _println(out, "  CA Configuration:")
            _println(out, "   Expiry Duration:", human_duration((ca.get("NodeCertExpiry") or 0) / 1e9))
            _println(out, "   Force Rotate:", ca.get("ForceRotate", 0))
            if ca.get("ExternalCAs"):
                _println(out, "   External CAs:")
                for entry in ca["ExternalCAs"]:
                    out.append(f"     {entry.get('Protocol', '')}: {entry.get('URL', '')}\n")
            _println(
                out, "  Autolock Managers:", bool((spec.get("EncryptionConfig") or {}).get("AutoLockManagers"))
            )
            _println(out, "  Root Rotation In Progress:", bool(cluster.get("RootRotationInProgress")))
        _println(out, "  Node Address:", swarm.get("NodeAddr", ""))
        managers = sorted(m.get("Addr", "") for m in swarm.get("RemoteManagers") or [])
        if managers:
            _println(out, "  Manager Addresses:")
            for addr in managers:
                out.append(f"   {addr}\n")
    runtimes = g("Runtimes") or {}
    if runtimes:
        _println(out, " Runtimes:", " ".join(runtimes.keys()))
        _println(out, " Default Runtime:", g("DefaultRuntime", ""))
    if g("OSType") == "linux":
        _println(out, " Init Binary:", g("InitBinary", ""))
        _println(out, " containerd version:", (g("ContainerdCommit") or {}).get("ID", ""))
        _println(out, " runc version:", (g("RuncCommit") or {}).get("ID", ""))
        _println(out, " init version:", (g("InitCommit") or {}).get("ID", ""))
        opts = g("SecurityOptions") or []
        if opts:
            _println(out, " Security Options:")
            for opt in opts:
                fields = dict(part.split("=", 1) for part in opt.split(",") if "=" in part)
                name = fields.get("name", opt)
                _println(out, "  " + name)
                if "profile" in fields:
                    _println(out, "   Profile:", fields["profile"])
    _println_nonempty(out, " Kernel Version:", g("KernelVersion"))
    _println_nonempty(out, " Operating System:", g("OperatingSystem"))
    _println_nonempty(out, " OSType:", g("OSType"))
    _println_nonempty(out, " Architecture:", g("Architecture"))
    _println(out, " CPUs:", g("NCPU", 0))
    _println(out, " Total Memory:", bytes_size(float(g("MemTotal") or 0)))
    _println_nonempty(out, " Name:", g("Name"))
    _println_nonempty(out, " ID:", g("ID"))
    _println(out, " Docker Root Dir:", g("DockerRootDir", ""))
    _println(out, " Debug Mode:", bool(g("Debug")))
    if g("Debug") or client_debug:
        _println(out, "  File Descriptors:", g("NFd", 0))
        _println(out, "  Goroutines:", g("NGoroutines", 0))
        _println(out, "  System Time:", g("SystemTime", ""))
        _println(out, "  EventsListeners:", g("NEventsListener", 0))
    _println_nonempty(out, " HTTP Proxy:", g("HttpProxy"))
    _println_nonempty(out, " HTTPS Proxy:", g("HttpsProxy"))
    _println_nonempty(out, " No Proxy:", g("NoProxy"))
    if g("Labels"):
        _println(out, " Labels:")
        for label in g("Labels") or []:
            _println(out, "  " + label)
    _println(out, " Experimental:", bool(g("ExperimentalBuild")))
    registry = g("RegistryConfig") or {}
    index_configs = registry.get("IndexConfigs") or {}
    cidrs = registry.get("InsecureRegistryCIDRs") or []
    if cidrs or index_configs:
        _println(out, " Insecure Registries:")
        for conf in index_configs.values():
            if not conf.get("Secure"):
                _println(out, "  " + conf.get("Name", ""))
        for cidr in cidrs:
            out.append(f"  {cidr}\n")
    if registry.get("Mirrors"):
        _println(out, " Registry Mirrors:")
        for mirror in registry["Mirrors"]:
            _println(out, "  " + mirror)
    _println(out, " Live Restore Enabled:", bool(g("LiveRestoreEnabled")))
    if g("ProductLicense"):
        _println(out, " Product License:", g("ProductLicense"))
    pools = g("DefaultAddressPools") or []
    if pools:
        _println(out, " Default Address Pools:")
        for pool in pools:
            out.append(f"   Base: {pool.get('Base', '')}, Size: {pool.get('Size', 0)}\n")
    out.append("\n")
    return [str(w) for w in g("Warnings") or []]


def _format_info(cli: CliContext, fmt: str, client_info: GoStruct) -> int:
    text = "{{json .}}" if fmt == "json" else fmt
    try:
        tmpl = Template(text)
    except TemplateError as exc:
        raise CliExit(f"template parsing error: {exc}", 64) from None
    needs_server = fmt in ("json", "{{json .}}") or "." not in fmt
    data: GoStruct
    conn_error: ClientError | None = None
    if not needs_server:
        try:
            tmpl.execute(GoStruct(ClientInfo=client_info))
        except TemplateError:
            needs_server = True
    server: Any = GoStruct()
    if needs_server:
        try:
            server = go_value(cli.client.get_json("/info") or {})
        except DaemonUnreachable as exc:
            conn_error = exc
        except ClientError as exc:
            cli.err(str(exc))
    data = GoStruct(server if isinstance(server, GoStruct) else {})
    data["ClientInfo"] = client_info
    data["ClientErrors"] = None
    data.type_name = "system.dockerInfo"
    exec_error = ""
    partial: list[str] = []
    try:
        tmpl.execute(data, partial)
    except TemplateError as exc:
        exec_error = str(exc)
    cli.out("".join(partial))
    if conn_error is not None:
        raise CliExit(str(conn_error), 1)
    if exec_error:
        raise CliExit(exec_error, 1)
    return 0


# --------------------------------------------------------------------------
# inspect (any object type)

ALL_TYPES = ["config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume"]


def run_system_inspect(cli: CliContext, flags: ParsedFlags) -> int:
    kind = flags["type"]
    if kind and kind not in ALL_TYPES:
        raise CliExit(f'unknown type: "{kind}": must be one of "' + '", "'.join(ALL_TYPES) + '"', 1)
    size = flags["size"]
    swarm_state: dict[str, bool] = {}

    def is_manager() -> bool:
        if "manager" not in swarm_state:
            try:
                info = cli.client.get_json("/info") or {}
                swarm_state["manager"] = bool((info.get("Swarm") or {}).get("ControlAvailable"))
            except ClientError as exc:
                cli.err(str(exc))
                swarm_state["manager"] = False
        return swarm_state["manager"]

    inspectors: list[tuple[str, bool, Any]] = [
        ("container", False, lambda r: fetch(cli, f"/containers/{path_escape(r)}/json", typed_container,
                                             {"size": 1} if size else None)),
        ("image", False, lambda r: fetch(cli, f"/images/{path_escape(r)}/json", typed_image)),
        ("network", False, lambda r: fetch(cli, f"/networks/{path_escape(r)}")),
        ("volume", False, lambda r: fetch(cli, f"/volumes/{path_escape(r)}")),
        ("service", True, lambda r: fetch(cli, f"/services/{path_escape(r)}", params={"insertDefaults": 1})),
        ("task", True, lambda r: fetch(cli, f"/tasks/{path_escape(r)}")),
        ("node", True, lambda r: fetch(cli, f"/nodes/{path_escape(r)}")),
        ("plugin", False, lambda r: fetch(cli, f"/plugins/{path_escape(r)}/json")),
        ("secret", True, lambda r: fetch(cli, f"/secrets/{path_escape(r)}")),
        ("config", True, lambda r: fetch(cli, f"/configs/{path_escape(r)}")),
    ]

    def getter(ref: str) -> tuple[Any, str]:
        for name, is_swarm, inspector in inspectors:
            if kind and name != kind:
                continue
            if not kind and is_swarm and not is_manager():
                continue
            try:
                result: tuple[Any, str] = inspector(ref)
            except ClientError as exc:
                if not kind and is_skippable(exc):
                    continue
                raise
            if size and name != "container":
                cli.err(f"WARNING: --size ignored for {name}")
            return result
        raise ClientError(f"Error: No such object: {ref}")

    return inspect_objects(cli, flags.args, flags["format"], getter)


# --------------------------------------------------------------------------
# events


def run_events(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.cli.container import get_timestamp
    from berth.client.engine import iter_json_stream

    params: dict[str, Any] = {
        "since": get_timestamp(flags["since"]) if flags["since"] else None,
        "until": get_timestamp(flags["until"]) if flags["until"] else None,
        "filters": filters_json(flags["filter"]),
    }
    fmt = flags["format"]
    tmpl: Template | None = None
    if fmt:
        try:
            tmpl = Template("{{json .}}" if fmt == "json" else fmt)
        except TemplateError as exc:
            raise CliExit(f"template parsing error: {exc}", 64) from None
    resp = cli.client.request("GET", "/events", params)
    try:
        for event in iter_json_stream(resp.iter_chunks()):
            if tmpl is not None:
                try:
                    cli.out(tmpl.execute(go_value(event)))
                except TemplateError as exc:
                    raise CliExit(str(exc), 1) from None
            else:
                cli.out(_event_line(event))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    return 0


def _event_line(event: dict[str, Any]) -> str:
    nanos = event.get("timeNano") or int(event.get("time", 0)) * 10**9
    secs, frac = divmod(int(nanos), 10**9)
    t = time.localtime(secs)
    zone = time.strftime("%z", t)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}" + zone[:3] + ":" + zone[3:]
    actor = event.get("Actor") or {}
    line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


# --------------------------------------------------------------------------
# system df / prune


def run_df(cli: CliContext, flags: ParsedFlags) -> int:
    data = cli.client.get_json("/system/df") or {}
    images = data.get("Images") or []
    containers = data.get("Containers") or []
    volumes = data.get("Volumes") or []
    cache = data.get("BuildCache") or []
    rows: list[str] = ["TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE"]

    def pct(part: float, whole: float) -> str:
        return f" ({int(part * 100 / whole)}%)" if whole else ""

    img_size = float(data.get("LayersSize") or sum(i.get("Size", 0) for i in images))
    active_imgs = [i for i in images if (i.get("Containers") or 0) > 0]
    img_reclaim = img_size - sum(float(i.get("Size", 0)) for i in active_imgs)
    rows.append(
        f"Images\t{len(images)}\t{len(active_imgs)}\t{human_size(img_size)}\t"
        f"{human_size(max(img_reclaim, 0))}{pct(max(img_reclaim, 0), img_size)}"
    )
    ctr_size = float(sum(c.get("SizeRw", 0) or 0 for c in containers))
    running = [c for c in containers if c.get("State") == "running"]
    ctr_reclaim = ctr_size - float(sum(c.get("SizeRw", 0) or 0 for c in running))
    rows.append(
        f"Containers\t{len(containers)}\t{len(running)}\t{human_size(ctr_size)}\t"
        f"{human_size(ctr_reclaim)}{pct(ctr_reclaim, ctr_size)}"
    )
    vol_size = float(sum(((v.get("UsageData") or {}).get("Size") or 0) for v in volumes))
    active_vols = [v for v in volumes if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0]
    vol_reclaim = vol_size - float(sum(((v.get("UsageData") or {}).get("Size") or 0) for v in active_vols))
    rows.append(
        f"Local Volumes\t{len(volumes)}\t{len(active_vols)}\t{human_size(vol_size)}\t"
        f"{human_size(vol_reclaim)}{pct(vol_reclaim, vol_size)}"
    )
    cache_size = float(sum(c.get("Size", 0) for c in cache))
    active_cache = [c for c in cache if c.get("InUse")]
    rows.append(f"Build Cache\t{len(cache)}\t{len(active_cache)}\t{human_size(cache_size)}\t{human_size(cache_size)}")
    cli.out(tabwrite("\n".join(rows) + "\n", minwidth=10, padding=3), end="")
    return 0


# --------------------------------------------------------------------------
# command table


def make_version() -> Command:
    cmd = Command(
        "version",
        use="version [OPTIONS]",
        short="Show the berth version information",
        run=run_version,
        args=("none", 0, 0),
        category="top",
        order=10,
    )
    cmd.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)
    return cmd


def make_info(name: str = "info") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS]",
        short="Display system-wide information",
        run=run_info,
        aliases_text="berth system info, berth info",
        args=("none", 0, 0),
        category="top",
        order=12,
    )
    cmd.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)
    return cmd


def make_inspect() -> Command:
    cmd = Command(
        "inspect",
        use="inspect [OPTIONS] NAME|ID [NAME|ID...]",
        short="Return low-level information on berth objects",
        run=run_system_inspect,
        args=("min", 1, 0),
    )
    cmd.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)
    cmd.flags.add("size", "s", "bool", "Display total file sizes if the type is container")
    cmd.flags.add("type", "", "string", "Only inspect objects of the given type")
    return cmd


def make_events(name: str = "events") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS]",
        short="Get real time events from the server",
        run=run_events,
        aliases_text="berth system events, berth events",
        args=("none", 0, 0),
    )
    cmd.flags.add("filter", "f", "filter", "Filter output based on conditions provided")
    cmd.flags.add("format", "", "string", INSPECT_FORMAT_HELP)
    cmd.flags.add("since", "", "string", "Show all events created since timestamp")
    cmd.flags.add("until", "", "string", "Stream events until this timestamp")
    return cmd


def system_command() -> Command:
    group = Command("system", short="Manage berth", category="management")
    df = Command("df", use="df [OPTIONS]", short="Show docker disk usage", run=run_df, args=("none", 0, 0))
    df.flags.add("format", "", "string", FORMAT_HELP)
    df.flags.add("verbose", "v", "bool", "Show detailed information on space usage")
    group.add(df, make_events(), make_info(), make_system_prune())
    for sub in group.subcommands:
        sub.category = ""
    return group


def top_level_commands() -> list[Command]:
    return [make_events(), make_info(), make_inspect(), make_version()]



# --------------------------------------------------------------------------
# system prune


def _prune_section(cli: CliContext, path: str, filters: list[tuple[str, str]], key: str, title: str) -> int:
    return int(prune_section(cli, path, filters, key, title))


def run_system_prune(cli: CliContext, flags: ParsedFlags) -> int:
    filters = list(flags["filter"])
    if flags["volumes"] and any(k == "until" for k, _ in filters):
        raise CliExit('ERROR: The "until" filter is not supported with "--volumes"', 1)
    if not flags["force"]:
        warnings = ["all stopped containers", "all networks not used by at least one container"]
        if flags["volumes"]:
            warnings.append("all anonymous volumes not used by at least one container")
        warnings.append(
            "all images without at least one container associated to them" if flags["all"] else "all dangling images"
        )
        warnings.append("all build cache" if flags["all"] else "unused build cache")
        text = "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in warnings)
        shown = sorted(f"{k}={v}" for k, v in filters if k in ("label", "label!", "until"))
        if shown:
            text += "\n  Items to be pruned will be filtered with:\n" + "".join(f"  - {f}\n" for f in shown)
        if not cli.confirm(text):
            return 0  # docker treats the refusal as a cancellation: no message, exit 0
    space = _prune_section(cli, "/containers/prune", filters, "ContainersDeleted", "Deleted Containers")
    space += _prune_section(cli, "/networks/prune", filters, "NetworksDeleted", "Deleted Networks")
    if flags["volumes"]:
        space += _prune_section(cli, "/volumes/prune", filters, "VolumesDeleted", "Deleted Volumes")
    image_filters = filters + ([("dangling", "false")] if flags["all"] else [])
    space += _prune_section(cli, "/images/prune", image_filters, "ImagesDeleted", "Deleted Images")
    try:
        body = cli.client.post_json("/build/prune", {"all": flags["all"] or None, "filters": filters_json(filters)})
        cached = (body or {}).get("CachesDeleted") or []
        if cached:
            cli.out("Deleted build cache objects:\n" + "\n".join(cached) + "\n")
        space += int((body or {}).get("SpaceReclaimed") or 0)
    except ClientError:
        pass  # a daemon without a build cache has nothing to prune
    print_reclaimed(cli, space)
    return 0


def make_system_prune() -> Command:
    cmd = Command("prune", use="prune [OPTIONS]", short="Remove unused data", run=run_system_prune,
                  args=("none", 0, 0))
    cmd.flags.add("all", "a", "bool", "Remove all unused images not just dangling ones")
    cmd.flags.add("filter", "", "filter", 'Provide filter values (e.g. "label=<key>=<value>")')
    cmd.flags.add("force", "f", "bool", "Do not prompt for confirmation")
    cmd.flags.add("volumes", "", "bool", "Prune anonymous volumes")
    return cmd
