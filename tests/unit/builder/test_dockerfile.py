"""The Dockerfile parser and word expansion against Docker's behaviour."""

import pytest

from berth.builder.dockerfile import (
    DockerfileError,
    expand,
    expand_words,
    healthcheck_test,
    json_or_shell,
    key_values,
    parse,
    parse_duration,
    parse_triggers,
    shell_words,
)
from berth.errors import InvalidParameter

WEATHER_APP = """\
# Create an image for the weather-app
FROM node
LABEL org.label-schema.version=v1.1
ENV NODE_ENV="development"
ENV PORT 3000

RUN mkdir -p /var/node
ADD src/ /var/node/
WORKDIR /var/node
RUN npm install
EXPOSE $PORT
CMD ./bin/www
"""

MULTI_STAGE = """\
# Create an image for the weather-app using multi-stage build
FROM node AS build
RUN mkdir -p /var/node/
ADD src/ /var/node/
WORKDIR /var/node
RUN npm install

FROM node:alpine
ARG VERSION=V1.1
LABEL org.label-schema.version=$VERSION
ENV NODE_ENV="production"
COPY --from=build /var/node /var/node
WORKDIR /var/node
EXPOSE 3000
ENTRYPOINT ["./bin/www"]
"""


def only_stage(text: str):
    (stage,) = parse(text).stages
    return stage


def one(text: str):
    return only_stage("FROM scratch\n" + text).instructions[0]


def test_course_weather_app() -> None:
    stage = only_stage(WEATHER_APP)
    assert stage.base == "node" and stage.name == "" and stage.line == 2
    keywords = [i.keyword for i in stage.instructions]
    assert keywords == ["LABEL", "ENV", "ENV", "RUN", "ADD", "WORKDIR", "RUN", "EXPOSE", "CMD"]
    env = stage.instructions[1:3]
    assert key_values(env[0]) == [("NODE_ENV", "development")]
    assert key_values(env[1]) == [("PORT", "3000")]
    expose = stage.instructions[7]
    assert expand_words(expose.args[0], {"PORT": "3000"}) == ["3000"]
    cmd = stage.instructions[-1]
    assert json_or_shell(cmd, ["/bin/sh", "-c"]) == ["/bin/sh", "-c", "./bin/www"]
    assert cmd.original == "CMD ./bin/www" and cmd.line == 12


def test_course_multi_stage() -> None:
    df = parse(MULTI_STAGE)
    build, final = df.stages
    assert (build.name, build.base) == ("build", "node")
    assert (final.name, final.base, final.line) == ("", "node:alpine", 8)
    arg, label = final.instructions[:2]
    assert key_values(arg) == [("VERSION", "V1.1")]
    assert key_values(label, {"VERSION": "1.5"}) == [("org.label-schema.version", "1.5")]
    copy = final.instructions[3]
    assert copy.flag("from") == "build" and copy.args == ("/var/node /var/node",)
    entrypoint = final.instructions[-1]
    assert entrypoint.json_form and entrypoint.args == ("./bin/www",)
    assert json_or_shell(entrypoint, ["/bin/sh", "-c"]) == ["./bin/www"]


def test_meta_args_platform_and_case() -> None:
    df = parse("ARG BASE=alpine\nfrom --platform=$BUILDPLATFORM ${BASE} as Builder\nrun true\n")
    assert [key_values(a) for a in df.meta_args] == [[("BASE", "alpine")]]
    (stage,) = df.stages
    assert (stage.name, stage.base, stage.platform) == ("builder", "${BASE}", "$BUILDPLATFORM")
    assert stage.instructions[0].keyword == "RUN"


def test_continuations_comments_and_empty_lines() -> None:
    text = "FROM x\nRUN apt-get update && \\\n    # a comment inside\n\n    apt-get install -y \\\n      curl\n"
    df = parse(text)
    run = df.stages[0].instructions[0]
    assert run.args == ("apt-get update &&     apt-get install -y       curl",)
    assert run.original == "RUN apt-get update &&     apt-get install -y       curl"
    assert (run.line, run.end_line) == (2, 6)
    assert any("Empty continuation line" in w for w in df.warnings)


