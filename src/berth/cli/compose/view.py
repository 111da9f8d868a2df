"""`berth compose` commands that read a project: ps, logs, top, port, images, events, ls,
and cp and exec, which act inside a service's container — with Compose v2's flags,
columns, `--format` values, error wording and exit codes.

A project's containers are those with compose's labels (so projects made by Compose v2
or docker-compose 1.29 are read as well); like Compose v2, only containers that carry a
config hash count. Copying and exec reuse the `berth cp` and `berth exec` code; logs
go through the engine's LogPrinter and LogFollower.
Must not: change the project (up.py does), or print Docker's JSON anywhere but here.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

from berth.cli.compose.project import ComposeContext, Subcommand
from berth.cli.container import FORMAT_HELP
from berth.cli.context import CliExit
from berth.cli.flags import FlagSet, ParsedFlags, parse_flags
from berth.cli.formatting import (
    displayable_ports,
    ellipsis,
    go_quote,
    go_time,
    human_size,
    parse_rfc3339,
    tabwrite,
    truncate_id,
)
from berth.cli.streams import is_terminal
from berth.client.engine import APIError, ClientError, iter_json_stream, path_escape
from berth.compose import normalize_project_name
from berth.compose.engine import labels as L
from berth.compose.engine.logs import LogOptions, LogPrinter, LogSource, container_log_name, follow
from berth.compose.engine.observed import ProjectContainer, list_containers, list_projects
from berth.template.gotemplate import GoStruct, TemplateError
from berth.units import human_duration

# Go's maximum time.Duration: what time.Now().Sub(time.Time{}) saturates to.
_MAX_GO_DURATION = 9223372036.854775807


# -- what every command here shares ------------------------------------------------------


def project_name(ctx: ComposeContext) -> str:
    """Compose v2's toProjectName: -p, else COMPOSE_PROJECT_NAME, else the project's own
    name from its files (loading them)."""
    given = ctx.top["project-name"] or os.environ.get("COMPOSE_PROJECT_NAME", "")
    if given:
        return normalize_project_name(given)
    return ctx.project().name


def specified_container(ctx: ComposeContext, project: str, service: str, index: int, *,
                        stopped: bool, oneoff: bool | None) -> ProjectContainer:
    """Compose v2's getSpecifiedContainer: the service's container number `index`, or
    (index 0) its lowest-numbered one, one-offs last."""
    found = list_containers(ctx.client, project, services=[service], stopped=stopped, oneoff=oneoff)
    if index > 0:
        found = [c for c in found if c.number == index]
    if not found:
        if index > 0:
            raise CliExit(f'service "{service}" is not running container #{index}', 1)
        raise CliExit(f'service "{service}" is not running', 1)
    return sorted(found, key=lambda c: (c.oneoff, c.number))[0]


def _min_args(flags: ParsedFlags, count: int) -> None:
    if len(flags.args) < count:
        raise CliExit(f"requires at least {count} arg(s), only received {len(flags.args)}", 1)


def _color(ctx: ComposeContext) -> bool:
    """Compose v2's --ansi: always, never, or auto (stdout is a terminal)."""
    ansi = ctx.top["ansi"]
    if ansi == "always":
        return True
    if ansi == "auto":
        return is_terminal(1)
    return False


def _client_error(exc: ClientError) -> CliExit:
    return CliExit(str(exc), 1)


# -- ps -------------------------------------------------------------------------------------

PS_TABLE = "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
PS_RAW = """container_id: {{.ID}}
image: {{.Image}}
command: {{.Command}}
created_at: {{.CreatedAt}}
state: {{- pad .State 1 0}}
status: {{- pad .Status 1 0}}
names: {{.Names}}
labels: {{- pad .Labels 1 0}}
ports: {{- pad .Ports 1 0}}
"""
PS_HEADER = {
    "ID": "CONTAINER ID", "Name": "NAME", "Project": "PROJECT", "Service": "SERVICE",
    "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
    "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS",
}
_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)$")


