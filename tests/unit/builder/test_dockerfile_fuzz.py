"""Hostile Dockerfiles and .dockerignore files: only the modules' own errors come out."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.builder.dockerfile import (
    Dockerfile,
    DockerfileError,
    expand,
    expand_words,
    json_or_shell,
    key_values,
    parse,
    shell_words,
)
from berth.builder.ignore import IgnoreMatcher
from berth.errors import InvalidParameter

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYWORDS = [
    "FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "USER",
    "WORKDIR", "ENTRYPOINT", "ONBUILD", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "MAINTAINER",
    "from", "Run", "BOGUS",
]  # fmt: skip
FLAGS = [
    "--from=build", "--chown=1:1", "--chmod=755", "--link", "--link=false", "--platform=x",
    "--mount=type=cache,target=/c", "--interval=5s", "--retries=3", "--bad", "--", '--x="a b"',
    "--exclude=*.md", "--timeout=", "--parents",
]  # fmt: skip
PIECES = [
    "a", "b=c", "k v", '"q u"', "'s q'", "$V", "${V:-d}", "${V:?e}", "${", "\\", "`", "\\\n",
    "`\n", "<<EOF", "<<-EOF", '<<"EOF"', "2<<E", "[", '["a", "b"]', '["a", 1]', "[]", "AS",
    "as", "stage", "NONE", "CMD", "#", "=", " ", "\t", "\u00a0", "\ufeff", "\x00", "é", "\r",
]  # fmt: skip
LINES = [
    "# escape=`", "# escape=\\", "# syntax=docker/dockerfile:1", "# check=skip=all", "#", "",
    "   ", "EOF", "\tEOF", "E", "FROM scratch", "FROM a AS b", "ARG X=1", "\\", "`",
]  # fmt: skip

words = st.one_of(st.sampled_from(PIECES), st.text(max_size=6))
instruction = st.builds(
    lambda k, f, w: " ".join([k, *f, *w]),
    st.sampled_from(KEYWORDS),
    st.lists(st.sampled_from(FLAGS), max_size=3),
    st.lists(words, max_size=6),
)
line = st.one_of(instruction, st.sampled_from(LINES), st.text(max_size=20))
dockerfile = st.lists(line, max_size=14).map("\n".join)


def exercise(df: Dockerfile) -> None:
    env = {"V": "v", "E": ""}
    for stage in df.stages:
        for instr in (*df.meta_args, *stage.instructions):
            if instr.keyword in ("ENV", "LABEL", "ARG"):
                for environment in (None, env):
                    try:
                        key_values(instr, environment)
                    except InvalidParameter:
                        pass
            if instr.keyword in ("RUN", "CMD", "ENTRYPOINT"):
                json_or_shell(instr, ["/bin/sh", "-c"])
            for arg in instr.args:
                for fn in (expand, expand_words, shell_words):
                    try:
                        fn(arg, env, df.escape)  # type: ignore[operator]
                    except InvalidParameter:
                        pass


def parse_or_refuse(text: str | bytes) -> None:
    try:
        df = parse(text)
    except DockerfileError as err:
        assert str(err).startswith("dockerfile parse error on line ")
        return
    assert df.stages
    exercise(df)


@SETTINGS
@given(dockerfile)
def test_structured_dockerfiles(text: str) -> None:
    parse_or_refuse(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    parse_or_refuse(data)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    parse_or_refuse(text)


SEED = """\
# syntax=docker/dockerfile:1
ARG BASE=alpine
FROM --platform=$P ${BASE} AS build
RUN --mount=type=cache,target=/c apt-get update && \\
    # comment
    apt-get install -y x
COPY --from=build --chown=1:1 <<EOF /dst/
hello $V
EOF
RUN <<-"A" sh <<B
\techo a
\tA
b
B
ENV A=1 B="two words" C=${V:-d}
LABEL x y z
HEALTHCHECK --interval=5s CMD ["curl", "-f", "x"]
ONBUILD RUN echo hi
SHELL ["/bin/bash", "-c"]
CMD ["a","b"]
"""


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(SEED)), st.integers(0, 8), words), max_size=6))
def test_mutated_seed(edits: list[tuple[int, int, str]]) -> None:
    text = SEED
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut :]
    parse_or_refuse(text)


@SETTINGS
@given(
    st.text(max_size=40),
    st.dictionaries(st.sampled_from(["V", "E", "1", "_"]), st.text(max_size=5)),
)
def test_expansion_never_crashes(word: str, env: dict[str, str]) -> None:
    for escape in ("\\", "`"):
        for fn in (expand, expand_words, shell_words):
            try:
                fn(word, env, escape)  # type: ignore[operator]
            except InvalidParameter:
                pass


ignore_piece = st.sampled_from(
    [
        "*",
        "**",
        "?",
        "[",
        "]",
        "[a-z]",
        "[^a]",
        "[]",
        "\\",
        "!",
        "/",
        ".",
        "..",
        "a",
        "#",
        " ",
        "{",
        "$",
    ]
)
ignore_line = st.one_of(st.lists(ignore_piece, max_size=6).map("".join), st.text(max_size=10))


@SETTINGS
@given(
    st.lists(ignore_line, max_size=8).map("\n".join),
    st.lists(st.sampled_from(["a", "b", ".", "..", "x y", "[", "é"]), min_size=1, max_size=4).map(
        "/".join
    ),
)
def test_dockerignore_never_crashes(text: str, path: str) -> None:
    try:
        matcher = IgnoreMatcher.from_text(text)
    except InvalidParameter as err:
        assert str(err).startswith("error parsing .dockerignore line ")
        return
    assert isinstance(matcher.excluded(path), bool)
