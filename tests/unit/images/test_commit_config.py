"""images.store.merge_run_config: how a commit's config is filled from the container's."""

from __future__ import annotations

from berth.images.model import RunConfig
from berth.images.store import apply_changes, merge_run_config


def test_unset_fields_come_from_the_container() -> None:
    base = RunConfig(user="nobody", env=["PATH=/bin", "A=1"], cmd=["sh"], entrypoint=["/init"],
                     working_dir="/w", labels={"a": "1"}, exposed_ports=["80/tcp"], stop_signal="SIGINT")
    user = merge_run_config(RunConfig(env=["A=2"], labels={"b": "2"}, exposed_ports=["53/udp"]), base)
    assert user.env == ["A=2", "PATH=/bin"]
    assert (user.cmd, user.entrypoint) == (["sh"], ["/init"])
    assert (user.user, user.working_dir, user.stop_signal) == ("nobody", "/w", "SIGINT")
    assert user.labels == {"a": "1", "b": "2"}
    assert user.exposed_ports == ["53/udp", "80/tcp"]


def test_a_command_of_its_own_does_not_take_the_containers_entrypoint() -> None:
    base = RunConfig(cmd=["sh"], entrypoint=["/init"])
    user = merge_run_config(apply_changes(RunConfig(), ['CMD ["echo","hi"]']), base)
    assert (user.cmd, user.entrypoint) == (["echo", "hi"], None)


def test_changes_on_the_containers_own_config_keep_its_entrypoint() -> None:
    base = RunConfig(cmd=["sh"], entrypoint=["/init"])
    user = merge_run_config(apply_changes(RunConfig(cmd=["sh"], entrypoint=["/init"]), ["CMD echo"]), base)
    assert (user.cmd, user.entrypoint) == (["/bin/sh", "-c", "echo"], ["/init"])
