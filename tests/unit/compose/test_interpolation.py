"""Interpolation: every form compose-go knows, errors with the path and message, the
type casts after substitution, and dotenv files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.compose.interpolation import (
    InterpolationError,
    interpolate_document,
    interpolate_string,
    parse_dotenv,
)
from berth.errors import InvalidParameter

ENV = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${SET}", "value"),
        ("$SET", "value"),
        ("$SET-tail", "value-tail"),
        ("pre${SET}post", "prevaluepost"),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${SET:-default}", "value"),
        ("${UNSET-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET?unused}", "value"),
        ("${EMPTY?unused}", ""),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("$$$SET", "$value"),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a ${SET} b}", "a value b"),
        ("${UNSET:-}", ""),
        ("cost: 5$", "cost: 5$"),
        ("no vars", "no vars"),
    ],
)
def test_forms(template: str, expected: str) -> None:
    assert interpolate_string(template, ENV, []) == expected


def test_unset_without_default_is_empty_with_one_warning() -> None:
    warnings: list[str] = []
    assert interpolate_string("${UNSET}-$UNSET", ENV, warnings) == "-"
    assert warnings == ['The "UNSET" variable is not set. Defaulting to a blank string.']


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?need it}", "required variable UNSET is missing a value: need it"),
        ("${EMPTY:?must not be empty}", "required variable EMPTY is missing a value: must not be empty"),
        ("${UNSET?}", "required variable UNSET is missing a value"),
        ("${UNSET:?${SET} msg}", "required variable UNSET is missing a value: value msg"),
    ],
)
def test_required_errors_carry_the_message(template: str, message: str) -> None:
    with pytest.raises(InterpolationError) as e:
        interpolate_string(template, ENV, [], path="services.web.image")
    assert str(e.value) == f"error while interpolating services.web.image: {message}"


@pytest.mark.parametrize("template", ["${SET", "${SET:x}", "${}", "${1A}", "${SET!}"])
def test_invalid_template(template: str) -> None:
    with pytest.raises(InterpolationError, match=r"^invalid interpolation format for services\.a\.image\."):
        interpolate_string(template, ENV, [], path="services.a.image")


def test_document_walk_names_the_path_and_casts() -> None:
    doc = {
        "services": {
            "web": {
                "ports": [{"target": "${T}", "published": "${P}"}],
                "deploy": {"replicas": "${N}"},
                "init": "${B}",
                "environment": {"N": "${N}"},
            }
        },
        "volumes": {"v": {"external": "${B}"}},
    }
    out = interpolate_document(doc, {"T": "80", "P": "8080", "N": "3", "B": "true"}, [])
    web = out["services"]["web"]
    assert web["ports"] == [{"target": 80, "published": 8080}]
    assert web["deploy"]["replicas"] == 3
    assert web["init"] is True
    assert web["environment"] == {"N": "3"}  # environment stays a string
    assert out["volumes"]["v"]["external"] is True
    with pytest.raises(InterpolationError, match=r"services\.web\.command\.1"):
        interpolate_document({"services": {"web": {"command": ["a", "${X:?}"]}}}, {}, [])


def test_keys_are_not_interpolated() -> None:
    assert interpolate_document({"${K}": "${V}"}, {"K": "k", "V": "v"}, []) == {"${K}": "v"}


def test_dotenv() -> None:
    text = (
        "# comment\n"
        "A=1\n"
        "export B=two\n"
        'C="x\\ny ${A}"\n'
        "D='lit $A'\n"
        "E=v # trailing comment\n"
        "F=a#b\n"
        "G\n"
        "H=\n"
        'I="multi\nline"\n'
        "J=${A}-${UNSET:-d}\n"
        "  K = spaced  \n"
    )
    assert parse_dotenv(text, {"G": "from-env"}, source=".env") == {
        "A": "1", "B": "two", "C": "x\ny 1", "D": "lit $A", "E": "v", "F": "a#b",
        "G": "from-env", "H": "", "I": "multi\nline", "J": "1-d", "K": "spaced",
    }


def test_dotenv_errors() -> None:
    with pytest.raises(InvalidParameter, match="unterminated"):
        parse_dotenv('A="open\n', {}, source=".env")
    with pytest.raises(InvalidParameter, match=r"\.env: line 1"):
        parse_dotenv("=x\n", {}, source=".env")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="${}:-+?_AZaz09 x", max_size=40))
def test_any_template_substitutes_or_fails_cleanly(template: str) -> None:
    try:
        interpolate_string(template, ENV, [])
    except InterpolationError:
        pass
