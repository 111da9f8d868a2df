"""Networks and endpoints come and go without a trace (issue 6, "Must show" 3): a hundred
cycles of network create, run -d a container on it, connect it to a second network,
disconnect, rm -f and network rm leave no bridge, veth, network namespace or nftables
rule of berth's behind. The cycles go through the raw API on berthd's socket (no client
process per step), so that a hundred of them fit in about a minute. Also the same
objects through docker-py: client.networks create/get/list/remove/prune,
network.connect/disconnect and containers.run(network=...).
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import leakcheck
from helpers.api import ApiClient
from helpers.cli import Cli
from helpers.daemon import BerthDaemon

pytestmark = pytest.mark.usefixtures("busybox", "network_hygiene")

Names = Callable[[str], str]

CYCLES = 100
LINK_PREFIXES = ("br-", "veth", "berth")


# Fixtures and helpers.


def _free_octet() -> int:
    """N such that 10.N.0.0/16 meets no address or route of the host."""
    used = []
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    used += [ipaddress.ip_interface(m).network for m in re.findall(r"\sinet (\S+)", out.stdout)]
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True)
    for line in out.stdout.splitlines():
        try:
            net = ipaddress.ip_network(line.split()[0], strict=False)
        except (ValueError, IndexError):
            continue
        if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
            used.append(net)
    candidates = list(range(100, 250))
    random.shuffle(candidates)
    for n in candidates:
        if not any(ipaddress.ip_network(f"10.{n}.0.0/16").overlaps(u) for u in used):
            return n
    raise AssertionError("no free 10.N.0.0/16 on this host")


@dataclass(frozen=True)
class HostState:
    """berth's traces on the host, as comparable strings."""

    links: frozenset[str]  # br-*, veth*, berth* link names
    netns: frozenset[str]  # /run/netns, and nsfs mounts and netns files under the exec root
    nft: frozenset[str]  # rules of nftables tables named for berth, without counters/handles


