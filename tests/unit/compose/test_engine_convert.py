"""The create bodies berth compose sends, for what compose v2 sends for the same file
(read from its API traffic to berthd: names, labels, binds against mounts, endpoints
and aliases, ports, restart policy, capabilities, health check)."""

from __future__ import annotations

from pathlib import Path

from berth.compose import ProjectOptions, load_project
from berth.compose.engine import convert
from berth.compose.engine import labels as L

FILE = """\
services:
  web:
    image: busybox:latest
    command: ["httpd", "-f"]
    ports: ["127.0.0.1:8080:80", "9000-9001:90-91/udp"]
    expose: ["7000"]
    volumes:
      - data:/data
      - ./site:/site:ro
      - /anon
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1048576}
    networks:
      front:
        aliases: [www]
        ipv4_address: 10.9.0.5
      back: {}
    cap_add: [net_admin]
    cap_drop: [ALL]
    restart: on-failure:3
    stop_grace_period: 1m30s
    healthcheck: {test: ["CMD", "true"], interval: 2s, retries: 3}
    extra_hosts: ["db.local:10.9.0.9"]
    secrets: [pw]
    depends_on: [cache]
  cache:
    image: busybox:latest
    deploy:
      restart_policy: {condition: any}
      resources: {limits: {cpus: "0.5", memory: 64M}, reservations: {memory: 16M}}
volumes: {data: {}}
networks:
  front: {ipam: {config: [{subnet: 10.9.0.0/24}]}}
  back: {}
secrets:
  pw: {file: ./pw.txt}
"""


def _project(tmp_path: Path) -> object:
    (tmp_path / "compose.yaml").write_text(FILE)
    return load_project(ProjectOptions(project_name="demo", working_directory=str(tmp_path), environment={}))


def test_container_body_as_compose_v2_sends_it(tmp_path: Path) -> None:
    project = _project(tmp_path)
    web = project.services["web"]  # type: ignore[attr-defined]
    body = convert.container_body(project, web, convert.CreateOptions(number=2))  # type: ignore[arg-type]
    host = body["HostConfig"]
    assert body["Image"] == "busybox:latest"
    assert body["Cmd"] == ["httpd", "-f"] and body["Entrypoint"] is None
    assert body["ExposedPorts"] == {"7000": {}, "80/tcp": {}, "90/udp": {}, "91/udp": {}}
    assert host["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
    assert host["PortBindings"]["91/udp"] == [{"HostIp": "", "HostPort": "9001"}]
    # short syntax named volumes and plain binds go as Binds, the rest as Mounts
    assert sorted(host["Binds"]) == sorted(["demo_data:/data:rw", f"{tmp_path}/site:/site:ro"])
    mounts = {m["Target"]: m for m in host["Mounts"]}
    assert mounts["/anon"] == {"Type": "volume", "Source": "", "Target": "/anon", "VolumeOptions": {"NoCopy": False}}
    assert mounts["/scratch"]["TmpfsOptions"] == {"SizeBytes": 1048576}
    assert mounts["/run/secrets/pw"] == {"Type": "bind", "Source": f"{tmp_path}/pw.txt", "Target": "/run/secrets/pw",
                                        "ReadOnly": True,
                                        "BindOptions": {"Propagation": "", "CreateMountpoint": False}}
    # the first network by name is the primary; every endpoint is given at create
    assert host["NetworkMode"] == "demo_back"
    endpoints = body["NetworkingConfig"]["EndpointsConfig"]
    assert endpoints["demo_front"]["Aliases"] == ["demo-web-2", "web", "www"]
    assert endpoints["demo_front"]["IPAMConfig"] == {"IPv4Address": "10.9.0.5"}
    assert endpoints["demo_back"]["Aliases"] == ["demo-web-2", "web"]
    assert host["CapAdd"] == ["CAP_NET_ADMIN"] and host["CapDrop"] == ["ALL"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["ExtraHosts"] == ["db.local:10.9.0.9"]
    assert body["StopTimeout"] == 90
    assert body["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "Retries": 3}
    labels = body["Labels"]
    assert labels[L.PROJECT] == "demo" and labels[L.SERVICE] == "web" and labels[L.NUMBER] == "2"
    assert labels[L.ONEOFF] == "False" and labels[L.DEPENDS_ON] == "cache:service_started:false"
    assert labels[L.CONFIG_HASH] == L.service_hash(web)
    assert labels[L.WORKING_DIR] == str(tmp_path)
    assert labels[L.CONFIG_FILES] == str(tmp_path / "compose.yaml")


def test_deploy_section_on_a_single_host(tmp_path: Path) -> None:
    project = _project(tmp_path)
    cache = project.services["cache"]  # type: ignore[attr-defined]
    host = convert.container_body(project, cache, convert.CreateOptions(number=1))["HostConfig"]  # type: ignore[arg-type]
    assert host["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024 * 1024 and host["MemoryReservation"] == 16 * 1024 * 1024


def test_one_off_containers_carry_no_number(tmp_path: Path) -> None:
    project = _project(tmp_path)
    web = project.services["web"]  # type: ignore[attr-defined]
    body = convert.container_body(project, web, convert.CreateOptions(number=-1, oneoff=True))  # type: ignore[arg-type]
    assert body["Labels"][L.ONEOFF] == "True" and L.NUMBER not in body["Labels"]


def test_network_and_volume_bodies(tmp_path: Path) -> None:
    project = _project(tmp_path)
    front = convert.network_body(project, "front", project.networks["front"])  # type: ignore[attr-defined]
    assert front["Name"] == "demo_front"
    assert front["IPAM"]["Config"][0]["Subnet"] == "10.9.0.0/24"
    assert front["Labels"][L.NETWORK] == "front" and front["Labels"][L.PROJECT] == "demo"
    vol = convert.volume_body(project, "data", project.volumes["data"])  # type: ignore[attr-defined]
    assert vol == {"Name": "demo_data", "Driver": "local", "DriverOpts": None, "Labels": vol["Labels"]}
    assert vol["Labels"][L.VOLUME] == "data"
