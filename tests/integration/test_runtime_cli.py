"""berth-runtime's command line, as runc's: spec, features, the create/start/state/
kill/delete lifecycle, run and list, and what it does with bad input.

Every test works in its own `Lab` (a temp directory with the bundles and the
runtime's --root); the lab's teardown fails the test if the runtime left a container
record, a cgroup, a mount or a process behind. Bad bundles must be refused with
exit status 1 and one line on stderr that names the faulty field, and leave nothing.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.bundles import (
    Lab,
    Runtime,
    cgroup_dirs,
    minimal_config,
    mounts_under,
    open_lab,
    pid_alive,
    processes_under,
    wait_gone,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="berth-runtime needs root")

MiB = 1024 * 1024
NAMESPACES = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"}


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab("berth-clitest-") as lab:
        yield lab


@pytest.fixture
def berth(lab: Lab) -> Runtime:
    return lab.runtime("berth")


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0, f"expected a failure, got exit 0\nstdout: {r.stdout}"
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    return lines[0]


def wait_status(runtime: Runtime, cid: str, want: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = runtime.state(cid)
        if state["status"] == want or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


# spec and features.


def test_spec_writes_a_config_json_and_refuses_to_overwrite_it(lab: Lab, berth: Runtime) -> None:
    bundle = lab.dir / "spec-bundle"
    bundle.mkdir()
    r = berth.cmd("spec", "--bundle", str(bundle))
    assert r.returncode == 0, r.stderr
    path = bundle / "config.json"
    text = path.read_text()
    config = json.loads(text)
    assert config["ociVersion"].startswith("1.")
    assert config["root"]["path"] == "rootfs"
    assert config["process"]["args"] == ["sh"]
    assert config["process"]["terminal"] is True  # as runc's: an interactive shell
    assert {ns["type"] for ns in config["linux"]["namespaces"]} >= {"pid", "mount", "ipc", "uts"}

    again = berth.cmd("spec", "--bundle", str(bundle))
    line = one_line_error(again)
    assert "exists" in line and "config.json" in line
    assert path.read_text() == text


def test_the_spec_it_writes_runs(lab: Lab, berth: Runtime) -> None:
    """The default config, made non-interactive, runs a container (under runc too)."""
    runtimes = [berth] + ([lab.runtime("runc")] if shutil.which("runc") else [])
    for rt in runtimes:
        scratch = lab.dir / f"spec-{rt.name}"
        scratch.mkdir()
        assert berth.cmd("spec", "--bundle", str(scratch)).returncode == 0
        config = json.loads((scratch / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["echo", "hello from the default spec"]
        bundle = lab.bundle(f"spec-{rt.name}", config)
        r = rt.run(bundle, lab.container_id("spec"))
        assert (r.returncode, r.stdout) == (0, "hello from the default spec\n"), (
            f"{rt.name}: exit {r.returncode}: {r.stderr}"
        )


def test_features_is_json(berth: Runtime) -> None:
    r = berth.cmd("features")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ociVersionMin"].startswith("1.")
    assert doc["ociVersionMax"].startswith("1.")
    assert set(doc["linux"]["namespaces"]) == NAMESPACES
    assert {"ro", "nosuid", "nodev", "noexec", "bind", "rprivate"} <= set(doc["mountOptions"])
    # as runc's: whether this host can apply an AppArmor profile
    assert doc["linux"]["apparmor"] == {"enabled": os.path.isdir("/sys/kernel/security/apparmor")}


def test_features_lists_the_hooks_it_runs(berth: Runtime) -> None:
    """berth-runtime runs all six kinds of hook (runc's `features` lists them)."""
    doc = json.loads(berth.cmd("features").stdout)
    assert set(doc["hooks"]) == {"prestart", "createRuntime", "createContainer",
                                 "startContainer", "poststart", "poststop"}  # fmt: skip


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is the oracle")
def test_features_knows_what_runc_knows(berth: Runtime) -> None:
    """The capabilities and seccomp vocabulary runc's `features` lists, berth's lists too
    (and does: a profile using every action and operator it lists compiles)."""
    ours = json.loads(berth.cmd("features").stdout)["linux"]
    theirs = json.loads(subprocess.run(["runc", "features"], capture_output=True, text=True, check=True).stdout)["linux"]
    assert ours["capabilities"] == theirs["capabilities"]
    assert set(theirs["seccomp"]["operators"]) <= set(ours["seccomp"]["operators"])
    assert set(theirs["seccomp"]["actions"]) - {"SCMP_ACT_NOTIFY"} <= set(ours["seccomp"]["actions"])
    assert set(theirs["seccomp"]["archs"]) <= set(ours["seccomp"]["archs"])
    assert ours["cgroup"]["v1"] and ours["cgroup"]["v2"]
    from berth.runtime import seccomp

    seccomp.compile_filter({
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ours["seccomp"]["archs"][-1:],
        "flags": ours["seccomp"]["supportedFlags"],
        "syscalls": [{"names": ["getcwd"], "action": action} for action in ours["seccomp"]["actions"]
                     if action != "SCMP_ACT_ALLOW"]
        + [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}
           for op in ours["seccomp"]["operators"]],
    })


