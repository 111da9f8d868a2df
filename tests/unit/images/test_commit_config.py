"""images.store.merge_run_config: how a commit's config is filled from the container's, after
builder.changes.apply_changes applied its `--change` lines (dockerd's merge and BuildFromConfig)."""

from __future__ import annotations

import pytest

from berth.builder.changes import apply_changes
from berth.errors import InvalidParameter
from berth.images.model import Healthcheck, RunConfig
from berth.images.store import merge_run_config


def test_unset_fields_come_from_the_container() -> None:
    base = RunConfig(user="nobody", env=["PATH=/bin", "A=1"], cmd=["sh"], entrypoint=["/init"],
                     working_dir="/w", labels={"a": "1"}, exposed_ports=["80/tcp"], stop_signal="SIGINT")
    user = merge_run_config(RunConfig(env=["A=2"], labels={"b": "2"}, exposed_ports=["53/udp"]), base)
    assert user.env == ["A=2", "PATH=/bin"]
    assert (user.cmd, user.entrypoint) == (["sh"], ["/init"])
    assert (user.user, user.working_dir, user.stop_signal) == ("nobody", "/w", "SIGINT")
    assert user.labels == {"a": "1", "b": "2"}
    assert user.exposed_ports == ["53/udp", "80/tcp"]


def test_a_command_of_its_own_keeps_the_containers_entrypoint_unless_one_is_given() -> None:
    # dockerd's merge: with no Entrypoint of its own (nil), the container's is taken;
    # an empty one given stays empty
    base = RunConfig(cmd=["sh"], entrypoint=["/init"])
    user = merge_run_config(apply_changes(RunConfig(), ['CMD ["echo","hi"]']), base)
    assert (user.cmd, user.entrypoint) == (["echo", "hi"], ["/init"])
    user = merge_run_config(RunConfig(cmd=["echo"], entrypoint=[]), base)
    assert (user.cmd, user.entrypoint) == (["echo"], [])


def test_changes_on_the_containers_own_config_keep_its_entrypoint() -> None:
    base = RunConfig(cmd=["sh"], entrypoint=["/init"])
    user = merge_run_config(apply_changes(RunConfig(cmd=["sh"], entrypoint=["/init"]), ["CMD echo"]), base)
    assert (user.cmd, user.entrypoint) == (["/bin/sh", "-c", "echo"], ["/init"])


def test_an_entrypoint_change_clears_the_command_unless_a_cmd_change_came_first() -> None:
    base = RunConfig(cmd=["true"], env=["PATH=/bin"])
    user = merge_run_config(apply_changes(base, ['ENTRYPOINT ["echo"]']), base)
    assert (user.entrypoint, user.cmd) == (["echo"], None)
    user = merge_run_config(apply_changes(base, ['CMD ["a"]', 'ENTRYPOINT ["echo"]']), base)
    assert (user.entrypoint, user.cmd) == (["echo"], ["a"])
    user = apply_changes(base, ["ENTRYPOINT echo hi"])
    assert user.entrypoint == ["/bin/sh", "-c", "echo hi"]


def test_changes_expand_the_environment_as_it_stands() -> None:
    base = RunConfig(env=["PATH=/bin", "HOME=/root"], working_dir="/srv")
    user = apply_changes(base, ["ENV PATH=$PATH:/opt/bin GREETING=\"hello world\"", "ENV SAY=${GREETING}!",
                                "WORKDIR data", "USER ${HOME}", 'LABEL "a b"="c d"', "EXPOSE 80 53/UDP",
                                "VOLUME /v1 /v2", "STOPSIGNAL SIGINT", "ONBUILD RUN echo hi"])
    assert user.env == ["PATH=/bin:/opt/bin", "HOME=/root", "GREETING=hello world", "SAY=hello world!"]
    assert (user.working_dir, user.user, user.stop_signal) == ("/srv/data", "/root", "SIGINT")
    assert user.labels == {"a b": "c d"}
    assert user.exposed_ports == ["80/tcp", "53/udp"]
    assert user.volumes == ["/v1", "/v2"]
    assert user.on_build == ["RUN echo hi"]
    assert base.env == ["PATH=/bin", "HOME=/root"]  # the original is untouched


def test_healthcheck_change_and_merge() -> None:
    base = RunConfig(healthcheck=Healthcheck(test=["CMD", "old"], retries=7))
    user = apply_changes(RunConfig(), ["HEALTHCHECK --interval=5s CMD wget -q localhost"])
    assert user.healthcheck == Healthcheck(test=["CMD-SHELL", "wget -q localhost"], interval=5_000_000_000)
    merged = merge_run_config(user, base)
    assert merged.healthcheck is not None and merged.healthcheck.retries == 7
    assert apply_changes(RunConfig(), ["HEALTHCHECK NONE"]).healthcheck == Healthcheck(test=["NONE"])


@pytest.mark.parametrize(("change", "message"), [
    ("RUN echo hi", "run is not a valid change command"),
    ("FROM busybox", "from is not a valid change command"),
    ("Nonsense x", "nonsense is not a valid change command"),
    ("ENV", "dockerfile parse error on line 1: ENV requires at least one argument"),
    ("USER", "dockerfile parse error on line 1: USER requires exactly one argument"),
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ("ONBUILD ONBUILD RUN x", "dockerfile parse error on line 1: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ('CMD ["a", 1]', "when using JSON array syntax, arrays must be comprised of strings only"),
])
def test_bad_changes_are_refused_in_dockerds_words(change: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        apply_changes(RunConfig(), [change])
    assert message in str(err.value)
