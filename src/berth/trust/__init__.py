"""berth.trust: which images may be pulled, by signature.

- `policy`: the containers-policy.json format (containers/image's policy.json), the
  requirements it names for a reference, and their evaluation over signatures.
- `sigstore`: cosign's signature format: the simple-signing payload, its ECDSA signature
  and the `sha256-<digest>.sig` artifact that carries them in a repository.
- `keys`: keys as cosign and skopeo read and write them (PEM public keys; private keys
  plain or in cosign's scrypt + nacl/secretbox envelope).

Pure code on bytes: fetching signatures from a registry is the caller's (the puller's,
or `berth trust`'s).
"""
