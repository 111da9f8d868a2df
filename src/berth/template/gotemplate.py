"""Go ``text/template`` for the ``--format`` flags of the berth CLI.

This is the subset of Go's template language that docker users write in
``--format``: actions with field chains, variables, pipelines, literals,
``if``/``else``/``with``/``range`` (with ``break``/``continue``), comments, trim
markers, Go's builtin functions and the docker CLI's additions (``json``,
``split``, ``join``, ``title``, ``lower``, ``upper``, ``pad``, ``truncate``).
Values print the way Go's ``fmt`` prints them (``map[k:v]``, ``[a b]``,
``<nil>``, ``<no value>``).  Error messages follow Go's wording so that scripts
matching on them keep working.

The module is pure: it takes a string and Python values and returns a string.
It must not import anything from the rest of berth, nor do any I/O.

Data model (what a Go value is here):

- ``dict``       a Go map: printed ``map[k:v ...]`` with sorted keys, ranged in
                 key order; a missing key yields "no value" (or an error with
                 ``missingkey=error``).
- ``GoStruct``   a dict standing for a Go struct: printed ``{v1 v2 ...}`` in field
                 order; a missing field is an error.
- ``NilList`` / ``NilMap``  a nil slice / map: print ``[]`` / ``map[]``, encode
                 as JSON ``null``.
- ``None``       a nil pointer or interface: prints ``<nil>``.
- ``NO_VALUE``   an invalid reflect.Value (e.g. a missing map key): prints
                 ``<no value>``.
- any other object exposes its capitalised attributes and methods as fields,
  as the docker CLI's formatter contexts do; it may define ``template_json()``
  for ``{{json .}}`` and ``template_type`` for error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any


class TemplateError(Exception):
    """A parse or execution error, worded like Go's text/template."""


class _NoValue:
    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class GoStruct(dict[str, Any]):
    """A JSON object that stands for a Go struct (fields in declaration order).

    ``aliases`` maps Go field names to JSON keys where they differ
    (``APIVersion`` is ``ApiVersion`` on the wire).
    """

    type_name = "struct"
    aliases: dict[str, str] = {}
    omitempty: frozenset[str] = frozenset()


class NilList(list[Any]):
    """A nil Go slice: prints as ``[]``, JSON-encodes as ``null``."""


class NilMap(dict[str, Any]):
    """A nil Go map: prints as ``map[]``, JSON-encodes as ``null``."""


class _LoopControl(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# --------------------------------------------------------------------------
# Lexer


class _Token:
    """A lexical item.  ``kind`` is one of: text, left, right, space, ident,
    field, variable, dot, string, rawstring, char, number, bool, nil, pipe,
    lparen, rparen, declare, assign, comma, keyword, eof."""

    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: str, pos: int) -> None:
        self.kind, self.value, self.pos = kind, value, pos


_KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
}
_SPACE = " \t\r\n"


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


class _Lexer:
    def __init__(self, text: str, name: str = "") -> None:
        self.text = text
        self.name = name
        self.pos = 0
        self.tokens: list[_Token] = []
        self.paren_depth = 0

    def line_of(self, pos: int) -> int:
        return 1 + self.text.count("\n", 0, pos)

    def error(self, msg: str, pos: int | None = None) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.line_of(self.pos if pos is None else pos)}: {msg}")

    def run(self) -> list[_Token]:
        text = self.text
        while True:
            start = self.pos
            idx = text.find("{{", start)
            if idx < 0:
                if start < len(text):
                    self.tokens.append(_Token("text", text[start:], start))
                self.tokens.append(_Token("eof", "", len(text)))
                return self.tokens
            chunk = text[start:idx]
            trim_left = text.startswith("-", idx + 2) and idx + 3 < len(text) and text[idx + 3] in _SPACE
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.tokens.append(_Token("text", chunk, start))
            self.pos = idx + 2 + (2 if trim_left else 0)
            self._lex_action(idx)

    def _at_right(self) -> tuple[bool, bool]:
        text, pos = self.text, self.pos
        if text.startswith("}}", pos):
            return True, False
        if pos + 1 < len(text) and text[pos] in _SPACE and text[pos + 1] == "-" and text.startswith("}}", pos + 2):
            return True, True
        return False, False

    def _close_action(self, trim: bool) -> None:
        self.pos += 4 if trim else 2
        if trim:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                self.pos += 1

    def _lex_action(self, left_pos: int) -> None:
        text = self.text
        # comments: {{/* ... */}}
        if text.startswith("/*", self.pos):
            end = text.find("*/", self.pos + 2)
            if end < 0:
                raise self.error("unclosed comment")
            self.pos = end + 2
            at, trim = self._at_right()
            if not at:
                raise self.error("comment ends before closing delimiter")
            self._close_action(trim)
            return
        self.tokens.append(_Token("left", "{{", left_pos))
        self.paren_depth = 0
        while True:
            at, trim = self._at_right()
            if at and self.paren_depth == 0:
                self.tokens.append(_Token("right", "}}", self.pos))
                self._close_action(trim)
                return
            if at:
                raise self.error("unclosed left paren")
            if self.pos >= len(text):
                raise self.error("unclosed action")
            ch = text[self.pos]
            start = self.pos
            if ch in _SPACE:
                if ch == "\n":
                    raise self.error("unclosed action")
                while self.pos < len(text) and text[self.pos] in " \t\r":
                    if self._at_right()[1]:
                        break
                    self.pos += 1
                if self.pos < len(text) and text[self.pos] == "\n":
                    raise self.error("unclosed action")
                if self.pos == start:
                    # a lone space before " -}}" trim marker
                    self.pos += 1
                self.tokens.append(_Token("space", " ", start))
            elif ch == "=":
                self.pos += 1
                self.tokens.append(_Token("assign", "=", start))
            elif ch == ":":
                if not text.startswith(":=", self.pos):
                    raise self.error("expected :=")
                self.pos += 2
                self.tokens.append(_Token("declare", ":=", start))
            elif ch == "|":
                self.pos += 1
                self.tokens.append(_Token("pipe", "|", start))
            elif ch == ",":
                self.pos += 1
                self.tokens.append(_Token("comma", ",", start))
            elif ch == '"':
                self._lex_quote(start)
            elif ch == "`":
                end = text.find("`", self.pos + 1)
                if end < 0:
                    raise self.error("unterminated raw quoted string")
                self.pos = end + 1
                self.tokens.append(_Token("rawstring", text[start : self.pos], start))
            elif ch == "'":
                self._lex_char(start)
            elif ch == "$":
                self.pos += 1
                while self.pos < len(text) and _is_alnum(text[self.pos]):
                    self.pos += 1
                self.tokens.append(_Token("variable", text[start : self.pos], start))
            elif ch == ".":
                if self.pos + 1 < len(text) and text[self.pos + 1].isdigit():
                    self._lex_number(start)
                    continue
                self.pos += 1
                if self.pos < len(text) and _is_alnum(text[self.pos]):
                    while self.pos < len(text) and _is_alnum(text[self.pos]):
                        self.pos += 1
                    self.tokens.append(_Token("field", text[start : self.pos], start))
                else:
                    self.tokens.append(_Token("dot", ".", start))
            elif ch in "+-" or ch.isdigit():
                self._lex_number(start)
            elif _is_alnum(ch):
                while self.pos < len(text) and _is_alnum(text[self.pos]):
                    self.pos += 1
                word = text[start : self.pos]
                if word in _KEYWORDS:
                    self.tokens.append(_Token("keyword", word, start))
                elif word in ("true", "false"):
                    self.tokens.append(_Token("bool", word, start))
                elif word == "nil":
                    self.tokens.append(_Token("nil", word, start))
                else:
                    self.tokens.append(_Token("ident", word, start))
            elif ch == "(":
                self.pos += 1
                self.paren_depth += 1
                self.tokens.append(_Token("lparen", "(", start))
            elif ch == ")":
                self.pos += 1
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    raise self.error("unexpected right paren")
                self.tokens.append(_Token("rparen", ")", start))
            else:
                raise self.error(f"bad character U+{ord(ch):04X} '{ch}'")

    def _lex_quote(self, start: int) -> None:
        text = self.text
        self.pos += 1
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.error("unterminated quoted string")
            ch = text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            self.pos += 1
            if ch == '"':
                break
        self.tokens.append(_Token("string", text[start : self.pos], start))

    def _lex_char(self, start: int) -> None:
        text = self.text
        self.pos += 1
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.error("unterminated character constant")
            ch = text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            self.pos += 1
            if ch == "'":
                break
        self.tokens.append(_Token("char", text[start : self.pos], start))

    def _lex_number(self, start: int) -> None:
        text = self.text
        if text[self.pos] in "+-":
            self.pos += 1
        while self.pos < len(text) and (_is_alnum(text[self.pos]) or text[self.pos] in ".+-"):
            ch = text[self.pos]
            if ch in "+-" and text[self.pos - 1] not in "eEpP":
                break
            self.pos += 1
        word = text[start : self.pos]
        if _parse_number(word) is None:
            raise self.error(f"bad number syntax: {word!r}".replace("'", '"'))
        self.tokens.append(_Token("number", word, start))


