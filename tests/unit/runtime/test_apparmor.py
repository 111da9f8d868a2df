"""AppArmor, file-level: this kernel has no AppArmor, so the securityfs and /proc
attribute files are stood in for by a directory (the one failure we cannot cause for
real is a host that has it); the host check itself runs against the real /sys."""

from pathlib import Path

import pytest

from berth.runtime import apparmor


def test_enabled_wants_securityfs_and_the_module_parameter(tmp_path: Path) -> None:
    fs, parameter = tmp_path / "apparmor", tmp_path / "enabled"
    assert not apparmor.enabled(str(fs), str(parameter))
    fs.mkdir()
    assert not apparmor.enabled(str(fs), str(parameter))  # no parameter file
    parameter.write_text("N\n")
    assert not apparmor.enabled(str(fs), str(parameter))
    parameter.write_text("Y\n")
    assert apparmor.enabled(str(fs), str(parameter))


def test_check_on_this_host() -> None:
    apparmor.check("")  # no profile: nothing to check
    if apparmor.enabled():
        apparmor.check("docker-default")
    else:
        with pytest.raises(apparmor.AppArmorError, match=r"process\.apparmorProfile: 'docker-default'"):
            apparmor.check("docker-default")


def _proc(tmp_path: Path, *attrs: str) -> Path:
    for attr in attrs:
        path = tmp_path / "thread-self" / "attr" / attr
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


def test_apply_writes_the_exec_attribute(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "apparmor/exec", "exec")
    apparmor.apply("my-profile", str(proc))
    assert (proc / "thread-self/attr/apparmor/exec").read_bytes() == b"exec my-profile"
    assert (proc / "thread-self/attr/exec").read_bytes() == b""  # the LSM's own file first


def test_apply_falls_back_to_the_older_attribute(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "exec")
    apparmor.apply("my-profile", str(proc))
    assert (proc / "thread-self/attr/exec").read_bytes() == b"exec my-profile"


def test_apply_without_any_attribute_names_the_profile(tmp_path: Path) -> None:
    with pytest.raises(apparmor.AppArmorError, match="'my-profile'.*no exec attribute"):
        apparmor.apply("my-profile", str(tmp_path))


def test_no_profile_writes_nothing(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "apparmor/exec")
    apparmor.apply("", str(proc))
    assert (proc / "thread-self/attr/apparmor/exec").read_bytes() == b""


@pytest.mark.parametrize(("profile", "in_spec"), [("my-profile", "my-profile"), ("unconfined", None), ("", None)])
def test_the_bundle_names_the_profile_berthd_picked(profile: str, in_spec: str | None) -> None:
    from berth.runtime import spec

    config = spec.build_config(spec.BundleRequest(
        root="rootfs", args=["true"], env=[], cwd="/", uid=0, gid=0, additional_gids=[], hostname="h", terminal=False,
        security=spec.Security(apparmor=profile)))
    assert config["process"].get("apparmorProfile") == in_spec
