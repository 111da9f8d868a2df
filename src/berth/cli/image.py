"""``berth image …`` (and the top-level ``images``, ``rmi``, ``pull``, ``import`` …)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from berth.cli.container import FORMAT_HELP, INSPECT_FORMAT_HELP, write_archive
from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.cli.formatting import (
    ImageContext,
    ellipsis,
    human_duration,
    human_size,
    image_rows,
    render_rows,
    truncate_id,
)
from berth.cli.inspect import fetch, inspect_objects, typed_image
from berth.cli.progress import StreamError, display_stream
from berth.cli.prune import print_reclaimed, prune_section
from berth.cli.streams import is_terminal, terminal_width
from berth.client import credentials
from berth.client.engine import APIError, ClientError, filters_json, iter_json_stream, path_escape
from berth.images.reference import Reference, ReferenceError, parse_normalized, split_repo_tag
from berth.template.gotemplate import TemplateError

_IMAGE_SUBCOMMANDS = {
    "build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push", "rm", "save", "tag",
}


# --------------------------------------------------------------------------
# images / image ls


def run_images(cli: CliContext, flags: ParsedFlags, called_as: str = "images") -> int:
    filters = list(flags["filter"])
    match = flags.args[0] if flags.args else ""
    if match:
        filters.append(("reference", match))
    if flags["tree"]:
        raise CliExit("--tree is not supported by berth", 1)
    images = cli.client.get_json("/images/json", {"all": flags["all"] or None, "filters": filters_json(filters)})
    images = images or []
    fmt: str = flags["format"] or "table"
    quiet = flags["quiet"]
    digests = flags["digests"]
    if fmt == "table":
        if quiet:
            fmt = "{{.ID}}"
        elif digests:
            fmt = (
                "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
            )
        else:
            fmt = (
                "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
                "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
            )
    elif fmt == "raw":
        if quiet:
            fmt = "image_id: {{.ID}}"
        elif digests:
            fmt = (
                "repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\n"
                "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
            )
        else:
            fmt = (
                "repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\n"
                "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
            )
    elif fmt.startswith("table") and digests and "{{.Digest}}" not in fmt:
        fmt += "\t{{.Digest}}"
    rows = image_rows(images, trunc=not flags["no-trunc"], show_digests=digests, format_uses_digest="{{.Digest}}" in fmt)
    now = time.time()
    for row in rows:
        row.now = now
    try:
        text = render_rows(fmt, rows, ImageContext.HEADER)
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None
    cli.out(text, end="")
    if match and not images and called_as == "images" and match in _IMAGE_SUBCOMMANDS:
        cli.err(f'\nNo images found matching "{match}": did you mean "berth image {match}"?')
    return 0


# --------------------------------------------------------------------------
# rmi / image rm


def run_rmi(cli: CliContext, flags: ParsedFlags) -> int:
    params: dict[str, Any] = {"force": flags["force"] or None, "noprune": flags["no-prune"] or None}
    if flags["platform"]:
        import json

        params["platforms"] = [json.dumps(_platform(p)) for p in flags["platform"]]
    fatal = False
    errors: list[str] = []
    for ref in flags.args:
        try:
            deleted = cli.client.delete(f"/images/{path_escape(ref)}", params) or []
        except APIError as exc:
            if not exc.not_found:
                fatal = True
            errors.append(str(exc))
            continue
        except ClientError as exc:
            fatal = True
            errors.append(str(exc))
            continue
        for item in deleted:
            if item.get("Deleted"):
                cli.out(f"Deleted: {item['Deleted']}")
            else:
                cli.out(f"Untagged: {item.get('Untagged', '')}")
    if errors:
        message = "\n".join(errors)
        if not flags["force"] or fatal:
            raise CliExit(message, 1)
        cli.err(message)
    return 0


def _platform(text: str) -> dict[str, str]:
    parts = text.split("/")
    out = {"os": parts[0]}
    if len(parts) > 1:
        out["architecture"] = parts[1]
    if len(parts) > 2:
        out["variant"] = parts[2]
    return out


# --------------------------------------------------------------------------
# tag, import, pull


def run_tag(cli: CliContext, flags: ParsedFlags) -> int:
    source, target = flags.args
    try:
        ref = parse_normalized(target)
    except ReferenceError as exc:
        raise CliExit(f"Error parsing reference: \"{target}\" is not a valid repository/tag: {exc}", 1) from None
    if ref.digest:
        raise CliExit("refusing to create a tag with a digest reference", 1)
    try:
        parse_normalized(source)
    except ReferenceError as exc:
        if not _looks_like_id(source):
            raise CliExit(f"Error parsing reference: \"{source}\" is not a valid repository/tag: {exc}", 1) from None
    cli.client.post(f"/images/{path_escape(source)}/tag", {"repo": ref.name, "tag": ref.tag or "latest"})
    return 0


def _looks_like_id(text: str) -> bool:
    body = text.split(":", 1)[1] if text.startswith("sha256:") else text
    return all(c in "0123456789abcdef" for c in body)


def _file_chunks(fh: Any, size: int = 65536) -> Iterator[bytes]:
    while True:
        data = fh.read(size)
        if not data:
            return
        yield data


def run_import(cli: CliContext, flags: ParsedFlags) -> int:
    source = flags.args[0]
    repo, tag = "", ""
    if len(flags.args) > 1:
        try:
            ref = parse_normalized(flags.args[1])
        except ReferenceError as exc:
            raise CliExit(str(exc), 1) from None
        repo, tag = split_repo_tag(flags.args[1])
        if ref.digest:
            raise CliExit("cannot import digest reference", 1)
    params: dict[str, Any] = {
        "fromSrc": "-",
        "repo": repo or None,
        "tag": tag or None,
        "message": flags["message"] or None,
        "changes": flags["change"] or None,
        "platform": flags["platform"] or None,
    }
    headers = {"Content-Type": "application/x-tar"}
    fh: Any = None
    body: bytes | Iterator[bytes] | None
    if source == "-":
        body = _file_chunks(sys.stdin.buffer)
    elif source.startswith(("http://", "https://")):
        params["fromSrc"] = source
        body = None
    else:
        try:
            fh = open(source, "rb")  # noqa: SIM115
        except OSError as exc:
            raise CliExit(f"open {source}: {(exc.strerror or str(exc)).lower()}", 1) from None
        body = _file_chunks(fh)
    try:
        resp = cli.client.request("POST", "/images/create", params, headers=headers, raw_body=body)
        display_stream(iter_json_stream(resp.iter_chunks()), sys.stdout, is_terminal(1), terminal_width())
    except StreamError as exc:
        raise CliExit(exc.message, 1) from None
    finally:
        if fh is not None:
            fh.close()
    return 0


def _remote_ref(cli: CliContext, flags: ParsedFlags) -> Reference:
    """The NAME[:TAG] of ``pull``/``push``; without ``-a``, tag and digest, ``latest`` (announced)."""
    try:
        ref = parse_normalized(flags.args[0])
    except ReferenceError as exc:
        raise CliExit(str(exc), 1) from None
    if not flags["all-tags"] and not ref.tag and not ref.digest:
        ref = ref.with_default_tag()
        if not flags["quiet"]:
            cli.out(f"Using default tag: {ref.tag}")
    return ref


def _registry_progress(cli: CliContext, path: str, params: dict[str, Any], quiet: bool, domain: str) -> None:
    """POST a pull or push and show its progress on stdout (nothing with ``quiet``)."""
    try:
        auth = credentials.registry_auth_header(domain, cli.config)
        resp = cli.client.request("POST", path, params, headers={"X-Registry-Auth": auth})
        out = open(os.devnull, "w") if quiet else sys.stdout  # noqa: SIM115
        try:
            display_stream(iter_json_stream(resp.iter_chunks()), out, is_terminal(1) and not quiet, terminal_width())
        finally:
            if quiet:
                out.close()
    except StreamError as exc:
        raise CliExit(exc.message, 1) from None


def run_pull(cli: CliContext, flags: ParsedFlags) -> int:
    ref = _remote_ref(cli, flags)
    all_tags = flags["all-tags"]
    if all_tags and (ref.tag or ref.digest):
        raise CliExit("tag can't be used with --all-tags/-a", 1)
    params = {
        "fromImage": ref.name,
        "tag": None if all_tags else (ref.digest or ref.tag),
        "platform": flags["platform"] or None,
    }
    _registry_progress(cli, "/images/create", params, flags["quiet"], ref.domain)
    full = ref.name
    if ref.tag:
        full += ":" + ref.tag
    if ref.digest:
        full += "@" + ref.digest
    cli.out(full)
    return 0


def run_push(cli: CliContext, flags: ParsedFlags) -> int:
    ref = _remote_ref(cli, flags)
    all_tags = flags["all-tags"]
    params = {"tag": None if all_tags else ref.tag or None}
    _registry_progress(cli, f"/images/{path_escape(ref.name)}/push", params, flags["quiet"], ref.domain)
    if flags["quiet"]:
        cli.out(ref.familiar_string())
    return 0


# --------------------------------------------------------------------------
# inspect, history, save, load, prune


def run_image_inspect(cli: CliContext, flags: ParsedFlags) -> int:
    return inspect_objects(
        cli, flags.args, flags["format"], lambda ref: fetch(cli, f"/images/{path_escape(ref)}/json", typed_image)
    )


class HistoryContext:
    template_type = "*image.historyContext"
    HEADER = {
        "ID": "IMAGE",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "Size": "SIZE",
        "Comment": "COMMENT",
    }

    def __init__(self, item: dict[str, Any], trunc: bool, human: bool, now: float) -> None:
        self.h = item
        self.trunc = trunc
        self.human = human
        self.now = now

    def ID(self) -> str:
        ident = str(self.h.get("Id") or "")
        if self.trunc and ident != "<missing>":
            return truncate_id(ident)
        return ident

    def CreatedAt(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.h.get("Created") or 0)) + _rfc3339_zone()

    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt()
        created = float(self.h.get("Created") or 0)
        if created <= 946684800:
            return "N/A"
        return human_duration(self.now - created) + " ago"

    def CreatedBy(self) -> str:
        text = str(self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    def Size(self) -> str:
        size = self.h.get("Size") or 0
        return human_size(float(size), 3) if self.human else str(size)

    def Comment(self) -> str:
        return str(self.h.get("Comment") or "")

    def template_json(self) -> dict[str, Any]:
        return {k: getattr(self, k)() for k in self.HEADER}


def _rfc3339_zone() -> str:
    offset = time.strftime("%z")
    if offset in ("+0000", "-0000"):
        return "Z"
    return offset[:3] + ":" + offset[3:]


def run_history(cli: CliContext, flags: ParsedFlags) -> int:
    items = cli.client.get_json(f"/images/{path_escape(flags.args[0])}/history") or []
    fmt = flags["format"] or "table"
    human = flags["human"]
    if fmt == "table":
        if flags["quiet"]:
            fmt = "{{.ID}}"
        elif not human:
            fmt = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
        else:
            fmt = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    now = time.time()
    rows = [HistoryContext(i, not flags["no-trunc"], human, now) for i in items]
    try:
        cli.out(render_rows(fmt, rows, HistoryContext.HEADER), end="")
    except TemplateError as exc:
        raise CliExit(str(exc), 1) from None
    return 0


def run_save(cli: CliContext, flags: ParsedFlags) -> int:
    params = {"names": list(flags.args)}
    if flags["platform"]:
        import json

        params["platform"] = [json.dumps(_platform(flags["platform"]))]
    write_archive(cli, flags["output"], lambda: cli.client.request("GET", "/images/get", params), via_temp=True)
    return 0


def run_load(cli: CliContext, flags: ParsedFlags) -> int:
    path = flags["input"]
    fh: Any
    if path:
        try:
            fh = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise CliExit(f"open {path}: {(exc.strerror or str(exc)).lower()}", 1) from None
    else:
        if cli.stdin_is_tty():
            raise CliExit("requested load from stdin, but stdin is empty", 1)
        fh = sys.stdin.buffer
    try:
        resp = cli.client.request(
            "POST",
            "/images/load",
            {"quiet": flags["quiet"] or not is_terminal(1) or None},
            headers={"Content-Type": "application/x-tar"},
            raw_body=_file_chunks(fh),
        )
        if "json" in resp.header("content-type"):
            display_stream(iter_json_stream(resp.iter_chunks()), sys.stdout, is_terminal(1), terminal_width())
        else:
            cli.write_bytes(resp.read())
    except StreamError as exc:
        raise CliExit(exc.message, 1) from None
    finally:
        if path:
            fh.close()
    return 0


def run_image_prune(cli: CliContext, flags: ParsedFlags) -> int:
    filters = list(flags["filter"])
    if flags["all"]:
        filters.append(("dangling", "false"))
    if not flags["force"]:
        if flags["all"]:
            warning = "WARNING! This will remove all images without at least one container associated to them."
        else:
            warning = "WARNING! This will remove all dangling images."
        if not cli.confirm(warning):
            return 0
    print_reclaimed(cli, prune_section(cli, "/images/prune", filters, "ImagesDeleted", "Deleted Images"))
    return 0


# --------------------------------------------------------------------------
# command table


def make_images(name: str = "images", aliases: list[str] | None = None) -> Command:
    called_as = name

    def run(cli: CliContext, flags: ParsedFlags) -> int:
        return run_images(cli, flags, called_as)

    cmd = Command(
        name,
        use=f"{name} [OPTIONS] [REPOSITORY[:TAG]]",
        short="List images",
        run=run,
        aliases=aliases or [],
        aliases_text="berth image ls, berth image list, berth images",
        args=("max", 0, 1),
        category="top",
        order=7,
    )
    f = cmd.flags
    f.add("all", "a", "bool", "Show all images (default hides intermediate images)")
    f.add("digests", "", "bool", "Show digests")
    f.add("filter", "f", "filter", "Filter output based on conditions provided")
    f.add("format", "", "string", FORMAT_HELP)
    f.add("no-trunc", "", "bool", "Don't truncate output")
    f.add("quiet", "q", "bool", "Only show image IDs")
    f.add("tree", "", "bool", "List multi-platform images as a tree (EXPERIMENTAL)")
    return cmd


def make_rmi(name: str = "rmi", aliases: list[str] | None = None) -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] IMAGE [IMAGE...]",
        short="Remove one or more images",
        run=run_rmi,
        aliases=aliases or [],
        aliases_text="berth image rm, berth image remove, berth rmi",
        args=("min", 1, 0),
    )
    cmd.flags.add("force", "f", "bool", "Force removal of the image")
    cmd.flags.add("no-prune", "", "bool", "Do not delete untagged parents")
    cmd.flags.add(
        "platform", "", "strings",
        'Remove only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")',
    )
    return cmd


def make_tag(name: str = "tag") -> Command:
    return Command(
        name,
        use=f"{name} SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        short="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
        run=run_tag,
        aliases_text="berth image tag, berth tag",
        args=("exact", 2, 2),
    )


def make_import(name: str = "import") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
        short="Import the contents from a tarball to create a filesystem image",
        run=run_import,
        aliases_text="berth image import, berth import",
        args=("min", 1, 0),
    )
    cmd.flags.add("change", "c", "list", "Apply Dockerfile instruction to the created image")
    cmd.flags.add("message", "m", "string", "Set commit message for imported image")
    cmd.flags.add("platform", "", "string", "Set platform if server is multi-platform capable")
    return cmd


def make_pull(name: str = "pull") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] NAME[:TAG|@DIGEST]",
        short="Download an image from a registry",
        run=run_pull,
        aliases_text="berth image pull, berth pull",
        args=("exact", 1, 1),
        category="top",
        order=5,
    )
    cmd.flags.add("all-tags", "a", "bool", "Download all tagged images in the repository")
    cmd.flags.add("disable-content-trust", "", "bool", "Skip image verification", True, default_text="true")
    cmd.flags.add("platform", "", "string", "Set platform if server is multi-platform capable")
    cmd.flags.add("quiet", "q", "bool", "Suppress verbose output")
    return cmd


def make_push(name: str = "push") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] NAME[:TAG]",
        short="Upload an image to a registry",
        run=run_push,
        aliases_text="berth image push, berth push",
        args=("exact", 1, 1),
        category="top",
        order=6,
    )
    cmd.flags.add("all-tags", "a", "bool", "Push all tags of an image to the repository")
    cmd.flags.add("disable-content-trust", "", "bool", "Skip image signing", True, default_text="true")
    cmd.flags.add("platform", "", "string", "Push a platform-specific manifest as a single-platform image to the registry.\nImage index won't be pushed, meaning that other manifests, including attestations won't be preserved.\n'os[/arch[/variant]]': Explicit platform (eg. linux/amd64)")
    cmd.flags.add("quiet", "q", "bool", "Suppress verbose output")
    return cmd


def make_history(name: str = "history") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] IMAGE",
        short="Show the history of an image",
        run=run_history,
        aliases_text="berth image history, berth history",
        args=("exact", 1, 1),
    )
    cmd.flags.add("format", "", "string", FORMAT_HELP)
    cmd.flags.add("human", "H", "bool", "Print sizes and dates in human readable format", True, default_text="true")
    cmd.flags.add("no-trunc", "", "bool", "Don't truncate output")
    cmd.flags.add("platform", "", "string", "Show history for the given platform. Formatted as \"os[/arch[/variant]]\" (e.g., \"linux/amd64\")")
    cmd.flags.add("quiet", "q", "bool", "Only show image IDs")
    return cmd


def make_save(name: str = "save") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS] IMAGE [IMAGE...]",
        short="Save one or more images to a tar archive (streamed to STDOUT by default)",
        run=run_save,
        aliases_text="berth image save, berth save",
        args=("min", 1, 0),
    )
    cmd.flags.add("output", "o", "string", "Write to a file, instead of STDOUT")
    cmd.flags.add(
        "platform", "", "string",
        'Save only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")',
    )
    return cmd


def make_load(name: str = "load") -> Command:
    cmd = Command(
        name,
        use=f"{name} [OPTIONS]",
        short="Load an image from a tar archive or STDIN",
        run=run_load,
        aliases_text="berth image load, berth load",
        args=("none", 0, 0),
    )
    cmd.flags.add("input", "i", "string", "Read from tar archive file, instead of STDIN")
    cmd.flags.add(
        "platform", "", "string",
        'Load only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")',
    )
    cmd.flags.add("quiet", "q", "bool", "Suppress the load output")
    return cmd


def image_command() -> Command:
    group = Command("image", short="Manage images", category="management")
    inspect = Command(
        "inspect",
        use="inspect [OPTIONS] IMAGE [IMAGE...]",
        short="Display detailed information on one or more images",
        run=run_image_inspect,
        args=("min", 1, 0),
    )
    inspect.flags.add("format", "f", "string", INSPECT_FORMAT_HELP)
    inspect.flags.add("platform", "", "string", "Inspect a specific platform of the multi-platform image.\nIf the image or the server is not multi-platform capable, the command will error out if the platform does not match.\n'os[/arch[/variant]]': Explicit platform (eg. linux/amd64)")
    prune = Command(
        "prune", use="prune [OPTIONS]", short="Remove unused images", run=run_image_prune, args=("none", 0, 0)
    )
    prune.flags.add("all", "a", "bool", "Remove all unused images, not just dangling ones")
    prune.flags.add("filter", "", "filter", 'Provide filter values (e.g. "until=<timestamp>")')
    prune.flags.add("force", "f", "bool", "Do not prompt for confirmation")
    from berth.cli.build import make_build

    group.add(
        make_build(),
        make_history(),
        make_import(),
        inspect,
        make_load(),
        make_images("ls", ["list"]),
        prune,
        make_pull(),
        make_push(),
        make_rmi("rm", ["remove"]),
        make_save(),
        make_tag(),
    )
    for sub in group.subcommands:
        sub.category = ""
    return group


def top_level_commands() -> list[Command]:
    from berth.cli.build import make_build

    return [
        make_build(),
        make_history(),
        make_images(),
        make_import(),
        make_load(),
        make_pull(),
        make_push(),
        make_rmi(),
        make_save(),
        make_tag(),
    ]
