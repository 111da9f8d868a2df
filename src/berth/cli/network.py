"""``berth network …`` and ``berth volume …``: create, ls, inspect, rm, prune, connect."""

from __future__ import annotations

import re
from typing import Any

from berth.cli.container import FORMAT_HELP, INSPECT_FORMAT_HELP, for_each_ref
from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.cli.formatting import human_size, render_rows, truncate_id
from berth.cli.inspect import fetch, inspect_objects
from berth.cli.prune import print_reclaimed, prune_section
from berth.client.engine import APIError, ClientError, filters_json, path_escape
from berth.template.gotemplate import TemplateError


def natural_key(text: str) -> list[Any]:
    """sortorder.NaturalLess: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def _kv(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return ""
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))


# --------------------------------------------------------------------------
# networks


class NetworkContext:
    template_type = "*network.networkContext"
    HEADER = {
        "ID": "NETWORK ID",
        "Name": "NAME",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "IPv4": "IPV4",
        "IPv6": "IPV6",
        "Internal": "INTERNAL",
        "Labels": "LABELS",
        "CreatedAt": "CREATED AT",
    }

    def __init__(self, net: dict[str, Any], trunc: bool) -> None:
        self.n = net
        self.trunc = trunc

    def ID(self) -> str:
        ident = str(self.n.get("Id") or "")
        return truncate_id(ident) if self.trunc else ident

    def Name(self) -> str:
        return str(self.n.get("Name") or "")

    def Driver(self) -> str:
        return str(self.n.get("Driver") or "")

    def Scope(self) -> str:
        return str(self.n.get("Scope") or "")

    def IPv4(self) -> str:
        return "true" if self.n.get("EnableIPv4", True) else "false"

    def IPv6(self) -> str:
        return "true" if self.n.get("EnableIPv6") else "false"

    def Internal(self) -> str:
        return "true" if self.n.get("Internal") else "false"

    def Labels(self) -> str:
        return _labels(self.n.get("Labels"))

    def Label(self, name: str) -> str:
        return str((self.n.get("Labels") or {}).get(name, ""))

    def CreatedAt(self) -> str:
        from berth.cli.formatting import go_time_rfc3339

        return go_time_rfc3339(str(self.n.get("Created") or ""))

    def template_json(self) -> dict[str, Any]:
        return {k: getattr(self, k)() for k in self.HEADER}


def run_network_ls(cli: CliContext, flags: ParsedFlags) -> int:
    nets = cli.client.get_json("/networks", {"filters": filters_json(flags["filter"])}) or []
    nets.sort(key=lambda n: natural_key(str(n.get("Name") or "")))
    fmt = flags["format"] or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if flags["quiet"] else "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    elif fmt == "raw":
        fmt = "network_id: {{.ID}}" if flags["quiet"] else (
            "network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n"
        )
    rows = [NetworkContext(n, not flags["no-trunc"]) for n in nets]
    try:
        cli.out(render_rows(fmt, rows, NetworkContext.HEADER), end="")
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None
    return 0


def _ipam_config(flags: ParsedFlags) -> list[dict[str, Any]]:
    import ipaddress

    subnets: list[str] = flags["subnet"]
    if len(subnets) < len(flags["ip-range"]) or len(subnets) < len(flags["gateway"]):
        raise CliExit("every ip-range or gateway must have a corresponding subnet", 1)
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        try:
            net = ipaddress.ip_network(subnet, strict=False)
        except ValueError as exc:
            raise CliExit(f"invalid CIDR address: {subnet}", 1) from exc
        for other in configs:
            if net.overlaps(ipaddress.ip_network(other, strict=False)):
                raise CliExit("multiple overlapping subnet configuration is not supported", 1)
        configs[subnet] = {"Subnet": subnet, "AuxiliaryAddresses": {}}

    def owner(addr: str) -> str | None:
        ip = ipaddress.ip_network(addr, strict=False)
        for subnet in subnets:
            if ip.subnet_of(ipaddress.ip_network(subnet, strict=False)):  # type: ignore[arg-type]
                return subnet
        return None

    for rng in flags["ip-range"]:
        in_net = owner(rng)
        if in_net is None:
            raise CliExit(f"no matching subnet for range {rng}", 1)
        if configs[in_net].get("IPRange"):
            raise CliExit(
                f"cannot configure multiple ranges ({rng}, {configs[in_net]['IPRange']}) on the same subnet ({in_net})", 1
            )
        configs[in_net]["IPRange"] = rng
    for gw in flags["gateway"]:
        in_net = owner(gw)
        if in_net is None:
            raise CliExit(f"no matching subnet for gateway {gw}", 1)
        if configs[in_net].get("Gateway"):
            raise CliExit(
                f"cannot configure multiple gateways ({gw}, {configs[in_net]['Gateway']}) for the same subnet ({in_net})",
                1,
            )
        configs[in_net]["Gateway"] = gw
    for key, addr in _kv(flags["aux-address"]).items():
        in_net = owner(addr)
        if in_net is None:
            raise CliExit(f"no matching subnet for aux-address {addr}", 1)
        configs[in_net]["AuxiliaryAddresses"][key] = addr
    out = []
    for cfg in configs.values():
        if not cfg["AuxiliaryAddresses"]:
            del cfg["AuxiliaryAddresses"]
        out.append(cfg)
    return out


def run_network_create(cli: CliContext, flags: ParsedFlags) -> int:
    body: dict[str, Any] = {
        "Name": flags.args[0],
        "Driver": flags["driver"],
        "Scope": flags["scope"],
        "EnableIPv4": flags["ipv4"],
        "EnableIPv6": flags["ipv6"],
        "IPAM": {"Driver": flags["ipam-driver"], "Config": _ipam_config(flags), "Options": _kv(flags["ipam-opt"])},
        "Internal": flags["internal"],
        "Attachable": flags["attachable"],
        "Ingress": flags["ingress"],
        "ConfigOnly": flags["config-only"],
        "Options": _kv(flags["opt"]),
        "Labels": _kv(flags["label"]),
    }
    if "ipv4" not in flags.changed:
        del body["EnableIPv4"]
    if "ipv6" not in flags.changed:
        del body["EnableIPv6"]
    if flags["config-from"]:
        body["ConfigFrom"] = {"Network": flags["config-from"]}
    resp = cli.client.post_json("/networks/create", None, body) or {}
    cli.out(str(resp.get("Id") or ""))
    for warning in [resp.get("Warning")] if resp.get("Warning") else []:
        cli.err(f"WARNING: {warning}")
    return 0


def run_network_rm(cli: CliContext, flags: ParsedFlags) -> int:
    failed = False
    for name in flags.args:
        try:
            cli.client.delete(f"/networks/{path_escape(name)}")
        except APIError as exc:
            if flags["force"] and exc.not_found:
                continue
            cli.err(str(exc))
            failed = True
            continue
        except ClientError as exc:
            cli.err(str(exc))
            failed = True
            continue
        cli.out(name)
    if failed:
        raise CliExit("exit status 1", 1)
    return 0


def run_network_inspect(cli: CliContext, flags: ParsedFlags) -> int:
    params = {"verbose": 1} if flags["verbose"] else None
    return inspect_objects(
        cli, flags.args, flags["format"], lambda ref: fetch(cli, f"/networks/{path_escape(ref)}", params=params)
    )


def run_network_connect(cli: CliContext, flags: ParsedFlags) -> int:
    driver_opts: dict[str, str] = {}
    for opt in flags["driver-opt"]:
        key, sep, value = opt.partition("=")
        if not sep or not key.strip():
            raise CliExit("invalid key/value pair format in driver options", 1)
        driver_opts[key.strip()] = value.strip()
    endpoint: dict[str, Any] = {
        "IPAMConfig": {
            "IPv4Address": flags["ip"],
            "IPv6Address": flags["ip6"],
            "LinkLocalIPs": flags["link-local-ip"] or None,
        },
        "Links": flags["link"] or None,
        "Aliases": flags["alias"] or None,
        "DriverOpts": driver_opts,
        "GwPriority": flags["gw-priority"],
    }
    network, container = flags.args
    cli.client.post(
        f"/networks/{path_escape(network)}/connect", None, {"Container": container, "EndpointConfig": endpoint}
    )
    return 0


def run_network_disconnect(cli: CliContext, flags: ParsedFlags) -> int:
    network, container = flags.args
    cli.client.post(
        f"/networks/{path_escape(network)}/disconnect", None, {"Container": container, "Force": flags["force"]}
    )
    return 0


def run_network_prune(cli: CliContext, flags: ParsedFlags) -> int:
    if not flags["force"] and not cli.confirm(
        "WARNING! This will remove all custom networks not used by at least one container."
    ):
        return 0
    prune_section(cli, "/networks/prune", flags["filter"], "NetworksDeleted", "Deleted Networks")
    return 0


def network_command() -> Command:
    group = Command("network", short="Manage networks", category="management")
    create = Command("create", use="create [OPTIONS] NETWORK", short="Create a network", run=run_network_create,
                     args=("exact", 1, 1))
    f = create.flags
    f.add("attachable", "", "bool", "Enable manual container attachment")
    f.add("aux-address", "", "map", "Auxiliary IPv4 or IPv6 addresses used by Network driver", default_text="map[]")
    f.add("config-from", "", "string", "The network from which to copy the configuration")
    f.add("config-only", "", "bool", "Create a configuration only network")
    f.add("driver", "d", "string", "Driver to manage the Network", "bridge")
    f.add("gateway", "", "strings", "IPv4 or IPv6 Gateway for the master subnet")
    f.add("ingress", "", "bool", "Create swarm routing-mesh network")
    f.add("internal", "", "bool", "Restrict external access to the network")
    f.add("ip-range", "", "strings", "Allocate container ip from a sub-range")
    f.add("ipam-driver", "", "string", "IP Address Management Driver", "default")
    f.add("ipam-opt", "", "map", "Set IPAM driver specific options", default_text="map[]")
    f.add("ipv4", "", "bool", "Enable or disable IPv4 address assignment", True, default_text="true")
    f.add("ipv6", "", "bool", "Enable or disable IPv6 address assignment")
    f.add("label", "", "list", "Set metadata on a network")
    f.add("opt", "o", "map", "Set driver specific options", default_text="map[]")
    f.add("scope", "", "string", "Control the network's scope")
    f.add("subnet", "", "strings", "Subnet in CIDR format that represents a network segment")

    ls = Command("ls", use="ls [OPTIONS]", short="List networks", run=run_network_ls, aliases=["list"],
                 args=("none", 0, 0))
    ls.flags.add("filter", "f", "filter", 'Provide filter values (e.g. "driver=bridge")')
    ls.flags.add("format", "", "string", FORMAT_HELP)
    ls.flags.add("no-trunc", "", "bool", "Do not truncate the output")
    ls.flags.add("quiet", "q", "bool", "Only display network IDs")

    rm = Command("rm", use="rm NETWORK [NETWORK...]", short="Remove one or more networks", run=run_network_rm,
                 aliases=["remove"], args=("min", 1, 0))
    rm.flags.add("force", "f", "bool", "Do not error if the network does not exist")

    inspect = Command("inspect", use="inspect [OPTIONS] NETWORK [NETWORK...]",
                      short="Display detailed information on one or more networks", run=run_network_inspect,
                      args=("min", 1, 0))
    inspect.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)
    inspect.flags.add("verbose", "v", "bool", "Verbose output for diagnostics")

    connect = Command("connect", use="connect [OPTIONS] NETWORK CONTAINER", short="Connect a container to a network",
                      run=run_network_connect, args=("exact", 2, 2))
    f = connect.flags
    f.add("alias", "", "strings", "Add network-scoped alias for the container")
    f.add("driver-opt", "", "strings", "driver options for the network")
    f.add("gw-priority", "", "int", "Highest gw-priority provides the default gateway. Accepts positive and negative values.")
    f.add("ip", "", "string", 'IPv4 address (e.g., "172.30.100.104")')
    f.add("ip6", "", "string", 'IPv6 address (e.g., "2001:db8::33")')
    f.add("link", "", "list", "Add link to another container")
    f.add("link-local-ip", "", "strings", "Add a link-local address for the container")

    disconnect = Command("disconnect", use="disconnect [OPTIONS] NETWORK CONTAINER",
                         short="Disconnect a container from a network", run=run_network_disconnect,
                         args=("exact", 2, 2))
    disconnect.flags.add("force", "f", "bool", "Force the container to disconnect from a network")

    prune = Command("prune", use="prune [OPTIONS]", short="Remove all unused networks", run=run_network_prune,
                    args=("none", 0, 0))
    prune.flags.add("filter", "", "filter", 'Provide filter values (e.g. "until=<timestamp>")')
    prune.flags.add("force", "f", "bool", "Do not prompt for confirmation")
    group.add(connect, create, disconnect, inspect, ls, prune, rm)
    return group


# --------------------------------------------------------------------------
# volumes


class VolumeContext:
    template_type = "*formatter.volumeContext"
    HEADER = {
        "ID": "ID",
        "Name": "VOLUME NAME",
        "Group": "GROUP",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "Availability": "AVAILABILITY",
        "Mountpoint": "MOUNTPOINT",
        "Labels": "LABELS",
        "Links": "LINKS",
        "Size": "SIZE",
        "Status": "STATUS",
    }
    _JSON = ("Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name", "Scope", "Size", "Status")

    def __init__(self, vol: dict[str, Any]) -> None:
        self.v = vol

    def Name(self) -> str:
        return str(self.v.get("Name") or "")

    def Driver(self) -> str:
        return str(self.v.get("Driver") or "")

    def Scope(self) -> str:
        return str(self.v.get("Scope") or "")

    def Mountpoint(self) -> str:
        return str(self.v.get("Mountpoint") or "")

    def Labels(self) -> str:
        return _labels(self.v.get("Labels"))

    def Label(self, name: str) -> str:
        return str((self.v.get("Labels") or {}).get(name, ""))

    def Links(self) -> str:
        usage = self.v.get("UsageData")
        return "N/A" if not usage else str(usage.get("RefCount", 0))

    def Size(self) -> str:
        usage = self.v.get("UsageData")
        return "N/A" if not usage else human_size(float(usage.get("Size", 0)))

    def Group(self) -> str:
        cluster = self.v.get("ClusterVolume")
        return "N/A" if not cluster else str((cluster.get("Spec") or {}).get("Group", ""))

    def Availability(self) -> str:
        cluster = self.v.get("ClusterVolume")
        return "N/A" if not cluster else str((cluster.get("Spec") or {}).get("Availability", ""))

    def Status(self) -> str:
        cluster = self.v.get("ClusterVolume")
        if not cluster:
            return "N/A"
        info = cluster.get("PublishStatus") or []
        return "pending creation" if not cluster.get("Info") else ("in use (1 node)" if info else "created")

    def template_json(self) -> dict[str, Any]:
        return {k: getattr(self, k)() for k in self._JSON}


def run_volume_ls(cli: CliContext, flags: ParsedFlags) -> int:
    body = cli.client.get_json("/volumes", {"filters": filters_json(flags["filter"])}) or {}
    vols = list(body.get("Volumes") or [])
    if flags["cluster"]:
        vols = [v for v in vols if v.get("ClusterVolume")]
    vols.sort(key=lambda v: natural_key(str(v.get("Name") or "")))
    for warning in body.get("Warnings") or []:
        cli.err(str(warning))
    fmt = flags["format"] or "table"
    if fmt == "table":
        fmt = "{{.Name}}" if flags["quiet"] else "table {{.Driver}}\t{{.Name}}"
    elif fmt == "raw":
        fmt = "name: {{.Name}}" if flags["quiet"] else "name: {{.Name}}\ndriver: {{.Driver}}\n"
    rows = [VolumeContext(v) for v in vols]
    try:
        cli.out(render_rows(fmt, rows, VolumeContext.HEADER), end="")
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None
    return 0


def run_volume_create(cli: CliContext, flags: ParsedFlags) -> int:
    name = flags.args[0] if flags.args else flags["name"]
    if flags.args and flags["name"] and flags["name"] != flags.args[0]:
        raise CliExit("conflicting options: either specify --name or provide positional arg, not both", 1)
    body = {
        "Driver": flags["driver"],
        "DriverOpts": _kv(flags["opt"]),
        "Name": name,
        "Labels": _kv(flags["label"]),
    }
    vol = cli.client.post_json("/volumes/create", None, body) or {}
    cli.out(str(vol.get("Name") or ""))
    return 0


def run_volume_inspect(cli: CliContext, flags: ParsedFlags) -> int:
    return inspect_objects(cli, flags.args, flags["format"], lambda ref: fetch(cli, f"/volumes/{path_escape(ref)}"))


def run_volume_rm(cli: CliContext, flags: ParsedFlags) -> int:
    params = {"force": flags["force"] or None}
    return for_each_ref(cli, flags.args, lambda name: cli.client.delete(f"/volumes/{path_escape(name)}", params))


def run_volume_prune(cli: CliContext, flags: ParsedFlags) -> int:
    filters = list(flags["filter"])
    warning = "WARNING! This will remove anonymous local volumes not used by at least one container."
    if flags["all"]:
        if any(k == "all" for k, _ in filters):
            raise CliExit("conflicting options: cannot specify both --all and --filter all=1", 1)
        filters.append(("all", "true"))
        warning = "WARNING! This will remove all local volumes not used by at least one container."
    if not flags["force"] and not cli.confirm(warning):
        return 0
    print_reclaimed(cli, prune_section(cli, "/volumes/prune", filters, "VolumesDeleted", "Deleted Volumes"))
    return 0


def volume_command() -> Command:
    group = Command("volume", short="Manage volumes", category="management")
    create = Command("create", use="create [OPTIONS] [VOLUME]", short="Create a volume", run=run_volume_create,
                     args=("max", 0, 1))
    f = create.flags
    f.add("availability", "", "string", 'Cluster Volume availability ("active", "pause", "drain")', "active")
    f.add("driver", "d", "string", "Specify volume driver name", "local")
    f.add("group", "", "string", "Cluster Volume group (cluster volumes)")
    f.add("label", "", "list", "Set metadata for a volume")
    f.add("limit-bytes", "", "bytes", "Minimum size of the Cluster Volume in bytes")
    f.add("name", "", "string", "Specify volume name", hidden=True)
    f.add("opt", "o", "map", "Set driver specific options", default_text="map[]")
    f.add("required-bytes", "", "bytes", "Maximum size of the Cluster Volume in bytes")
    f.add("scope", "", "string", 'Cluster Volume access scope ("single", "multi")', "single")
    f.add("secret", "", "map", "Cluster Volume secrets", default_text="map[]")
    f.add(
        "sharing", "", "string", 'Cluster Volume access sharing ("none", "readonly", "onewriter", "all")', "none"
    )
    f.add("topology-preferred", "", "list", "A topology that the Cluster Volume would be preferred in")
    f.add("topology-required", "", "list", "A topology that the Cluster Volume must be accessible from")
    f.add("type", "", "string", 'Cluster Volume access type ("mount", "block")', "block")

    ls = Command("ls", use="ls [OPTIONS]", short="List volumes", run=run_volume_ls, aliases=["list"],
                 args=("none", 0, 0))
    ls.flags.add("cluster", "", "bool", "Display only cluster volumes, and use cluster volume list formatting")
    ls.flags.add("filter", "f", "filter", 'Provide filter values (e.g. "dangling=true")')
    ls.flags.add("format", "", "string", FORMAT_HELP)
    ls.flags.add("quiet", "q", "bool", "Only display volume names")

    inspect = Command("inspect", use="inspect [OPTIONS] VOLUME [VOLUME...]",
                      short="Display detailed information on one or more volumes", run=run_volume_inspect,
                      args=("min", 1, 0))
    inspect.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)

    rm = Command("rm", use="rm [OPTIONS] VOLUME [VOLUME...]", short="Remove one or more volumes", run=run_volume_rm,
                 aliases=["remove"], args=("min", 1, 0))
    rm.long = "Remove one or more volumes. You cannot remove a volume that is in use by a container."
    rm.flags.add("force", "f", "bool", "Force the removal of one or more volumes")

    prune = Command("prune", use="prune [OPTIONS]", short="Remove unused local volumes", run=run_volume_prune,
                    args=("none", 0, 0))
    prune.flags.add("all", "a", "bool", "Remove all unused volumes, not just anonymous ones")
    prune.flags.add("filter", "", "filter", 'Provide filter values (e.g. "label=<label>")')
    prune.flags.add("force", "f", "bool", "Do not prompt for confirmation")
    group.add(create, inspect, ls, prune, rm)
    return group