# The lifecycle.


def sleeper(lab: Lab, label: str, **extra: Any) -> tuple[Path, dict[str, Any]]:
    config = minimal_config(["sleep", "600"])
    config["linux"].update(extra)
    return lab.bundle(label, config), config


def test_create_start_state_kill_delete(lab: Lab, berth: Runtime) -> None:
    cgroup = lab.cgroup_path("lifecycle")
    bundle, _ = sleeper(lab, "lifecycle", cgroupsPath=cgroup,
                        resources={"memory": {"limit": 64 * MiB}})  # fmt: skip
    cid = lab.container_id("lifecycle")
    pid_file = lab.dir / "init.pid"

    r = berth.cmd("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
    assert r.returncode == 0, r.stderr
    state = berth.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid
    assert state["bundle"] == str(bundle)
    pid = state["pid"]
    assert pid > 0 and pid_alive(pid)
    assert pid_file.read_text().strip() == str(pid)
    assert cgroup_dirs(cgroup), "the container's cgroup was not made at create"
    procs = (cgroup_dirs(cgroup)[0] / "cgroup.procs").read_text().split()
    assert str(pid) in procs

    r = berth.cmd("start", cid)
    assert r.returncode == 0, r.stderr
    assert berth.state(cid)["status"] in ("running", "stopped")
    assert berth.state(cid)["status"] == "running"  # sleep 600 is still running
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"

    again = berth.cmd("start", cid)
    assert "running" in one_line_error(again)

    r = berth.cmd("kill", cid, "KILL")
    assert r.returncode == 0, r.stderr
    assert wait_gone(pid)
    state = wait_status(berth, cid, "stopped")
    assert state["status"] == "stopped"

    r = berth.cmd("delete", cid)
    assert r.returncode == 0, r.stderr
    assert not (berth.root / cid).exists()
    assert not cgroup_dirs(cgroup), "delete left the container's cgroup"
    gone = berth.cmd("state", cid)
    assert "does not exist" in one_line_error(gone)


def test_kill_by_signal_name_and_number(lab: Lab, berth: Runtime) -> None:
    bundle, _ = sleeper(lab, "signals")
    for sig in ("SIGKILL", "9"):
        cid = lab.container_id("signals")
        assert berth.cmd("run", "-d", "--bundle", str(bundle), cid).returncode == 0
        pid = berth.state(cid)["pid"]
        assert berth.cmd("kill", cid, sig).returncode == 0
        assert wait_gone(pid), f"kill {sig} did not stop the container"
        assert berth.cmd("delete", cid).returncode == 0
    stopped = berth.cmd("kill", cid, "KILL")
    assert "does not exist" in one_line_error(stopped)


# hooks.

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _hooks(log_dir: Path) -> dict[str, Any]:
    """Each hook keeps the state it was given and notes its turn; startContainer runs in
    the container (its path resolves there), so it keeps its state in the container."""
    def on_host(kind: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {log_dir}/{kind}.json; echo {kind} >> {log_dir}/order"]}

    hooks = {kind: [on_host(kind)] for kind in HOOK_KINDS if kind != "startContainer"}
    hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /startContainer.json"]}]
    return hooks


@pytest.mark.parametrize("name", ["berth", "runc"])
def test_hooks_run_in_their_order_with_the_container_state(lab: Lab, name: str) -> None:
    """The six kinds of hook, under berth-runtime and, as the reference, runc."""
    if name != "berth" and not shutil.which(name):
        pytest.skip(f"{name} is not installed")
    runtime = lab.runtime(name)
    log_dir = lab.dir / f"hooks-{name}"
    log_dir.mkdir()
    config = minimal_config(["sleep", "1"])
    config["hooks"] = _hooks(log_dir)
    bundle = lab.bundle(f"hooks-{name}", config)
    cid = lab.container_id("hooks")

    r = runtime.run(bundle, cid)
    assert r.returncode == 0, r.stderr
    order = (log_dir / "order").read_text().split()
    assert order == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = {kind: json.loads((log_dir / f"{kind}.json").read_text()) for kind in order}
    states["startContainer"] = json.loads((bundle / "rootfs" / "startContainer.json").read_text())
    statuses = {kind: doc["status"] for kind, doc in states.items()}
    if name == "runc" and statuses["poststart"] == "created":
        statuses["poststart"] = "running"  # runc 1.1 says "created"; the process has started
    assert statuses == {
        "prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
        "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    assert {(doc["id"], doc["bundle"]) for doc in states.values()} == {(cid, str(bundle))}


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_creation_hook_fails_the_create_and_leaves_nothing(lab: Lab, berth: Runtime, kind: str) -> None:
    config = minimal_config(["true"])
    config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 3"]}]}
    bundle = lab.bundle("hookfail", config)
    cid = lab.container_id("hookfail")
    r = berth.cmd("run", "--bundle", str(bundle), cid)
    line = one_line_error(r)
    assert r.returncode == 1
    assert kind in line and "exit status 3" in line and "no way" in line, line
    assert not (berth.root / cid).exists()
    assert processes_under(lab.dir) == []


def test_a_failing_poststart_hook_is_only_a_warning(lab: Lab, berth: Runtime) -> None:
    config = minimal_config(["sh", "-c", "exit 7"])
    config["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]}
    r = berth.run(lab.bundle("poststart", config), lab.container_id("poststart"))
    assert r.returncode == 7, r.stderr  # the container ran; its exit code is the run's
    assert "warning" in r.stderr and "poststart" in r.stderr


@pytest.mark.parametrize("code", [0, 3, 42])
def test_run_propagates_the_exit_code(lab: Lab, berth: Runtime, code: int) -> None:
    bundle = lab.bundle("exit", minimal_config(["sh", "-c", f"echo out; echo err >&2; exit {code}"]))
    cid = lab.container_id("exit")
    r = berth.run(bundle, cid)
    assert r.returncode == code, r.stderr
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    assert not (berth.root / cid).exists(), "run must delete the container it ran"


def test_run_detached_and_list(lab: Lab, berth: Runtime) -> None:
    bundle, _ = sleeper(lab, "detached")
    cid = lab.container_id("detached")
    r = berth.cmd("run", "-d", "--bundle", str(bundle), cid)
    assert r.returncode == 0, r.stderr
    assert berth.state(cid)["status"] == "running"

    table = berth.cmd("list")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    row = next(r.split() for r in rows if r.split()[0] == cid)
    assert row[2] == "running" and row[3] == str(bundle)

    assert berth.cmd("list", "-q").stdout.split() == [cid]
    docs = json.loads(berth.cmd("list", "--format", "json").stdout)
    assert [(d["id"], d["status"]) for d in docs] == [(cid, "running")]

    assert berth.cmd("delete", "--force", cid).returncode == 0
    assert berth.cmd("list", "-q").stdout.split() == []


def test_delete_of_a_running_container(lab: Lab, berth: Runtime) -> None:
    cgroup = lab.cgroup_path("delete")
    bundle, _ = sleeper(lab, "delete", cgroupsPath=cgroup)
    cid = lab.container_id("delete")
    assert berth.cmd("run", "-d", "--bundle", str(bundle), cid).returncode == 0
    pid = berth.state(cid)["pid"]

    refused = berth.cmd("delete", cid)
    line = one_line_error(refused)
    assert cid in line and "running" in line, line
    assert pid_alive(pid), "a refused delete must leave the container running"
    assert berth.state(cid)["status"] == "running"

    forced = berth.cmd("delete", "-f", cid)
    assert forced.returncode == 0, forced.stderr
    assert wait_gone(pid), "delete -f did not kill the container"
    assert not (berth.root / cid).exists()
    assert not cgroup_dirs(cgroup)


UPDATE_FILES = [("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
                ("memory", "memory.soft_limit_in_bytes"), ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"),
                ("cpu", "cpu.shares"), ("cpu", "cpu.rt_period_us"), ("cpu", "cpu.rt_runtime_us"),
                ("cpuset", "cpuset.cpus"), ("pids", "pids.max")]  # fmt: skip


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is the oracle")
@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"), reason="needs cgroup v1 with RT groups")
def test_update_changes_the_limits_as_runc_update_does(lab: Lab) -> None:
    flags = ["--memory", str(64 * MiB), "--memory-swap", str(128 * MiB), "--memory-reservation", str(32 * MiB),
             "--cpu-quota", "25000", "--cpu-period", "50000", "--cpu-share", "512", "--cpu-rt-period", "1000000",
             "--cpu-rt-runtime", "1000", "--cpuset-cpus", "0", "--pids-limit", "42"]  # fmt: skip
    seen = {}
    for name in ("runc", "berth"):
        rt = lab.runtime(name)
        cgroup = lab.cgroup_path(f"update-{name}")
        bundle, _ = sleeper(lab, f"update-{name}", cgroupsPath=cgroup, resources={"memory": {"limit": 256 * MiB}})
        cid = lab.container_id(f"update-{name}")
        assert rt.cmd("create", "--bundle", str(bundle), cid).returncode == 0
        try:
            r = rt.cmd("update", *flags, cid)
            assert r.returncode == 0, f"{name} update: {r.stderr}"
            seen[name] = {f: (Path("/sys/fs/cgroup") / c / cgroup.strip("/") / f).read_text().strip()
                          for c, f in UPDATE_FILES}  # fmt: skip
        finally:
            assert rt.cmd("delete", "--force", cid).returncode == 0
    assert seen["berth"] == seen["runc"]
    assert seen["berth"]["memory.limit_in_bytes"] == str(64 * MiB) and seen["berth"]["pids.max"] == "42"


def test_unknown_and_duplicate_ids(lab: Lab, berth: Runtime) -> None:
    assert "does not exist" in one_line_error(berth.cmd("state", "no-such-container"))
    assert "does not exist" in one_line_error(berth.cmd("delete", "no-such-container"))
    assert berth.cmd("delete", "-f", "no-such-container").returncode == 0  # as runc
    assert "invalid" in one_line_error(berth.cmd("state", "../escape"))

    bundle, _ = sleeper(lab, "dup")
    cid = lab.container_id("dup")
    assert berth.cmd("create", "--bundle", str(bundle), cid).returncode == 0
    dup = berth.cmd("create", "--bundle", str(bundle), cid)
    assert "exists" in one_line_error(dup)
    assert berth.state(cid)["status"] == "created"  # the first is untouched
    assert berth.cmd("delete", "-f", cid).returncode == 0


# Bad input.

Mutation = Callable[[dict[str, Any]], None]


def _drop_root_path(c: dict[str, Any]) -> None:
    del c["root"]["path"]


def _empty_args(c: dict[str, Any]) -> None:
    c["process"]["args"] = []


def _unknown_capability(c: dict[str, Any]) -> None:
    c["process"]["capabilities"] = {s: ["CAP_CHOWN", "CAP_BOGUS"]
                                    for s in ("bounding", "effective", "permitted")}  # fmt: skip


def _bad_seccomp_action(c: dict[str, Any]) -> None:
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_BOGUS"}],
    }


def _apparmor_profile(c: dict[str, Any]) -> None:
    c["process"]["apparmorProfile"] = "berth-test-no-such-profile"


def _tiny_memory_limit(c: dict[str, Any]) -> None:
    c["linux"]["resources"]["memory"]["limit"] = 4 * MiB


def _unknown_namespace(c: dict[str, Any]) -> None:
    c["linux"]["namespaces"].append({"type": "bogus"})


def _intel_rdt(c: dict[str, Any]) -> None:
    c["linux"]["intelRdt"] = {"l3CacheSchema": "L3:0=ffff"}


def _missing_controller(c: dict[str, Any]) -> None:
    c["linux"]["resources"]["rdma"] = {"mlx4_0": {"hcaHandles": 2}}  # this kernel has no rdma controller


# (name, mutation or None for "config.json is not JSON", words the error must contain)
BAD_BUNDLES: list[tuple[str, Mutation | None, tuple[str, ...]]] = [
    ("not-json", None, ("config.json",)),
    ("no-root-path", _drop_root_path, ("root.path",)),
    ("empty-args", _empty_args, ("process.args",)),
    ("unknown-capability", _unknown_capability, ("capabilities", "CAP_BOGUS")),
    ("bad-seccomp-action", _bad_seccomp_action, ("linux.seccomp", "SCMP_ACT_BOGUS")),
    ("memory-below-6MiB", _tiny_memory_limit, ("memory",)),
    ("unknown-namespace", _unknown_namespace, ("linux.namespaces",)),
    ("intel-rdt", _intel_rdt, ("linux.intelRdt",)),
    ("missing-controller", _missing_controller, ("linux.resources.rdma", "rdma")),
    # without AppArmor the host refuses any profile; with it, this one is not loaded
    ("apparmor-profile", _apparmor_profile, ("apparmor", "berth-test-no-such-profile")),
]


@pytest.mark.parametrize("command", ["create", "run"])
@pytest.mark.parametrize("case", BAD_BUNDLES, ids=[b[0] for b in BAD_BUNDLES])
def test_bad_bundle_is_refused_and_leaves_nothing(
    lab: Lab, berth: Runtime, case: tuple[str, Mutation | None, tuple[str, ...]], command: str
) -> None:
    name, mutate, words = case
    cgroup = lab.cgroup_path("bad")
    config = minimal_config(["sleep", "600"])
    config["linux"]["cgroupsPath"] = cgroup
    config["linux"]["resources"] = {"memory": {"limit": 64 * MiB}}
    good = copy.deepcopy(config)
    if mutate is not None:
        mutate(config)
    bundle = lab.bundle("bad", good)
    if mutate is None:
        (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "process": {')
    else:
        (bundle / "config.json").write_text(json.dumps(config))
    cid = lab.container_id("bad")

    r = berth.cmd(command, "--bundle", str(bundle), cid)
    line = one_line_error(r)
    assert r.returncode == 1
    assert line.startswith("berth-runtime: "), line
    missing = [w for w in words if w not in line]
    assert not missing, f"the error does not name {missing}: {line}"

    assert not (berth.root / cid).exists(), "a refused container left its state directory"
    assert berth.cmd("list", "-q").stdout.split() == []
    assert not cgroup_dirs(cgroup), f"a refused container left its cgroup: {cgroup_dirs(cgroup)}"
    assert not mounts_under(lab.dir), f"a refused container left mounts: {mounts_under(lab.dir)}"
    assert not processes_under(lab.dir), f"left processes: {processes_under(lab.dir)}"
