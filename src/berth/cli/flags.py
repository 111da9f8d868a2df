"""Command-line grammar of the docker CLI (cobra + pflag), in plain Python.

A ``Command`` has a ``FlagSet`` and either a run function or subcommands.
Parsing follows pflag: ``--flag value``, ``--flag=value``, ``-f value``,
``-fvalue``, ``-f=value``, grouped booleans (``-dit``), ``--`` ending the flags,
and, for commands that take a command line of their own (``run``, ``exec``),
flags stop at the first positional argument.  Errors and help text are
worded and laid out as docker's, with the program name in place of
``docker``.  Pure code: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

PROG = "berth"


class UsageError(Exception):
    """A command-line error; ``status`` is the exit code docker uses for it."""

    def __init__(self, message: str, status: int = 125) -> None:
        super().__init__(message)
        self.status = status


class HelpRequested(Exception):
    """``--help`` was given; the caller prints the command's help."""

    def __init__(self, command: Command, deprecated_short: bool = False, to_stderr: bool = False) -> None:
        super().__init__(command.path)
        self.command = command
        self.deprecated_short = deprecated_short
        self.to_stderr = to_stderr  # docker prints a bare management command's help on stderr


# --------------------------------------------------------------------------
# Value types


def parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_int(text: str) -> int:
    clean = text.replace("_", "") if "_" in text.strip("_") else text
    try:
        return int(clean, 0)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    orig = text
    if not text:
        raise ValueError(f'time: invalid duration "{orig}"')
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0.0
    while text:
        i = 0
        while i < len(text) and (text[i].isdigit() or text[i] == "."):
            i += 1
        if i == 0:
            raise ValueError(f'time: invalid duration "{orig}"')
        number = float(text[:i])
        text = text[i:]
        j = 0
        while j < len(text) and not (text[j].isdigit() or text[j] == "."):
            j += 1
        unit = text[:j]
        text = text[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{orig}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += number * _DURATION_UNITS[unit]
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's time.Duration.String() for help defaults ("0s", "1m30s")."""
    if seconds == 0:
        return "0s"
    out = ""
    rest = seconds
    hours = int(rest // 3600)
    if hours:
        out += f"{hours}h"
        rest -= hours * 3600
    minutes = int(rest // 60)
    if minutes or hours:
        out += f"{minutes}m"
        rest -= minutes * 60
    out += f"{rest:g}s"
    return out


_RAM_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_ram_bytes(text: str) -> int:
    """go-units RAMInBytes: "512m", "1g", "1.5GiB", "100" (bytes)."""
    sep = max(text.rfind(c) for c in "01234567890. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{text}'")
    num, sfx = text[: sep + 1], text[sep + 1 :]
    try:
        size = float(num)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{num}": invalid syntax') from None
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not sfx:
        return int(size)
    low = sfx.lower()
    bad = ValueError(f"invalid suffix: '{low if len(sfx) <= 3 else sfx}'")
    if len(sfx) > 3:
        raise bad
    if low[0] == "b":
        if len(low) > 1:
            raise bad
        return int(size)
    if low[0] not in _RAM_UNITS or low[0] == "b":
        raise bad
    size *= _RAM_UNITS[low[0]]
    if (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise bad
    return int(size)


def parse_nano_cpus(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"failed to parse {text} as a rational number") from None
    nano = value * 1e9
    if nano != int(nano):
        raise ValueError("value is too precise")
    return int(nano)


def parse_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError("bad format of filter (expected name=value)")
    return key.strip().lower(), value.strip()


# --------------------------------------------------------------------------
# Flags


class Flag:
    """One flag.  ``kind`` is pflag's type name as shown in help (bool, string,
    int, list, duration …); ``convert`` turns one textual value into a Python
    value; ``repeat`` flags collect every value into a list."""

    __slots__ = ("name", "shorthand", "kind", "usage", "default", "convert", "repeat", "hidden", "default_text", "dest")

    def __init__(
        self,
        name: str,
        shorthand: str,
        kind: str,
        usage: str,
        default: Any = None,
        convert: Callable[[str], Any] | None = None,
        repeat: bool = False,
        hidden: bool = False,
        default_text: str | None = None,
        dest: str = "",
    ) -> None:
        self.name = name
        self.dest = dest or name  # flags sharing a dest (deprecated aliases) share a value
        self.shorthand = shorthand
        self.kind = kind
        self.usage = usage
        self.default = default
        self.convert = convert
        self.repeat = repeat
        self.hidden = hidden
        self.default_text = default_text  # what help prints as "(default …)"

    @property
    def display_name(self) -> str:
        if self.shorthand:
            return f"-{self.shorthand}, --{self.name}"
        return f"--{self.name}"


class FlagSet:
    def __init__(self) -> None:
        self.flags: dict[str, Flag] = {}
        self.shorthands: dict[str, Flag] = {}

    def add(
        self,
        name: str,
        shorthand: str = "",
        kind: str = "bool",
        usage: str = "",
        default: Any = None,
        *,
        convert: Callable[[str], Any] | None = None,
        hidden: bool = False,
        default_text: str | None = None,
        dest: str = "",
    ) -> Flag:
        repeat = kind in ("list", "filter", "strings", "stringArray", "map", "ulimit", "mount", "network", "gpu-request")
        if default is None:
            if kind == "bool":
                default = False
            elif repeat:
                default = []
            elif kind == "string":
                default = ""
            elif kind in ("int", "uint16", "uint", "int64"):
                default = 0
            elif kind == "duration":
                default = 0.0
        if convert is None:
            if kind == "bool":
                convert = parse_bool
            elif kind in ("int", "uint16", "uint", "int64"):
                convert = parse_int
            elif kind == "duration":
                convert = parse_duration
            elif kind == "filter":
                convert = parse_filter
            elif kind == "bytes":
                convert = parse_ram_bytes
            elif kind == "decimal":
                convert = parse_nano_cpus
        flag = Flag(name, shorthand, kind, usage, default, convert, repeat, hidden, default_text, dest)
        self.flags[name] = flag
        if shorthand:
            self.shorthands[shorthand] = flag
        return flag

    def help_text(self, cols: int = 79) -> str:
        """pflag's FlagUsagesWrapped, sorted by name."""
        lines: list[str] = []
        maxlen = 0
        for name in sorted(self.flags):
            flag = self.flags[name]
            if flag.hidden:
                continue
            if flag.shorthand:
                line = f"  -{flag.shorthand}, --{flag.name}"
            else:
                line = f"      --{flag.name}"
            varname, usage = _unquote_usage(flag)
            if varname:
                line += " " + varname
            line += "\x00"
            maxlen = max(maxlen, len(line))
            line += usage
            default = _default_text(flag)
            if default is not None:
                line += f" (default {default})"
            lines.append(line)
        out: list[str] = []
        for line in lines:
            sidx = line.index("\x00")
            spacing = " " * (maxlen - sidx)
            out.append(f"{line[:sidx]} {spacing} {_wrap(maxlen + 2, cols, line[sidx + 1:])}\n")
        return "".join(out)


def _unquote_usage(flag: Flag) -> tuple[str, str]:
    usage = flag.usage
    start = usage.find("`")
    if start >= 0:
        end = usage.find("`", start + 1)
        if end > 0:
            name = usage[start + 1 : end]
            return name, usage[:start] + name + usage[end + 1 :]
    kind = flag.kind
    if kind == "bool":
        return "", usage
    return {"float64": "float", "int64": "int", "uint64": "uint", "stringSlice": "strings"}.get(kind, kind), usage


def _default_text(flag: Flag) -> str | None:
    if flag.default_text is not None:
        return flag.default_text or None
    value = flag.default
    if flag.kind == "bool":
        return "true" if value else None
    if flag.kind == "string":
        return f'"{value}"' if value else None
    if flag.kind in ("int", "uint16", "uint", "int64"):
        return str(value) if value else None
    if flag.kind == "duration":
        return None if not value else format_duration(value)
    return None


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    if i + slop > len(s):
        return s, ""
    head = s[:i]
    w = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"))
    if w <= 0:
        return s, ""
    nl = head.rfind("\n")
    if 0 < nl < w:
        return s[:nl], s[nl + 1 :]
    return s[:w], s[w + 1 :]


def _wrap(i: int, w: int, s: str) -> str:
    if w == 0:
        return s.replace("\n", "\n" + " " * i)
    wrap = w - i
    r = ""
    if wrap < 24:
        i = 16
        wrap = w - i
        r += "\n" + " " * i
    if wrap < 24:
        return s.replace("\n", r)
    slop = 5
    wrap -= slop
    line, s = _wrap_n(wrap, slop, s)
    r += line.replace("\n", "\n" + " " * i)
    while s:
        line, s = _wrap_n(wrap, slop, s)
        r += "\n" + " " * i + line.replace("\n", "\n" + " " * i)
    return r


class ParsedFlags:
    """The outcome of parsing: values by flag name, which were given, positionals."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.changed: set[str] = set()
        self.args: list[str] = []

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def parse_flags(flagset: FlagSet, argv: Sequence[str], interspersed: bool = True) -> ParsedFlags:
    """Parse ``argv`` against ``flagset`` the way pflag does."""
    result = ParsedFlags()
    for flag in flagset.flags.values():
        if flag.dest not in result.values:
            result.values[flag.dest] = list(flag.default) if flag.repeat else flag.default
    args = list(argv)

    def set_value(flag: Flag, text: str) -> None:
        try:
            value = flag.convert(text) if flag.convert else text
        except ValueError as exc:
            raise UsageError(f'invalid argument "{text}" for "{flag.display_name}" flag: {exc}') from None
        dest = flag.dest
        if flag.repeat:
            if dest not in result.changed:
                result.values[dest] = []
            if flag.kind == "strings":
                result.values[dest].extend(v for v in text.split(",") if v or text == "")
            else:
                result.values[dest].append(value)
        else:
            result.values[dest] = value
        result.changed.add(dest)

    while args:
        arg = args.pop(0)
        if len(arg) < 2 or arg[0] != "-":
            if not interspersed:
                result.args.append(arg)
                result.args.extend(args)
                break
            result.args.append(arg)
            continue
        if arg == "--":
            result.args.extend(args)
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not name or name[0] in "-=":
                raise UsageError(f"bad flag syntax: {arg}")
            long_flag = flagset.flags.get(name)
            if long_flag is None:
                if name == "help":
                    if eq:
                        try:
                            wanted = parse_bool(value)
                        except ValueError as exc:
                            raise UsageError(f'invalid argument "{value}" for "-h, --help" flag: {exc}') from None
                        if not wanted:
                            continue
                    raise HelpRequested(_PLACEHOLDER)
                raise UsageError(f"unknown flag: --{name}")
            if eq:
                set_value(long_flag, value)
            elif long_flag.kind == "bool":
                set_value(long_flag, "true")
            elif args:
                set_value(long_flag, args.pop(0))
            else:
                raise UsageError(f"flag needs an argument: {arg}")
            continue
        shorts = arg[1:]
        pending = args
        while shorts:
            char = shorts[0]
            short_flag = flagset.shorthands.get(char)
            if short_flag is None:
                if char == "h":
                    raise HelpRequested(_PLACEHOLDER, deprecated_short=True)
                raise UsageError(f"unknown shorthand flag: '{char}' in -{shorts}")
            if len(shorts) > 2 and shorts[1] == "=":
                set_value(short_flag, shorts[2:])
                shorts = ""
            elif short_flag.kind == "bool":
                set_value(short_flag, "true")
                shorts = shorts[1:]
            elif len(shorts) > 1:
                set_value(short_flag, shorts[1:])
                shorts = ""
            elif pending:
                set_value(short_flag, pending.pop(0))
                shorts = ""
            else:
                raise UsageError(f"flag needs an argument: '{char}' in -{shorts}")
    return result


# --------------------------------------------------------------------------
# Commands


Runner = Callable[[Any, ParsedFlags], int | None]


class Command:
    """A command or a management command (one with subcommands)."""

    def __init__(
        self,
        name: str,
        use: str = "",
        short: str = "",
        run: Runner | None = None,
        aliases: list[str] | None = None,
        aliases_text: str = "",
        args: tuple[str, int, int] = ("any", 0, 0),
        interspersed: bool = True,
        category: str = "",
        order: int = 0,
        hidden: bool = False,
    ) -> None:
        self.name = name
        self.use = use
        self.short = short
        self.run = run
        self.aliases = aliases or []
        self.aliases_text = aliases_text
        self.args = args  # (kind, min, max); kind: any, none, min, max, exact, range
        self.interspersed = interspersed
        self.flags = FlagSet()
        self.subcommands: list[Command] = []
        self.parent: Command | None = None
        self.category = category  # "top" (with order), "management", "swarm", ""
        self.order = order
        self.hidden = hidden
        self.long = ""  # shown instead of ``short`` in help, when set

    def add(self, *commands: Command) -> None:
        for cmd in commands:
            cmd.parent = self
            self.subcommands.append(cmd)

    @property
    def path(self) -> str:
        if self.parent is None:
            return self.name
        return f"{self.parent.path} {self.name}"

    @property
    def use_line(self) -> str:
        if self.parent is None:
            return self.use
        if not self.use:
            return self.path
        return f"{self.parent.path} {self.use}"

    def find(self, name: str) -> Command | None:
        for cmd in self.subcommands:
            if cmd.name == name or name in cmd.aliases:
                return cmd
        return None

    def check_args(self, args: list[str]) -> None:
        kind, lo, hi = self.args
        n = len(args)
        path = self.path
        usage = f"\n\nUsage:  {self.use_line}\n\n"
        if kind == "none" and n:
            raise UsageError(
                f"{PROG}: '{path}' accepts no arguments{usage}Run '{path} --help' for more information", 1
            )
        if kind == "min" and n < lo:
            raise UsageError(
                f"{PROG}: '{path}' requires at least {lo} {_plural('argument', lo)}{usage}"
                f"See '{path} --help' for more information",
                1,
            )
        if kind == "max" and n > hi:
            raise UsageError(
                f"{PROG}: '{path}' requires at most {hi} {_plural('argument', hi)}{usage}"
                f"SRun '{path} --help' for more information",
                1,
            )
        if kind == "exact" and n != lo:
            raise UsageError(
                f"{PROG}: '{path}' requires {lo} {_plural('argument', lo)}{usage}"
                f"Run '{path} --help' for more information",
                1,
            )
        if kind == "range" and not lo <= n <= hi:
            raise UsageError(
                f"{PROG}: '{path}' requires at least {lo} and at most {hi} {_plural('argument', hi)}{usage}"
                f"Run '{path} --help' for more information",
                1,
            )

    def flag_error(self, message: str) -> UsageError:
        return UsageError(
            f"{message}\n\nUsage:  {self.use_line}\n\nRun '{self.path} --help' for more information", 125
        )

    def help(self, cols: int = 79) -> str:
        """The usage text docker prints for ``--help``."""
        out: list[str] = []
        if self.subcommands:
            opts = " [OPTIONS]" if self.parent is None else ""
            out.append(f"Usage:  {self.path}{opts} COMMAND\n")
        else:
            out.append(f"Usage:  {self.use_line}\n")
        out.append(f"\n{self.long or self.short}\n")
        if self.parent is not None and (self.aliases_text or self.aliases):
            text = self.aliases_text
            if not text:
                parent_path = self.parent.path + " "
                text = self.path + "".join(", " + parent_path + a for a in self.aliases)
            out.append(f"\nAliases:\n  {text}\n")
        visible = [f for f in self.flags.flags.values() if not f.hidden]
        if self.parent is not None and visible:
            out.append("\nOptions:\n" + self.flags.help_text(cols).rstrip() + "\n")
        if self.parent is None:
            out.extend(self._root_sections())
        elif self.subcommands:
            subs = [c for c in self.subcommands if not c.hidden and not c.subcommands]
            if subs:
                pad = max(len(c.name) for c in subs)
                pad = max(pad, 11)
                out.append("\nCommands:\n")
                for cmd in sorted(subs, key=lambda c: c.name):
                    out.append(f"  {cmd.name.ljust(pad)} {cmd.short}\n")
        if self.parent is None and visible:
            out.append("\nGlobal Options:\n" + self.flags.help_text(cols).rstrip() + "\n")
        if self.subcommands:
            out.append(f"\nRun '{self.path} COMMAND --help' for more information on a command.\n")
        return "".join(out)

    def _root_sections(self) -> list[str]:
        subs = [c for c in self.subcommands if not c.hidden]
        pad = max([len(c.name) for c in subs] + [11])
        out: list[str] = []
        top = sorted((c for c in subs if c.category == "top"), key=lambda c: c.order)
        if top:
            out.append("\nCommon Commands:\n")
            out.extend(f"  {c.name.ljust(pad)} {c.short}\n" for c in top)
        mgmt = sorted((c for c in subs if c.category == "management"), key=lambda c: c.name)
        if mgmt:
            out.append("\nManagement Commands:\n")
            out.extend(f"  {c.name.ljust(pad)} {c.short}\n" for c in mgmt)
        swarm = sorted((c for c in subs if c.category == "swarm"), key=lambda c: c.name)
        if swarm:
            out.append("\nSwarm Commands:\n")
            out.extend(f"  {c.name.ljust(pad)} {c.short}\n" for c in swarm)
        rest = sorted((c for c in subs if not c.category and not c.subcommands), key=lambda c: c.name)
        if rest:
            out.append("\nCommands:\n")
            out.extend(f"  {c.name.ljust(pad)} {c.short}\n" for c in rest)
        return out


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + "s"


_PLACEHOLDER = Command("")


def resolve(root: Command, argv: Sequence[str]) -> tuple[Command, ParsedFlags]:
    """Find the command named by ``argv`` (after the global flags) and parse its flags."""
    cmd = root
    rest = list(argv)
    while cmd.subcommands:
        if not rest:
            raise HelpRequested(cmd, to_stderr=True)
        word = rest[0]
        if word.startswith("-") and len(word) > 1:
            if word in ("--help", "-h"):
                raise HelpRequested(cmd, deprecated_short=word == "-h")
            try:
                parse_flags(cmd.flags, [word], interspersed=False)
            except UsageError as err:
                raise cmd.flag_error(str(err)) from None
            except HelpRequested:
                raise HelpRequested(cmd) from None
            raise cmd.flag_error(f"unknown flag: {word}")
        sub = cmd.find(word)
        if sub is None:
            if word == "help" and cmd is root:
                target = root
                for name in rest[1:]:
                    nxt = target.find(name)
                    if nxt is None:
                        break
                    target = nxt
                raise HelpRequested(target)
            if cmd is root:
                raise UsageError(
                    f"{PROG}: unknown command: {PROG} {word}\n\nRun '{PROG} --help' for more information", 1
                )
            raise UsageError(
                f"{PROG}: unknown command: {cmd.path} {word}\n\nUsage:  {cmd.path}\n\n"
                f"Run '{cmd.path} --help' for more information",
                1,
            )
        cmd = sub
        rest = rest[1:]
    try:
        parsed = parse_flags(cmd.flags, rest, cmd.interspersed)
    except HelpRequested as req:
        raise HelpRequested(cmd, req.deprecated_short) from None
    except UsageError as err:
        raise cmd.flag_error(str(err)) from None
    if parsed.get("help"):
        raise HelpRequested(cmd)
    cmd.check_args(parsed.args)
    return cmd, parsed
