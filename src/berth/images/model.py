"""Image records: the OCI image config, typed.

The image ID is the sha256 of the config document's bytes, so the bytes are kept as
they were written; `ImageConfig` is the typed view of them. `to_oci`/`from_oci`
translate between Python names and the document's JSON names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Healthcheck:
    """A HEALTHCHECK: the probe (`test`: ["CMD", ...], ["CMD-SHELL", cmd], ["NONE"], or
    empty to inherit the image's) and its timing in nanoseconds (0: the default)."""

    test: list[str] = field(default_factory=list)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_oci(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"Test": list(self.test)} if self.test else {}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout),
                           ("StartPeriod", self.start_period), ("StartInterval", self.start_interval),
                           ("Retries", self.retries)):
            if value:
                doc[key] = value
        return doc

    @classmethod
    def from_oci(cls, doc: dict[str, Any] | None) -> Healthcheck | None:
        if not isinstance(doc, dict):
            return None
        return cls(test=[str(t) for t in doc.get("Test") or []], interval=int(doc.get("Interval") or 0),
                   timeout=int(doc.get("Timeout") or 0), start_period=int(doc.get("StartPeriod") or 0),
                   start_interval=int(doc.get("StartInterval") or 0), retries=int(doc.get("Retries") or 0))


@dataclass
class RunConfig:
    """The `config` section of an image: defaults for containers made from it."""

    user: str = ""
    env: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    stop_signal: str = ""
    on_build: list[str] = field(default_factory=list)
    healthcheck: Healthcheck | None = None
    shell: list[str] | None = None

    def to_oci(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.user:
            doc["User"] = self.user
        if self.exposed_ports:
            doc["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            doc["Env"] = list(self.env)
        if self.entrypoint is not None:
            doc["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            doc["Cmd"] = list(self.cmd)
        if self.volumes:
            doc["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            doc["WorkingDir"] = self.working_dir
        if self.labels:
            doc["Labels"] = dict(self.labels)
        if self.stop_signal:
            doc["StopSignal"] = self.stop_signal
        if self.on_build:
            doc["OnBuild"] = list(self.on_build)
        if self.healthcheck is not None:
            doc["Healthcheck"] = self.healthcheck.to_oci()
        if self.shell is not None:
            doc["Shell"] = list(self.shell)
        return doc

    @classmethod
    def from_oci(cls, doc: dict[str, Any] | None) -> RunConfig:
        doc = doc or {}
        return cls(
            user=doc.get("User") or "",
            env=list(doc.get("Env") or []),
            cmd=list(doc["Cmd"]) if doc.get("Cmd") is not None else None,
            entrypoint=list(doc["Entrypoint"]) if doc.get("Entrypoint") is not None else None,
            working_dir=doc.get("WorkingDir") or "",
            labels=dict(doc.get("Labels") or {}),
            exposed_ports=sorted(doc.get("ExposedPorts") or {}),
            volumes=sorted(doc.get("Volumes") or {}),
            stop_signal=doc.get("StopSignal") or "",
            on_build=list(doc.get("OnBuild") or []),
            healthcheck=Healthcheck.from_oci(doc.get("Healthcheck")),
            shell=list(doc["Shell"]) if doc.get("Shell") else None,
        )


def container_config_doc(run: RunConfig, **fields: Any) -> dict[str, Any]:
    """An image's config as a container.Config document (Docker's JSON, the form of an
    image config's `container_config`): the fields a container has and an image has not
    empty, `fields` (Cmd, Image …) put in their places."""
    oci = run.to_oci()
    doc: dict[str, Any] = {"Hostname": "", "Domainname": "", "User": oci.get("User", ""),
                           "AttachStdin": False, "AttachStdout": False, "AttachStderr": False}
    if "ExposedPorts" in oci:
        doc["ExposedPorts"] = oci["ExposedPorts"]
    doc.update({"Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": oci.get("Env"),
                "Cmd": oci.get("Cmd")})
    if "Healthcheck" in oci:
        doc["Healthcheck"] = oci["Healthcheck"]
    doc.update({"Image": "", "Volumes": oci.get("Volumes"), "WorkingDir": oci.get("WorkingDir", ""),
                "Entrypoint": oci.get("Entrypoint"), "OnBuild": oci.get("OnBuild"),
                "Labels": oci.get("Labels")})
    for key in ("StopSignal", "Shell"):
        if key in oci:
            doc[key] = oci[key]
    doc.update(fields)
    return doc


@dataclass
class History:
    created: str
    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False


@dataclass
class ImageConfig:
    """The whole image config document (OCI image-spec `config.json`)."""

    created: str
    architecture: str
    os: str
    config: RunConfig
    diff_ids: list[str]
    history: list[History] = field(default_factory=list)
    author: str = ""
    comment: str = ""
    docker_version: str = ""
    # What Docker's classic builder and `commit` record: the container the image was
    # made from and that container's config (a container.Config document, written and
    # kept as dockerd's graph-driver store has it). API clients before 1.45 see them.
    container: str = ""
    container_config: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            doc["author"] = self.author
        if self.comment:
            doc["comment"] = self.comment
        doc["config"] = self.config.to_oci()
        if self.container:
            doc["container"] = self.container
        if self.container_config is not None:
            doc["container_config"] = self.container_config
        doc["created"] = self.created
        if self.docker_version:
            doc["docker_version"] = self.docker_version
        hist = []
        for h in self.history:
            entry: dict[str, Any] = {"created": h.created}
            if h.created_by:
                entry["created_by"] = h.created_by
            if h.comment:
                entry["comment"] = h.comment
            if h.empty_layer:
                entry["empty_layer"] = True
            hist.append(entry)
        doc["history"] = hist
        doc["os"] = self.os
        doc["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageConfig:
        doc = json.loads(data)
        return cls(
            created=doc.get("created") or "",
            architecture=doc.get("architecture") or "",
            os=doc.get("os") or "linux",
            config=RunConfig.from_oci(doc.get("config")),
            diff_ids=list((doc.get("rootfs") or {}).get("diff_ids") or []),
            history=[History(h.get("created", ""), h.get("created_by", ""), h.get("comment", ""),
                             bool(h.get("empty_layer"))) for h in doc.get("history") or []],
            author=doc.get("author") or "",
            comment=doc.get("comment") or "",
            docker_version=doc.get("docker_version") or "",
            container=doc.get("container") or "",
            container_config=doc["container_config"] if isinstance(doc.get("container_config"), dict) else None,
        )


@dataclass
class Image:
    id: str  # sha256:<hex of the config bytes>
    config: ImageConfig
    size: int
    repo_tags: list[str] = field(default_factory=list)
    chain_ids: list[str] = field(default_factory=list)
    parent: str = ""  # the image it was built or committed from ("" for imported/loaded ones)
    repo_digests: list[str] = field(default_factory=list)  # "name@sha256:…" of manifests pulled or pushed
