"""parse_resources: OCI linux.resources into typed records, errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from berth.runtime.cgroups.resources import (
    MIN_MEMORY_LIMIT,
    UNLIMITED,
    BlockIOResources,
    CPUResources,
    DeviceRule,
    HugepageLimit,
    MemoryResources,
    NetworkResources,
    PidsResources,
    ResourceError,
    Resources,
    ThrottleDevice,
    WeightDevice,
    check_kernel_limits,
    parse_resources,
    rdma_max_lines,
    reduce_device_rules,
)

MiB = 1024 * 1024


def test_a_full_document_parses_into_records() -> None:
    doc = {
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB, "kernel": 0,
                   "swappiness": 10, "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0", "idle": 0},
        "pids": {"limit": 20},
        "blockIO": {
            "weight": 500,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        },
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "wr"},
        ],
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}, {"pageSize": "1GB", "limit": 1 << 30}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
    }
    r = parse_resources(doc)
    assert r.memory == MemoryResources(64 * MiB, 32 * MiB, 128 * MiB, 10, True)
    assert r.cpu == CPUResources(512, 50000, 100000, None, None, "0-1", "0", 0)
    assert r.pids == PidsResources(20)
    assert r.block_io == BlockIOResources(
        weight=500,
        weight_device=(WeightDevice(8, 0, 300),),
        throttle_read_bps_device=(ThrottleDevice(8, 0, 1048576),),
    )
    assert r.devices == (
        DeviceRule(False, "a", None, None, "rwm"),
        DeviceRule(True, "c", 1, 3, "rwm"),
        DeviceRule(True, "c", 136, None, "rw"),
    )
    assert r.hugepage_limits == (HugepageLimit("2MB", 0), HugepageLimit("1GB", 1 << 30))
    assert r.network == NetworkResources(1048577, (("eth0", 500),))
    assert r.ignored == ()


def test_absent_section_and_runc_zero_values_mean_not_set() -> None:
    assert parse_resources(None) == Resources()
    r = parse_resources({"memory": {"limit": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0, "period": 0},
                         "blockIO": {"weight": 0}})
    assert r.memory == MemoryResources()
    assert r.cpu == CPUResources()
    assert r.block_io == BlockIOResources()


def test_unlimited_values() -> None:
    r = parse_resources({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1}, "pids": {"limit": 0}})
    assert r.memory == MemoryResources(limit=UNLIMITED, swap=UNLIMITED)
    assert r.cpu == CPUResources(quota=UNLIMITED)
    assert r.pids == PidsResources(UNLIMITED)


def test_memory_kernel_is_ignored_and_listed() -> None:
    r = parse_resources({"memory": {"limit": 64 * MiB, "kernel": 1 << 20}})
    assert r.ignored == ("linux.resources.memory.kernel",)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "linux.resources: must be an object"),
        ({"memory": 5}, "linux.resources.memory: must be an object"),
        ({"memory": {"limit": "64m"}}, "linux.resources.memory.limit: must be an integer"),
        ({"memory": {"limit": True}}, "linux.resources.memory.limit: must be an integer"),
        ({"memory": {"limit": -5}}, "linux.resources.memory.limit: must be -1 (unlimited)"),
        ({"memory": {"swap": 64 * MiB}}, "linux.resources.memory.swap: a memory+swap limit needs"),
        ({"memory": {"limit": 64 * MiB, "swap": 32 * MiB}}, "linux.resources.memory.swap: the memory+swap total"),
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness: must be between 0 and 100"),
        ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller: must be true or false"),
        ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares: must be between 2 and 262144"),
        ({"cpu": {"quota": 10}}, "linux.resources.cpu.quota: must be -1 (unlimited) or at least 1000"),
        ({"cpu": {"period": 100}}, "linux.resources.cpu.period: must be between 1000 and 1000000"),
        ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus: '0-a' is not a list"),
        ({"cpu": {"mems": 0}}, "linux.resources.cpu.mems: must be a string"),
        ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle: must be 0 or 1"),
        ({"pids": {}}, "linux.resources.pids.limit: is required"),
        ({"pids": {"limit": 1.5}}, "linux.resources.pids.limit: must be an integer"),
        ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: must be between 10 and 1000"),
        ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}},
         "linux.resources.blockIO.weightDevice[0].minor: must be a device number"),
        ({"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
         "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate: must be a non-negative integer"),
        ({"devices": {}}, "linux.resources.devices: must be an array"),
        ({"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow: is required"),
        ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type: must be 'a', 'b' or 'c'"),
        ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access: must be letters"),
        ({"devices": [{"allow": True, "major": -2}]}, "linux.resources.devices[0].major: must be -1"),
    ],
)
def test_errors_name_the_field(doc: Any, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        parse_resources(doc)
    assert str(info.value).startswith(message)


def test_device_rule_lines_use_stars_for_wildcards() -> None:
    assert DeviceRule(True, "c", 1, 3, "rwm").line() == "c 1:3 rwm"
    assert DeviceRule(True, "c", 136, None, "rw").line() == "c 136:* rw"
    assert DeviceRule(False).line() == "a *:* rwm"


def _docker_defaults() -> tuple[DeviceRule, ...]:
    return (DeviceRule(False),) + (
        DeviceRule(True, "c", None, None, "m"),
        DeviceRule(True, "b", None, None, "m"),
        DeviceRule(True, "c", 1, 3, "rwm"),
        DeviceRule(True, "c", 136, None, "rwm"),
        DeviceRule(True, "c", 5, 2, "rwm"),
    )


SDA = DeviceRule(True, "b", 8, 0, "rwm")


@pytest.mark.parametrize(
    ("rules", "allow_all", "exceptions"),
    [
        ((), True, ()),
        ((DeviceRule(True),), True, ()),  # privileged
        (_docker_defaults(), False, _docker_defaults()[1:]),
        (_docker_defaults() + (SDA,), False, (*_docker_defaults()[1:], SDA)),  # --device /dev/sda
        ((DeviceRule(True), DeviceRule(False, "c", 1, 3, "rwm")), True, (DeviceRule(False, "c", 1, 3, "rwm"),)),
        (_docker_defaults() + (DeviceRule(True, "b", 8, 0, "r"), DeviceRule(False, "b", 8, 0, "r")), False,
         _docker_defaults()[1:]),  # an exception taken back
        ((DeviceRule(True, "b", 8, 0, "r"), DeviceRule(True)), True, ()),  # reset by a rule for everything
    ],
)
def test_device_rules_reduce_to_a_default_and_its_exceptions(
    rules: tuple[DeviceRule, ...], allow_all: bool, exceptions: tuple[DeviceRule, ...]
) -> None:
    assert reduce_device_rules(rules) == (allow_all, list(exceptions))


def test_a_memory_limit_below_the_minimum_names_the_field() -> None:
    with pytest.raises(ResourceError, match=r"^linux\.resources\.memory\.limit: 4096 bytes is below"):
        check_kernel_limits(Resources(memory=MemoryResources(limit=4096)))
    check_kernel_limits(Resources(memory=MemoryResources(limit=MIN_MEMORY_LIMIT)))
    check_kernel_limits(Resources(memory=MemoryResources(limit=UNLIMITED)))


@pytest.mark.parametrize(("doc", "message"), [
    ({"hugepageLimits": {"pageSize": "2MB"}}, "linux.resources.hugepageLimits: must be an array"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "hugepageLimits[0].pageSize: '2M' is not a page size"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "hugepageLimits[0].limit: must be a number of bytes"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": -1}]}, "hugepageLimits[0].limit: must be a number of bytes"),
    ({"network": {"classID": -1}}, "network.classID: must be a 32-bit unsigned integer"),
    ({"network": {"classID": 1 << 32}}, "network.classID: must be a 32-bit unsigned integer"),
    ({"network": {"priorities": [{"name": "eth 0", "priority": 1}]}}, "priorities[0].name: must be an interface name"),
    ({"network": {"priorities": [{"name": "eth0"}]}}, "priorities[0].priority: must be a 32-bit unsigned"),
])
def test_hugepage_and_network_refusals_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ResourceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_resources(doc)


def test_unified_parses_as_given() -> None:
    r = parse_resources({"unified": {"memory.high": "64M", "cgroup.max.descendants": "10"}})
    assert r.unified == (("memory.high", "64M"), ("cgroup.max.descendants", "10"))


@pytest.mark.parametrize(("doc", "message"), [
    ({"unified": []}, "linux.resources.unified: must be an object"),
    ({"unified": {"../x": "1"}}, "linux.resources.unified: '../x' is not a cgroup v2 file name"),
    ({"unified": {"memory/high": "1"}}, "is not a cgroup v2 file name"),
    ({"unified": {"memory": "1"}}, "is not a cgroup v2 file name"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified: cgroup.procs is the runtime's to write"),
    ({"unified": {"memory.high": 64}}, "linux.resources.unified.memory.high: must be a string"),
])
def test_unified_refusals_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ResourceError, match=message.replace(".", r"\.")):
        parse_resources(doc)


def test_rdma_parses_and_renders_as_rdma_max_lines() -> None:
    r = parse_resources({"rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}, "mlx5_1": {"hcaHandles": 3}}})
    assert r.rdma == (("mlx4_0", 2, 2000), ("mlx5_1", 3, None))
    assert rdma_max_lines(r.rdma) == ["mlx4_0 hca_handle=2 hca_object=2000", "mlx5_1 hca_handle=3 hca_object=max"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"rdma": []}, "linux.resources.rdma: must be an object"),
    ({"rdma": {"mlx 0": {}}}, "linux.resources.rdma: 'mlx 0' is not an RDMA device name"),
    ({"rdma": {"mlx4_0": {"hcaHandles": -1}}}, "linux.resources.rdma.mlx4_0.hcaHandles: must be a 32-bit unsigned"),
])
def test_rdma_refusals_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ResourceError, match=message.replace(".", r"\.")):
        parse_resources(doc)