def _links() -> frozenset[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {m.group(1) for m in re.finditer(r"^\d+:\s+([^:@\s]+)", out, re.M)}
    return frozenset(n for n in names if n.startswith(LINK_PREFIXES))


def _netns(exec_root: Path) -> frozenset[str]:
    """Named network namespaces: /run/netns and, for berth's own, its exec root."""
    found = {f"/run/netns/{n}" for n in leakcheck.read_netns()}
    for entry in leakcheck.read_mounts():
        mountpoint, fstype, _ = entry.split(" ", 2)
        mountpoint = leakcheck.unescape_mountinfo(mountpoint)
        if fstype == "nsfs" and mountpoint.startswith(("/run/netns/", f"{exec_root}/")):
            found.add(f"nsfs {mountpoint}")
    for dirpath, dirnames, filenames in os.walk(exec_root):
        if "netns" in dirpath:
            found.update(os.path.join(dirpath, f) for f in filenames + dirnames)
    return frozenset(found)


_VOLATILE = re.compile(r"\s*(counter packets \d+ bytes \d+|# handle \d+)")


def _nft() -> frozenset[str]:
    """The rules, sets and chains of every nftables table whose name mentions berth."""
    res = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    if res.returncode != 0:
        return frozenset({f"nft failed: {res.stderr.strip()}"})
    lines, table = [], None
    for raw in res.stdout.splitlines():
        line = _VOLATILE.sub("", raw).strip()
        m = re.match(r"^table (\S+) (\S+) \{$", line)
        if m:
            table = f"{m.group(1)} {m.group(2)}" if "berth" in m.group(2) else None
            continue
        if table and line and line != "}":
            lines.append(f"{table}: {line}")
    return frozenset(lines)


def _host_state(exec_root: Path) -> HostState:
    return HostState(links=_links(), netns=_netns(exec_root), nft=_nft())


def _diff(before: frozenset[str], after: frozenset[str]) -> list[str]:
    return [f"+ {x}" for x in sorted(after - before)] + [f"- {x}" for x in sorted(before - after)]


def _expect(resp: Any, status: int, what: str) -> None:
    assert resp.status == status, f"{what}: {resp.status} {resp.body[:500]!r}"


# The cycles.


@pytest.mark.timeout(600)
def test_a_hundred_network_cycles_leave_nothing_behind(api: ApiClient, berthd: BerthDaemon,
                                                       berth_root: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    n = _free_octet()
    second = f"cyc-second-{tag}"
    resp = api.post_json("/networks/create", {
        "Name": second, "IPAM": {"Config": [{"Subnet": f"10.{n}.0.0/16"}]}})
    _expect(resp, 201, "create the second network")
    second_id = resp.json()["Id"]
    network_ids: list[str] = []
    try:
        before = _host_state(berthd.exec_root)
        started = time.monotonic()
        for i in range(CYCLES):
            net, nid, cid = f"cyc-{tag}-{i}", None, None
            try:
                resp = api.post_json("/networks/create", {"Name": net})
                _expect(resp, 201, f"cycle {i}: network create")
                nid = resp.json()["Id"]
                network_ids.append(nid)
                resp = api.post_json(f"/containers/create?name=cyc-{tag}-{i}", {
                    "Image": "busybox", "Cmd": ["sleep", "300"],
                    "HostConfig": {"NetworkMode": net},
                    "NetworkingConfig": {"EndpointsConfig": {net: {}}},
                })
                _expect(resp, 201, f"cycle {i}: container create")
                cid = resp.json()["Id"]
                _expect(api.post(f"/containers/{cid}/start"), 204, f"cycle {i}: start")
                _expect(api.post_json(f"/networks/{second_id}/connect", {"Container": cid}), 200,
                        f"cycle {i}: connect")
                if i % 10 == 0:
                    info = api.get(f"/containers/{cid}/json").json()
                    networks = info["NetworkSettings"]["Networks"]
                    assert set(networks) == {net, second}, sorted(networks)
                    assert all(ep["IPAddress"] for ep in networks.values()), networks
                _expect(api.post_json(f"/networks/{second_id}/disconnect", {"Container": cid}),
                        200, f"cycle {i}: disconnect")
                _expect(api.request("DELETE", f"/containers/{cid}?force=1"), 204,
                        f"cycle {i}: rm -f")
                cid = None
                _expect(api.request("DELETE", f"/networks/{nid}"), 204, f"cycle {i}: network rm")
                nid = None
            finally:
                if cid is not None:
                    api.request("DELETE", f"/containers/{cid}?force=1")
                if nid is not None:
                    api.request("DELETE", f"/networks/{nid}")
        elapsed = time.monotonic() - started
        print(f"\n{CYCLES} network cycles in {elapsed:.1f} s")
        if elapsed > 60:
            warnings.warn(f"{CYCLES} network cycles took {elapsed:.0f} s (aim: about 60 s)",
                          stacklevel=1)

        # Give asynchronous teardown a moment, then compare.
        deadline = time.monotonic() + 10
        while True:
            after = _host_state(berthd.exec_root)
            if after == before or time.monotonic() > deadline:
                break
            time.sleep(0.5)

        # What is certainly ours: the bridges of the cycled networks, rules naming them, and
        # namespaces under this session's root.
        ours = {f"br-{nid[:12]}" for nid in network_ids}
        problems = [f"bridge {b} is still there" for b in sorted(ours & after.links)]
        problems += [f"nft rule for a removed network: {r}" for r in sorted(after.nft)
                     if any(b in r for b in ours)]
        problems += [f"netns left under the session root: {x}"
                     for x in sorted(after.netns - before.netns) if str(berth_root) in x]
        containers = api.get("/containers/json?all=1").json()
        problems += [f"container left: {c['Names']}" for c in containers
                     if any(name.startswith(f"/cyc-{tag}-") for name in c["Names"])]
        nets = api.get("/networks").json()
        problems += [f"network left: {x['Name']}" for x in nets
                     if x["Name"].startswith(f"cyc-{tag}-")]
        assert not problems, "\n".join(problems)

        # Everything else berth-like on the host: the same as before, unless another berth
        # daemon (another session) may have changed it meanwhile.
        changes = {
            "links": _diff(before.links, after.links),
            "netns": _diff(before.netns, after.netns),
            "nft": _diff(before.nft, after.nft),
        }
        report = "\n".join(f"{kind}:\n  " + "\n  ".join(lines)
                           for kind, lines in changes.items() if lines)
        if report:
            others = leakcheck.foreign_daemons(leakcheck.read_processes(), str(berth_root))
            if others:
                warnings.warn("host changed during the cycles, but another berth daemon is "
                              f"running ({sorted(others)}):\n{report}", stacklevel=1)
            else:
                pytest.fail(f"{CYCLES} cycles left traces on the host:\n{report}", pytrace=False)
    finally:
        api.request("DELETE", f"/networks/{second_id}")


# docker-py


def test_docker_py_networks(docker_client: Any, docker: Cli, new_name: Names) -> None:
    import docker as docker_py

    tag = uuid.uuid4().hex[:8]
    n = _free_octet()
    first_name, second_name, unused_name = (f"dpy-{x}-{tag}" for x in ("first", "second", "unused"))
    ipam = docker_py.types.IPAMConfig(pool_configs=[
        docker_py.types.IPAMPool(subnet=f"10.{n}.0.0/24", gateway=f"10.{n}.0.1")])
    first = docker_client.networks.create(first_name, driver="bridge", labels={"group": tag})
    second = docker_client.networks.create(second_name, driver="bridge", ipam=ipam,
                                           labels={"group": tag})
    unused = docker_client.networks.create(unused_name, labels={"group": tag})
    container = None
    try:
        got = docker_client.networks.get(second_name)
        assert got.id == second.id and got.name == second_name
        assert got.attrs["Driver"] == "bridge" and got.attrs["Labels"] == {"group": tag}
        assert got.attrs["IPAM"]["Config"] == [{"Subnet": f"10.{n}.0.0/24",
                                                "Gateway": f"10.{n}.0.1"}], got.attrs["IPAM"]
        assert docker_client.networks.get(second.id[:12]).name == second_name
        listed = docker_client.networks.list(filters={"label": f"group={tag}"})
        assert {x.name for x in listed} == {first_name, second_name, unused_name}
        assert [x.id for x in docker_client.networks.list(names=[first_name])] == [first.id]
        assert {"bridge", "host", "none"} <= {x.name for x in docker_client.networks.list()}

        name = new_name("dpy")
        container = docker_client.containers.run("busybox", "sleep 300", name=name, detach=True,
                                                 network=first_name)
        container.reload()
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {first_name}
        second.connect(container, aliases=["pyalias"], ipv4_address=f"10.{n}.0.77")
        container.reload()
        ep = container.attrs["NetworkSettings"]["Networks"][second_name]
        assert ep["IPAddress"] == f"10.{n}.0.77" and "pyalias" in (ep["Aliases"] or []), ep
        second.reload()
        assert [c.id for c in second.containers] == [container.id]
        # The address answers on the second network.
        out = docker_client.containers.run("busybox", ["ping", "-c", "1", "-W", "2",
                                                       f"10.{n}.0.77"],
                                           network=second_name, remove=True).decode()
        assert "1 packets received" in out, out
        second.disconnect(container)
        second.reload()
        assert second.containers == []
        container.reload()
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {first_name}

        with pytest.raises(docker_py.errors.APIError) as excinfo:
            first.remove()
        assert excinfo.value.status_code == 403, excinfo.value
        container.remove(force=True)
        container = None

        second.remove()
        with pytest.raises(docker_py.errors.NotFound):
            docker_client.networks.get(second_name)
        result = docker_client.networks.prune(filters={"label": f"group={tag}"})
        assert sorted(result["NetworksDeleted"] or []) == sorted([first_name, unused_name]), result
        assert docker_client.networks.list(filters={"label": f"group={tag}"}) == []
    finally:
        if container is not None:
            container.remove(force=True)
        for net in (first, second, unused):
            try:
                net.remove()
            except docker_py.errors.NotFound:
                pass
