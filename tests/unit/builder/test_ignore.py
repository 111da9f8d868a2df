"""The .dockerignore matcher against moby/patternmatcher's cases and Docker's docs."""

import os

import pytest

from berth.builder.ignore import IgnoreMatcher, clean
from berth.errors import InvalidParameter


def excluded(text: str, path: str) -> bool:
    return IgnoreMatcher.from_text(text).excluded(path)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # Docker's reference examples
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "temp", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("temp?", "tempa", True),
        ("temp?", "tempab", False),
        ("**/*.go", "a/b/c.go", True),
        ("**/*.go", "c.go", True),
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),
        # a pattern matching a parent excludes everything below it
        ("node_modules", "node_modules/x/y.js", True),
        ("/build/", "build/out.o", True),
        ("./src/docs/", "src/docs/a.md", True),
        # patternmatcher cases
        ("fileutils.go", "fileutils.go", True),
        ("*.go", "fileutils.go", True),
        ("[a-z]*", "hello", True),
        ("[!a]*", "!x", True),
        ("[^a]*", "bcd", True),
        ("[^a]*", "abc", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("**", "anything/at/all", True),
        ("dir/**", "dir/a/b", True),
        ("dir/**", "dir", False),  # the prefix kept is "dir/"
        ("**/foo", "foo", True),
        ("**/foo", "a/foo", True),
        ("**/foo/bar", "x/y/foo/bar", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a(b)c+d", "a(b)c+d", True),
        ("{a,b}", "a", False),
        ("{a,b}", "{a,b}", True),
        ("a.b", "axb", False),
    ],
)
def test_patterns(pattern: str, path: str, expected: bool) -> None:
    assert excluded(pattern, path) is expected


def test_exceptions_last_match_wins() -> None:
    text = "*.md\n!README*.md\nREADME-secret.md\n"
    assert excluded(text, "CHANGELOG.md")
    assert not excluded(text, "README.md")
    assert excluded(text, "README-secret.md")


def test_course_dockerignore() -> None:
    text = "# Ignore these files\n*/*.md\n*/.git\nsrc/docs/\n*/tests/\n"
    matcher = IgnoreMatcher.from_text(text)
    assert matcher.excluded("src/README.md")
    assert matcher.excluded("src/.git/HEAD")
    assert matcher.excluded("src/docs/index.html")
    assert matcher.excluded("src/tests/test.js")
    assert not matcher.excluded("src/app.js")
    assert not matcher.excluded("Dockerfile")
    assert not matcher.excluded("README.md")


def test_comments_blank_lines_and_trimming() -> None:
    text = "\ufeff# comment\n\n   \n  *.log  \r\n #not-a-comment\n"
    matcher = IgnoreMatcher.from_text(text)
    assert matcher.excluded("x.log")
    # '#' only starts a comment at the very start of the line
    assert matcher.excluded("#not-a-comment")


def test_root_is_never_excluded() -> None:
    assert not excluded("*", ".")
    assert not excluded("**", "")


@pytest.mark.parametrize("bad", ["[", "a[", "[]", "[a-]", "[-a]", "a\\", "[z-a]"])
def test_malformed_pattern_names_its_line(bad: str) -> None:
    with pytest.raises(InvalidParameter, match="error parsing .dockerignore line 2: syntax error"):
        IgnoreMatcher.from_text(f"ok\n{bad}\n")


def test_lone_exclamation_is_refused() -> None:
    with pytest.raises(InvalidParameter, match='line 1: illegal exclusion pattern: "!"'):
        IgnoreMatcher.from_text("!\n")


def test_clean_like_go() -> None:
    assert clean("") == "."
    assert clean("a//b/./c/..") == "a/b"
    assert clean("/../a") == "/a"
    assert clean("../a/../..") == "../.."
    assert clean("//x/") == "/x"


def tree(root, paths: list[str]) -> None:
    for path in paths:
        full = os.path.join(root, path)
        if path.endswith("/"):
            os.makedirs(full, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write("x")


def test_walk_skips_excluded_dirs(tmp_path) -> None:
    tree(tmp_path, ["Dockerfile", "a/b.txt", "node_modules/m/index.js", "logs/x.log", "keep.log"])
    os.symlink("a", tmp_path / "link")
    matcher = IgnoreMatcher.from_text("node_modules\n*.log\nlogs\n")
    assert list(matcher.walk(str(tmp_path))) == ["Dockerfile", "a", "a/b.txt", "link"]


def test_walk_descends_when_an_exception_reincludes_below(tmp_path) -> None:
    tree(tmp_path, ["docs/a.md", "docs/keep/b.md", "docs/keep/c.txt", "other/d"])
    matcher = IgnoreMatcher.from_text("docs\nother\n!docs/keep/b.md\n")
    assert list(matcher.walk(str(tmp_path))) == ["docs/keep/b.md"]


def test_from_patterns() -> None:
    matcher = IgnoreMatcher.from_patterns(["*.tmp", "!keep.tmp", ""])
    assert matcher.excluded("a.tmp") and not matcher.excluded("keep.tmp")
    assert matcher.has_exceptions
