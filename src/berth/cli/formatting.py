"""Human-readable output as the docker CLI prints it.

Durations and sizes (docker/go-units), Go's elastic tabwriter, the ``…``
ellipsis, the PORTS column, Go's ``time.Time.String()``, and an indenter that
re-indents raw JSON without re-encoding it (Go's ``json.Indent``).

Pure functions on values and strings; no I/O, no berth imports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from berth.units import human_duration  # noqa: F401  (re-exported for the CLI)

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _go_g(value: float, precision: int) -> str:
    """Go's ``%.<precision>g``."""
    text = f"{value:.{precision}g}"
    return text


def _custom_size(size: float, base: float, units: Sequence[str], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return _go_g(size, precision) + units[i]


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``precision`` significant digits."""
    return _custom_size(float(size), 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units (KiB, MiB …), 4 significant digits."""
    return _custom_size(float(size), 1024.0, _BINARY_UNITS, 4)


def _char_width(ch: str) -> int:
    import unicodedata

    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def ellipsis(text: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: fit ``text`` in ``max_width`` columns, ending in "…"."""
    if max_width <= 0:
        return ""
    if max_width == 1:
        return text[:1]
    if text.isascii():
        if len(text) <= max_width:
            return text
        return text[: max_width - 1] + "…"
    widths: list[int] = []
    total = 0
    for ch in text:
        total += _char_width(ch)
        widths.append(total)
    if total <= max_width:
        return text
    for i in range(len(widths) - 1):
        if widths[i] <= max_width - 1 < widths[i + 1]:
            return text[: i + 1] + "…"
    return text


def go_quote(text: str) -> str:
    """Go's strconv.Quote (printable Unicode kept, others escaped)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_time(ts: float, nanos: str = "") -> str:
    """Go's ``time.Time.String()`` in the local zone: "2006-01-02 15:04:05.999999999 -0700 MST".

    ``nanos`` is the fraction of the second as written (digits), trailing zeros dropped.
    """
    local = time.localtime(ts)
    offset = time.strftime("%z", local)
    zone = time.strftime("%Z", local) or offset
    frac = nanos[:9].rstrip("0")
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + (f".{frac}" if frac else "") + f" {offset} {zone}"


def go_time_rfc3339(text: str) -> str:
    """``time.Time.String()`` of an RFC 3339 timestamp, keeping its nanoseconds."""
    ts = parse_rfc3339(text)
    if ts is None:
        return "0001-01-01 00:00:00 +0000 UTC" if text.startswith("0001-01-01") else text
    clock = text.partition("T")[2]
    frac = ""
    if "." in clock:
        digits = clock.split(".", 1)[1]
        frac = "".join(c for c in digits[:9] if c.isdigit())
    return go_time(int(ts), frac)


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp (nanoseconds allowed), or None."""
    import calendar

    if not text or text.startswith("0001-01-01"):
        return None
    try:
        date, _, rest = text.partition("T")
        year, month, day = (int(x) for x in date.split("-"))
        zone_at = max(rest.rfind("+"), rest.rfind("-"), rest.find("Z"))
        clock, zone = (rest[:zone_at], rest[zone_at:]) if zone_at > 0 else (rest, "Z")
        hms, _, frac = clock.partition(".")
        hour, minute, second = (int(x) for x in hms.split(":"))
        seconds = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
        if frac:
            seconds += float("0." + frac)
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            zh, _, zm = zone[1:].partition(":")
            seconds -= sign * (int(zh) * 3600 + int(zm or 0) * 60)
        return float(seconds)
    except (ValueError, IndexError):
        return None


# --------------------------------------------------------------------------
# Tabwriter


def tabwrite(text: str, minwidth: int = 0, padding: int = 1) -> str:
    """Align tab-separated cells the way Go's text/tabwriter does (docker's copy:
    left-aligned, space padding, display width of wide characters).

    Cells end at tabs, lines at newlines.  A column block is a run of consecutive
    lines having a cell in that column; each cell of a block is padded to the
    block's widest cell plus ``padding`` (at least ``minwidth``).  The last cell
    of a line is never padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    # the last "line" is the text after the final newline (maybe empty)
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts: list[str] = []
            for j, cell in enumerate(cells):
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(cell + " " * (widths[j] - display_width(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))
            if i + 1 < len(lines):
                out.append("\n")

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                w = display_width(lines[this][column]) + padding
                width = max(width, w)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)


# --------------------------------------------------------------------------
# Ports


def displayable_ports(ports: Iterable[Mapping[str, Any]]) -> str:
    """docker's formatter.DisplayablePorts: "0.0.0.0:80->80/tcp, 443/tcp"."""

    def key(p: Mapping[str, Any]) -> tuple[int, str, int, str]:
        return (
            int(p.get("PrivatePort") or 0),
            str(p.get("IP") or ""),
            int(p.get("PublicPort") or 0),
            str(p.get("Type") or ""),
        )

    sorted_ports = sorted(ports, key=key)
    groups: dict[str, list[int]] = {}
    group_order: list[str] = []
    result: list[str] = []
    host_mappings: list[str] = []
    for port in sorted_ports:
        current = int(port.get("PrivatePort") or 0)
        public = int(port.get("PublicPort") or 0)
        ptype = str(port.get("Type") or "")
        ip = str(port.get("IP") or "")
        port_key = ptype
        if ip:
            if public != current:
                host_mappings.append(f"{_join_host_port(ip, str(public))}->{current}/{ptype}")
                continue
            port_key = ip + "/" + ptype
        group = groups.get(port_key)
        if group is None:
            groups[port_key] = [current, current]
            group_order.append(port_key)
            continue
        if current == group[1] + 1:
            group[1] = current
            continue
        result.append(_form_group(port_key, group[0], group[1]))
        groups[port_key] = [current, current]
    for port_key in group_order:
        first, last = groups[port_key]
        result.append(_form_group(port_key, first, last))
    result.extend(host_mappings)
    return ", ".join(result)


def _join_host_port(host: str, port: str) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _form_group(key: str, start: int, last: int) -> str:
    parts = key.split("/")
    group_type = parts[0]
    ip = ""
    if len(parts) > 1:
        ip = parts[0]
        group_type = parts[1]
    group = str(start)
    if start != last:
        group = f"{group}-{last}"
    if ip:
        group = f"{_join_host_port(ip, group)}->{group}"
    return f"{group}/{group_type}"


# --------------------------------------------------------------------------
# JSON


def _string_end(raw: str, start: int) -> int:
    """Where the JSON string opening at ``raw[start]`` ends (just past its closing quote)."""
    j = start + 1
    n = len(raw)
    while j < n:
        if raw[j] == "\\":
            j += 2
            continue
        if raw[j] == '"':
            break
        j += 1
    return j + 1


def json_indent(raw: str, indent: str = "    ") -> str:
    """Go's json.Indent: re-indent JSON text, keeping every token as written."""
    out: list[str] = []
    depth = 0
    i = 0
    n = len(raw)
    need_indent = False  # just opened a container; newline before the next value
    while i < n:
        ch = raw[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if need_indent and ch not in "]}":
            out.append("\n" + indent * depth)
            need_indent = False
        if ch == '"':
            end = _string_end(raw, i)
            out.append(raw[i:end])
            i = end
            continue
        if ch in "[{":
            out.append(ch)
            depth += 1
            need_indent = True
        elif ch in "]}":
            depth -= 1
            if need_indent:
                need_indent = False  # empty container: "{}" / "[]"
            else:
                out.append("\n" + indent * depth)
            out.append(ch)
        elif ch == ",":
            out.append(",\n" + indent * depth)
        elif ch == ":":
            out.append(": ")
        else:
            j = i
            while j < n and raw[j] not in ",:[]{}\" \t\r\n":
                j += 1
            out.append(raw[i:j])
            i = j
            continue
        i += 1
    return "".join(out)


def json_compact(raw: str) -> str:
    """Go's json.Compact: drop insignificant whitespace."""
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == '"':
            end = _string_end(raw, i)
            out.append(raw[i:end])
            i = end
            continue
        if ch not in " \t\r\n":
            out.append(ch)
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------
# The docker CLI's formatter contexts: what ``--format`` sees for list commands


def truncate_id(ident: str) -> str:
    """stringid.TruncateID: drop the ``algo:`` prefix, keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


class HeaderContext(dict[str, str]):
    """Column titles for table formats (docker's SubHeaderContext)."""

    def Label(self, name: str) -> str:
        return name.split(".")[-1].replace("-", " ").replace("_", " ")


class ContainerContext:
    """One row of ``ps`` (docker's formatter.ContainerContext)."""

    template_type = "*formatter.ContainerContext"

    HEADER = {
        "ID": "CONTAINER ID",
        "Names": "NAMES",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Ports": "PORTS",
        "State": "STATE",
        "Status": "STATUS",
        "Size": "SIZE",
        "Labels": "LABELS",
        "Mounts": "MOUNTS",
        "LocalVolumes": "LOCAL VOLUMES",
        "Networks": "NETWORKS",
        "Platform": "PLATFORM",
    }
    FIELDS = tuple(HEADER)

    def __init__(self, summary: dict[str, Any], trunc: bool, now: float | None = None) -> None:
        self.c = summary
        self.trunc = trunc
        self.now = now if now is not None else time.time()

    def ID(self) -> str:
        ident = str(self.c.get("Id") or "")
        return truncate_id(ident) if self.trunc else ident

    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            for name in names:
                if "/" not in name:
                    names = [name]
                    break
        return ",".join(names)

    def Image(self) -> str:
        from berth.images.reference import ReferenceError, parse_normalized

        image = str(self.c.get("Image") or "")
        if not image:
            return "<no image>"
        if self.trunc:
            image_id = str(self.c.get("ImageID") or "")
            trunc = truncate_id(image_id)
            if trunc and trunc == truncate_id(image):
                return trunc
            try:
                ref = parse_normalized(image)
            except ReferenceError:
                return image
            if ref.tag:
                return ref.familiar_name + ":" + ref.tag
            return ref.familiar_name
        return image

    def Command(self) -> str:
        command = str(self.c.get("Command") or "")
        if self.trunc:
            command = ellipsis(command, 20)
        return go_quote(command)

    def CreatedAt(self) -> str:
        return go_time(float(self.c.get("Created") or 0))

    def RunningFor(self) -> str:
        return human_duration(self.now - float(self.c.get("Created") or 0)) + " ago"

    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    def State(self) -> str:
        return str(self.c.get("State") or "")

    def Status(self) -> str:
        return str(self.c.get("Status") or "")

    def Size(self) -> str:
        srw = human_size(float(self.c.get("SizeRw") or 0), 3)
        root = float(self.c.get("SizeRootFs") or 0)
        if root > 0:
            return f"{srw} (virtual {human_size(root, 3)})"
        return srw

    def Labels(self) -> str:
        labels = self.c.get("Labels")
        if not labels:
            return ""
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def Label(self, name: str) -> str:
        labels = self.c.get("Labels") or {}
        return str(labels.get(name, ""))

    def Mounts(self) -> str:
        names = []
        for mount in self.c.get("Mounts") or []:
            name = mount.get("Name") or mount.get("Source") or ""
            if self.trunc:
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:
        settings = self.c.get("NetworkSettings") or {}
        return ",".join(sorted((settings.get("Networks") or {}).keys()))

    def Platform(self) -> Any:
        desc = self.c.get("ImageManifestDescriptor") or {}
        platform = desc.get("platform") if isinstance(desc, dict) else None
        if not platform:
            return None
        text = f"{platform.get('os', '')}/{platform.get('architecture', '')}"
        if platform.get("variant"):
            text += "/" + platform["variant"]
        return text

    def template_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in self.FIELDS}


class ImageContext:
    """One row of ``images`` (docker's formatter.imageContext)."""

    template_type = "*formatter.imageContext"

    HEADER = {
        "ID": "IMAGE ID",
        "Repository": "REPOSITORY",
        "Tag": "TAG",
        "Digest": "DIGEST",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "Size": "SIZE",
        "Containers": "CONTAINERS",
        "VirtualSize": "SIZE",
        "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
    }
    FIELDS = tuple(HEADER)

    def __init__(
        self, summary: dict[str, Any], trunc: bool, repo: str, tag: str, digest: str, now: float | None = None
    ) -> None:
        self.i = summary
        self.trunc = trunc
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.now = now if now is not None else time.time()

    def ID(self) -> str:
        ident = str(self.i.get("Id") or "")
        return truncate_id(ident) if self.trunc else ident

    def Repository(self) -> str:
        return self.repo

    def Tag(self) -> str:
        return self.tag

    def Digest(self) -> str:
        return self.digest

    def CreatedSince(self) -> str:
        created = float(self.i.get("Created") or 0)
        if created <= 0:
            return ""
        return human_duration(self.now - created) + " ago"

    def CreatedAt(self) -> str:
        return go_time(float(self.i.get("Created") or 0))

    def Size(self) -> str:
        return human_size(float(self.i.get("Size") or 0), 3)

    def Containers(self) -> str:
        count = self.i.get("Containers", -1)
        if count is None or count == -1:
            return "N/A"
        return str(count)

    def VirtualSize(self) -> str:
        return human_size(float(self.i.get("Size") or 0))

    def SharedSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        if shared is None or shared == -1:
            return "N/A"
        return human_size(float(shared))

    def UniqueSize(self) -> str:
        size = self.i.get("Size", -1)
        shared = self.i.get("SharedSize", -1)
        if size in (None, -1) or shared in (None, -1):
            return "N/A"
        return human_size(float(size - shared))

    def template_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in self.FIELDS}


def image_rows(
    images: Iterable[Mapping[str, Any]], trunc: bool, show_digests: bool, format_uses_digest: bool
) -> list[ImageContext]:
    """Expand images into rows: one per repository:tag (docker's imageFormat)."""
    from berth.images.reference import ReferenceError, parse_normalized

    rows: list[ImageContext] = []
    need_digest = show_digests or format_uses_digest
    for img in images:
        summary = dict(img)
        tags = summary.get("RepoTags") or []
        digests = summary.get("RepoDigests") or []
        dangling = (not tags and not digests) or (
            tags == ["<none>:<none>"] and digests in ([], ["<none>@<none>"])
        )
        if dangling:
            rows.append(ImageContext(summary, trunc, "<none>", "<none>", "<none>"))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref_text in tags:
            try:
                ref = parse_normalized(ref_text)
            except ReferenceError:
                continue
            if ref.tag:
                repo_tags.setdefault(ref.familiar_name, []).append(ref.tag)
        for ref_text in digests:
            try:
                ref = parse_normalized(ref_text)
            except ReferenceError:
                continue
            if ref.digest:
                repo_digests.setdefault(ref.familiar_name, []).append(ref.digest)
        for repo, repo_tag_list in repo_tags.items():
            repo_digest_list = repo_digests.pop(repo, [])
            if not need_digest:
                repo_digest_list = []
            for tag in repo_tag_list:
                if not repo_digest_list:
                    rows.append(ImageContext(summary, trunc, repo, tag, "<none>"))
                    continue
                for dgst in repo_digest_list:
                    rows.append(ImageContext(summary, trunc, repo, tag, dgst))
        for repo, repo_digest_list in repo_digests.items():
            if show_digests:
                for dgst in repo_digest_list:
                    rows.append(ImageContext(summary, trunc, repo, "<none>", dgst))
            else:
                rows.append(ImageContext(summary, trunc, repo, "<none>", ""))
    return rows


def prepare_format(fmt: str) -> tuple[str, bool]:
    """docker's Context.preFormat: (template text, is_table)."""
    is_table = fmt.startswith("table")
    text = fmt
    if is_table:
        text = text[len("table") :]
    elif fmt == "json":
        text = "{{json .}}"
    text = text.strip(" ")
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    return text, is_table


def render_rows(fmt: str, rows: Sequence[Any], header: Mapping[str, str]) -> str:
    """Render list rows with a docker format (``table …``, ``json`` or a template).

    Raises TemplateError worded as the docker CLI's "template parsing error".
    """
    from berth.template.gotemplate import HEADER_FUNCS, Template, TemplateError

    text, is_table = prepare_format(fmt)
    try:
        tmpl = Template(text)
    except TemplateError as exc:
        raise TemplateError(f"template parsing error: {exc}") from None
    body: list[str] = []
    for row in rows:
        try:
            body.append(tmpl.execute(row))
        except TemplateError as exc:
            raise TemplateError(f"template parsing error: {exc}") from None
        body.append("\n")
    if not is_table:
        return "".join(body)
    partial: list[str] = []
    try:
        tmpl.with_funcs(HEADER_FUNCS).execute(HeaderContext(header), partial)
    except TemplateError:
        pass
    return tabwrite("".join(partial) + "\n" + "".join(body), minwidth=10, padding=3)