class Publisher(GoStruct):
    type_name = "api.PortPublisher"


class PsRow:
    """One row of `compose ps` (compose v2's formatter.ContainerContext): what
    `--format` templates see, and `--format json` prints."""

    template_type = "*formatter.ContainerContext"
    FIELDS = ("Command", "CreatedAt", "ExitCode", "Health", "ID", "Image", "Labels", "LocalVolumes",
              "Mounts", "Name", "Names", "Networks", "Ports", "Project", "Publishers", "RunningFor",
              "Service", "Size", "State", "Status")

    def __init__(self, c: ProjectContainer, trunc: bool = True, now: float | None = None) -> None:
        self.c = c
        self.trunc = trunc
        self.now = time.time() if now is None else now

    def ID(self) -> str:
        return truncate_id(self.c.id) if self.trunc else self.c.id

    def Name(self) -> str:
        return self.c.name

    def Names(self) -> str:
        return self.c.name

    def Service(self) -> str:
        return self.c.service

    def Project(self) -> str:
        return self.c.labels.get(L.PROJECT, "")

    def Image(self) -> str:
        return self.c.image

    def Command(self) -> str:
        return go_quote(ellipsis(self.c.command, 20) if self.trunc else self.c.command)

    def CreatedAt(self) -> str:
        return go_time(float(self.c.created))

    def RunningFor(self) -> str:
        return human_duration(self.now - float(self.c.created)) + " ago"

    def ExitCode(self) -> int:
        # compose v2 reads it from inspect for exited and dead containers; the status
        # line the engine lists them with carries it
        match = _EXIT_CODE.match(self.c.status)
        return int(match.group(1)) if match and self.c.state in ("exited", "dead") else 0

    def State(self) -> str:
        return self.c.state

    def Status(self) -> str:
        return self.c.status

    def Health(self) -> str:
        match = _HEALTH.search(self.c.status)
        if not match or self.c.state != "running":
            return ""
        return match.group(1).removeprefix("health: ")

    def Publishers(self) -> list[Publisher]:
        ports = sorted(self.c.ports, key=lambda p: int(p.get("PrivatePort") or 0))
        return [Publisher(URL=p.get("IP") or "", TargetPort=int(p.get("PrivatePort") or 0),
                          PublishedPort=int(p.get("PublicPort") or 0), Protocol=p.get("Type") or "")
                for p in ports]

    def Ports(self) -> str:
        return displayable_ports([{"IP": p["URL"], "PrivatePort": p["TargetPort"],
                                   "PublicPort": p["PublishedPort"], "Type": p["Protocol"]}
                                  for p in self.Publishers()])

    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.c.labels.items()))

    def Label(self, name: str) -> str:
        return self.c.labels.get(name, "")

    def Mounts(self) -> str:
        names = [m.get("Name") or m.get("Source") or "" for m in self.c.mounts]
        return ",".join(ellipsis(n, 15) if self.trunc else n for n in names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.mounts if m.get("Driver") == "local"))

    def Networks(self) -> str:
        return ",".join(sorted(self.c.networks))

    def Size(self) -> str:
        return human_size(0, 3)  # compose v2 lists without sizes

    def template_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in self.FIELDS}


def ps_output(rows: list[PsRow], fmt: str) -> str:
    """The rows as `compose ps --format fmt` prints them (not --quiet)."""
    from berth.cli.formatting import render_rows

    if fmt in ("", "table"):
        fmt = PS_TABLE
    elif fmt == "raw":
        fmt = PS_RAW
    try:
        return render_rows(fmt, rows, PS_HEADER)
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None


def _ps_flags() -> FlagSet:
    f = FlagSet()
    f.add("all", "a", "bool", "Show all stopped containers (including those created by the run command)")
    f.add("filter", "", "string", "Filter services by a property (supported filters: status)")
    f.add("format", "", "string", FORMAT_HELP, "table")
    f.add("no-trunc", "", "bool", "Don't truncate output")
    f.add("orphans", "", "bool", "Include orphaned services (not declared by project)", True)
    f.add("quiet", "q", "bool", "Only display IDs")
    f.add("services", "", "bool", "Display services")
    f.add("status", "", "stringArray",
          "Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]")
    return f


