"""JSON for the runtime's short-lived commands, on `_json` alone.

`import json` brings `re` (and `enum`, `functools`, `collections` behind it) for
regular expressions the C scanner and encoder never use: about 5 ms of every
`berth-runtime` command, which is a fresh interpreter each time. This module drives
the same C scanner and encoder `json` uses, so values, escapes and errors
(`json.JSONDecodeError`, a ValueError) are the same; `json` is imported only to
report a malformed document. Output is compact unless `indent` is given.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
_encode = _json.make_encoder(None, lambda o: _unserializable(o), _json.encode_basestring_ascii,
                             None, ": ", ", ", False, False, True)  # fmt: skip


def _unserializable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        obj, end = _scan(text, start)
    except StopIteration as stop:
        _fail("Expecting value", text, stop.value)
    except SystemError:
        # The scanner raises its errors through json.decoder, if `json` is loaded; if it
        # is not, a SystemError says only that. Let `json` find and say what is wrong.
        import json

        return json.loads(text)
    if text[end:].strip(_WHITESPACE):
        _fail("Extra data", text, end + len(text[end:]) - len(text[end:].lstrip(_WHITESPACE)))
    return obj


def _fail(message: str, text: str, pos: int) -> None:
    import json

    raise json.JSONDecodeError(message, text, pos)


def load(f: IO[Any]) -> Any:
    return loads(f.read())


def dumps(obj: object, indent: int | None = None) -> str:
    if indent is None:
        return "".join(_encode(obj, 0))
    return _pretty(obj, " " * indent, "\n")


def _pretty(obj: object, step: str, margin: str) -> str:
    inner = margin + step
    if isinstance(obj, dict) and obj:
        items = (f"{_json.encode_basestring_ascii(str(k))}: {_pretty(v, step, inner)}" for k, v in obj.items())
        return "{" + inner + ("," + inner).join(items) + margin + "}"
    if isinstance(obj, (list, tuple)) and obj:
        return "[" + inner + ("," + inner).join(_pretty(v, step, inner) for v in obj) + margin + "]"
    return "".join(_encode(obj, 0))


def dump(obj: object, f: IO[str], indent: int | None = None) -> None:
    f.write(dumps(obj, indent))
