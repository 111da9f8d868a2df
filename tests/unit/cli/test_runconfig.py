"""``run``/``create`` flags → the POST /containers/create body docker's CLI sends."""

from typing import Any

import pytest

from berth.cli.flags import FlagSet, UsageError, parse_flags
from berth.cli.runconfig import (
    ConfigError,
    add_container_flags,
    build_create,
    effective_caps,
    parse_port_specs,
    parse_restart_policy,
    read_kv_files,
)


def _create(*argv: str) -> Any:
    flags = FlagSet()
    add_container_flags(flags, run=True)
    parsed = parse_flags(flags, list(argv), interspersed=False)
    return build_create(parsed, parsed.args[0], parsed.args[1:])


def test_plain_run_body_matches_docker() -> None:
    req = _create("busybox", "echo", "hi")
    body = req.body
    assert body["Cmd"] == ["echo", "hi"]
    assert body["Image"] == "busybox"
    assert body["Env"] is None and body["Volumes"] == {} and body["Labels"] == {}
    assert (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]) == (False, True, True)
    hc = body["HostConfig"]
    assert hc["NetworkMode"] == "default"
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["LogConfig"] == {"Type": "", "Config": {}}
    assert hc["MemorySwappiness"] == -1 and hc["Ulimits"] == []
    assert "Init" not in hc and "Mounts" not in hc
    assert list(body["NetworkingConfig"]["EndpointsConfig"]) == ["default"]
    # key order follows docker's structs
    assert list(body)[:6] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr"]


def test_interactive_tty_rm_name() -> None:
    req = _create("-it", "--rm", "--name", "web", "-e", "A=1", "-w", "/tmp", "busybox", "sh")
    body = req.body
    assert body["Tty"] and body["OpenStdin"] and body["AttachStdin"] and body["StdinOnce"]
    assert body["Env"] == ["A=1"] and body["WorkingDir"] == "/tmp"
    assert body["HostConfig"]["AutoRemove"] and req.auto_remove
    assert req.name == "web"


def test_entrypoint_reset_and_override() -> None:
    assert _create("--entrypoint", "/bin/sh", "busybox").body["Entrypoint"] == ["/bin/sh"]
    assert _create("--entrypoint=", "busybox").body["Entrypoint"] == [""]
    assert _create("busybox").body["Entrypoint"] is None


def test_ports_and_expose() -> None:
    exposed, bindings = parse_port_specs(["8080:80", "127.0.0.1:9000:9000/udp", "3000", "[::1]:81:81"])
    assert exposed == {"80/tcp": {}, "9000/udp": {}, "3000/tcp": {}, "81/tcp": {}}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert bindings["9000/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "9000"}]
    assert bindings["3000/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert bindings["81/tcp"] == [{"HostIp": "::1", "HostPort": "81"}]
    _, ranged = parse_port_specs(["8000-8001:80-81"])
    assert ranged == {"80/tcp": [{"HostIp": "", "HostPort": "8000"}], "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}
    body = _create("-p", "8080:80", "--expose", "5000-5001", "busybox").body
    assert body["ExposedPorts"] == {"80/tcp": {}, "5000/tcp": {}, "5001/tcp": {}}


def test_volumes_binds_and_mounts() -> None:
    body = _create("-v", "/a:/b", "-v", "vol:/c:ro", "-v", "/anon", "--mount", "type=bind,src=/x,dst=/y,ro",
                   "busybox").body
    hc = body["HostConfig"]
    assert hc["Binds"] == ["/a:/b", "vol:/c:ro"]
    assert body["Volumes"] == {"/anon": {}}
    assert hc["Mounts"] == [{"Type": "bind", "Source": "/x", "Target": "/y", "ReadOnly": True}]


def test_resources_restart_caps_health() -> None:
    body = _create(
        "--restart", "on-failure:3", "--cpus", "1.5", "-m", "512m", "--memory-swap", "-1",
        "--cap-add", "net_admin", "--cap-drop", "MKNOD", "--health-cmd", "true", "--health-interval", "5s",
        "--init", "--stop-timeout", "5", "busybox",
    ).body
    hc = body["HostConfig"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["NanoCpus"] == 1_500_000_000 and hc["Memory"] == 512 * 1024**2 and hc["MemorySwap"] == -1
    assert hc["CapAdd"] == ["CAP_NET_ADMIN"] and hc["CapDrop"] == ["CAP_MKNOD"]
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert hc["Init"] is True and body["StopTimeout"] == 5


def test_networks() -> None:
    eps = _create("--network", "foo", "busybox").body["NetworkingConfig"]["EndpointsConfig"]
    assert eps == {}
    body = _create("--network", "foo", "--network-alias", "a", "--ip", "10.0.0.5", "busybox").body
    ep = body["NetworkingConfig"]["EndpointsConfig"]["foo"]
    assert body["HostConfig"]["NetworkMode"] == "foo"
    assert ep["Aliases"] == ["a"] and ep["IPAMConfig"] == {"IPv4Address": "10.0.0.5"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rm", "--restart", "always", "busybox"], "conflicting options: cannot specify both --restart and --rm"),
        (["--pull", "sometimes", "busybox"], "invalid pull option: 'sometimes'"),
        (["--memory-swappiness", "200", "busybox"], "Valid memory swappiness range is 0-100"),
        (["--restart", "on-failure:x", "busybox"], "maximum retry count must be an integer"),
        (["--no-healthcheck", "--health-cmd", "x", "busybox"], "--no-healthcheck conflicts with --health-* options"),
        (["--expose", "1:2", "busybox"], "invalid port format for --expose: 1:2"),
    ],
)
def test_invalid_combinations(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        _create(*argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-a", "foo"], 'invalid argument "foo" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'),
        (["--dns", "x"], 'invalid argument "x" for "--dns" flag: IP address is not correctly formatted: x'),
        (["--add-host", "x"], 'invalid argument "x" for "--add-host" flag: bad format for add-host: "x"'),
        (["--ulimit", "x"], 'invalid argument "x" for "--ulimit" flag: invalid ulimit argument: x'),
        (["-m", "1x"], "invalid argument \"1x\" for \"-m, --memory\" flag: invalid suffix: 'x'"),
    ],
)
def test_flag_validation_errors(argv: list[str], message: str) -> None:
    flags = FlagSet()
    add_container_flags(flags, run=True)
    with pytest.raises(UsageError) as err:
        parse_flags(flags, [*argv, "busybox"], interspersed=False)
    assert str(err.value) == message


def test_restart_policy_and_caps() -> None:
    assert parse_restart_policy("") == {"Name": "", "MaximumRetryCount": 0}
    assert parse_restart_policy("always") == {"Name": "always", "MaximumRetryCount": 0}
    assert effective_caps(["ALL", "net_admin"], ["net_admin", "chown"]) == (["ALL", "CAP_NET_ADMIN"], ["CAP_CHOWN"])


def test_env_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    env.write_text("# comment\n\nA=1\n  B=two words\nFROM_HOST\nUNSET_ONE\n")
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert read_kv_files([str(env)], lookup_env=True) == ["A=1", "B=two words", "FROM_HOST=yes"]
    bad = tmp_path / "bad"
    bad.write_text("A B=1\n")
    with pytest.raises(ConfigError, match="variable 'A B' contains whitespaces"):
        read_kv_files([str(bad)], lookup_env=True)