def run_ps(ctx: ComposeContext, flags: ParsedFlags) -> int:
    statuses = list(flags["status"])
    if flags["filter"]:
        key, sep, value = flags["filter"].partition("=")
        if not sep:
            raise CliExit("arguments to --filter should be in form KEY=VAL", 1)
        if key == "status":
            statuses.append(value)
        elif key == "source":
            raise CliExit("not implemented", 1)
        else:
            raise CliExit(f"unknown filter {key}", 1)
    services = list(flags.args)
    project, name = ctx.project_or_name()
    if project is not None:
        if services:
            for service in services:
                if service not in project.services:
                    raise CliExit(f"no such service: {service}", 1)
        elif not flags["orphans"]:
            services = list(project.services)
    show_all = flags["all"] or bool(statuses)
    containers = list_containers(ctx.client, name, services=services, stopped=show_all,
                                    oneoff=None if show_all else False)
    if statuses:
        containers = [c for c in containers if c.state in statuses]
    containers.sort(key=lambda c: c.name)
    if flags["quiet"]:
        for c in containers:
            ctx.cli.out(c.id)
        return 0
    if flags["services"]:
        seen: list[str] = []
        for c in containers:
            if c.service not in seen:
                seen.append(c.service)
        ctx.cli.out("\n".join(seen))
        return 0
    now = time.time()
    rows = [PsRow(c, trunc=not flags["no-trunc"], now=now) for c in containers]
    ctx.cli.out(ps_output(rows, flags["format"]), end="")
    return 0


# -- logs -----------------------------------------------------------------------------------


