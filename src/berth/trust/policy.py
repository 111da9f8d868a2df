"""The signature policy: containers/image's policy.json, for the `docker` transport.

    {"default": [{"type": "insecureAcceptAnything"}],
     "transports": {"docker": {
         "127.0.0.1:5000/signed": [{"type": "sigstoreSigned", "keyPath": "/etc/berth/cosign.pub",
                                    "signedIdentity": {"type": "matchRepoDigestOrExact"}}],
         "127.0.0.1:5000/signed/legacy": [{"type": "reject"}]}}}

The requirements for a reference are those of its most specific scope: the reference
itself (`host/repo:tag`, `host/repo@digest`), its repository, each enclosing namespace,
the host, a `*.domain` wildcard of the host, then the transport's "" scope, then
`default`. Every requirement of the list must accept the image. Requirements:
`insecureAcceptAnything`, `reject` and `sigstoreSigned` with a public key
(`keyPath`, `keyPaths` or base64 `keyData`) and a `signedIdentity` rule (by default
`matchRepoDigestOrExact`). Other transports' sections are read and ignored: berthd
pulls only from registries.

Loading checks the whole file (unknown types and fields, unreadable keys), so a bad
policy is refused where it is named, not at a pull.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from berth.errors import BerthError, InvalidParameter
from berth.images.reference import Reference, ReferenceError, parse_normalized
from berth.trust import keys as keyfiles
from berth.trust.keys import PublicKey
from berth.trust.sigstore import InvalidSignatureError, Signature, verify

DEFAULT_PATH = "/etc/berth/policy.json"


class PolicyError(InvalidParameter):
    """The policy file itself is wrong."""


class Rejected(BerthError):
    """The policy refuses an image (a pull fails with this; nothing is kept)."""

    status = 403


@dataclass(frozen=True)
class IdentityRule:
    """signedIdentity: which docker-reference in a signature stands for the image."""

    kind: str = "matchRepoDigestOrExact"
    reference: str = ""  # exactReference's dockerReference, exactRepository's dockerRepository

    def accepts(self, image: Reference, signed_text: str) -> bool:
        try:
            signed = parse_normalized(signed_text)
        except ReferenceError:
            return False
        if self.kind == "exactReference":
            return str(signed) == self.reference
        if self.kind == "exactRepository":
            return signed.name == self.reference
        if self.kind == "matchRepository":
            return signed.name == image.name
        exact = str(signed) == str(image) and bool(image.tag or image.digest)
        if self.kind == "matchExact":
            return exact
        # matchRepoDigestOrExact: by digest, any signature of the repository (the digest is
        # checked separately); by tag, only a signature of that very tag
        if image.digest:
            return signed.name == image.name
        return exact


@dataclass(frozen=True)
class Requirement:
    kind: str  # "insecureAcceptAnything", "reject", "sigstoreSigned"
    keys: tuple[PublicKey, ...] = ()
    identity: IdentityRule = field(default_factory=IdentityRule)


@dataclass(frozen=True)
class Decision:
    scope: str  # the scope whose requirements applied ("" = the transport's, "default")
    requirements: tuple[Requirement, ...]

    @property
    def needs_signatures(self) -> bool:
        return any(r.kind == "sigstoreSigned" for r in self.requirements)


@dataclass(frozen=True)
class Policy:
    path: str
    default: tuple[Requirement, ...]
    docker: dict[str, tuple[Requirement, ...]]

    def for_reference(self, ref: Reference) -> Decision:
        for scope in _scopes(ref):
            if scope in self.docker:
                return Decision(scope, self.docker[scope])
        if "" in self.docker:
            return Decision("", self.docker[""])
        return Decision("default", self.default)

    def check(self, ref: Reference, manifest_digest: str, decision: Decision,
              signatures: list[Signature]) -> None:
        """Raise Rejected unless every requirement of `decision` accepts the image
        `ref` whose manifest is `manifest_digest`, given the signatures found for it."""
        for requirement in decision.requirements:
            reason = _refusal(requirement, ref, manifest_digest, signatures)
            if reason:
                where = "default policy" if decision.scope == "default" else \
                    f'policy for scope "{decision.scope}"'
                raise Rejected(f"Source image rejected by the signature policy {self.path} ({where}): {reason}")


def _refusal(requirement: Requirement, ref: Reference, manifest_digest: str,
             signatures: list[Signature]) -> str:
    """Why `requirement` refuses the image; "" when it accepts it."""
    if requirement.kind == "insecureAcceptAnything":
        return ""
    if requirement.kind == "reject":
        return f"Running image docker://{ref} is rejected by policy."
    reasons = []
    for sig in signatures:
        try:
            payload = verify(list(requirement.keys), sig)
        except InvalidSignatureError as e:
            reasons.append(str(e))
            continue
        if payload.manifest_digest != manifest_digest:
            reasons.append(f"Signature for digest {payload.manifest_digest} does not match")
        elif not requirement.identity.accepts(ref, payload.docker_reference):
            reasons.append(f'Signature for identity "{payload.docker_reference}" is not accepted')
        else:
            return ""
    if not reasons:
        return "A signature was required, but no signature exists"
    if len(reasons) == 1:
        return reasons[0]
    return "None of the signatures were accepted, reasons: " + "; ".join(reasons)


def _scopes(ref: Reference) -> list[str]:
    """The docker transport's scopes for `ref`, most specific first."""
    out = [str(ref)] if ref.tag or ref.digest else []
    parts = ref.name.split("/")
    out += ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    host = ref.domain.split(":", 1)[0]
    labels = host.split(".")
    out += ["*." + ".".join(labels[n:]) for n in range(1, len(labels))]
    return out


# -- loading -----------------------------------------------------------------------------


