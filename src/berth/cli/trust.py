"""`berth trust keygen|sign|verify`: cosign-format signatures, made and checked by the
client, the way `cosign generate-key-pair|sign|verify` make and check them.

- keygen writes PREFIX.key (cosign's encrypted envelope, the format cosign and
  containers/image's `--sign-by-sigstore-private-key` read) and PREFIX.pub (PEM);
- sign resolves IMAGE's manifest digest at its registry, signs a simple-signing payload
  naming IMAGE and that digest, and adds it to the `sha256-<hex>.sig` manifest there;
- verify reads that manifest and prints the payloads that verify with the key and name
  the image (the rule berthd's pulls apply by default: matchRepoDigestOrExact).

The signatures live in the registry, not in the engine, so these commands speak to the
registry directly (berth.client.registry; as the docker CLI's `docker trust` speaks to
a Notary server), with the credentials `berth login` stored.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import Command, ParsedFlags
from berth.client.registry import RegistryClient
from berth.errors import InvalidParameter
from berth.images.reference import Reference, ReferenceError, parse_normalized

# berth.trust (and `cryptography` under it) is imported by the commands that use it:
# every `berth` invocation builds this command tree, and most never sign anything

PASSWORD_ENV = "COSIGN_PASSWORD"  # cosign's variable, so scripts made for cosign work


def _registry(ref: Reference, config_flag: str) -> RegistryClient:
    return RegistryClient(ref.domain, ref.path, config_flag, fail=lambda message: CliExit(f"Error: {message}", 1))


def _image(text: str) -> Reference:
    try:
        ref = parse_normalized(text)
    except ReferenceError as e:
        raise CliExit(f"Error: {text}: {e}", 1) from None
    return ref if ref.tag or ref.digest else Reference(ref.domain, ref.path, "latest")


def _password(flags: ParsedFlags) -> bytes:
    path = flags["passphrase-file"] or ""
    if path:
        try:
            with open(path, "rb") as f:
                return f.read().rstrip(b"\r\n")
        except OSError as e:
            raise CliExit(f"Error: reading {path}: {e.strerror}", 1) from None
    return os.environ.get(PASSWORD_ENV, "").encode()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliExit(f"Error: reading {path}: {e.strerror}", 1) from None


def run_keygen(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.trust import keys

    prefix = flags["output-key-prefix"] or "cosign"
    private, public = f"{prefix}.key", f"{prefix}.pub"
    for path in (private, public):
        if os.path.exists(path):
            raise CliExit(f"Error: {path} already exists: not overwriting it", 1)
    key = keys.generate()
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(keys.encrypted_pem(key, _password(flags)))
        with open(public, "wb") as f:
            f.write(keys.public_pem(key))
    except OSError as e:
        raise CliExit(f"Error: writing {e.filename}: {e.strerror}", 1) from None
    cli.out(f"Private key written to {private}")
    cli.out(f"Public key written to {public}")
    return 0


def run_sign(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.trust import keys, sigstore

    if not flags["key"]:
        raise CliExit("Error: --key is required", 1)
    try:
        key = keys.load_private(_read(flags["key"]), _password(flags))
    except InvalidParameter as e:
        raise CliExit(f"Error: {flags['key']}: {e}", 1) from None
    ref = _image(flags.args[0])
    registry = _registry(ref, cli.config)
    found = registry.manifest(ref.digest or ref.tag)
    if found is None:
        raise CliExit(f"Error: manifest for {ref.familiar()} not found", 1)
    digest = found[0]
    if ref.digest and digest != ref.digest:
        raise CliExit(f"Error: manifest of {ref.familiar()} does not match its digest", 1)
    payload = sigstore.make_payload(str(ref), digest)
    signature = sigstore.sign(key, payload)
    tag = sigstore.signature_tag(digest)
    layers: list[tuple[str, int, str]] = []
    existing = registry.manifest(tag)
    if existing is not None:  # cosign adds to the signatures already there
        try:
            for layer in json.loads(existing[1]).get("layers") or []:
                ann = layer.get("annotations") or {}
                if layer.get("mediaType") == sigstore.PAYLOAD_MEDIA_TYPE and sigstore.SIGNATURE_ANNOTATION in ann:
                    layers.append((layer["digest"], int(layer["size"]), ann[sigstore.SIGNATURE_ANNOTATION]))
        except (ValueError, KeyError, TypeError, AttributeError):
            layers = []
    layers.append((registry.upload(payload), len(payload), signature))
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [d for d, _, _ in layers]}},
                        separators=(",", ":")).encode()
    registry.put_manifest(tag, sigstore.OCI_MANIFEST,
                          sigstore.signature_manifest((registry.upload(config), len(config)), layers))
    cli.out(f"Pushing signature to: {ref.name}:{tag}")
    return 0


def run_verify(cli: CliContext, flags: ParsedFlags) -> int:
    from berth.trust import keys, sigstore
    from berth.trust.policy import IdentityRule

    if not flags["key"]:
        raise CliExit("Error: --key is required", 1)
    try:
        public = keys.load_public(_read(flags["key"]))
    except InvalidParameter as e:
        raise CliExit(f"Error: {flags['key']}: {e}", 1) from None
    ref = _image(flags.args[0])
    registry = _registry(ref, cli.config)
    found = registry.manifest(ref.digest or ref.tag)
    if found is None:
        raise CliExit(f"Error: manifest for {ref.familiar()} not found", 1)
    digest = found[0]
    attached = registry.manifest(sigstore.signature_tag(digest))
    reasons: list[str] = []
    verified: list[Any] = []
    if attached is not None:
        try:
            layers = json.loads(attached[1]).get("layers") or []
        except (ValueError, AttributeError):
            layers = []
        for layer in layers[:sigstore.MAX_SIGNATURES]:
            if not isinstance(layer, dict) or layer.get("mediaType") != sigstore.PAYLOAD_MEDIA_TYPE:
                continue
            data = registry.blob(str(layer.get("digest")))
            sig = sigstore.Signature(data, (layer.get("annotations") or {}).get(sigstore.SIGNATURE_ANNOTATION, ""))
            try:
                payload = sigstore.verify([public], sig)
            except InvalidParameter as e:
                reasons.append(str(e))
                continue
            if payload.manifest_digest != digest:
                reasons.append(f"Signature for digest {payload.manifest_digest} does not match")
            elif not IdentityRule().accepts(ref, payload.docker_reference):
                reasons.append(f'Signature for identity "{payload.docker_reference}" is not accepted')
            else:
                verified.append(json.loads(data))
    if not verified:
        why = "; ".join(reasons) if reasons else "no signatures found"
        raise CliExit(f"Error: no matching signatures for {ref.familiar()}: {why}", 1)
    sys.stderr.write(f"\nVerification for {ref} --\nThe following checks were performed on each of these "
                     "signatures:\n  - The cosign claims were validated\n  - The signatures were verified "
                     "against the specified public key\n\n")
    cli.out(json.dumps(verified))
    return 0


def trust_command() -> Command:
    group = Command("trust", short="Sign images and verify their signatures (cosign format)",
                    category="management")
    keygen = Command("keygen", use="keygen [OPTIONS]", short="Generate a key pair for signing images",
                     run=run_keygen, args=("none", 0, 0))
    keygen.flags.add("output-key-prefix", "", "string", "Write PREFIX.key and PREFIX.pub", "cosign")
    keygen.flags.add("passphrase-file", "", "string",
                     f"Read the private key's passphrase from this file (default: ${PASSWORD_ENV}, or none)")
    sign = Command("sign", use="sign [OPTIONS] IMAGE", short="Sign an image in its registry",
                   run=run_sign, args=("exact", 1, 1))
    sign.flags.add("key", "", "string", "Private key (cosign format or PEM)")
    sign.flags.add("passphrase-file", "", "string",
                   f"Read the private key's passphrase from this file (default: ${PASSWORD_ENV}, or none)")
    verify = Command("verify", use="verify [OPTIONS] IMAGE", short="Verify an image's signatures in its registry",
                     run=run_verify, args=("exact", 1, 1))
    verify.flags.add("key", "", "string", "Public key (PEM)")
    group.add(keygen, sign, verify)
    return group