def _logs_flags() -> FlagSet:
    f = FlagSet()
    f.add("follow", "f", "bool", "Follow log output")
    f.add("index", "", "int", "index of the container if service has multiple replicas")
    f.add("no-color", "", "bool", "Produce monochrome output")
    f.add("no-log-prefix", "", "bool", "Don't print prefix in logs")
    f.add("since", "", "string",
          "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
    f.add("tail", "n", "string", "Number of lines to show from the end of the logs for each container", "all")
    f.add("timestamps", "t", "bool", "Show timestamps")
    f.add("until", "", "string",
          "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
    return f


def log_source(c: ProjectContainer) -> LogSource:
    return LogSource(c.id, container_log_name(c.name, c.labels.get(L.PROJECT, ""), c.service,
                                              c.labels.get(L.NUMBER, "")))


def run_logs(ctx: ComposeContext, flags: ParsedFlags) -> int:
    from berth.cli.container import get_timestamp

    services = list(flags.args)
    index = flags["index"]
    if index > 0 and len(services) != 1:
        raise CliExit("--index requires one service to be selected", 1)
    project, name = ctx.project_or_name()
    if project is not None:
        for service in services:
            if service not in project.services:
                raise CliExit(f"no such service: {service}", 1)
        if not services:
            services = list(project.services)
    if index > 0:
        containers = [specified_container(ctx, name, services[0], index, stopped=True, oneoff=False)]
    else:
        containers = list_containers(ctx.client, name, services=services, stopped=True, oneoff=False)
        containers.sort(key=lambda c: c.name)
    options = LogOptions(
        follow=flags["follow"], tail=flags["tail"], timestamps=flags["timestamps"],
        since=get_timestamp(flags["since"]) if flags["since"] else "",
        until=get_timestamp(flags["until"]) if flags["until"] else "")
    printer = LogPrinter(sys.stdout.buffer, sys.stderr.buffer,
                         color=not flags["no-color"] and _color(ctx), prefix=not flags["no-log-prefix"])
    sys.stdout.flush()
    try:
        follow(ctx.client, [log_source(c) for c in containers], printer, options)
    except ClientError as exc:
        raise _client_error(exc) from None
    except KeyboardInterrupt:
        return 130
    return 0


# -- top ------------------------------------------------------------------------------------


def top_table(procs: list[tuple[str, str, list[str], list[list[str]]]]) -> str:
    """Compose v2's top: (service, replica, titles, processes) per container, in one
    table headed SERVICE # and the titles in the order met, CMD last; Go's tabwriter
    (minwidth 4, padding 2)."""
    header: dict[str, int] = {"SERVICE": 0, "#": 1}
    entries: list[dict[str, str]] = []
    for service, replica, titles, processes in procs:
        for proc in processes:
            entry = {"SERVICE": service, "#": replica}
            for i, title in enumerate(titles):
                if title not in header:
                    header[title] = len(header)
                entry[title] = proc[i] if i < len(proc) else ""
            entries.append(entry)
    if "CMD" in header:
        pos = header["CMD"]
        last = max(header.values())
        for title, i in list(header.items()):
            if i > pos:
                header[title] = i - 1
        header["CMD"] = last
    if not entries:
        return ""
    order = sorted(header, key=lambda t: header[t])
    lines = ["\t".join(order)]
    lines += ["\t".join(entry.get(title, "-") for title in order) for entry in entries]
    return tabwrite("\n".join(lines) + "\n", minwidth=4, padding=2)


def run_top(ctx: ComposeContext, flags: ParsedFlags) -> int:
    name = project_name(ctx)
    containers = list_containers(ctx.client, name, stopped=False, oneoff=None)
    if flags.args:
        containers = [c for c in containers if c.service in flags.args]
    containers.sort(key=lambda c: c.name)
    procs = []
    for c in containers:
        try:
            body = ctx.client.get_json(f"/containers/{path_escape(c.id)}/top") or {}
        except ClientError as exc:
            raise _client_error(exc) from None
        procs.append((c.service or c.name, c.labels.get(L.NUMBER, ""), list(body.get("Titles") or []),
                      [list(p) for p in body.get("Processes") or []]))
    ctx.cli.out(top_table(procs), end="")
    return 0


# -- port -----------------------------------------------------------------------------------


def _port_flags() -> FlagSet:
    f = FlagSet()
    f.add("index", "", "int", "Index of the container if service has multiple replicas")
    f.add("protocol", "", "string", "tcp or udp", "tcp")
    return f


def parse_private_port(text: str) -> int:
    """strconv.ParseUint(text, 10, 16), with Go's error wording."""
    if not text or not text.isascii() or not text.isdigit():
        raise CliExit(f'strconv.ParseUint: parsing "{text}": invalid syntax', 1)
    port = int(text)
    if port > 0xFFFF:
        raise CliExit(f'strconv.ParseUint: parsing "{text}": value out of range', 1)
    return port


def run_port(ctx: ComposeContext, flags: ParsedFlags) -> int:
    _min_args(flags, 2)
    service = flags.args[0]
    port = parse_private_port(flags.args[1])
    protocol = flags["protocol"].lower()
    name = project_name(ctx)
    c = specified_container(ctx, name, service, flags["index"], stopped=False, oneoff=None)
    for p in c.ports:
        if int(p.get("PrivatePort") or 0) == port and p.get("Type") == protocol:
            ctx.cli.out(f"{p.get('IP') or ''}:{int(p.get('PublicPort') or 0)}")
            return 0
    published = ", ".join(f"{int(p.get('PublicPort') or 0)}/{p.get('Type') or ''}" for p in c.ports)
    raise CliExit(f"no port {port}/{protocol} for container {c.name}: {published}", 1)


# -- images ---------------------------------------------------------------------------------


def _images_flags() -> FlagSet:
    f = FlagSet()
    f.add("format", "", "string", "Format the output. Values: [table | json]", "table")
    f.add("quiet", "q", "bool", "Only display IDs")
    return f


def go_rfc3339_nano(text: str) -> str:
    """A timestamp as Go marshals a time.Time parsed from it: trailing zeros of the
    fraction dropped."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", text)
    if not match:
        return text
    head, frac, zone = match.groups()
    frac = (frac or "")[:9].rstrip("0")
    return head + (f".{frac}" if frac else "") + zone


def image_platform(image: dict[str, Any]) -> str:
    """containerd's platforms.Format."""
    os_name = image.get("Os") or ""
    if not os_name:
        return "unknown"
    return "/".join(p for p in (os_name, image.get("Architecture") or "", image.get("Variant") or "") if p)


def _repo_tag(ref_text: str) -> tuple[str, str]:
    """ParseDockerRef's familiar name and tag ("latest" when neither tag nor digest)."""
    from berth.images.reference import ReferenceError, parse_normalized

    if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", ref_text):
        return "", ""
    try:
        ref = parse_normalized(ref_text)
    except ReferenceError:
        return "", ""
    tag = ref.tag or ("" if ref.digest else "latest")
    return ref.familiar_name, tag


def images_table(rows: list[dict[str, Any]], now: float) -> str:
    lines = ["CONTAINER\tREPOSITORY\tTAG\tPLATFORM\tIMAGE ID\tSIZE\tCREATED"]
    for r in rows:
        tagged = parse_rfc3339(r["LastTagTime"])
        age = _MAX_GO_DURATION if tagged is None else now - tagged
        lines.append("\t".join((r["ContainerName"], r["Repository"] or "<none>", r["Tag"] or "<none>",
                                r["Platform"], truncate_id(r["ID"]), human_size(r["Size"], 3),
                                human_duration(age) + " ago")))
    return tabwrite("\n".join(lines) + "\n", minwidth=20, padding=3)


def run_images(ctx: ComposeContext, flags: ParsedFlags) -> int:
    name = project_name(ctx)
    containers = list_containers(ctx.client, name, stopped=True, oneoff=None)
    if flags.args:
        containers = [c for c in containers if c.service in flags.args]
    containers.sort(key=lambda c: c.name)
    rows: list[dict[str, Any]] = []
    for c in containers:
        try:
            image = ctx.client.get_json(f"/images/{path_escape(c.image)}/json") or {}
        except ClientError as exc:
            raise _client_error(exc) from None
        repo, tag = _repo_tag(c.image)
        rows.append({"ID": image.get("Id") or "", "ContainerName": c.name, "Repository": repo, "Tag": tag,
                     "Platform": image_platform(image), "Size": int(image.get("Size") or 0),
                     "LastTagTime": ((image.get("Metadata") or {}).get("LastTagTime") or ""),
                     "Created": image.get("Created") or ""})
    if flags["quiet"]:
        ids: list[str] = []
        for r in rows:
            ident = r["ID"].partition(":")[2] or r["ID"]
            if ident not in ids:
                ids.append(ident)
        for ident in ids:
            ctx.cli.out(ident)
        return 0
    fmt = flags["format"]
    if fmt.lower() in ("table", "pretty", ""):
        ctx.cli.out(images_table(rows, time.time()), end="")
        return 0
    if fmt.lower() == "json":
        listed = []
        for r in rows:
            tagged = r["LastTagTime"]
            if parse_rfc3339(tagged) is None:
                tagged = r["Created"]
            listed.append({"ID": r["ID"], "ContainerName": r["ContainerName"], "Repository": r["Repository"],
                           "Tag": r["Tag"], "Platform": r["Platform"], "Size": r["Size"],
                           "LastTagTime": go_rfc3339_nano(tagged)})
        text = json.dumps(listed or None, separators=(",", ":"), ensure_ascii=False)
        ctx.cli.out(text + "\n")
        return 0
    raise CliExit(f'format value {go_quote(fmt)} could not be parsed: parsing failed', 1)


# -- events ---------------------------------------------------------------------------------


def _events_flags() -> FlagSet:
    f = FlagSet()
    f.add("json", "", "bool", "Output events as a stream of json objects")
    f.add("since", "", "string", "Show all events created since timestamp")
    f.add("until", "", "string", "Stream events until this timestamp")
    return f


def _event_time(nanos: int) -> tuple[str, str]:
    """(compose v2's text timestamp, Go's RFC 3339 with nanoseconds), local zone."""
    seconds, frac = divmod(nanos, 1_000_000_000)
    local = time.localtime(seconds)
    text = time.strftime("%Y-%m-%d %H:%M:%S", local) + f".{frac // 1000:06d}"
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    digits = f"{frac:09d}".rstrip("0")
    rfc = time.strftime("%Y-%m-%dT%H:%M:%S", local) + (f".{digits}" if digits else "") + zone
    return text, rfc


def event_line(event: dict[str, Any], services: list[str], as_json: bool) -> str | None:
    """One engine event as `compose events` prints it, or None when it is not shown
    (not a container's, a one-off's, or another service's)."""
    if event.get("Type") != "container":
        return None
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if attributes.get(L.ONEOFF) == "True":
        return None
    service = attributes.get(L.SERVICE, "")
    if services and service not in services:
        return None
    shown = {k: v for k, v in attributes.items() if not k.startswith("com.docker.compose.")}
    nanos = int(event.get("timeNano") or 0) or int(event.get("time") or 0) * 1_000_000_000
    text_time, rfc_time = _event_time(nanos)
    action = str(event.get("Action") or event.get("status") or "")
    ident = str(actor.get("ID") or event.get("id") or "")
    if as_json:
        record = {"action": action, "attributes": dict(sorted(shown.items())), "id": ident,
                  "service": service, "time": rfc_time, "type": "container"}
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            text = text.replace(char, escaped)
        return text + "\n"
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    return f"{text_time} container {action} {ident} ({attrs})\n\n"


def run_events(ctx: ComposeContext, flags: ParsedFlags) -> int:
    from berth.cli.container import get_timestamp

    name = project_name(ctx)
    params = {
        "filters": json.dumps({"label": [f"{L.PROJECT}={name}"]}),
        "since": get_timestamp(flags["since"]) if flags["since"] else None,
        "until": get_timestamp(flags["until"]) if flags["until"] else None,
    }
    try:
        resp = ctx.client.request("GET", "/events", params)
        for event in iter_json_stream(resp.iter_chunks()):
            line = event_line(event, list(flags.args), flags["json"])
            if line is not None:
                sys.stdout.write(line)
                sys.stdout.flush()
    except ClientError as exc:
        raise _client_error(exc) from None
    except KeyboardInterrupt:
        return 130
    # the stream ended (--until): compose v2 reports the decoder's io.EOF as its error
    raise CliExit("EOF", 1)


# -- ls -------------------------------------------------------------------------------------


def _ls_flags() -> FlagSet:
    f = FlagSet()
    f.add("all", "a", "bool", "Show all stopped Compose projects")
    f.add("filter", "", "stringArray", "Filter output based on conditions provided")
    f.add("format", "", "string", "Format the output. Values: [table | json]", "table")
    f.add("quiet", "q", "bool", "Only display project names")
    return f


def combined_status(states: list[str]) -> str:
    """`running(2), exited(1)`: each state's count, states in alphabetical order."""
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{state}({counts[state]})" for state in sorted(counts))


def combined_config_files(containers: list[ProjectContainer]) -> str:
    files: list[str] = []
    for c in containers:
        if L.CONFIG_FILES not in c.labels:
            return "N/A"
        for f in c.labels[L.CONFIG_FILES].split(","):
            if f not in files:
                files.append(f)
    return ",".join(files)


def ls_rows(projects: dict[str, list[ProjectContainer]]) -> list[dict[str, str]]:
    return [{"Name": name, "Status": combined_status([c.state for c in cs]),
             "ConfigFiles": combined_config_files(cs)} for name, cs in sorted(projects.items())]


def ls_output(rows: list[dict[str, str]], fmt: str) -> str:
    low = fmt.lower()
    if low in ("table", "pretty", ""):
        lines = ["NAME\tSTATUS\tCONFIG FILES"] + [f"{r['Name']}\t{r['Status']}\t{r['ConfigFiles']}" for r in rows]
        return tabwrite("\n".join(lines) + "\n", minwidth=20, padding=3)
    if low == "json":
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False) + "\n"
    if low == "{{json.}}":
        return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)
    raise CliExit(f"format value {go_quote(fmt)} could not be parsed: parsing failed", 1)


