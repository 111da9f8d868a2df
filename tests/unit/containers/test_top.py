"""`docker top`'s cut of host `ps` output: the container's rows, thread rows after
them, the last column keeping its spaces, and dockerd's refusals."""

from __future__ import annotations

import pytest

from berth.containers.top import ProcessTable, check_ps_args, parse_ps_output
from berth.errors import InvalidParameter, SystemError_

PS_EF = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init splash
root         100       1  0 10:01 ?        00:00:00 sh -c sleep 100
root         101     100  0 10:01 ?        00:00:00 sleep   100
nobody       200       1  0 10:02 ?        00:00:00 other
"""


def test_keeps_only_the_containers_rows() -> None:
    table = parse_ps_output(PS_EF, {100, 101})
    assert table == ProcessTable(
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        [["root", "100", "1", "0", "10:01", "?", "00:00:00", "sh -c sleep 100"],
         ["root", "101", "100", "0", "10:01", "?", "00:00:00", "sleep 100"]])


def test_thread_rows_follow_a_kept_process() -> None:
    output = "PID TTY TIME CMD\n7 ? 00:00:00 app\n- - 00:00:00 -\n8 ? 00:00:00 other\n- - 00:00:00 -\n"
    table = parse_ps_output(output, {7})
    assert table.processes == [["7", "?", "00:00:00", "app"], ["-", "-", "00:00:00", "-"]]


def test_no_pid_column_is_an_error() -> None:
    with pytest.raises(SystemError_, match="Couldn't find PID field"):
        parse_ps_output("UID CMD\nroot init\n", {1})


def test_a_pid_that_is_no_number_is_an_error() -> None:
    with pytest.raises(SystemError_, match="Unexpected pid 'x'"):
        parse_ps_output("PID CMD\nx init\n", {1})


def test_renaming_a_column_but_pid_is_refused() -> None:
    check_ps_args("-o pid= PID")  # the pid column may be named
    check_ps_args("aux")
    with pytest.raises(InvalidParameter, match='specifying "user=PID" is not allowed'):
        check_ps_args("-o user= PID")