def test_escape_directive_backtick() -> None:
    df = parse("# escape=`\nFROM windows\nRUN dir `\n  c:\\\nCOPY a\\b c:\\dest\\\n")
    assert df.escape == "`" and df.directives == {"escape": "`"}
    run, copy = df.stages[0].instructions
    assert run.args == ("dir   c:\\",)
    assert copy.args == ("a\\b c:\\dest\\",)
    assert expand_words(copy.args[0], {}, "`") == ["a\\b", "c:\\dest\\"]


def test_directives_only_at_the_top() -> None:
    df = parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.directives == {}
    df = parse("# syntax=docker/dockerfile:1.4\n# check=skip=all\n#escape=\\\nFROM x\n")
    assert df.directives["syntax"] == "docker/dockerfile:1.4"
    assert df.directives["check"] == "skip=all"
    assert any("syntax" in w for w in df.warnings)
    # a comment first ends the directives
    assert parse("# hello\n# escape=`\nFROM x\n").escape == "\\"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("FROM x\nFOO bar\n", 2, "unknown instruction: FOO"),
        ("FROM a b\n", 1, "FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", 1, 'invalid name for build stage: "1x"'),
        ("RUN true\n", 1, "no build stage in current context"),
        ("ARG X\n", 1, "dockerfile contains no stages to build"),
        ("\n# only a comment\n", 2, "file with no instructions"),
        ("FROM x\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
        ("FROM x\nADD --from=a b c\n", 2, "unknown flag: --from"),
        ("FROM x\nCOPY --chown a b\n", 2, "missing a value on flag: --chown"),
        ("FROM x\nCOPY --link=maybe a b\n", 2, "expecting boolean value for flag --link"),
        ("FROM x\nCOPY --from=a --from=b a b\n", 2, "duplicate flag specified: --from"),
        ("FROM x\nCOPY a <<EOF\nx\nEOF\n", 2, "COPY cannot accept a heredoc as a destination"),
        ("FROM x\nENV\n", 2, "ENV requires at least one argument"),
        ("FROM x\nENV FOO\n", 2, "ENV must have two arguments"),
        ("FROM x\nENV A=1 B\n", 2, 'Syntax error - can\'t find = in "B"'),
        ("FROM x\nENV =1\n", 2, "ENV names can not be blank"),
        ("FROM x\nLABEL\n", 2, "LABEL requires at least one argument"),
        ("FROM x\nARG\n", 2, "ARG requires at least one argument"),
        ("FROM x\nARG =v\n", 2, "ARG names can not be blank"),
        ("FROM x\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
        ("FROM x\nUSER\n", 2, "USER requires exactly one argument"),
        ("FROM x\nMAINTAINER\n", 2, "MAINTAINER requires exactly one argument"),
        ("FROM x\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
        ("FROM x\nVOLUME\n", 2, "VOLUME requires at least one argument"),
        ('FROM x\nVOLUME [""]\n', 2, "VOLUME specified can not be an empty string"),
        ("FROM x\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
        ("FROM x\nSHELL []\n", 2, "SHELL requires at least one argument"),
        ('FROM x\nCMD ["a", 1]\n', 2, "arrays must be comprised of strings only"),
        (
            "FROM x\nONBUILD ONBUILD RUN x\n",
            2,
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FROM x\nONBUILD FROM y\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM x\nONBUILD MAINTAINER me\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM x\nONBUILD\n", 2, "ONBUILD requires at least one argument"),
        ("FROM x\nHEALTHCHECK\n", 2, "HEALTHCHECK requires at least one argument"),
        ("FROM x\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
        ("FROM x\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
        ("FROM x\nHEALTHCHECK FOO x\n", 2, 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        (
            "FROM x\nHEALTHCHECK --interval=1us CMD x\n",
            2,
            'Interval "interval" cannot be less than 1ms',
        ),
        ("FROM x\nHEALTHCHECK --timeout=soon CMD x\n", 2, 'time: invalid duration "soon"'),
        ("FROM x\nHEALTHCHECK --retries=-1 CMD x\n", 2, "--retries cannot be negative (-1)"),
        ("FROM x\nHEALTHCHECK --retries=x CMD x\n", 2, "invalid syntax"),
        ("FROM x\nHEALTHCHECK --interval=5s NONE\n", 2, "unknown flag: --interval"),
        ("FROM x\nRUN --foo=bar x\n", 2, "unknown flag: --foo"),
        ("# escape=x\nFROM a\n", 1, "invalid escape token 'x' does not match ` or \\"),
        ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one escape parser directive can be used"),
    ],
)
def test_errors_name_the_line(text: str, line: int, what: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    assert str(caught.value).startswith(f"dockerfile parse error on line {line}: ")
    assert what in str(caught.value)
    assert isinstance(caught.value, InvalidParameter) and caught.value.line == line


def test_unterminated_heredoc_names_its_line() -> None:
    with pytest.raises(DockerfileError, match="on line 3: unterminated heredoc"):
        parse("FROM x\nRUN true\nRUN <<EOF\necho\nEOFX\n")


def test_heredocs() -> None:
    text = (
        "FROM x\n"
        "RUN <<EOF\n"
        "echo $HOME\n"
        "EOF\n"
        "RUN <<-'A' python3 - <<B 2<<\"C\"\n"
        "\tprint(1)\n"
        "\tA\n"
        "b $x\n"
        "B\n"
        "c\n"
        "C\n"
        "COPY <<one.txt <<two.txt /dest/\n"
        "1\n"
        "one.txt\n"
        "2\n"
        "two.txt\n"
        'RUN ["echo", "<<EOF"]\n'
        "CMD cat <<EOF\n"
    )
    run1, run2, copy, json_run, cmd = only_stage(text).instructions
    (doc,) = run1.heredocs
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", "echo $HOME\n", True, False)
    a, b, c = run2.heredocs
    assert (a.name, a.content, a.expand, a.chomp) == ("A", "print(1)\n", False, True)
    assert (b.name, b.content, b.expand) == ("B", "b $x\n", True)
    assert (c.name, c.fd, c.expand) == ("C", 2, False)
    assert [(d.name, d.content) for d in copy.heredocs] == [("one.txt", "1\n"), ("two.txt", "2\n")]
    assert json_run.heredocs == () and cmd.heredocs == ()
    assert cmd.args == ("cat <<EOF",)


def test_heredoc_in_onbuild_and_escaped_heredoc() -> None:
    onbuild, run = only_stage("FROM x\nONBUILD RUN <<EOF\nhi\nEOF\nRUN echo \\<<EOF\n").instructions
    assert onbuild.args == ("RUN <<EOF\nhi\nEOF",)
    assert onbuild.trigger is not None and onbuild.trigger.heredocs[0].content == "hi\n"
    assert run.heredocs == ()


def test_json_detection() -> None:
    assert one('CMD ["echo", "hi there"]').args == ("echo", "hi there")
    assert one('CMD ["echo", "hi there"]').json_form
    shell = one("CMD [echo, hi]")  # not valid JSON: shell form
    assert not shell.json_form and shell.args == ("[echo, hi]",)
    assert one("CMD []").json_form and one("CMD []").args == ()
    assert not one("CMD [NaN]").json_form
    volume = one('VOLUME ["/data", "/logs"]')
    assert volume.json_form and volume.args == ("/data", "/logs")
    words = one("VOLUME /data /logs")
    assert expand_words(words.args[0], {}) == ["/data", "/logs"]
    assert json_or_shell(one("RUN echo hi"), ["bash", "-lc"]) == ["bash", "-lc", "echo hi"]


def test_flags_recorded() -> None:
    copy = one("COPY --chown=1000:1000 --chmod=755 --link --exclude=*.md --exclude=x --parents a b")
    assert copy.flag("chown") == "1000:1000" and copy.flag("chmod") == "755"
    assert copy.flag("link") == "true" and copy.flag("parents") == "true"
    assert copy.flag_values("exclude") == ["*.md", "x"]
    assert copy.flag("from") is None and copy.flag("from", "x") == "x"
    add = one("ADD --checksum=sha256:abc --keep-git-dir=false --unpack https://x/y.tgz /z")
    assert add.flag("keep-git-dir") == "false" and add.flag("checksum") == "sha256:abc"
    run = one("RUN --mount=type=cache,target=/root/.cache --network=none --security=insecure make")
    assert run.flag_values("mount") == ["type=cache,target=/root/.cache"]
    assert run.flag("network") == "none" and run.args == ("make",)
    quoted = one('COPY --chown="a b" x y')
    assert quoted.flag("chown") == "a b" and quoted.args == ("x y",)
    not_a_flag = one('COPY "--chown=a" x y')  # a flag must start with a bare "--"
    assert not_a_flag.flags == ()
    ended = one("RUN -- --not-a-flag")
    assert ended.flags == () and ended.args == ("--not-a-flag",)


def test_healthcheck() -> None:
    hc = one(
        "HEALTHCHECK --interval=5m --timeout=3s --start-period=1s --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1"
    )
    assert hc.args == ("CMD", "curl -f http://localhost/ || exit 1")
    assert healthcheck_test(hc) == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    assert hc.flag("retries") == "3" and parse_duration(hc.flag("interval") or "") == 300 * 10**9
    exec_form = one('HEALTHCHECK CMD ["curl", "-f", "x"]')
    assert healthcheck_test(exec_form) == ["CMD", "curl", "-f", "x"]
    assert healthcheck_test(one("HEALTHCHECK none")) == ["NONE"]


def test_durations() -> None:
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("1.5s") == 1_500_000_000
    assert parse_duration("0") == 0
    assert parse_duration("250ms") == 250_000_000
    for bad in ("", "5", "s", "1x", "1.s.s"):
        with pytest.raises(InvalidParameter):
            parse_duration(bad)


def test_misc_instructions() -> None:
    stage = only_stage(
        "FROM x\nMAINTAINER Jane <j@x>\nSTOPSIGNAL SIGTERM\nUSER app:app\nWORKDIR /a b\n"
        'SHELL ["powershell", "-command"]\nEXPOSE 80/tcp 443\nONBUILD ADD . /app/src\n'
    )
    maint, stop, user, workdir, shell, expose, onbuild = stage.instructions
    assert maint.args == ("Jane <j@x>",) and stop.args == ("SIGTERM",)
    assert user.args == ("app:app",) and workdir.args == ("/a b",)
    assert shell.json_form and shell.args == ("powershell", "-command")
    assert expand_words(expose.args[0], {}) == ["80/tcp", "443"]
    assert onbuild.args == ("ADD . /app/src",) and onbuild.trigger is not None
    assert onbuild.trigger.keyword == "ADD"


def test_key_values_syntaxes() -> None:
    env = one("ENV A=1 B=\"two words\" C='$lit' D=$A E=\\$esc F=")
    assert key_values(env, {"A": "x"}) == [
        ("A", "1"),
        ("B", "two words"),
        ("C", "$lit"),
        ("D", "x"),
        ("E", "$esc"),
        ("F", ""),
    ]
    assert key_values(env)[3] == ("D", "$A")
    legacy = one("ENV MY_NAME John Doe  the   second")
    assert key_values(legacy) == [("MY_NAME", "John Doe  the   second")]
    label = one('LABEL "com.example.vendor"="ACME Inc" version=1.0 description="multi \\\n line"')
    assert key_values(label) == [
        ("com.example.vendor", "ACME Inc"),
        ("version", "1.0"),
        ("description", "multi  line"),
    ]
    arg = one('ARG user1 buildno=1 empty= quoted="a b"')
    assert key_values(arg) == [("user1", None), ("buildno", "1"), ("empty", ""), ("quoted", "a b")]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$V", "v"),
        ("${V}", "v"),
        ("${V}x", "vx"),
        ("$Vx", ""),
        ("${UNSET}", ""),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${V:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-$V}", "v"),
        ("${UNSET:-${V}-${V}}", "v-v"),
        ("'$V'", "$V"),
        ('"$V"', "v"),
        ('"a \\"b\\" \\$V \\x"', 'a "b" $V \\x'),
        ("\\$V", "$V"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1", ""),
        ("${PATH_LIKE%/*}", "/usr/local"),
        ("${PATH_LIKE%%/*}", ""),
        ("${PATH_LIKE#*/}", "usr/local/bin"),
        ("${PATH_LIKE##*/}", "bin"),
        ("${PATH_LIKE/local/opt}", "/usr/opt/bin"),
        ("${REPEAT//a/b}", "bbb"),
        ("${REPEAT/a/b}", "baa"),
        ("tra\\il\\", "trail"),
    ],
)
def test_expand(word: str, expected: str) -> None:
    env = {"V": "v", "EMPTY": "", "PATH_LIKE": "/usr/local/bin", "REPEAT": "aaa"}
    assert expand(word, env) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${V:?must be set}", "V: must be set"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${", "syntax error: missing '}'"),
        ("${V:-x", "syntax error: missing '}'"),
        ("${}", "bad substitution"),
        ("${:x}", "bad substitution"),
        ("${V:=x}", "unsupported modifier (:=) in substitution"),
        ("${V:#x}", "unsupported modifier (:#) in substitution"),
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
    ],
)
def test_expand_errors(word: str, message: str) -> None:
    env = {"EMPTY": ""} if "V:?" not in word else {"V": ""}
    with pytest.raises(InvalidParameter, match="failed to process") as caught:
        expand(word, env)
    assert message in str(caught.value)


def test_expand_with_backtick_escape() -> None:
    assert expand("c:\\dir `$V", {"V": "x"}, "`") == "c:\\dir $V"


def test_word_splitting() -> None:
    env = {"SPACED": "a b"}
    # Docker splits COPY/ADD arguments on blanks before expanding
    assert expand_words("$SPACED  /dst/", env) == ["a b", "/dst/"]
    assert expand_words("  ", env) == []
    # ProcessWords: expansion then splitting outside quotes
    assert shell_words('$SPACED "c d" e\\ f', env) == ["a", "b", "c d", "e f"]


def test_triggers_reparse() -> None:
    (first, second) = parse_triggers(["RUN echo hi", "COPY --chown=1 a b"])
    assert first.keyword == "RUN" and second.flag("chown") == "1"
    with pytest.raises(InvalidParameter):
        parse_triggers(["FROM x"])


def test_bom_crlf_and_bytes() -> None:
    df = parse(b"\xef\xbb\xbfFROM x\r\nRUN a \\\r\n  b\r\n")
    assert df.stages[0].instructions[0].args == ("a   b",)


def test_reference_examples() -> None:
    text = """\
# syntax=docker/dockerfile:1
FROM ubuntu:22.04 AS base
ARG  CODE_VERSION=latest
ENV DEBIAN_FRONTEND=noninteractive \\
    LANG=C.UTF-8
RUN --mount=type=cache,target=/var/cache/apt \\
    apt-get update && apt-get install -y --no-install-recommends \\
        ca-certificates \\
        curl \\
 && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 <<"EOT" /usr/local/bin/hello
#!/bin/sh
echo "Hello $USER"
EOT
ADD --link https://example.com/big.tar.xz /usr/src/things/
VOLUME /myvol
USER patrick
WORKDIR /path/to/workdir
EXPOSE 80/udp
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=30s --timeout=30s --start-period=5s --retries=3 CMD [ "/bin/check" ]
ENTRYPOINT ["top", "-b"]
CMD ["-c"]

FROM base AS final
ONBUILD RUN /usr/local/bin/python-build --dir /app/src
"""
    df = parse(text)
    assert [s.name for s in df.stages] == ["base", "final"]
    base = df.stages[0]
    env = base.instructions[1]
    assert key_values(env) == [("DEBIAN_FRONTEND", "noninteractive"), ("LANG", "C.UTF-8")]
    copy = base.instructions[3]
    assert copy.flag("chmod") == "0755"
    assert copy.heredocs[0].content == '#!/bin/sh\necho "Hello $USER"\n'
    assert not copy.heredocs[0].expand
    assert df.stages[1].base == "base"