def _name_matches(patterns: list[str], name: str) -> bool:
    for pattern in patterns:
        if pattern == name:
            return True
        try:
            if re.search(pattern, name):
                return True
        except re.error:
            continue
    return False


def run_ls(ctx: ComposeContext, flags: ParsedFlags) -> int:
    if flags.args:
        raise CliExit(f'unknown command "{flags.args[0]}" for "berth compose ls"', 1)
    names: list[str] = []
    for text in flags["filter"]:
        key, sep, value = text.partition("=")
        if not sep:
            raise CliExit(f'invalid argument "{text}" for "--filter" flag: bad format of filter '
                          "(expected name=value)", 1)
        key = key.strip().lower()
        if key != "name":
            raise CliExit(f"invalid filter '{key}'", 1)
        names.append(value)
    projects = list_projects(ctx.client, stopped=flags["all"])
    if names:
        projects = {name: cs for name, cs in projects.items() if _name_matches(names, name)}
    if flags["quiet"]:
        for name in sorted(projects):
            ctx.cli.out(name)
        return 0
    ctx.cli.out(ls_output(ls_rows(projects), flags["format"]), end="")
    return 0


# -- cp -------------------------------------------------------------------------------------


def _cp_flags() -> FlagSet:
    f = FlagSet()
    f.add("all", "", "bool", "Include containers created by the run command")
    f.add("archive", "a", "bool", "Archive mode (copy all uid/gid information)")
    f.add("follow-link", "L", "bool", "Always follow symbol link in SRC_PATH")
    f.add("index", "", "int", "Index of the container if service has multiple replicas")
    return f


