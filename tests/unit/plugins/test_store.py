"""The plugins' directories under the data root: whatever step a create, upgrade or
remove was killed at, the next start finds one whole plugin or none."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from berth.errors import SystemError_
from berth.plugins.model import Plugin, PluginSettings, parse_config
from berth.plugins.store import PluginStore, split_context

CONFIG = {"Entrypoint": ["/bin/p"], "Interface": {"Socket": "p.sock", "Types": ["docker.volumedriver/1.0"]}}


def plugin(plugin_id: str, description: str) -> Plugin:
    config = parse_config({**CONFIG, "Description": description})
    return Plugin(plugin_id, "p:latest", False, config, PluginSettings.initial(config))


def test_an_upgrade_killed_before_or_after_the_swap_leaves_one_plugin(tmp_path: Path) -> None:
    store = PluginStore(str(tmp_path))
    pid = "a" * 64
    work = store.new_workdir()
    store.commit(work, plugin(pid, "one"))
    # killed with the new version staged beside the old: the old one stays
    staged = store.new_workdir()
    store.commit(staged, plugin("b" * 64, "x"))
    (tmp_path / ("b" * 64)).rename(tmp_path / f"{pid}-upgrade")
    assert [p.config.description for p in PluginStore(str(tmp_path)).load()] == ["one"]
    assert sorted(x.name for x in tmp_path.iterdir()) == [pid]
    # killed after the old one was moved away: the staged one is finished
    store.replace(store.new_workdir(), plugin(pid, "two"))
    assert [p.config.description for p in PluginStore(str(tmp_path)).load()] == ["two"]
    (tmp_path / pid).rename(tmp_path / f"{pid}-upgrade")
    loaded = PluginStore(str(tmp_path)).load()
    assert [(p.id, p.config.description) for p in loaded] == [(pid, "two")]
    # a create or remove cut short leaves nothing
    (tmp_path / "tmp-half").mkdir()
    (tmp_path / f"{'c' * 64}-removing").mkdir()
    assert [p.id for p in PluginStore(str(tmp_path)).load()] == [pid]
    assert sorted(x.name for x in tmp_path.iterdir()) == [pid]


def _context(entries: dict[str, bytes], links: dict[str, str] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_the_create_context_is_checked_as_dockerd_checks_it(tmp_path: Path) -> None:
    with pytest.raises(SystemError_, match="^no rootfs found: EOF$"):
        split_context(_context({"config.json": json.dumps(CONFIG).encode()}), str(tmp_path / "a"))
    with pytest.raises(SystemError_, match="^config not found$"):
        split_context(_context({"rootfs/bin/p": b"x"}), str(tmp_path / "b"))
    # a file written through a symlink that leads out of the rootfs is refused
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(SystemError_, match="outside the destination"):
        split_context(_context({"config.json": b"{}", "rootfs/out/escape": b"x"}, {"rootfs/out": str(outside)}),
                      str(tmp_path / "c"))
    assert list(outside.iterdir()) == []
    raw, digest, size = split_context(_context({"config.json": b"{}", "rootfs/bin/p": b"x"}), str(tmp_path / "d"))
    assert raw == b"{}" and (tmp_path / "d" / "rootfs" / "bin" / "p").read_bytes() == b"x"
    assert (tmp_path / "d" / "blobs" / digest.replace(":", "-")).stat().st_size == size