def load(path: str) -> Policy | None:
    """The policy at `path`; None when there is no such file (nothing is checked then)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PolicyError(f"reading the signature policy {path}: {e.strerror}") from None
    return parse(data, path)


def parse(data: bytes, path: str) -> Policy:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise PolicyError(f"invalid signature policy {path}: {e}") from None
    where = f"invalid signature policy {path}"
    _fields(doc, {"default", "transports"}, where, "the policy")
    if "default" not in doc:
        raise PolicyError(f"{where}: Default policy is missing")
    default = _requirements(doc["default"], where, "default")
    docker: dict[str, tuple[Requirement, ...]] = {}
    transports = doc.get("transports") or {}
    if not isinstance(transports, dict):
        raise PolicyError(f"{where}: transports is not an object")
    for transport, scopes in transports.items():
        if not isinstance(scopes, dict):
            raise PolicyError(f"{where}: transports.{transport} is not an object")
        if transport != "docker":
            continue
        for scope, reqs in scopes.items():
            _check_scope(scope, where)
            docker[scope] = _requirements(reqs, where, f'transports.docker["{scope}"]')
    return Policy(path, default, docker)


def _fields(doc: Any, allowed: set[str], where: str, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: {what} is not a JSON object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PolicyError(f'{where}: Unknown key "{unknown[0]}" in {what}')
    return doc


def _check_scope(scope: str, where: str) -> None:
    if scope == "":
        return
    if scope.startswith("*."):
        if "/" in scope or ":" in scope or not scope[2:]:
            raise PolicyError(f'{where}: Invalid scope "{scope}"')
        return
    if "/" not in scope:  # a registry: host[:port]
        host, _, port = scope.partition(":")
        if host and all(c.isascii() and (c.isalnum() or c in ".-") for c in host) and (not port or port.isdigit()):
            return
        raise PolicyError(f'{where}: Invalid scope "{scope}"')
    try:
        parse_normalized(scope)
    except ReferenceError:
        raise PolicyError(f'{where}: Invalid scope "{scope}"') from None


def _requirements(raw: Any, where: str, what: str) -> tuple[Requirement, ...]:
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: {what} is not a list of requirements")
    if not raw:
        raise PolicyError(f"{where}: {what}: Policy requirement list is empty")
    return tuple(_requirement(item, where, f"{what}[{i}]") for i, item in enumerate(raw))


def _requirement(raw: Any, where: str, what: str) -> Requirement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: {what} is not a JSON object")
    kind = raw.get("type")
    if kind in ("insecureAcceptAnything", "reject"):
        _fields(raw, {"type"}, where, what)
        return Requirement(kind)
    if kind != "sigstoreSigned":
        raise PolicyError(f'{where}: {what}: Unknown policy requirement type "{kind}"')
    _fields(raw, {"type", "keyPath", "keyPaths", "keyData", "signedIdentity"}, where, what)
    sources = [k for k in ("keyPath", "keyPaths", "keyData") if k in raw]
    if len(sources) != 1:
        raise PolicyError(f"{where}: {what}: exactly one of keyPath, keyPaths and keyData must be "
                          "specified (berth verifies key-based signatures only)")
    pems: list[tuple[str, bytes]] = []
    try:
        if "keyData" in raw:
            pems.append(("keyData", base64.b64decode(str(raw["keyData"]), validate=True)))
        else:
            paths = [raw["keyPath"]] if "keyPath" in raw else raw["keyPaths"]
            if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
                raise PolicyError(f"{where}: {what}: keyPaths must be a non-empty list of paths")
            for p in paths:
                with open(p, "rb") as f:
                    pems.append((p, f.read()))
    except OSError as e:
        raise PolicyError(f"{where}: {what}: reading the key {e.filename}: {e.strerror}") from None
    except ValueError as e:
        raise PolicyError(f"{where}: {what}: keyData is not base64: {e}") from None
    public: list[PublicKey] = []
    for source, pem in pems:
        try:
            public.append(keyfiles.load_public(pem))
        except InvalidParameter as e:
            raise PolicyError(f"{where}: {what}: {source}: {e}") from None
    return Requirement(kind, tuple(public), _identity(raw.get("signedIdentity"), where, what))


_IDENTITY_KINDS = ("matchExact", "matchRepoDigestOrExact", "matchRepository", "exactReference",
                   "exactRepository")


def _identity(raw: Any, where: str, what: str) -> IdentityRule:
    if raw is None:
        return IdentityRule()
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: {what}.signedIdentity is not a JSON object")
    kind = raw.get("type")
    if kind not in _IDENTITY_KINDS:
        raise PolicyError(f'{where}: {what}.signedIdentity: Unknown policy reference match type "{kind}"')
    if kind == "exactReference":
        _fields(raw, {"type", "dockerReference"}, where, f"{what}.signedIdentity")
        try:
            ref = parse_normalized(str(raw.get("dockerReference", "")))
        except ReferenceError:
            raise PolicyError(f"{where}: {what}.signedIdentity: Invalid format of dockerReference") from None
        if not (ref.tag or ref.digest):
            raise PolicyError(f"{where}: {what}.signedIdentity: dockerReference names no tag or digest")
        return IdentityRule(kind, str(ref))
    if kind == "exactRepository":
        _fields(raw, {"type", "dockerRepository"}, where, f"{what}.signedIdentity")
        try:
            ref = parse_normalized(str(raw.get("dockerRepository", "")))
        except ReferenceError:
            raise PolicyError(f"{where}: {what}.signedIdentity: Invalid format of dockerRepository") from None
        return IdentityRule(kind, ref.name)
    _fields(raw, {"type"}, where, f"{what}.signedIdentity")
    return IdentityRule(kind)