def run_cp(ctx: ComposeContext, flags: ParsedFlags) -> int:
    import tarfile

    from berth.cli.copy import copy_from_container, copy_to_container, make_cp, split_cp_arg
    from berth.compose.engine.progress import Status

    if len(flags.args) != 2:
        raise CliExit("berth: 'berth compose cp' requires 2 arguments\n\nUsage:  berth compose cp [OPTIONS] "
                      "SERVICE:SRC_PATH DEST_PATH|-\n\tberth compose cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH\n\n"
                      "Run 'berth compose cp --help' for more information", 1)
    source, destination = flags.args
    if not source:
        raise CliExit("source can not be empty", 1)
    if not destination:
        raise CliExit("destination can not be empty", 1)
    src_service, src = split_cp_arg(source)
    dst_service, dst = split_cp_arg(destination)
    if src_service and dst_service:
        raise CliExit("copying between services is not supported", 1)
    if not src_service and not dst_service:
        raise CliExit("unknown copy direction", 1)
    service = src_service or dst_service
    name = project_name(ctx)
    if flags["index"] > 0:
        targets = [specified_container(ctx, name, service, flags["index"], stopped=True, oneoff=False)]
    else:
        targets = list_containers(ctx.client, name, services=[service], stopped=True,
                                     oneoff=None if flags["all"] else False)
        if not targets:
            raise CliExit(f'no container found for service "{service}"', 1)
        targets.sort(key=lambda c: (c.oneoff, c.number))
        if src_service:
            targets = targets[:1]
    argv = ["--quiet"] + (["--archive"] if flags["archive"] else []) + \
        (["--follow-link"] if flags["follow-link"] else [])
    cp_flags = parse_flags(make_cp().flags, argv)
    progress = ctx.progress("Copying")
    try:
        for c in targets:
            text = f"copy {c.name}:{src} to {dst}" if src_service else f"copy {src} to {c.name}:{dst}"
            progress.event(c.name, text, Status.WORKING, "Copying")
            if src_service:
                copy_from_container(ctx.cli, c.id, src, dst, cp_flags)
            else:
                copy_to_container(ctx.cli, c.id, src, dst, cp_flags)
            progress.event(c.name, text, Status.DONE, "Copied")
    except (OSError, tarfile.TarError) as exc:
        raise CliExit(str(exc), 1) from None
    except ClientError as exc:
        raise _client_error(exc) from None
    finally:
        progress.close()
    return 0


