"""Image references, read and printed as Docker's distribution/reference does.

``busybox`` is ``docker.io/library/busybox``; its familiar form drops the
default registry and the ``library/`` namespace again.  Mirrors the parts of
distribution/reference the CLI uses (ParseNormalizedNamed, FamiliarString,
TagNameOnly).  Pure code.
"""

from __future__ import annotations

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"


class ReferenceError(ValueError):
    """The reference does not parse; the message is distribution/reference's."""


class Reference:
    """A parsed image reference: registry domain, repository path, tag, digest."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str = "", digest: str = "") -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and (self.domain, self.path, self.tag, self.digest) == (
            other.domain,
            other.path,
            other.tag,
            other.digest,
        )

    def __hash__(self) -> int:
        return hash((self.domain, self.path, self.tag, self.digest))

    def __repr__(self) -> str:
        return f"Reference({self.domain!r}, {self.path!r}, {self.tag!r}, {self.digest!r})"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
                return path[len(OFFICIAL_PREFIX) :]
            return path
        return self.name

    def familiar(self) -> str:
        return self.familiar_string()

    def familiar_string(self) -> str:
        text = self.familiar_name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def with_default_tag(self) -> Reference:
        """TagNameOnly: add ``latest`` when there is neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, "latest", "")


def _valid_digest(digest: str) -> bool:
    algo, _, encoded = digest.partition(":")
    if not algo or not encoded or not all(c.isascii() and (c.isalnum() or c in "+._-") for c in algo):
        return False
    if algo == "sha256":
        return len(encoded) == 64 and all(c in "0123456789abcdef" for c in encoded)
    if algo == "sha512":
        return len(encoded) == 128 and all(c in "0123456789abcdef" for c in encoded)
    return len(encoded) >= 32 and all(c.isascii() and (c.isalnum() or c in "=_-") for c in encoded)


def _valid_tag(tag: str) -> bool:
    if not tag or len(tag) > 128:
        return False
    if not (tag[0].isascii() and (tag[0].isalnum() or tag[0] == "_")):
        return False
    return all(c.isascii() and (c.isalnum() or c in "_.-") for c in tag)


def _valid_component(comp: str) -> bool:
    if not comp:
        return False
    if not (comp[0].isalnum() and comp[-1].isalnum()):
        return False
    for c in comp:
        if not (c.isascii() and ((c.isalnum() and not c.isupper()) or c in "._-")):
            return False
    return True


def parse_normalized(text: str) -> Reference:
    """ParseNormalizedNamed: accept ``name[:tag][@digest]`` and fill in docker.io/library."""
    if not text:
        raise ReferenceError("invalid reference format")
    remainder = text
    digest = ""
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _valid_digest(digest):
            raise ReferenceError("invalid reference format")
    tag = ""
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _valid_tag(tag):
            raise ReferenceError("invalid reference format")
    first, sep, rest = remainder.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, remainder
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if path.lower() != path:
        raise ReferenceError(f"invalid reference format: repository name ({path}) must be lowercase")
    if not all(_valid_component(c) for c in path.split("/")):
        raise ReferenceError("invalid reference format")
    return Reference(domain, path, tag, digest)


def familiar_string(text: str) -> str:
    """The short form of a reference, or ``text`` unchanged if it does not parse."""
    try:
        return parse_normalized(text).familiar_string()
    except ReferenceError:
        return text


def split_repo_tag(text: str) -> tuple[str, str]:
    """Split ``repo[:tag]`` at the tag colon (not a registry port colon)."""
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1 :]
    return text, ""


def parse(text: str, default_tag: bool = True) -> Reference:
    """The daemon's entry: a normalized reference (with `:latest` unless asked not to);
    InvalidParameter, with Docker's message, when it does not parse."""
    from berth.errors import InvalidParameter

    try:
        ref = parse_normalized(text)
    except ReferenceError as e:
        message = str(e)
        if message == "invalid reference format":
            message += f": {text}"
        raise InvalidParameter(message) from None
    return ref.with_default_tag() if default_tag else ref
