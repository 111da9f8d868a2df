"""Variable interpolation in compose files and `.env` files, as compose-go does it.

Owns: `${VAR}`, `$VAR`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`,
`${VAR:+alt}`, `${VAR+alt}`, `$$` (a literal `$`), defaults that hold further
substitutions; walking a parsed document and substituting in every string value (keys
are left alone, as compose-go leaves them); the type casts compose-go applies to values
that were strings before substitution (`published: ${PORT}` is then an integer);
reading dotenv files. An unset variable without a default becomes "" and a warning is
collected (never printed here); `:?`/`?` raise with the message.
Must not: read the process environment itself (the caller passes the mapping in).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from berth.compose.yamlfile import Tagged
from berth.errors import InvalidParameter

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


class InterpolationError(InvalidParameter):
    pass


class _Invalid(Exception):
    pass


class _Required(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(name)
        self.name = name
        self.message = message


def _find_closing(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start`."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise _Invalid


def _substitute(text: str, lookup: Mapping[str, str], warnings: list[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            end = _find_closing(text, i + 2)
            out.append(_braced(text[i + 2 : end], lookup, warnings))
            i = end + 1
            continue
        m = _NAME.match(text, i + 1)
        if m is None:
            # A lone `$` (at the end, before a space…) stays as compose-go leaves it.
            out.append("$")
            i += 1
            continue
        out.append(_value(m.group(0), lookup, warnings))
        i = m.end()
    return "".join(out)


def _value(name: str, lookup: Mapping[str, str], warnings: list[str]) -> str:
    if name in lookup:
        return lookup[name]
    warning = f'The "{name}" variable is not set. Defaulting to a blank string.'
    if warning not in warnings:
        warnings.append(warning)
    return ""


def _braced(body: str, lookup: Mapping[str, str], warnings: list[str]) -> str:
    m = _NAME.match(body)
    if m is None:
        raise _Invalid
    name = m.group(0)
    rest = body[m.end() :]
    if rest == "":
        return _value(name, lookup, warnings)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise _Invalid
    value = lookup.get(name)
    present = value is not None and (value != "" or not op.startswith(":"))
    if op in (":-", "-"):
        return value if present and value is not None else _substitute(arg, lookup, warnings)
    if op in (":+", "+"):
        return _substitute(arg, lookup, warnings) if present else ""
    if not present or value is None:
        raise _Required(name, _substitute(arg, lookup, warnings))
    return value


def interpolate_string(
    text: str, lookup: Mapping[str, str], warnings: list[str], *, path: str = ""
) -> str:
    """Substitute variables in one string; `path` names it in errors ("services.web.image")."""
    if "$" not in text:
        return text
    try:
        return _substitute(text, lookup, warnings)
    except _Invalid:
        raise InterpolationError(
            f"invalid interpolation format for {path}.\n"
            f"You may need to escape any $ with another $.\n{text}"
        ) from None
    except _Required as e:
        detail = f": {e.message}" if e.message else ""
        raise InterpolationError(
            f"error while interpolating {path}: required variable {e.name} is missing a value"
            f"{detail}"
        ) from None


# compose-go's interpolateTypeCastMapping: values at these paths that were strings
# (after substitution) become typed, so `replicas: ${N}` validates as an integer.
def _to_int(s: str) -> Any:
    try:
        return int(s, 0) if not s.startswith("0") or s == "0" else int(s, 8)
    except ValueError:
        return s


def _to_float(s: str) -> Any:
    try:
        return float(s)
    except ValueError:
        return s


def _to_bool(s: str) -> Any:
    lowered = s.lower()
    if lowered in ("y", "yes", "true", "on"):
        return True
    if lowered in ("n", "no", "false", "off"):
        return False
    return s


_S = "services.*."
_CASTS: dict[str, Callable[[str], Any]] = {
    _S + "configs.[].mode": _to_int,
    _S + "secrets.[].mode": _to_int,
    _S + "cpu_count": _to_int,
    _S + "cpu_percent": _to_float,
    _S + "cpu_period": _to_int,
    _S + "cpu_quota": _to_int,
    _S + "cpu_rt_period": _to_int,
    _S + "cpu_rt_runtime": _to_int,
    _S + "cpus": _to_float,
    _S + "cpu_shares": _to_int,
    _S + "init": _to_bool,
    _S + "deploy.replicas": _to_int,
    _S + "deploy.update_config.parallelism": _to_int,
    _S + "deploy.update_config.max_failure_ratio": _to_float,
    _S + "deploy.rollback_config.parallelism": _to_int,
    _S + "deploy.rollback_config.max_failure_ratio": _to_float,
    _S + "deploy.restart_policy.max_attempts": _to_int,
    _S + "deploy.placement.max_replicas_per_node": _to_int,
    _S + "healthcheck.retries": _to_int,
    _S + "healthcheck.disable": _to_bool,
    _S + "oom_kill_disable": _to_bool,
    _S + "oom_score_adj": _to_int,
    _S + "pids_limit": _to_int,
    _S + "ports.[].target": _to_int,
    _S + "ports.[].published": _to_int,
    _S + "privileged": _to_bool,
    _S + "read_only": _to_bool,
    _S + "scale": _to_int,
    _S + "stdin_open": _to_bool,
    _S + "tty": _to_bool,
    _S + "ulimits.*": _to_int,
    _S + "ulimits.*.hard": _to_int,
    _S + "ulimits.*.soft": _to_int,
    _S + "volumes.[].read_only": _to_bool,
    _S + "volumes.[].volume.nocopy": _to_bool,
    _S + "volumes.[].bind.create_host_path": _to_bool,
    _S + "depends_on.*.required": _to_bool,
    _S + "depends_on.*.restart": _to_bool,
    "networks.*.external": _to_bool,
    "networks.*.internal": _to_bool,
    "networks.*.attachable": _to_bool,
    "networks.*.enable_ipv6": _to_bool,
    "volumes.*.external": _to_bool,
    "secrets.*.external": _to_bool,
    "configs.*.external": _to_bool,
}


def _cast_for(pattern: tuple[str, ...]) -> Callable[[str], Any] | None:
    for key, cast in _CASTS.items():
        parts = key.split(".")
        if len(parts) == len(pattern) and all(
            p == "*" or p == q or (p == "[]" and q == "[]") for p, q in zip(parts, pattern, strict=True)
        ):
            return cast
    return None


def interpolate_document(
    doc: Any, lookup: Mapping[str, str], warnings: list[str], *, prefix: str = ""
) -> Any:
    """A copy of `doc` with every string value interpolated and compose-go's casts applied."""

    def walk(node: Any, path: list[str], pattern: list[str]) -> Any:
        if isinstance(node, Tagged):
            return Tagged(node.tag, walk(node.value, path, pattern))
        if isinstance(node, dict):
            return {
                k: walk(v, [*path, str(k)], [*pattern, str(k)]) for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v, [*path, str(i)], [*pattern, "[]"]) for i, v in enumerate(node)]
        if isinstance(node, str):
            where = ".".join(p for p in ([prefix] if prefix else []) + path)
            value = interpolate_string(node, lookup, warnings, path=where)
            cast = _cast_for(tuple(pattern)) if pattern and pattern[0] != "x-" else None
            if cast is None:
                return value
            typed = cast(value)
            if typed is value and value != "" and "ulimits" not in pattern and "published" not in pattern:
                raise InterpolationError(
                    f"error while interpolating {where}: failed to cast to expected type: "
                    f"invalid value {value!r}"
                )
            return typed
        return node

    return walk(doc, [], [])


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([^=\s#]+)\s*(?:=(.*))?$")


def parse_dotenv(
    text: str, lookup: Mapping[str, str], *, source: str, warnings: list[str] | None = None
) -> dict[str, str]:
    """Parse a `.env`/env_file: KEY=VALUE lines, quotes, comments, interpolation.

    Values may refer to variables set earlier in the file or in `lookup`; single
    quotes are literal, double quotes know \\n \\t \\" \\\\ escapes. A bare `KEY`
    takes its value from `lookup` (and is skipped when unset).
    """
    warnings = warnings if warnings is not None else []
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _DOTENV_LINE.match(line)
        if m is None:
            raise InvalidParameter(f"{source}: line {i}: unexpected character in variable name")
        key, raw = m.group(1), m.group(2)
        scope = {**lookup, **result}
        if raw is None:
            if key in lookup:
                result[key] = lookup[key]
            continue
        raw = raw.lstrip()
        if raw[:1] in ("'", '"'):
            quote = raw[0]
            body = raw[1:]
            while quote not in _unescaped(body, quote) and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            end = _closing_quote(body, quote)
            if end < 0:
                raise InvalidParameter(f"{source}: line {i}: unterminated quoted value")
            value = body[:end]
            if quote == '"':
                value = (
                    value.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
                    .replace("\\\\", "\\")
                )
                value = interpolate_string(value, scope, warnings, path=f"{source}: {key}")
            result[key] = value
            continue
        value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        result[key] = interpolate_string(value, scope, warnings, path=f"{source}: {key}")
    return result


def _unescaped(body: str, quote: str) -> str:
    return body.replace("\\" + quote, "") if quote == '"' else body


def _closing_quote(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if quote == '"' and body[i] == "\\":
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def read_dotenv(
    path: Path, lookup: Mapping[str, str], warnings: list[str] | None = None
) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidParameter(
            f"env file {path} not found: stat {path}: no such file or directory"
        ) from None
    except OSError as e:
        raise InvalidParameter(f"env file {path}: {e.strerror}") from None
    return parse_dotenv(text, lookup, source=str(path), warnings=warnings)
