"""The client's logins in config.json, in the docker CLI's format: `auths` keyed by
server (Docker Hub under its index address), base64 user:password, an identity token
instead of the password when the registry gave one; other keys left as they were."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

from berth.client import credentials


def test_store_read_erase_round_trip(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {}, "psFormat": "{{.ID}}"}))
    path = credentials.store("localhost:5000", "alice", "s3cret", flag=str(tmp_path))
    doc = json.loads(Path(path).read_text())
    assert doc["psFormat"] == "{{.ID}}"
    assert doc["auths"]["localhost:5000"] == {"auth": base64.b64encode(b"alice:s3cret").decode()}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert credentials.auth_config("localhost:5000", str(tmp_path)) == {
        "serveraddress": "localhost:5000", "username": "alice", "password": "s3cret"}
    header = credentials.registry_auth_header("localhost:5000", str(tmp_path))
    assert json.loads(base64.urlsafe_b64decode(header))["username"] == "alice"
    assert credentials.erase("localhost:5000", str(tmp_path))
    assert not credentials.erase("localhost:5000", str(tmp_path))
    assert json.loads(base64.urlsafe_b64decode(credentials.registry_auth_header("localhost:5000", str(tmp_path)))) == {}


def test_identity_token_replaces_the_password(tmp_path: Path) -> None:
    credentials.store("reg.example", "bob", "pw", identity_token="tok", flag=str(tmp_path))
    found = credentials.auth_config("reg.example", str(tmp_path))
    assert found == {"serveraddress": "reg.example", "username": "bob", "identitytoken": "tok"}


def test_server_keys_as_the_docker_cli_writes_them() -> None:
    assert credentials.server_key("") == credentials.INDEX_SERVER
    assert credentials.server_key("docker.io") == credentials.INDEX_SERVER
    assert credentials.server_key("https://index.docker.io/v1/") == credentials.INDEX_SERVER
    assert credentials.server_key("https://localhost:5000/v2/") == "localhost:5000"
    assert credentials.key_for_domain("docker.io") == credentials.INDEX_SERVER
