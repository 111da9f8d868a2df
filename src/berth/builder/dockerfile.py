"""The Dockerfile parser and Docker's shell-word expansion, as pure code on text.

The model is BuildKit's `frontend/dockerfile/parser` (lines to nodes: parser
directives, comments, line continuations, JSON or shell form, heredocs) followed by
`frontend/dockerfile/instructions` (nodes to checked instructions: argument counts,
flags, stage names), which the classic builder in dockerd uses too. The AST pass runs
over the whole file before the instruction pass, so an error is reported where Docker
reports it. `expand` and friends follow `frontend/dockerfile/shell/lex.go`.

Nothing here reads files, expands variables on its own, or knows about images: the
builder decides what to expand with which environment and runs the steps. Every error
is a `DockerfileError` (an InvalidParameter) worded as Docker words it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from berth.errors import InvalidParameter

DEFAULT_SHELL: tuple[str, ...] = ("/bin/sh", "-c")


class DockerfileError(InvalidParameter):
    """A Dockerfile that Docker would refuse; str() is Docker's message."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(f"dockerfile parse error on line {line}: {what}")
        self.line = line
        self.what = what


class ExpansionError(InvalidParameter):
    """A word whose variable substitution fails (bad syntax, `${V:?msg}`)."""


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str  # with `<<-`, leading tabs already stripped from every line
    expand: bool  # False when any part of the delimiter was quoted
    chomp: bool  # `<<-`
    fd: int = 0  # `2<<EOF` -> 2; 0 when not given


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: tuple[str, ...]
    json_form: bool
    flags: tuple[tuple[str, str], ...]
    line: int
    original: str
    heredocs: tuple[Heredoc, ...] = ()
    end_line: int = 0
    trigger: Instruction | None = None  # ONBUILD: the wrapped instruction
    escape: str = "\\"  # the file's escape token, for expanding this instruction

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The flag's value (the last one given), or `default` when absent."""
        value = default
        for key, given in self.flags:
            if key == name:
                value = given
        return value

    def flag_values(self, name: str) -> list[str]:
        """Every value of a repeatable flag (`--mount`, `--exclude`, `--device`)."""
        return [given for key, given in self.flags if key == name]


@dataclass(frozen=True)
class Stage:
    name: str
    base: str
    platform: str
    instructions: tuple[Instruction, ...]
    line: int
    from_instruction: Instruction | None = None


@dataclass(frozen=True)
class Dockerfile:
    stages: tuple[Stage, ...]
    meta_args: tuple[Instruction, ...]
    escape: str
    directives: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


# --- characters, the way Go's unicode package and regexps see them ---------------

_GO_SPACE_EXTRA = "\x1c\x1d\x1e\x1f"  # Python calls these space, Go does not


def _is_space(ch: str) -> bool:
    return ch.isspace() and ch not in _GO_SPACE_EXTRA


def _lstrip(text: str) -> str:
    i = 0
    while i < len(text) and _is_space(text[i]):
        i += 1
    return text[i:]


def _strip(text: str) -> str:
    text = _lstrip(text)
    j = len(text)
    while j > 0 and _is_space(text[j - 1]):
        j -= 1
    return text[:j]


_WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace
_HEREDOC = re.compile(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")


# --- shell-word lexing (lex.go) ------------------------------------------------


class _LexFailure(Exception):
    pass


class _Words:
    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


_EOF = ""


class _Lexer:
    """One pass of lex.go's shellWord over a string."""

    def __init__(
        self,
        escape: str,
        env: Mapping[str, str],
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset: bool = False,
    ) -> None:
        self.escape = escape
        self.env = env
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.text = ""
        self.pos = 0

    def run(self, text: str) -> tuple[str, list[str]]:
        self.text, self.pos = text, 0
        try:
            return self._until(_EOF, self.raw_escapes)
        except _LexFailure as err:
            raise ExpansionError(f"failed to process {json.dumps(text)}: {err}") from None
        except RecursionError:
            raise ExpansionError(
                f"failed to process {json.dumps(text)}: too deeply nested"
            ) from None

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    def _until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            while self._peek() != _EOF:
                ch = self._peek()
                if stop and ch == stop:
                    self._next()
                    return "".join(result), words.result()
                if ch in "$<'\"":
                    piece = self._special(ch)
                    result.append(piece)
                    if ch == "$":
                        words.add_string(piece)
                    else:
                        words.add_raw_string(piece)
                    continue
                ch = self._next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self._next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop:
                raise _LexFailure(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.result()
        finally:
            self.raw_escapes = saved

    def _special(self, ch: str) -> str:
        if ch == "$":
            return self._dollar()
        if ch == "<":
            return self._possible_heredoc()
        if ch == "'":
            return self._single_quote()
        return self._double_quote()

    def _single_quote(self) -> str:
        out = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self._next()
            if ch == _EOF:
                raise _LexFailure(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        out = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            peek = self._peek()
            if peek == _EOF:
                raise _LexFailure(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if peek == '"':
                ch = self._next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self._peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def _name(self) -> str:
        name: list[str] = []
        while self._peek() != _EOF:
            ch = self._peek()
            if not name and ch.isdecimal():
                while self._peek() != _EOF and self._peek().isdecimal():
                    name.append(self._next())
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                return self._next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self._next())
        return "".join(name)

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, found = self._lookup(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self._next()
        if self._peek() == _EOF:
            raise _LexFailure("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise _LexFailure("syntax error: bad substitution")
        name = self._name()
        ch = self._next() or "\ufffd"
        modifier = ch
        null_is_unset = False
        if ch == "}":
            value, found = self._lookup(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = self._next() or "\ufffd"
            modifier += ch
        if null_is_unset or ch in "+-?#%":
            trims = ch in "#%"
            if null_is_unset and trims:
                raise _LexFailure(f"unsupported modifier ({modifier}) in substitution")
            try:
                word, _ = self._until("}", trims)
            except _LexFailure:
                if self._peek() == _EOF:
                    raise _LexFailure("syntax error: missing '}'") from None
                raise
            value, found = self._lookup(name)
            if self.skip_unset and not found:
                return "${" + name + modifier + word + "}"
            unset = not found or (null_is_unset and value == "")
            if ch == "-":
                return word if unset else value
            if ch == "+":
                return "" if unset else word
            if ch == "?":
                if not found:
                    raise _LexFailure(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _LexFailure(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch in "#%":
                greedy = word.startswith(ch)
                if greedy:
                    word = word[1:]
                if ch == "%":
                    return _trim_suffix(word, value, greedy)
                return _trim_prefix(word, value, greedy)
            raise _LexFailure(f"unsupported modifier ({modifier}) in substitution")
        if ch == "/":
            replace_all = self._peek() == "/"
            if replace_all:
                self._next()
            try:
                pattern, _ = self._until("/", True)
            except _LexFailure:
                if self._peek() == _EOF:
                    raise _LexFailure("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self._until("}", True)
            except _LexFailure:
                if self._peek() == _EOF:
                    raise _LexFailure("syntax error: missing '}'") from None
                raise
            value, found = self._lookup(name)
            if self.skip_unset and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            expression = _shell_pattern(pattern, greedy=True, anchored=False)
            if replace_all:
                return expression.sub(lambda _m: replacement, value)
            return expression.sub(lambda _m: replacement, value, count=1)
        raise _LexFailure(f"unsupported modifier ({modifier}) in substitution")

    def _possible_heredoc(self) -> str:
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        space = []
        while self._peek() in ("\t", "\r", " ") and self._peek() != _EOF:
            space.append(self._next())
        return "<<" + "".join(space)


_PATTERN_SPECIAL = set("[]{}.+()|^$")


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """lex.go's convertShellPatternToRegex: `*`, `?` and `\\` escapes, no brackets."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(".*" if greedy else ".*?")
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            i += 1
            if following not in ("*", "?", "\\"):
                raise _LexFailure(
                    f"invalid pattern ({pattern}) in substitution: "
                    f"invalid escape '\\{following or chr(0xFFFD)}'"
                )
            out.append("\\" + following)
            continue
        out.append("\\" + tok if tok in _PATTERN_SPECIAL else re.escape(tok))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern(pattern, greedy=greedy, anchored=True).search(value)
    return value[found.end() :] if found else value


def _reverse_pattern(pattern: str) -> str:
    pieces: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            pieces.append(pattern[i : i + 2])
            i += 2
        else:
            pieces.append(pattern[i])
            i += 1
    return "".join(reversed(pieces))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Docker's ProcessWord: quotes removed, escapes applied, `$V`/`${V…}` substituted.

    Whitespace inside the word is kept; an unset variable is "". Raises
    ExpansionError (an InvalidParameter) on bad syntax or a failing `${V:?msg}`.
    """
    return _Lexer(escape, env).run(word)[0]


def split_words(text: str) -> list[str]:
    """The parse-time split of COPY/ADD/VOLUME/EXPOSE/FROM arguments: on blanks only."""
    text = _strip(text)
    return [word for word in _WHITESPACE.split(text) if word] if text else []


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split a shell-form argument list as Docker does, then expand each word.

    Docker splits COPY/ADD/VOLUME/EXPOSE/FROM arguments on blanks when it parses the
    line (quotes do not group: a path with a space needs the JSON form) and expands
    every word afterwards, so a variable holding a space stays one word.
    """
    return [expand(word, env, escape) for word in split_words(text)]


def shell_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Docker's ProcessWords: expand first, then split on unquoted blanks."""
    return _Lexer(escape, env).run(text)[1]


# --- the quote-keeping word split of ENV/LABEL/ARG (line_parsers.go parseWords) ----


def _parse_words(rest: str, escape: str) -> list[str]:
    words: list[str] = []
    buf: list[str] = []
    in_word = in_quote = blank_ok = False
    quote = ""
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not in_quote:
            if _is_space(ch):
                i += 1
                continue
            in_word = True
        if in_word and not in_quote:
            if _is_space(ch):
                in_word = False
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok = [], False
                i += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, in_quote = ch, True, True
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
            i += 1
            continue
        # inside quotes
        if ch == quote:
            in_quote = False
        if ch == escape and quote != "'":
            if i + 1 == n:
                in_quote = False
                i += 1
                continue
            buf.append(ch)
            i += 1
            ch = rest[i]
        buf.append(ch)
        i += 1
    if (in_word or in_quote) and (blank_ok or buf):
        words.append("".join(buf))
    return words


# --- flags (split_command.go extractBuilderFlags, bflag.go) ------------------------


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    words: list[str] = []
    buf: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = 1
        if pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == 1:
            if _is_space(ch):
                word = "".join(buf)
                phase = 0
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, 2
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        # phase 2, in quotes
        if ch == quote:
            phase = 1
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


_BOOL, _STRING, _STRINGS = "bool", "string", "strings"

_FLAGS: dict[str, dict[str, str]] = {
    "ADD": {
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "keep-git-dir": _BOOL,
        "checksum": _STRING,
        "unpack": _BOOL,
        "exclude": _STRINGS,
    },
    "COPY": {
        "chown": _STRING,
        "from": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "exclude": _STRINGS,
        "parents": _BOOL,
    },
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING, "device": _STRINGS},
    "HEALTHCHECK": {
        "interval": _STRING,
        "timeout": _STRING,
        "start-period": _STRING,
        "start-interval": _STRING,
        "retries": _STRING,
    },
}


def _parse_flags(
    keyword: str, raw: list[str], allowed: dict[str, str]
) -> tuple[tuple[str, str], ...]:
    parsed: list[tuple[str, str]] = []
    used: set[str] = set()
    for arg in raw:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise _LexFailure(f"arg should start with -- : {arg}")
        flag_name, has_value, value = arg.partition("=")
        name = flag_name[2:]
        kind = allowed.get(name)
        if kind is None:
            raise _LexFailure(f"unknown flag: {flag_name}")
        if name in used and kind != _STRINGS:
            raise _LexFailure(f"duplicate flag specified: {flag_name}")
        used.add(name)
        if kind == _BOOL:
            if has_value and value == "":
                raise _LexFailure(f"missing a value on flag: {flag_name}")
            if value.lower() in ("true", ""):
                value = "true"
            elif value.lower() == "false":
                value = "false"
            else:
                raise _LexFailure(f"expecting boolean value for flag {flag_name}, not: {value}")
        elif not has_value:
            raise _LexFailure(f"missing a value on flag: {flag_name}")
        parsed.append((name, value))
    return tuple(parsed)


# --- durations (Go's time.ParseDuration, for HEALTHCHECK) ---------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "500ms", "0")."""
    try:
        return _duration(text)
    except _LexFailure as err:
        raise InvalidParameter(str(err)) from None


def _duration(text: str) -> int:
    invalid = _LexFailure(f"time: invalid duration {json.dumps(text)}")
    rest, sign = text, 1
    if rest[:1] in ("+", "-"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        found = _DURATION_PART.match(rest)
        assert found is not None
        number, unit = found.groups()
        if number in ("", "."):
            raise invalid
        if not unit:
            raise _LexFailure(f"time: missing unit in duration {json.dumps(text)}")
        if unit not in _UNITS:
            raise _LexFailure(
                f"time: unknown unit {json.dumps(unit)} in duration {json.dumps(text)}"
            )
        whole, _, frac = number.partition(".")
        scale = _UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        rest = rest[found.end() :]
        if total > 2**63 - 1:
            raise invalid
    return sign * total


def _check_interval(flags: tuple[tuple[str, str], ...], name: str) -> None:
    value = dict(flags).get(name, "")
    if value and _duration(value) != 0 and _duration(value) < 1_000_000:
        raise _LexFailure(f'Interval "{name}" cannot be less than 1ms')


# --- lines to nodes (parser.go) ------------------------------------------------------


@dataclass
class _Node:
    keyword: str  # as written
    rest: str  # arguments after the flags, trimmed
    raw_flags: list[str]
    original: str
    json_form: bool
    json_args: list[str]
    line: int = 0
    end_line: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    child: _Node | None = None


_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def _parse_json(rest: str) -> list[str] | None:
    """A JSON array of strings, None when not JSON at all; mixed arrays are an error."""
    rest = _lstrip(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _LexFailure(_NOT_STRINGS)
    return value


_MAYBE_JSON = {"cmd", "entrypoint", "run", "shell", "add", "copy", "volume"}
_HEREDOC_KEYWORDS = {"run", "copy", "add"}


def _node_from_line(line: str, escape: str) -> _Node:
    parts = _WHITESPACE.split(_strip(line), maxsplit=1)
    keyword = parts[0]
    rest, raw_flags = "", list[str]()
    if len(parts) == 2:
        rest, raw_flags = _extract_flags(parts[1], escape)
    rest = _strip(rest)
    node = _Node(keyword, rest, raw_flags, line, False, [])
    lower = keyword.lower()
    if lower in _MAYBE_JSON and rest:
        parsed = _parse_json(rest)
        if parsed is not None:
            node.json_form, node.json_args = True, parsed
    elif lower == "healthcheck":
        typ, command = _first_word(rest)
        if typ and command:
            parsed = _parse_json(command)
            if parsed is not None:
                node.json_form, node.json_args = True, parsed
    elif lower == "onbuild" and rest:
        node.child = _node_from_line(rest, escape)
    return node


def _first_word(rest: str) -> tuple[str, str]:
    """parseHealthConfig's split: the first blank-delimited word and the rest."""
    sep = 0
    while sep < len(rest) and not _is_space(rest[sep]):
        sep += 1
    return rest[:sep], _lstrip(rest[sep:])


def _can_contain_heredoc(node: _Node) -> bool:
    if node.keyword.lower() == "onbuild" and node.child is not None:
        node = node.child
    return node.keyword.lower() in _HEREDOC_KEYWORDS and not node.json_form


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a single word opens (`<<EOF`, `<<-"EOF"`, `2<<EOF`), or None."""
    found = _HEREDOC.match(word)
    if not found:
        return None
    fd, chomp, rest = found.groups()
    if not rest:
        return None
    words = _Lexer("\\", {}, skip_unset=True).run(rest)[1]
    if len(words) != 1:
        return None
    raw = _Lexer("\\", {}, skip_unset=True, raw_quotes=True).run(rest)[1]
    if len(raw) != len(words):
        raise _LexFailure(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(
        name=words[0], content="", expand=quotes == raw_quotes, chomp=chomp == "-", fd=int(fd or 0)
    )


def _heredocs_from_line(line: str) -> list[Heredoc]:
    try:
        words = _Lexer("\\", {}, raw_quotes=True, raw_escapes=True, skip_unset=True).run(line)[1]
    except ExpansionError:
        return []
    docs = []
    for word in words:
        try:
            doc = parse_heredoc(word)
        except ExpansionError as err:
            raise _LexFailure(str(err)) from None
        if doc is not None:
            docs.append(doc)
    return docs


class _ParseFailure(Exception):
    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    kept = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        kept.append(lines[-1])
    return kept


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.continuation = self._continuation_regex("\\")
        self.done = False
        self.seen: dict[str, str] = {}

    @staticmethod
    def _continuation_regex(escape: str) -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def offer(self, line: str) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        found = _DIRECTIVE.match(_lstrip(line[1:]))
        if not found:
            self.done = True
            return False
        name, value = found.group(1).lower(), found.group(2)
        if name not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        if name in self.seen:
            raise _LexFailure(f"only one {name} parser directive can be used")
        self.seen[name] = value
        if name == "escape":
            if value not in ("`", "\\"):
                raise _LexFailure(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = self._continuation_regex(value)
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        found = self.continuation.search(line)
        if not found:
            return line, True
        return line[: found.start()] + (found.group(1) or ""), False


def _process_line(d: _Directives, raw: str, strip_left: bool) -> str:
    token = _trim_newline(raw)
    if strip_left:
        token = _lstrip(token)
    d.offer(token)
    return "" if _is_comment(token) else token


def _nodes(text: str, d: _Directives, warnings: list[str]) -> list[_Node]:
    lines = _split_lines(text)
    nodes: list[_Node] = []
    current = 0
    index = 0
    while index < len(lines):
        raw = lines[index]
        index += 1
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        try:
            token = _process_line(d, raw, True)
        except _LexFailure as err:
            raise _ParseFailure(current + 1, str(err)) from None
        current += 1
        start = current
        token, end_of_line = d.trim_continuation(token)
        if end_of_line and not token:
            continue
        buf = [token]
        empty_continuation = False
        while not end_of_line and index < len(lines):
            raw = lines[index]
            index += 1
            try:
                token = _process_line(d, raw, False)
            except _LexFailure as err:
                raise _ParseFailure(current + 1, str(err)) from None
            current += 1
            if _is_comment(raw):
                continue
            if not _lstrip(_trim_newline(token)):
                empty_continuation = True
                continue
            token, end_of_line = d.trim_continuation(token)
            buf.append(token)
        line = "".join(buf)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {line}")
        try:
            node = _node_from_line(line, d.escape)
        except _LexFailure as err:
            raise _ParseFailure(start, str(err)) from None
        if _can_contain_heredoc(node) and "<<" in line:
            try:
                docs = _heredocs_from_line(line)
            except _LexFailure as err:
                raise _ParseFailure(start, str(err)) from None
            for doc in docs:
                content: list[str] = []
                terminated = False
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise _ParseFailure(start, "unterminated heredoc")
                body = "".join(content)
                if doc.chomp:
                    body = _LEADING_TABS.sub("", body)
                node.heredocs.append(
                    Heredoc(
                        name=doc.name, content=body, expand=doc.expand, chomp=doc.chomp, fd=doc.fd
                    )
                )
        node.line, node.end_line = start, current
        nodes.append(node)
    return nodes


# --- nodes to instructions (instructions/parse.go) -----------------------------------

_KEYWORDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
)  # fmt: skip


def _args_of(node: _Node) -> tuple[str, ...]:
    if node.json_form:
        return tuple(node.json_args)
    return (node.rest,) if node.rest else ()


def _name_values(rest: str, keyword: str, escape: str) -> list[tuple[str, str]]:
    """line_parsers.go parseNameVal: `k=v k2="v 2"` or the legacy `k some value`."""
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LexFailure(f"{keyword} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise _LexFailure(
                f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: name=value"
            )
        key, _, value = word.partition("=")
        pairs.append((key, value))
    return pairs


def _check(node: _Node, escape: str) -> Instruction:
    keyword = node.keyword.upper()
    if keyword not in _KEYWORDS:
        raise _LexFailure(f"unknown instruction: {node.keyword}")
    args = _args_of(node)
    allowed = _FLAGS.get(keyword, {})
    words = split_words(node.rest) if not node.json_form else list(node.json_args)

    def flags() -> tuple[tuple[str, str], ...]:
        return _parse_flags(keyword, node.raw_flags, allowed)

    parsed_flags: tuple[tuple[str, str], ...] = ()
    trigger: Instruction | None = None
    if keyword in ("ENV", "LABEL"):
        parsed_flags = flags()
        pairs = _name_values(node.rest, keyword, escape)
        if not pairs:
            raise _LexFailure(f"{keyword} requires at least one argument")
        if any(key == "" for key, _ in pairs):
            raise _LexFailure(f"{keyword} names can not be blank")
    elif keyword == "MAINTAINER":
        if not node.rest:
            raise _LexFailure("MAINTAINER requires exactly one argument")
        parsed_flags = flags()
    elif keyword in ("ADD", "COPY"):
        if len(words) < 2:
            raise _LexFailure(
                f"{keyword} requires at least two arguments, but only one was provided. "
                "Destination could not be determined"
            )
        parsed_flags = flags()
        if parse_heredoc(words[-1]) is not None:
            raise _LexFailure(f"{keyword} cannot accept a heredoc as a destination")
    elif keyword == "FROM":
        if len(words) == 3 and words[1].lower() == "as":
            if not _STAGE_NAME.match(words[2].lower()):
                raise _LexFailure(
                    f"invalid name for build stage: {json.dumps(words[2])}, "
                    "name can't start with a number or contain symbols"
                )
        elif len(words) != 1:
            raise _LexFailure("FROM requires either one or three arguments")
        parsed_flags = flags()
    elif keyword == "ONBUILD":
        if node.child is None:
            raise _LexFailure("ONBUILD requires at least one argument")
        parsed_flags = flags()
        inner = node.child.keyword.upper()
        if inner == "ONBUILD":
            raise _LexFailure("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if inner in ("MAINTAINER", "FROM"):
            raise _LexFailure(f"{inner} isn't allowed as an ONBUILD trigger")
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        for doc in node.heredocs:
            expression += "\n" + doc.content + doc.name
        child = replace(node.child, heredocs=node.heredocs, line=node.line, end_line=node.end_line)
        trigger = _check(child, escape)
        args = (expression,)
    elif keyword in ("WORKDIR", "USER", "STOPSIGNAL"):
        if not node.rest:
            raise _LexFailure(f"{keyword} requires exactly one argument")
        parsed_flags = flags()
    elif keyword in ("RUN", "CMD", "ENTRYPOINT"):
        parsed_flags = flags()
    elif keyword == "HEALTHCHECK":
        typ, command = _first_word(node.rest)
        if not typ:
            raise _LexFailure("HEALTHCHECK requires at least one argument")
        if typ.upper() == "NONE":
            if command:
                raise _LexFailure("HEALTHCHECK NONE takes no arguments")
            parsed_flags = _parse_flags(keyword, node.raw_flags, {})
            args = ("NONE",)
        else:
            parsed_flags = flags()
            if typ.upper() != "CMD":
                raise _LexFailure(
                    f"Unknown type {json.dumps(typ.upper())} in HEALTHCHECK (try CMD)"
                )
            if node.json_form:
                args = ("CMD", *node.json_args)
            else:
                args = ("CMD", command) if command else ("CMD",)
            if len(args) == 1:
                raise _LexFailure("Missing command after HEALTHCHECK CMD")
            for name in ("interval", "timeout", "start-period", "start-interval"):
                _check_interval(parsed_flags, name)
            retries = dict(parsed_flags).get("retries", "")
            if retries:
                if (
                    not re.fullmatch(r"[+-]?[0-9]+", retries)
                    or not -(2**31) <= int(retries) < 2**31
                ):
                    raise _LexFailure(
                        f"strconv.ParseInt: parsing {json.dumps(retries)}: invalid syntax"
                    )
                if int(retries) < 0:
                    raise _LexFailure(f"--retries cannot be negative ({int(retries)})")
    elif keyword == "EXPOSE":
        if not words:
            raise _LexFailure("EXPOSE requires at least one argument")
        parsed_flags = flags()
    elif keyword == "VOLUME":
        if not words:
            raise _LexFailure("VOLUME requires at least one argument")
        parsed_flags = flags()
        if any(not _strip(volume) for volume in words):
            raise _LexFailure("VOLUME specified can not be an empty string")
    elif keyword == "ARG":
        names = _parse_words(node.rest, escape)
        if not names:
            raise _LexFailure("ARG requires at least one argument")
        if any(word.startswith("=") for word in names):
            raise _LexFailure("ARG names can not be blank")
        parsed_flags = flags()
    elif keyword == "SHELL":
        parsed_flags = flags()
        if not node.rest or (node.json_form and not node.json_args):
            raise _LexFailure("SHELL requires at least one argument")
        if not node.json_form:
            raise _LexFailure("SHELL requires the arguments to be in JSON form")
    return Instruction(
        keyword=keyword,
        args=args,
        json_form=node.json_form,
        flags=parsed_flags,
        line=node.line,
        original=node.original,
        heredocs=tuple(node.heredocs),
        end_line=node.end_line,
        trigger=trigger,
        escape=escape,
    )


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text


def _instructions(text: str | bytes) -> tuple[list[Instruction], _Directives, list[str]]:
    d = _Directives()
    warnings: list[str] = []
    try:
        nodes = _nodes(_decode(text), d, warnings)
    except _ParseFailure as err:
        raise DockerfileError(err.line, err.what) from None
    if not nodes:
        lines = len(_split_lines(_decode(text)))
        raise DockerfileError(max(lines, 1), "file with no instructions")
    checked = []
    for node in nodes:
        try:
            checked.append(_check(node, d.escape))
        except (_LexFailure, ExpansionError) as err:
            raise DockerfileError(node.line, str(err)) from None
    return checked, d, warnings


def parse(text: str | bytes) -> Dockerfile:
    """Parse a whole Dockerfile into stages; raises DockerfileError as Docker would."""
    checked, d, warnings = _instructions(text)
    if "syntax" in d.seen:
        warnings.insert(
            0,
            f"the syntax directive ({d.seen['syntax']}) is ignored: "
            "this builder implements the classic builder's Dockerfile syntax",
        )
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    opener: Instruction | None = None

    def close() -> None:
        if opener is not None:
            words = split_words(opener.args[0]) if opener.args else [""]
            name = words[2].lower() if len(words) == 3 else ""
            stages.append(
                Stage(
                    name=name,
                    base=words[0],
                    platform=opener.flag("platform") or "",
                    instructions=tuple(current),
                    line=opener.line,
                    from_instruction=opener,
                )
            )

    for instruction in checked:
        if instruction.keyword == "FROM":
            close()
            opener, current = instruction, []
        elif opener is None:
            if instruction.keyword != "ARG":
                raise DockerfileError(instruction.line, "no build stage in current context")
            meta_args.append(instruction)
        else:
            current.append(instruction)
    close()
    if not stages:
        raise DockerfileError(checked[-1].line, "dockerfile contains no stages to build")
    return Dockerfile(
        stages=tuple(stages),
        meta_args=tuple(meta_args),
        escape=d.escape,
        directives=dict(d.seen),
        warnings=tuple(warnings),
    )


def parse_changes(changes: Sequence[str], allowed: Collection[str]) -> tuple[Instruction, ...]:
    """The `--change` lines of `docker commit` and `docker import`, parsed as dockerd's
    BuildFromConfig parses them: joined into one Dockerfile, each instruction's keyword
    checked against `allowed` before its arguments are (dockerd's parser keeps the
    keyword lower case, and so does its "not a valid change command")."""
    d = _Directives()
    try:
        nodes = _nodes("\n".join(changes), d, [])
    except _ParseFailure as err:
        raise InvalidParameter(err.what) from None  # dockerd's parser errors carry no line here
    checked = []
    for node in nodes:
        if node.keyword.upper() not in allowed:
            raise InvalidParameter(f"{node.keyword.lower()} is not a valid change command")
        try:
            checked.append(_check(node, d.escape))
        except (_LexFailure, ExpansionError) as err:
            raise DockerfileError(node.line, str(err)) from None
    return tuple(checked)


def parse_triggers(triggers: Sequence[str], escape: str = "\\") -> tuple[Instruction, ...]:
    """Parse a base image's ONBUILD triggers (its config's OnBuild list) to run them."""
    header = f"# escape={escape}\n" if escape != "\\" else ""
    try:
        checked, _, _ = _instructions(header + "\n".join(triggers))
    except DockerfileError as err:
        raise InvalidParameter(f"failed to parse onbuild trigger: {err.what}") from None
    for instruction in checked:
        if instruction.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidParameter(
                f"{instruction.keyword} isn't allowed as an ONBUILD trigger"
                if instruction.keyword != "ONBUILD"
                else "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
            )
    return tuple(checked)


def key_values(
    instr: Instruction, env: Mapping[str, str] | None = None
) -> list[tuple[str, str | None]]:
    """The pairs of an ENV, LABEL or ARG instruction, quotes and escapes processed.

    With `env`, keys and values are expanded as Docker expands them; without, `$V`
    references are kept as written. ARG names without a default give None.
    """
    escape = instr.escape
    lexer = _Lexer(escape, env or {}, skip_unset=env is None)

    def word(text: str) -> str:
        return lexer.run(text)[0]

    text = instr.args[0] if instr.args else ""
    if instr.keyword == "ARG":
        out: list[tuple[str, str | None]] = []
        for item in _parse_words(text, escape):
            key, has_value, value = item.partition("=")
            out.append((word(key), word(value) if has_value else None))
        return out
    if instr.keyword in ("ENV", "LABEL"):
        try:
            pairs = _name_values(text, instr.keyword, escape)
        except _LexFailure as err:
            raise DockerfileError(instr.line, str(err)) from None
        return [(word(key), word(value)) for key, value in pairs]
    raise InvalidParameter(f"{instr.keyword} has no key=value arguments")


def json_or_shell(instr: Instruction, shell: Sequence[str] = DEFAULT_SHELL) -> list[str]:
    """The argv of RUN/CMD/ENTRYPOINT: exec form as is, shell form wrapped in `shell`."""
    if instr.json_form:
        return list(instr.args)
    if not instr.args:
        return []
    return [*shell, instr.args[0]]


def healthcheck_test(instr: Instruction) -> list[str]:
    """A HEALTHCHECK's Test as the image config stores it: NONE, CMD … or CMD-SHELL …"""
    if instr.args[:1] == ("NONE",):
        return ["NONE"]
    if instr.json_form:
        return ["CMD", *instr.args[1:]]
    return ["CMD-SHELL", *instr.args[1:]]
