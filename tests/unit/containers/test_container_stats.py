"""The /proc parsers behind `docker stats`: the host's CPU time and a namespace's
network interface counters."""

from __future__ import annotations

from berth.containers.stats import InterfaceCounters, parse_net_dev, parse_proc_stat

PROC_STAT = """\
cpu  100 20 30 400 50 6 7 800 900 0
cpu0 50 10 15 200 25 3 4 400 450 0
cpu1 50 10 15 200 25 3 3 400 450 0
intr 12345 0 0
ctxt 999
"""

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1296      14    1    2    0     0          0         0      796       9    3    4    0     0       0          0
"""


def test_proc_stat_sums_the_first_seven_fields_and_counts_cpus() -> None:
    total, cpus = parse_proc_stat(PROC_STAT, ticks_per_second=100)
    assert total == (100 + 20 + 30 + 400 + 50 + 6 + 7) * 10_000_000  # steal and guest left out
    assert cpus == 2


def test_net_dev_reads_receive_and_transmit_counters() -> None:
    found = parse_net_dev(NET_DEV)
    assert found["eth0"] == InterfaceCounters(rx_bytes=1296, rx_packets=14, rx_errors=1, rx_dropped=2,
                                              tx_bytes=796, tx_packets=9, tx_errors=3, tx_dropped=4)
    assert set(found) == {"lo", "eth0"}
    assert parse_net_dev("") == {}
    assert parse_net_dev(NET_DEV.replace("  796", "  x")) == {"lo": found["lo"]}