# -- exec -----------------------------------------------------------------------------------


def _exec_flags() -> FlagSet:
    f = FlagSet()
    f.add("detach", "d", "bool", "Detached mode: Run command in the background")
    f.add("env", "e", "stringArray", "Set environment variables")
    f.add("index", "", "int", "Index of the container if service has multiple replicas")
    f.add("interactive", "i", "bool", "Keep STDIN open even if not attached", True, hidden=True)
    f.add("no-tty", "T", "bool", "Disable pseudo-TTY allocation. By default 'docker compose exec' allocates a TTY.",
          not is_terminal(1))
    f.add("no-TTY", "", "bool", "", hidden=True, dest="no-tty")
    f.add("privileged", "", "bool", "Give extended privileges to the process")
    f.add("tty", "t", "bool", "Allocate a pseudo-TTY", True, hidden=True)
    f.add("user", "u", "string", "Run the command as this user")
    f.add("workdir", "w", "string", "Path to workdir directory for this command")
    return f


def run_exec(ctx: ComposeContext, flags: ParsedFlags) -> int:
    from berth.cli.container import make_exec
    from berth.cli.container import run_exec as exec_in

    _min_args(flags, 2)
    service, command = flags.args[0], flags.args[1:]
    name = project_name(ctx)
    c = specified_container(ctx, name, service, flags["index"], stopped=False, oneoff=None)
    # `berth exec`'s own flags, set as compose's map onto them
    exec_flags = parse_flags(make_exec().flags, [])
    exec_flags.values.update({
        "detach": flags["detach"], "env": list(flags["env"]), "interactive": flags["interactive"],
        "tty": not flags["no-tty"], "user": flags["user"], "privileged": flags["privileged"],
        "workdir": flags["workdir"],
    })
    exec_flags.args = [c.id, *command]
    try:
        return exec_in(ctx.cli, exec_flags)
    except APIError as exc:
        raise _client_error(exc) from None


