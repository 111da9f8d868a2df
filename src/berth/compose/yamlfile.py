"""Reading one compose file's YAML safely, as compose v2's YAML reader sees it.

Owns: turning bytes into plain Python data (dicts, lists, str, int, float, bool, None)
with YAML 1.2 core scalars (as Go's yaml.v3 resolves them into an interface: `yes` and
`on` stay strings, `0755` is octal), anchors and `<<` merge keys, and the limits that
keep hostile input harmless: a size cap, a cap on the expanded size of aliases (a
"billion laughs" document is refused before it is built), a nesting cap, no recursive
aliases, no duplicate keys. Errors read like compose v2's: "yaml: line 3, column 5: …".
Must not: interpolate, validate or know anything about the compose model.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from berth.errors import InvalidParameter

MAX_FILE_SIZE = 16 * 1024 * 1024
# Nodes of the document once every alias is expanded: a generous compose file has a few
# thousand; a billion-laughs document has billions.
MAX_EXPANDED_NODES = 1_000_000
MAX_DEPTH = 200


class _CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema scalars, plus yaml.v3's leading-zero octal."""


_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_CoreResolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _Constructor(yaml.constructor.SafeConstructor):
    def construct_yaml_int(self, node: Any) -> int:
        text = str(self.construct_scalar(node))
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        if len(digits) > 1 and digits.startswith("0") and all(c in "01234567" for c in digits):
            return sign * int(digits, 8)
        return sign * int(digits)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)


class Tagged:
    """A value under compose's merge tags: `!reset` (drop what earlier files set) or
    `!override` (replace it rather than merge). merge.py honours them; strip_tags takes
    them out of a document that is not merged further."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"{self.tag} {self.value!r}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tagged) and (self.tag, self.value) == (other.tag, other.value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Tagged:
        import copy

        return Tagged(self.tag, copy.deepcopy(self.value, memo))


def _construct_tagged(loader: _Constructor, node: Any) -> Tagged:
    if isinstance(node, MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_object(ScalarNode(_resolve_plain(loader, node), node.value,
                                                   node.start_mark, node.end_mark, node.style))
    return Tagged(node.tag, value)


def _resolve_plain(loader: Any, node: Any) -> str:
    return str(loader.resolve(ScalarNode, node.value, (True, False)))


for _tag in ("!reset", "!override"):
    _Constructor.add_constructor(_tag, _construct_tagged)


def strip_tags(value: Any) -> Any:
    """`value` with `!reset` entries dropped and `!override` values unwrapped."""
    if isinstance(value, Tagged):
        return None if value.tag == "!reset" else strip_tags(value.value)
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items()
                if not (isinstance(v, Tagged) and v.tag == "!reset")}
    if isinstance(value, list):
        return [strip_tags(v) for v in value if not (isinstance(v, Tagged) and v.tag == "!reset")]
    return value


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _Constructor,
    _CoreResolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        _CoreResolver.__init__(self)


def _where(mark: Any) -> str:
    if mark is None:
        return "yaml"
    return f"yaml: line {mark.line + 1}, column {mark.column + 1}"


def _check_nodes(root: Node) -> None:
    """Refuse documents too big once expanded, too deep, recursive, or with a key twice."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise InvalidParameter(f"{_where(node.start_mark)}: recursive alias")
        if depth > MAX_DEPTH:
            raise InvalidParameter(
                f"{_where(node.start_mark)}: document nested deeper than {MAX_DEPTH} levels"
            )
        visiting.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
        elif isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise InvalidParameter(
                            f"yaml: line {k.start_mark.line + 1}: mapping key "
                            f'"{k.value}" already defined at line {seen[k.value]}'
                        )
                    seen[k.value] = k.start_mark.line + 1
                total += size(k, depth + 1) + size(v, depth + 1)
        if total > MAX_EXPANDED_NODES:
            raise InvalidParameter(
                f"{_where(node.start_mark)}: document too large once its aliases are "
                f"expanded (more than {MAX_EXPANDED_NODES} nodes)"
            )
        visiting.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _reader_error(e: yaml.reader.ReaderError) -> str:
    character = e.character if isinstance(e.character, int) else ord(e.character[:1] or "\0")
    return f"yaml: position {e.position}: unacceptable character #x{character:04x}: {e.reason}"


def parse_yaml(data: bytes | str, *, source: str = "") -> Any:
    """Parse one YAML document into plain data; an empty document is None."""
    if len(data) > MAX_FILE_SIZE:
        raise InvalidParameter(
            f"{source or 'compose file'}: file too large ({len(data)} bytes, "
            f"at most {MAX_FILE_SIZE})"
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InvalidParameter(f"{source or 'compose file'}: not UTF-8: {e}") from None
    else:
        text = data
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:
        raise InvalidParameter(_reader_error(e)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise InvalidParameter(f"{_where(mark)}: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:
        raise InvalidParameter(_reader_error(e)) from None
    except yaml.YAMLError as e:
        raise InvalidParameter(f"yaml: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise InvalidParameter(
            f"yaml: document nested deeper than {MAX_DEPTH} levels"
        ) from None
    finally:
        loader.dispose()