def _parse_number(word: str) -> int | float | None:
    clean = word.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        pass
    try:
        return float(clean)
    except ValueError:
        return None


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def _unquote(lit: str) -> str:
    if lit.startswith("`"):
        return lit[1:-1]
    body = lit[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
        elif nxt.isdigit():
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise TemplateError(f"invalid syntax: {lit}")
    return "".join(out)


# --------------------------------------------------------------------------
# Parse tree


class _Node:
    """A parse-tree node; ``pos`` is its byte offset, for error messages."""

    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text


class _Field(_Node):
    __slots__ = ("idents",)

    def __init__(self, pos: int, idents: list[str]) -> None:
        self.pos, self.idents = pos, idents

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


class _Variable(_Node):
    __slots__ = ("idents",)

    def __init__(self, pos: int, idents: list[str]) -> None:
        self.pos, self.idents = pos, idents  # first is "$name"

    def __str__(self) -> str:
        return ".".join(self.idents)


class _Dot(_Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "nil"


class _Literal(_Node):
    __slots__ = ("value", "text")

    def __init__(self, pos: int, value: Any, text: str) -> None:
        self.pos, self.value, self.text = pos, value, text

    def __str__(self) -> str:
        return self.text


class _Identifier(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class _Chain(_Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos: int, node: _Node, fields: list[str]) -> None:
        self.pos, self.node, self.fields = pos, node, fields

    def __str__(self) -> str:
        inner = str(self.node)
        if isinstance(self.node, _Pipe):
            inner = "(" + inner + ")"
        return inner + "".join("." + f for f in self.fields)


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[_Node]) -> None:
        self.pos, self.args = pos, args

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            s = str(a)
            if isinstance(a, _Pipe):
                s = "(" + s + ")"
            parts.append(s)
        return " ".join(parts)


class _Pipe(_Node):
    __slots__ = ("decl", "is_assign", "cmds")

    def __init__(self, pos: int, decl: list[str], is_assign: bool, cmds: list[_Command]) -> None:
        self.pos, self.decl, self.is_assign, self.cmds = pos, decl, is_assign, cmds

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        self.pos, self.pipe = pos, pipe


class _Branch(_Node):
    __slots__ = ("kind", "pipe", "body", "else_body")

    def __init__(
        self, pos: int, kind: str, pipe: _Pipe, body: list[_Node], else_body: list[_Node] | None
    ) -> None:
        self.pos, self.kind, self.pipe = pos, kind, pipe  # kind: if, with, range
        self.body, self.else_body = body, else_body


class _Loop(_Node):
    __slots__ = ("kind",)

    def __init__(self, pos: int, kind: str) -> None:
        self.pos, self.kind = pos, kind  # break, continue


class _Template(_Node):
    __slots__ = ("name", "pipe")

    def __init__(self, pos: int, name: str, pipe: _Pipe | None) -> None:
        self.pos, self.name, self.pipe = pos, name, pipe

    def __str__(self) -> str:
        if self.pipe is None:
            return f'{{{{template "{self.name}"}}}}'
        return f'{{{{template "{self.name}" {self.pipe}}}}}'


class _Parser:
    def __init__(self, text: str, funcs: Mapping[str, Any], name: str) -> None:
        self.lexer = _Lexer(text, name)
        self.tokens = self.lexer.run()
        self.i = 0
        self.funcs = funcs
        self.name = name
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.defines: dict[str, list[_Node]] = {}

    # token helpers
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek_non_space(self) -> _Token:
        j = self.i
        while self.tokens[j].kind == "space":
            j += 1
        return self.tokens[j]

    def next_non_space(self) -> _Token:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def error(self, msg: str, tok: _Token | None = None) -> TemplateError:
        pos = (tok or self.peek()).pos
        return TemplateError(f"template: {self.name}:{self.lexer.line_of(pos)}: {msg}")

    def unexpected(self, tok: _Token, context: str) -> TemplateError:
        if tok.kind == "eof":
            return self.error("unexpected EOF", tok)
        desc = _describe(tok)
        return self.error(f"unexpected {desc} in {context}", tok)

    # grammar
    def parse(self) -> list[_Node]:
        nodes, end = self.item_list(top=True)
        return nodes

    def item_list(self, top: bool = False) -> tuple[list[_Node], str]:
        nodes: list[_Node] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if top:
                    return nodes, "eof"
                raise self.error("unexpected EOF", tok)
            if tok.kind == "text":
                self.next()
                nodes.append(_Text(tok.pos, tok.value))
                continue
            # left delim
            self.next()
            kw = self.peek_non_space()
            if kw.kind == "keyword" and kw.value in ("end", "else"):
                self.next_non_space()
                if top:
                    raise self.error(f"unexpected {{{{{kw.value}}}}}", kw)
                return nodes, kw.value
            node = self.action()
            if node is not None:
                nodes.append(node)

    def action(self) -> _Node | None:
        tok = self.peek_non_space()
        if tok.kind == "keyword":
            self.next_non_space()
            kind = tok.value
            if kind in ("if", "with", "range"):
                return self.branch(kind, tok)
            if kind in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.error(f"{{{{{kind}}}}} outside {{{{range}}}}", tok)
                self.expect_right(kind)
                return _Loop(tok.pos, kind)
            if kind == "template":
                return self.template_action(tok)
            if kind in ("define", "block"):
                return self.define_action(tok, kind)
            raise self.error(f"unexpected {kind}", tok)
        pos = tok.pos
        pipe = self.pipeline("command", decl_ok=True)
        return _Action(pos, pipe)

    def expect_right(self, context: str) -> None:
        tok = self.next_non_space()
        if tok.kind != "right":
            raise self.unexpected(tok, context)

    def template_action(self, tok: _Token) -> _Node:
        name_tok = self.next_non_space()
        if name_tok.kind not in ("string", "rawstring"):
            raise self.unexpected(name_tok, "template clause")
        name = _unquote(name_tok.value)
        pipe = None
        if self.peek_non_space().kind != "right":
            pipe = self.pipeline("template clause", decl_ok=False)
        else:
            self.expect_right("template clause")
        return _Template(name_tok.pos, name, pipe)

    def define_action(self, tok: _Token, kind: str) -> _Node | None:
        name_tok = self.next_non_space()
        if name_tok.kind not in ("string", "rawstring"):
            raise self.unexpected(name_tok, f"{kind} clause")
        name = _unquote(name_tok.value)
        pipe = None
        if kind == "block":
            pipe = self.pipeline("block clause", decl_ok=False)
        else:
            self.expect_right("define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end != "end":
            raise self.error(f"unexpected {{{{{end}}}}}")
        self.expect_right("end")
        self.defines[name] = body
        if kind == "block":
            return _Template(tok.pos, name, pipe)
        return None

    def branch(self, kind: str, tok: _Token) -> _Node:
        saved_vars = len(self.vars)
        pipe = self.pipeline(kind, decl_ok=True, is_range=(kind == "range"))
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_body: list[_Node] | None = None
        if end == "else":
            nxt = self.peek_non_space()
            if kind in ("if", "with") and nxt.kind == "keyword" and nxt.value == kind:
                # "else if" / "else with": an else branch holding one nested branch
                self.next_non_space()
                nested = self.branch(kind, nxt)
                else_body = [nested]
                del self.vars[saved_vars:]
                return _Branch(tok.pos, kind, pipe, body, else_body)
            self.expect_right("else")
            else_body, end = self.item_list()
            if end != "end":
                raise self.error("expected end; found {{else}}")
        self.expect_right("end")
        del self.vars[saved_vars:]
        return _Branch(tok.pos, kind, pipe, body, else_body)

    def pipeline(self, context: str, decl_ok: bool, is_range: bool = False) -> _Pipe:
        decl: list[str] = []
        is_assign = False
        start = self.peek_non_space()
        if decl_ok and start.kind == "variable":
            # look ahead for := or = or ,
            save = self.i
            self.next_non_space()
            after = self.peek_non_space()
            if after.kind in ("declare", "assign"):
                self.next_non_space()
                decl.append(start.value)
                is_assign = after.kind == "assign"
                if not is_assign:
                    self.vars.append(start.value)
            elif after.kind == "comma" and is_range:
                self.next_non_space()
                second = self.next_non_space()
                if second.kind != "variable":
                    raise self.error("range can only initialize variables", second)
                op = self.next_non_space()
                if op.kind not in ("declare", "assign"):
                    raise self.unexpected(op, context)
                decl = [start.value, second.value]
                is_assign = op.kind == "assign"
                if not is_assign:
                    self.vars.extend(decl)
            else:
                self.i = save
        cmds: list[_Command] = []
        pos = self.peek_non_space().pos
        while True:
            tok = self.peek_non_space()
            if tok.kind in ("right", "rparen"):
                self.next_non_space()
                if tok.kind == "right" and context == "parenthesized pipeline":
                    raise self.error("unclosed left paren", tok)
                if tok.kind == "rparen" and context != "parenthesized pipeline":
                    raise self.unexpected(tok, context)
                if not cmds:
                    raise self.error(f"missing value for {context}", tok)
                for var in decl:
                    if var not in self.vars:
                        raise self.error(f'undefined variable "{var}"', tok)
                return _Pipe(pos, decl, is_assign, cmds)
            cmds.append(self.command(context))

    def command(self, context: str) -> _Command:
        args: list[_Node] = []
        pos = self.peek_non_space().pos
        while True:
            tok = self.peek_non_space()
            if tok.kind in ("right", "rparen"):
                break
            if tok.kind == "pipe":
                self.next_non_space()
                if not args:
                    raise self.error("missing value for command", tok)
                break
            if args and self.peek().kind != "space":
                raise self.unexpected(self.peek(), "operand")
            operand = self.operand()
            if operand is None:
                raise self.unexpected(self.next_non_space(), context)
            args.append(operand)
        if not args:
            raise self.error("empty command", tok)
        return _Command(pos, args)

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            fields: list[str] = []
            chain_pos = self.peek().pos
            while self.peek().kind == "field":
                fields.append(self.next().value[1:])
            if isinstance(node, _Field):
                return _Field(chain_pos, node.idents + fields)
            if isinstance(node, _Variable):
                return _Variable(chain_pos, node.idents + fields)
            if isinstance(node, (_Literal, _Nil)):
                raise self.error(f"unexpected . after term {str(node)!r}".replace("'", '"'))
            return _Chain(chain_pos, node, fields)
        return node

    def term(self) -> _Node | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind == "ident":
            if tok.value not in self.funcs:
                raise self.error(f'function "{tok.value}" not defined', tok)
            return _Identifier(tok.pos, tok.value)
        if kind == "dot":
            return _Dot(tok.pos)
        if kind == "nil":
            return _Nil(tok.pos)
        if kind == "variable":
            if tok.value not in self.vars:
                raise self.error(f'undefined variable "{tok.value}"', tok)
            return _Variable(tok.pos, [tok.value])
        if kind == "field":
            return _Field(tok.pos, [tok.value[1:]])
        if kind == "bool":
            return _Literal(tok.pos, tok.value == "true", tok.value)
        if kind == "number":
            return _Literal(tok.pos, _parse_number(tok.value), tok.value)
        if kind in ("string", "rawstring"):
            try:
                return _Literal(tok.pos, _unquote(tok.value), tok.value)
            except (ValueError, IndexError) as exc:
                raise self.error(f"invalid syntax: {tok.value}", tok) from exc
        if kind == "char":
            return _Literal(tok.pos, ord(_unquote('"' + tok.value[1:-1] + '"')), tok.value)
        if kind == "lparen":
            pipe = self.pipeline("parenthesized pipeline", decl_ok=True)
            return pipe
        self.i -= 1
        return None


def _describe(tok: _Token) -> str:
    if tok.kind == "right":
        return '"}}"'
    if tok.kind == "rparen":
        return '")"'
    if tok.kind == "space":
        return "space"
    return f"<{tok.value}>"


# --------------------------------------------------------------------------
# Printing values the way Go's fmt does


def _float_digits(value: float) -> tuple[str, str, int]:
    """Shortest round-trip digits of a finite non-zero float: (sign, digits, exp10)."""
    text = repr(value)
    mant, _, exp_s = text.partition("e")
    sign = ""
    if mant.startswith("-"):
        sign, mant = "-", mant[1:]
    int_part, _, frac = mant.partition(".")
    raw = int_part + frac
    stripped = raw.lstrip("0")
    exp10 = (int(exp_s) if exp_s else 0) + len(int_part) - 1 - (len(raw) - len(stripped))
    return sign, stripped.rstrip("0") or "0", exp10


def _float_fixed(sign: str, digits: str, exp10: int) -> str:
    if exp10 < 0:
        return sign + "0." + "0" * (-exp10 - 1) + digits
    if len(digits) <= exp10 + 1:
        return sign + digits + "0" * (exp10 + 1 - len(digits))
    return sign + digits[: exp10 + 1] + "." + digits[exp10 + 1 :]


def _float_exp(sign: str, digits: str, exp10: int, min_exp_digits: int) -> str:
    body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    esign = "-" if exp10 < 0 else "+"
    return f"{sign}{body}e{esign}{abs(exp10):0{min_exp_digits}d}"


def go_float(value: float) -> str:
    """Format a float like Go's ``%v`` (strconv 'g' with shortest precision)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exp10 = _float_digits(value)
    if exp10 < -4 or exp10 >= 6:
        return _float_exp(sign, digits, exp10, 2)
    return _float_fixed(sign, digits, exp10)


def go_str(value: Any, top: bool = True) -> str:
    """Render a value as Go's ``fmt.Sprint`` would."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, GoStruct):
        return "{" + " ".join(go_str(v, False) for v in value.values()) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{go_str(k, False)}:{go_str(v, False)}" for k, v in items) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v, False) for v in value) + "]"
    stringer = getattr(value, "String", None)
    if callable(stringer):
        return str(stringer())
    return str(value)


def _sort_key(key: Any) -> tuple[int, Any]:
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, key)
    return (1, str(key))


def go_json(value: Any) -> str:
    """Encode like Go's encoding/json with SetEscapeHTML(false), compact."""
    import json

    out: list[str] = []
    escape_html = False

    def enc(v: Any) -> None:
        nonlocal escape_html
        if v is None or v is NO_VALUE or isinstance(v, (NilList, NilMap)):
            out.append("null")
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(_json_float(v))
        elif isinstance(v, str):
            text = json.dumps(v, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
            if escape_html:
                text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            out.append(text)
        elif isinstance(v, dict):
            items = list(v.items())
            if isinstance(v, GoStruct):
                if v.omitempty:
                    items = [(k, x) for k, x in items if k not in v.omitempty or not _is_empty(x)]
            else:
                items.sort(key=lambda kv: str(kv[0]))
            out.append("{")
            for n, (k, item) in enumerate(items):
                if n:
                    out.append(",")
                out.append(json.dumps(str(k), ensure_ascii=False))
                out.append(":")
                enc(item)
            out.append("}")
        elif isinstance(v, (list, tuple)):
            out.append("[")
            for n, item in enumerate(v):
                if n:
                    out.append(",")
                enc(item)
            out.append("]")
        elif hasattr(v, "template_json"):
            # docker's formatter contexts marshal with encoding/json defaults: HTML-escaped
            saved, escape_html = escape_html, True
            enc(v.template_json())
            escape_html = saved
        else:
            out.append(json.dumps(str(v), ensure_ascii=False))

    enc(value)
    return "".join(out)


def _is_empty(value: Any) -> bool:
    if value is None or value is NO_VALUE or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0
    return False


def _json_float(v: float) -> str:
    """encoding/json's float format: fixed, exponent outside [1e-6, 1e21)."""
    if v != v or v in (float("inf"), float("-inf")):
        raise TemplateError(f"json: unsupported value: {go_float(v)}")
    if v == 0:
        return "0"
    sign, digits, exp10 = _float_digits(v)
    if abs(v) < 1e-6 or abs(v) >= 1e21:
        return _float_exp(sign, digits, exp10, 1)
    return _float_fixed(sign, digits, exp10)


def _type_name(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return getattr(value, "template_type", type(value).__name__)


def truth(value: Any) -> bool:
    """Go's template truthiness."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, GoStruct):
        return True
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


# --------------------------------------------------------------------------
# Functions


class _Func:
    """A template function: the callable and the Go types of its parameters."""

    def __init__(self, fn: Callable[..., Any], params: Sequence[str] | None = None, variadic: str | None = None) -> None:
        self.fn = fn
        self.params = list(params) if params is not None else None
        self.variadic = variadic


def _check_type(value: Any, kind: str) -> Any:
    """Convert an argument to a declared Go parameter type, or raise."""
    if kind == "any":
        return value
    if value is NO_VALUE:
        raise TemplateError(f"invalid value; expected {_GO_TYPES[kind]}")
    if kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "[]string":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
    raise TemplateError(f"wrong type for value; expected {_GO_TYPES[kind]}; got {_type_name(value)}")


_GO_TYPES = {"string": "string", "int": "int", "[]string": "[]string", "any": "interface {}"}


def _fn_index(item: Any, *indexes: Any) -> Any:
    if item is NO_VALUE or item is None:
        raise TemplateError("error calling index: index of untyped nil")
    for idx in indexes:
        if isinstance(item, dict) and not isinstance(item, GoStruct):
            if idx in item:
                item = item[idx]
            elif item and all(isinstance(v, str) for v in item.values()) or isinstance(item, NilMap) or not item:
                item = ""
            else:
                item = NO_VALUE
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise TemplateError(f"error calling index: cannot index slice/array with type {_type_name(idx)}")
            if idx < 0 or idx >= len(item):
                raise TemplateError(f"error calling index: index out of range: {idx}")
            item = item[idx] if not isinstance(item, str) else ord(item[idx])
        elif item is None or item is NO_VALUE:
            raise TemplateError("error calling index: index of nil pointer")
        else:
            raise TemplateError(f"error calling index: can't index item of type {_type_name(item)}")
    return item


def _fn_slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise TemplateError(f"error calling slice: can't slice item of type {_type_name(item)}")
    if len(indexes) > 3:
        raise TemplateError(f"error calling slice: too many slice indexes: {len(indexes)}")
    idx = [int(i) for i in indexes]
    start = idx[0] if idx else 0
    end = idx[1] if len(idx) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise TemplateError(f"error calling slice: index out of range: {end if end > len(item) else start}")
    return item[start:end]


def _fn_len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, dict)):
        return len(item)
    raise TemplateError(f"error calling len: len of type {_type_name(item)}")


def _basic(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None or value is NO_VALUE:
        return ("nil", None)
    return ("other", value)


def _fn_eq(arg1: Any, *args: Any) -> bool:
    if not args:
        raise TemplateError("error calling eq: missing argument for comparison")
    k1, v1 = _basic(arg1)
    for arg in args:
        k2, v2 = _basic(arg)
        if k1 == "nil" or k2 == "nil":
            if k1 == k2 or (k1 == "nil" and not truth(arg)) or (k2 == "nil" and not truth(arg1) and k1 not in ("int", "string", "bool", "float")):
                return True
            continue
        if k1 != k2 and not ({k1, k2} <= {"int", "float"}):
            raise TemplateError("error calling eq: incompatible types for comparison")
        if k1 == "other":
            if arg1 is arg or arg1 == arg:
                return True
            continue
        if v1 == v2:
            return True
    return False


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _fn_lt(a: Any, b: Any) -> bool:
    ka, va = _basic(a)
    kb, vb = _basic(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise TemplateError("error calling lt: invalid type for comparison")
    if ka != kb and not ({ka, kb} <= {"int", "float"}):
        raise TemplateError("error calling lt: incompatible types for comparison")
    return bool(va < vb)


def _fn_le(a: Any, b: Any) -> bool:
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a: Any, b: Any) -> bool:
    return not _fn_le(a, b)


def _fn_ge(a: Any, b: Any) -> bool:
    return not _fn_lt(a, b)


def _fn_not(a: Any) -> bool:
    return not truth(a)


def go_sprint(*args: Any) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = True
    for n, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if n > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(go_str(arg))
        prev_string = is_string
    return "".join(out)


def go_sprintln(*args: Any) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


def go_sprintf(fmt: str, *args: Any) -> str:
    """A practical subset of Go's fmt.Sprintf verbs."""
    out: list[str] = []
    i = 0
    argi = 0
    n = len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        flags = ""
        while j < n and fmt[j] in "+-# 0":
            flags += fmt[j]
            j += 1
        width = ""
        while j < n and fmt[j].isdigit():
            width += fmt[j]
            j += 1
        prec = None
        if j < n and fmt[j] == ".":
            j += 1
            prec = ""
            while j < n and fmt[j].isdigit():
                prec += fmt[j]
                j += 1
        if j >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_format_verb(verb, flags, width, prec, arg))
    if argi < len(args):
        extra = ", ".join(f"{_type_name(a)}={go_str(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_verb(verb: str, flags: str, width: str, prec: str | None, arg: Any) -> str:
    import json

    if verb in "vs":
        text = go_str(arg)
        if prec is not None and prec != "":
            text = text[: int(prec)]
        if verb == "s" and not isinstance(arg, (str, list, tuple, dict)) and arg is not None and not hasattr(arg, "String"):
            text = f"%!s({_type_name(arg)}={go_str(arg)})"
    elif verb == "q":
        text = json.dumps(go_str(arg), ensure_ascii=False) if not isinstance(arg, int) or isinstance(arg, bool) else repr(chr(arg))
    elif verb == "d":
        if isinstance(arg, int) and not isinstance(arg, bool):
            text = str(arg)
        else:
            text = f"%!d({_type_name(arg)}={go_str(arg)})"
    elif verb in "xX":
        if isinstance(arg, int) and not isinstance(arg, bool):
            text = format(arg, verb)
        elif isinstance(arg, str):
            text = arg.encode().hex()
            text = text.upper() if verb == "X" else text
        else:
            text = f"%!{verb}({_type_name(arg)}={go_str(arg)})"
    elif verb in "feEgG":
        if isinstance(arg, (int, float)) and not isinstance(arg, bool):
            p = int(prec) if prec not in (None, "") else (6 if verb in "feE" else -1)
            if verb in "gG" and p < 0:
                text = go_float(float(arg))
            else:
                text = format(float(arg), f".{p}{verb}")
        else:
            text = f"%!{verb}({_type_name(arg)}={go_str(arg)})"
    elif verb == "t":
        text = go_str(arg) if isinstance(arg, bool) else f"%!t({_type_name(arg)}={go_str(arg)})"
    elif verb == "c":
        text = chr(arg) if isinstance(arg, int) else f"%!c({_type_name(arg)}={go_str(arg)})"
    elif verb == "T":
        text = _type_name(arg)
    else:
        text = f"%!{verb}({_type_name(arg)}={go_str(arg)})"
    if width:
        w = int(width)
        if "-" in flags:
            text = text.ljust(w)
        elif "0" in flags and verb in "dxXfeEgG":
            sign = ""
            if text.startswith("-"):
                sign, text = "-", text[1:]
            text = sign + text.rjust(w - len(sign), "0")
        else:
            text = text.rjust(w)
    return text


def _html_escape(*args: Any) -> str:
    s = go_sprint(*args)
    return (
        s.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\x00", "\ufffd")
    )


def _js_escape(*args: Any) -> str:
    s = go_sprint(*args)
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append("\\\"")
        elif ch == "<":
            out.append("\\u003C")
        elif ch == ">":
            out.append("\\u003E")
        elif ch == "&":
            out.append("\\u0026")
        elif ch == "=":
            out.append("\\u003D")
        elif ord(ch) < 32:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(go_sprint(*args))


def _title(s: str) -> str:
    out = []
    prev = " "
    for ch in s:
        if not (prev.isalnum() or prev == "_" or prev == "'") and ch.isalpha():
            out.append(ch.upper())
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def _pad(source: str, prefix: int, suffix: int) -> str:
    if source == "":
        return source
    return " " * prefix + source + " " * suffix


def _truncate(source: str, length: int) -> str:
    if len(source) < length:
        return source
    return source[:length]


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise TemplateError(f"error calling call: non-function of type {_type_name(fn)}")
    return fn(*args)


BUILTINS: dict[str, _Func] = {
    "and": _Func(lambda *a: a[-1], None),  # evaluated lazily by the executor
    "or": _Func(lambda *a: a[-1], None),
    "not": _Func(_fn_not, ["any"]),
    "len": _Func(_fn_len, ["any"]),
    "index": _Func(_fn_index, ["any"], variadic="any"),
    "slice": _Func(_fn_slice, ["any"], variadic="any"),
    "print": _Func(go_sprint, [], variadic="any"),
    "println": _Func(go_sprintln, [], variadic="any"),
    "printf": _Func(go_sprintf, ["string"], variadic="any"),
    "eq": _Func(_fn_eq, ["any"], variadic="any"),
    "ne": _Func(_fn_ne, ["any", "any"]),
    "lt": _Func(_fn_lt, ["any", "any"]),
    "le": _Func(_fn_le, ["any", "any"]),
    "gt": _Func(_fn_gt, ["any", "any"]),
    "ge": _Func(_fn_ge, ["any", "any"]),
    "html": _Func(_html_escape, [], variadic="any"),
    "js": _Func(_js_escape, [], variadic="any"),
    "urlquery": _Func(_urlquery, [], variadic="any"),
    "call": _Func(_call, ["any"], variadic="any"),
}

# The docker CLI's additions (docker/cli templates.basicFunctions).
DOCKER_FUNCS: dict[str, _Func] = {
    "json": _Func(go_json, ["any"]),
    "split": _Func(_split, ["string", "string"]),
    "join": _Func(lambda elems, sep: sep.join(elems), ["[]string", "string"]),
    "title": _Func(_title, ["string"]),
    "lower": _Func(lambda s: s.lower(), ["string"]),
    "upper": _Func(lambda s: s.upper(), ["string"]),
    "pad": _Func(_pad, ["string", "int", "int"]),
    "truncate": _Func(_truncate, ["string", "int"]),
}

# Used to render table headers: keep the column title intact.
HEADER_FUNCS: dict[str, _Func] = {
    "json": _Func(lambda v: v, ["string"]),
    "split": _Func(lambda v, _sep: v, ["string", "string"]),
    "join": _Func(lambda v, _sep: v, ["string", "string"]),
    "title": _Func(lambda v: v, ["string"]),
    "lower": _Func(lambda v: v, ["string"]),
    "upper": _Func(lambda v: v, ["string"]),
    "truncate": _Func(lambda v, _n: v, ["string", "int"]),
}


# --------------------------------------------------------------------------
# Execution


class _State:
    """Execution state: output, variable stack, the node being evaluated."""

    def __init__(self, tmpl: Template, funcs: dict[str, _Func], out: list[str], variables: list[tuple[str, Any]]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.out = out
        self.vars = variables
        self.node: _Node | None = None
        self.depth = 0

    def error(self, msg: str, node: _Node | None = None) -> TemplateError:
        node = node or self.node
        if node is None:
            return TemplateError(f"template: {self.tmpl.name}: {msg}")
        text = self.tmpl.text
        line = 1 + text.count("\n", 0, node.pos)
        col = node.pos - (text.rfind("\n", 0, node.pos) + 1)
        ctx = str(node)
        if len(ctx) > 20:
            ctx = ctx[:20] + "..."
        return TemplateError(f'template: {self.tmpl.name}:{line}:{col}: executing "{self.tmpl.name}" at <{ctx}>: {msg}')


class Template:
    """A parsed Go template.

    ``funcs`` adds functions to the builtins and the docker functions;
    ``missingkey`` is Go's ``missingkey`` option ("default" or "error").
    """

    def __init__(
        self,
        text: str,
        funcs: Mapping[str, Callable[..., Any] | _Func] | None = None,
        name: str = "",
        missingkey: str = "default",
    ) -> None:
        self.text = text
        self.name = name
        self.missingkey = missingkey
        self.funcs: dict[str, _Func] = dict(BUILTINS)
        self.funcs.update(DOCKER_FUNCS)
        for key, fn in (funcs or {}).items():
            self.funcs[key] = fn if isinstance(fn, _Func) else _Func(fn, None)
        parser = _Parser(text, self.funcs, name)
        self.root = parser.parse()
        self.defines = parser.defines

    def with_funcs(self, funcs: Mapping[str, _Func]) -> Template:
        """A copy of this template executing with some functions replaced."""
        clone = object.__new__(Template)
        clone.__dict__.update(self.__dict__)
        clone.funcs = dict(self.funcs)
        clone.funcs.update(funcs)
        return clone

    def execute(self, data: Any, partial: list[str] | None = None) -> str:
        """Render with ``data`` as dot. On error, ``partial`` receives the output so far."""
        out: list[str] = [] if partial is None else partial
        state = _State(self, self.funcs, out, [("$", data)])
        self._walk_list(state, data, self.root)
        return "".join(out)

    # -- walking
    def _walk_list(self, state: _State, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            self._walk(state, dot, node)

    def _walk(self, state: _State, dot: Any, node: _Node) -> None:
        if isinstance(node, _Text):
            state.out.append(node.text)
        elif isinstance(node, _Action):
            value = self._eval_pipeline(state, dot, node.pipe)
            if not node.pipe.decl:
                state.out.append(self._printable(state, value, node))
        elif isinstance(node, _Branch):
            mark = len(state.vars)
            if node.kind == "range":
                self._walk_range(state, dot, node)
            else:
                value = self._eval_pipeline(state, dot, node.pipe)
                if truth(value):
                    self._walk_list(state, value if node.kind == "with" else dot, node.body)
                elif node.else_body is not None:
                    self._walk_list(state, dot, node.else_body)
            del state.vars[mark:]
        elif isinstance(node, _Loop):
            raise _LoopControl(node.kind)
        elif isinstance(node, _Template):
            body = self.defines.get(node.name)
            if body is None:
                raise state.error(f'template "{node.name}" not defined', node)
            new_dot = self._eval_pipeline(state, dot, node.pipe) if node.pipe else None
            state.depth += 1
            if state.depth > 100000:
                raise state.error("exceeded maximum template depth (100000)", node)
            saved = state.vars
            state.vars = [("$", new_dot)]
            self._walk_list(state, new_dot, body)
            state.vars = saved
            state.depth -= 1

    def _printable(self, state: _State, value: Any, node: _Node) -> str:
        if callable(value) and not isinstance(value, (dict, list)):
            raise state.error(f"can't print {node} of type func", node)
        return go_str(value)

    def _walk_range(self, state: _State, dot: Any, node: _Branch) -> None:
        value = self._eval_pipeline_raw(state, dot, node.pipe)
        items: Iterator[tuple[Any, Any]]
        if value is NO_VALUE or value is None:
            items = iter(())
        elif isinstance(value, dict) and not isinstance(value, GoStruct):
            keys = sorted(value.keys(), key=_sort_key)
            items = iter([(k, value[k]) for k in keys])
        elif isinstance(value, (list, tuple)):
            items = iter(list(enumerate(value)))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = iter([(i, i) for i in range(value)])
        else:
            raise state.error(f"range can't iterate over {go_str(value)}", node.pipe)
        ran = False
        for key, elem in items:
            ran = True
            mark = len(state.vars)
            decl = node.pipe.decl
            if len(decl) == 1:
                self._set_var(state, decl[0], elem, node.pipe.is_assign, declare_here=True)
            elif len(decl) == 2:
                self._set_var(state, decl[0], key, node.pipe.is_assign, declare_here=True)
                self._set_var(state, decl[1], elem, node.pipe.is_assign, declare_here=True)
            try:
                self._walk_list(state, elem, node.body)
            except _LoopControl as ctl:
                if ctl.kind == "break":
                    del state.vars[mark:]
                    break
            del state.vars[mark:]
        if not ran and node.else_body is not None:
            self._walk_list(state, dot, node.else_body)

    def _set_var(self, state: _State, name: str, value: Any, assign: bool, declare_here: bool = False) -> None:
        if assign:
            for i in range(len(state.vars) - 1, -1, -1):
                if state.vars[i][0] == name:
                    state.vars[i] = (name, value)
                    return
            raise state.error(f"undefined variable: {name}")
        state.vars.append((name, value))

    def _get_var(self, state: _State, name: str) -> Any:
        for i in range(len(state.vars) - 1, -1, -1):
            if state.vars[i][0] == name:
                return state.vars[i][1]
        raise state.error(f"undefined variable: {name}")

    # -- pipelines
    def _eval_pipeline_raw(self, state: _State, dot: Any, pipe: _Pipe) -> Any:
        """Evaluate a range pipeline; range declarations are bound per element."""
        value: Any = NO_VALUE
        for i, cmd in enumerate(pipe.cmds):
            value = self._eval_command(state, dot, cmd, value if i else _MISSING)
        return value

    def _eval_pipeline(self, state: _State, dot: Any, pipe: _Pipe) -> Any:
        value: Any = NO_VALUE
        for i, cmd in enumerate(pipe.cmds):
            value = self._eval_command(state, dot, cmd, value if i else _MISSING)
        for var in pipe.decl:
            self._set_var(state, var, value, pipe.is_assign)
        return value

    def _eval_command(self, state: _State, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        state.node = first
        if isinstance(first, _Field):
            return self._eval_field_chain(state, dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, _Chain):
            receiver = self._eval_arg(state, dot, first.node)
            return self._eval_field_chain(state, dot, receiver, first, first.fields, cmd.args, final)
        if isinstance(first, _Identifier):
            return self._eval_function(state, dot, first, cmd, cmd.args, final)
        if isinstance(first, _Pipe):
            self._no_args(state, cmd.args, final)
            return self._eval_pipeline(state, dot, first)
        if isinstance(first, _Variable):
            value = self._get_var(state, first.idents[0])
            if len(first.idents) == 1:
                self._no_args(state, cmd.args, final)
                return value
            return self._eval_field_chain(state, dot, value, first, first.idents[1:], cmd.args, final)
        self._no_args(state, cmd.args, final)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            raise state.error("nil is not a command", first)
        if isinstance(first, _Literal):
            return first.value
        raise state.error(f"can't evaluate command {first}", first)

    def _no_args(self, state: _State, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise state.error(f"can't give argument to non-function {args[0]}", args[0])

    def _eval_arg(self, state: _State, dot: Any, node: _Node) -> Any:
        state.node = node
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Field):
            return self._eval_field_chain(state, dot, dot, node, node.idents, [node], _MISSING)
        if isinstance(node, _Variable):
            value = self._get_var(state, node.idents[0])
            if len(node.idents) == 1:
                return value
            return self._eval_field_chain(state, dot, value, node, node.idents[1:], [node], _MISSING)
        if isinstance(node, _Pipe):
            return self._eval_pipeline(state, dot, node)
        if isinstance(node, _Identifier):
            cmd = _Command(node.pos, [node])
            return self._eval_function(state, dot, node, cmd, [node], _MISSING)
        if isinstance(node, _Chain):
            receiver = self._eval_arg(state, dot, node.node)
            return self._eval_field_chain(state, dot, receiver, node, node.fields, [node], _MISSING)
        raise state.error(f"can't handle {node} for arg", node)

    def _eval_field_chain(
        self,
        state: _State,
        dot: Any,
        receiver: Any,
        node: _Node,
        idents: list[str],
        args: list[_Node],
        final: Any,
    ) -> Any:
        for i, name in enumerate(idents):
            last = i == len(idents) - 1
            receiver = self._eval_field(
                state, dot, name, node, args if last else [node], final if last else _MISSING, receiver
            )
        return receiver

    def _eval_field(
        self, state: _State, dot: Any, name: str, node: _Node, args: list[_Node], final: Any, receiver: Any
    ) -> Any:
        has_args = len(args) > 1 or final is not _MISSING
        if receiver is NO_VALUE:
            if self.missingkey == "error":
                raise state.error(f'nil data; no entry for key "{name}"', node)
            return NO_VALUE
        if receiver is None:
            raise state.error(f"nil pointer evaluating interface {{}}.{name}", node)
        if isinstance(receiver, GoStruct):
            if name not in receiver and name in receiver.aliases:
                name = receiver.aliases[name]
            if name in receiver:
                if has_args:
                    raise state.error(f"{name} has arguments but cannot be invoked as function", node)
                return receiver[name]
            if receiver.type_name == "struct":
                # docker falls back to the raw JSON with missingkey=error
                raise state.error(f'map has no entry for key "{name}"', node)
            raise state.error(f"can't evaluate field {name} in type {receiver.type_name}", node)
        if isinstance(receiver, dict) and name[:1].isupper() and callable(getattr(type(receiver), name, None)):
            call_args = [self._eval_arg(state, dot, a) for a in args[1:]]
            if final is not _MISSING:
                call_args.append(final)
            state.node = node
            return getattr(receiver, name)(*call_args)
        if isinstance(receiver, dict):
            if has_args:
                raise state.error(f"{name} is not a method but has arguments", node)
            if name in receiver:
                return receiver[name]
            if self.missingkey == "error":
                raise state.error(f'map has no entry for key "{name}"', node)
            return NO_VALUE
        if isinstance(receiver, (str, int, float, bool, list, tuple)):
            raise state.error(f"can't evaluate field {name} in type {_type_name(receiver)}", node)
        if name[:1].isupper():
            attr = getattr(receiver, name, _MISSING)
            if attr is not _MISSING:
                if callable(attr):
                    call_args = [self._eval_arg(state, dot, a) for a in args[1:]]
                    if final is not _MISSING:
                        call_args.append(final)
                    state.node = node
                    code = getattr(attr, "__code__", None)
                    if code is not None and not code.co_flags & 0x04:  # no *args
                        want = code.co_argcount - (1 if hasattr(attr, "__self__") else 0)
                        if want != len(call_args):
                            raise state.error(f"wrong number of args for {name}: want {want} got {len(call_args)}", node)
                    return attr(*call_args)
                if has_args:
                    raise state.error(f"{name} has arguments but cannot be invoked as function", node)
                return attr
        raise state.error(f"can't evaluate field {name} in type {_type_name(receiver)}", node)

    def _eval_function(
        self, state: _State, dot: Any, ident: _Identifier, cmd: _Command, args: list[_Node], final: Any
    ) -> Any:
        name = ident.name
        fn = state.funcs.get(name)
        if fn is None:
            raise state.error(f'"{name}" is not a defined function', ident)
        arg_nodes = args[1:]
        if name in ("and", "or"):
            if not arg_nodes and final is _MISSING:
                raise state.error(f"wrong number of args for {name}: want at least 1 got 0", ident)
            value: Any = NO_VALUE
            for node in arg_nodes:
                value = self._eval_arg(state, dot, node)
                if truth(value) != (name == "and"):
                    return value
            if final is not _MISSING:
                value = final
            return value
        values = [self._eval_arg(state, dot, a) for a in arg_nodes]
        nodes: list[_Node] = list(arg_nodes)
        if final is not _MISSING:
            values.append(final)
            nodes.append(cmd)
        if fn.params is not None:
            nparams = len(fn.params)
            if fn.variadic is None and len(values) != nparams:
                raise state.error(f"wrong number of args for {name}: want {nparams} got {len(values)}", ident)
            if fn.variadic is not None and len(values) < nparams:
                raise state.error(
                    f"wrong number of args for {name}: want at least {nparams} got {len(values)}", ident
                )
            for i, value in enumerate(values):
                kind = fn.params[i] if i < nparams else (fn.variadic or "any")
                try:
                    values[i] = _check_type(value, kind)
                except TemplateError as exc:
                    raise state.error(str(exc), nodes[i]) from None
        state.node = cmd
        try:
            return fn.fn(*values)
        except TemplateError as exc:
            msg = str(exc)
            if not msg.startswith("error calling"):
                msg = f"error calling {name}: {msg}"
            raise state.error(msg, cmd) from None
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise state.error(f"error calling {name}: {exc}", cmd) from None


_MISSING: Any = object()


def render(text: str, data: Any, funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """Parse and execute ``text`` in one go (convenience for tests and callers)."""
    return Template(text, funcs).execute(data)


def func(fn: Callable[..., Any], *params: str, variadic: str | None = None) -> _Func:
    """Declare a custom function with Go parameter types for argument checking."""
    return _Func(fn, list(params), variadic)
