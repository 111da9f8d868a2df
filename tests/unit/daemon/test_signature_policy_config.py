"""berthd's signature policy setting: --signature-policy or daemon.json's
signature-policy (not both), checked whole at start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon.config import ConfigError, parse_args
from berth.trust import keys


def _config(tmp_path: Path, doc: dict[str, object], *flags: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    return parse_args(["--config-file", str(path), *flags])


def _policy(tmp_path: Path, name: str = "policy.json") -> Path:
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(keys.public_pem(keys.generate()))
    path = tmp_path / name
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}], "transports": {
        "docker": {"reg.example.com/signed": [{"type": "sigstoreSigned", "keyPath": str(pub)}]}}}))
    return path


def test_default_path_and_from_the_file_or_the_flag(tmp_path: Path) -> None:
    assert _config(tmp_path, {}).signature_policy == "/etc/berth/policy.json"
    policy = _policy(tmp_path)
    assert _config(tmp_path, {"signature-policy": str(policy)}).signature_policy == str(policy)
    assert _config(tmp_path, {}, "--signature-policy", str(policy)).signature_policy == str(policy)


def test_refused(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    with pytest.raises(ConfigError, match="both as a flag and in the configuration file: signature-policy"):
        _config(tmp_path, {"signature-policy": str(policy)}, "--signature-policy", str(policy))
    with pytest.raises(ConfigError, match="open /nonexistent/policy.json: no such file or directory"):
        _config(tmp_path, {}, "--signature-policy", "/nonexistent/policy.json")
    policy.write_text(json.dumps({"default": [{"type": "signedBy"}]}))
    with pytest.raises(ConfigError, match=f'invalid signature policy {policy}: .*Unknown policy requirement type'):
        _config(tmp_path, {"signature-policy": str(policy)})
