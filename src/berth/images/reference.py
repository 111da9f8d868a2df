"""Image references: `busybox`, `busybox:1.36`, `localhost:5000/team/app@sha256:…`.

Parses and normalizes them the way Docker's distribution/reference does:
`busybox` is `docker.io/library/busybox:latest`, and is shown back to users in its
familiar form. Pure code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_DOMAIN_RE = re.compile(r"^(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|[a-zA-Z0-9-]+)(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix("library/")
        return self.name

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse a reference; `default_tag` adds `:latest` when neither tag nor digest is given."""
    orig = text
    if not text or text != text.strip():
        raise InvalidParameter(f"invalid reference format: {orig!r}")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidParameter(f"invalid reference format: {orig}")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidParameter(f"invalid reference format: {orig}")
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN_RE.match(domain):
            raise InvalidParameter(f"invalid reference format: {orig}")
    else:
        domain, path = DEFAULT_DOMAIN, text
    if domain in ("index.docker.io",):
        domain = DEFAULT_DOMAIN
    if any(c.isupper() for c in path):
        raise InvalidParameter(f"invalid reference format: repository name ({path}) must be lowercase")
    if not _PATH_RE.match(path) or len(path) > 255:
        raise InvalidParameter(f"invalid reference format: {orig}")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if tag is None and digest is None and default_tag:
        tag = "latest"
    return Reference(domain, path, tag, digest)
