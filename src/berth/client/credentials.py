"""The client's registry credentials, in the docker CLI's own file: `config.json` in
$DOCKER_CONFIG, `--config DIR`, or ~/.docker, under "auths" keyed by server address
("localhost:5000"; Docker Hub is "https://index.docker.io/v1/"). `docker login` and
`berth login` therefore share what they store, and either client's pull and push send
it. The file is rewritten atomically and kept private (0600); keys berth does not
know are kept as they are. Credential helpers (credsStore) are not run: their
entries are left alone, and a login stores in the file.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import Any

from berth.images.reference import DEFAULT_DOMAIN, LEGACY_DOMAIN

INDEX_SERVER = "https://index.docker.io/v1/"


def config_dir(flag: str = "") -> str:
    return flag or os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def config_path(flag: str = "") -> str:
    return os.path.join(config_dir(flag), "config.json")


def server_key(server: str) -> str:
    """The key a server is stored under: Docker Hub's index address, or the bare
    host[:port] (the docker CLI's ConvertToHostname)."""
    if not server:
        return INDEX_SERVER
    host = server.split("://", 1)[-1].split("/", 1)[0]
    if host in (DEFAULT_DOMAIN, LEGACY_DOMAIN, "registry-1.docker.io"):
        return INDEX_SERVER
    return host


def key_for_domain(domain: str) -> str:
    return INDEX_SERVER if domain == DEFAULT_DOMAIN else domain


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ValueError(f"loading config file: {path}: {e}") from None
    return doc if isinstance(doc, dict) else {}


def _write(path: str, doc: dict[str, Any]) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.json-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def auth_config(key: str, flag: str = "") -> dict[str, str]:
    """The stored AuthConfig for server `key` ({} when none): username, password,
    identitytoken, serveraddress."""
    entry = (_read(config_path(flag)).get("auths") or {}).get(key)
    if not isinstance(entry, dict):
        return {}
    out: dict[str, str] = {"serveraddress": key}
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return {}
        out["username"] = user
        out["password"] = password
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        out["identitytoken"] = entry["identitytoken"]
        out.pop("password", None)
    return out


def all_auth_configs(flag: str = "") -> dict[str, dict[str, str]]:
    auths = _read(config_path(flag)).get("auths") or {}
    return {key: found for key in auths if (found := auth_config(key, flag))}


def store(key: str, username: str, password: str, identity_token: str = "", flag: str = "") -> str:
    """Save a login; returns the file's path."""
    path = config_path(flag)
    doc = _read(path)
    auths = doc.setdefault("auths", {})
    entry: dict[str, str] = {"auth": base64.b64encode(f"{username}:{'' if identity_token else password}".encode()).decode()}
    if identity_token:
        entry["identitytoken"] = identity_token
    auths[key] = entry
    _write(path, doc)
    return path


def erase(key: str, flag: str = "") -> bool:
    """Forget a login; False when there was none."""
    path = config_path(flag)
    doc = _read(path)
    auths = doc.get("auths") or {}
    if key not in auths:
        return False
    del auths[key]
    _write(path, doc)
    return True


def registry_auth_header(domain: str, flag: str = "") -> str:
    """X-Registry-Auth for a pull or push from registry `domain`: base64url JSON of the
    stored AuthConfig, or of {} when none is stored (as the docker CLI sends)."""
    found = auth_config(key_for_domain(domain), flag)
    return base64.urlsafe_b64encode(json.dumps(found).encode()).decode()


def registry_config_header(flag: str = "") -> str:
    """X-Registry-Config for a build: every stored login, by server."""
    return base64.urlsafe_b64encode(json.dumps(all_auth_configs(flag)).encode()).decode()