SUBCOMMANDS = [
    Subcommand("ps", "ps [OPTIONS] [SERVICE...]", "List containers", _ps_flags, run_ps),
    Subcommand("logs", "logs [OPTIONS] [SERVICE...]", "View output from containers", _logs_flags, run_logs),
    Subcommand("top", "top [SERVICES...]", "Display the running processes", FlagSet, run_top),
    Subcommand("port", "port [OPTIONS] SERVICE PRIVATE_PORT", "Print the public port for a port binding",
               _port_flags, run_port),
    Subcommand("images", "images [OPTIONS] [SERVICE...]", "List images used by the created containers",
               _images_flags, run_images),
    Subcommand("events", "events [OPTIONS] [SERVICE...]", "Receive real time events from containers",
               _events_flags, run_events),
    Subcommand("ls", "ls [OPTIONS]", "List running compose projects", _ls_flags, run_ls),
    Subcommand("cp", "cp [OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n\tberth compose cp [OPTIONS] SRC_PATH|- "
               "SERVICE:DEST_PATH", "Copy files/folders between a service container and the local filesystem",
               _cp_flags, run_cp),
    Subcommand("exec", "exec [OPTIONS] SERVICE COMMAND [ARGS...]", "Execute a command in a running container",
               _exec_flags, run_exec, interspersed=False),
]
