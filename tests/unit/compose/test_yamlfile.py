"""The YAML reader: YAML 1.2 scalars as compose v2 reads them, errors with line and
column, and the caps that keep hostile documents harmless."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.compose import yamlfile
from berth.compose.yamlfile import parse_yaml
from berth.errors import InvalidParameter


def test_scalars_as_yaml_1_2_core() -> None:
    doc = parse_yaml("a: yes\nb: on\nc: 0755\nd: 0x10\ne: ~\nf: 1.5\ng: true\nh: 2020-01-01\ni: '08'\n")
    assert doc == {"a": "yes", "b": "on", "c": 493, "d": 16, "e": None, "f": 1.5, "g": True,
                   "h": "2020-01-01", "i": "08"}


def test_anchors_and_merge_keys() -> None:
    doc = parse_yaml("x: &x {a: 1, b: 2}\ny:\n  <<: *x\n  b: 3\nz: *x\n")
    assert doc["y"] == {"a": 1, "b": 3}
    assert doc["z"] == {"a": 1, "b": 2}


def test_empty_document_is_none() -> None:
    assert parse_yaml("") is None
    assert parse_yaml("# only a comment\n") is None


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(InvalidParameter, match=r"^yaml: line 4, column 1: expected the node content"):
        parse_yaml("services:\n  web:\n    image: [\n")


def test_duplicate_key_names_both_lines() -> None:
    with pytest.raises(InvalidParameter, match='line 4: mapping key "a" already defined at line 2'):
        parse_yaml("services:\n  a: {}\n  b: {}\n  a: {}\n")


def test_billion_laughs_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    with pytest.raises(InvalidParameter, match="too large once its aliases are expanded"):
        parse_yaml("\n".join(lines))
    assert time.monotonic() - started < 2


def test_recursive_alias_refused() -> None:
    with pytest.raises(InvalidParameter, match="recursive alias"):
        parse_yaml("a: &a [*a]\n")


def test_deep_nesting_refused() -> None:
    with pytest.raises(InvalidParameter, match="nested deeper"):
        parse_yaml("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidParameter, match="nested deeper"):
        parse_yaml("a: " + "[" * 300 + "]" * 300)


def test_file_size_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlfile, "MAX_FILE_SIZE", 100)
    with pytest.raises(InvalidParameter, match="file too large"):
        parse_yaml("a: " + "x" * 200)


def test_not_utf8() -> None:
    with pytest.raises(InvalidParameter, match="not UTF-8"):
        parse_yaml(b"a: \xff\xfe\n")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab:-[]{}&*!|>'\"\n #,?<=%@`\\0123", max_size=80))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_yaml(text)
    except InvalidParameter:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        parse_yaml(data)
    except InvalidParameter:
        pass
