"""A container's mounts, from what the user asked to the list it gets, with Docker's rules.

Four sources feed it, in Docker's order of precedence (a later one replaces an earlier
one at the same destination, except that two explicit mounts at one destination are
an error): `--volumes-from`, `-v`/`Binds`, `--mount`/`Mounts`, then the image's and
the config's `VOLUME`s, which become anonymous volumes where nothing else is mounted.
`--tmpfs` (HostConfig.Tmpfs) is not a mount point (Docker does not list it in
`Mounts`) but it still hides an image VOLUME at its path.

Pure functions on records: no volume is created and nothing is mounted here.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable

from berth.containers.model import Container, MountPoint, MountSpec
from berth.errors import InvalidParameter
from berth.volumes.drivers import VOLUME_NAME_RE

PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
CONSISTENCY = ("consistent", "cached", "delegated")
LABELS = ("z", "Z")


def _valid_target(target: str, kind: str, spec: str = "") -> str:
    prefix = f"invalid volume specification: '{spec}': " if spec else ""
    if not target:
        raise InvalidParameter(f'{prefix}invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise InvalidParameter(f"{prefix}invalid mount config for type \"{kind}\": invalid mount path: "
                               f"'{target}' mount path must be absolute")
    if posixpath.normpath(target) == "/":
        raise InvalidParameter(f"{prefix}invalid mount config for type \"{kind}\": invalid specification: "
                               "destination can't be '/'")
    return posixpath.normpath(target)


def _parse_mode(mode: str, spec: str) -> tuple[bool, str, bool]:
    """(rw, propagation, copy) of a `-v` mode such as "ro,z" or "rshared"."""
    rw, propagation, copy = True, "", True
    seen_rw = seen_label = seen_consistency = False
    for part in mode.split(",") if mode else []:
        if part in ("ro", "rw") and not seen_rw:
            rw, seen_rw = part == "rw", True
        elif part in PROPAGATIONS and not propagation:
            propagation = part
        elif part in LABELS and not seen_label:
            seen_label = True
        elif part in CONSISTENCY and not seen_consistency:
            seen_consistency = True
        elif part == "nocopy" and copy:
            copy = False
        else:
            raise InvalidParameter(f"invalid mode: {mode}")
    return rw, propagation, copy


def parse_bind(spec: str, volume_driver: str = "") -> MountPoint:
    """One `-v`/`Binds` entry: SRC:DST[:MODE] (SRC a host path or a volume name) or DST."""
    parts = spec.split(":")
    if len(parts) > 3 or not all(parts[:2]) or not spec:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        target = _valid_target(parts[0], "volume", spec)
        return MountPoint("volume", target, driver=volume_driver or "local")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    rw, propagation, copy = _parse_mode(mode, spec)
    if source.startswith("/"):
        target = _valid_target(target, "bind", spec)
        if not copy:
            raise InvalidParameter(f"invalid volume specification: '{spec}': nocopy is only for volumes")
        return MountPoint("bind", target, source=posixpath.normpath(source), mode=mode, rw=rw,
                          propagation=propagation or "rprivate", create_source=True)
    target = _valid_target(target, "volume", spec)
    if not VOLUME_NAME_RE.match(source):
        raise InvalidParameter(
            f'create {source}: "{source}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
    if propagation:
        raise InvalidParameter(f"invalid volume specification: '{spec}': propagation is only for bind mounts")
    return MountPoint("volume", target, name=source, driver=volume_driver or "local", mode=mode or "z",
                      rw=rw, copy_data=copy)


def from_spec(m: MountSpec) -> MountPoint:
    """One `--mount`/`Mounts` entry, validated as Docker's daemon does."""
    kind = m.type
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("npipe", "cluster", "image"):
            raise InvalidParameter(f'invalid mount config for type "{kind}": mount type not supported by berth')
        raise InvalidParameter(f'invalid mount config for type "{kind}": mount type unknown')
    target = _valid_target(m.target, kind)

    def refuse(field_name: str) -> None:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field {field_name} must not be specified')

    if kind != "bind" and m.has_bind_options:
        refuse("BindOptions")
    if kind != "volume" and m.has_volume_options:
        refuse("VolumeOptions")
    if kind != "tmpfs" and m.has_tmpfs_options:
        refuse("TmpfsOptions")
    if kind == "bind":
        if not m.source:
            raise InvalidParameter('invalid mount config for type "bind": field Source must not be empty')
        if not m.source.startswith("/"):
            raise InvalidParameter(f"invalid mount config for type \"bind\": invalid mount path: "
                                   f"'{m.source}' mount path must be absolute")
        if not os.path.exists(m.source) and not m.bind_create_mountpoint:
            raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: {m.source}')
        propagation = m.bind_propagation or "rprivate"
        if propagation not in PROPAGATIONS:
            raise InvalidParameter(f'invalid mount config for type "bind": invalid propagation mode: {propagation}')
        return MountPoint("bind", target, source=posixpath.normpath(m.source), rw=not m.read_only,
                          propagation=propagation, create_source=m.bind_create_mountpoint)
    if kind == "tmpfs":
        if m.source:
            refuse("Source")
        if m.tmpfs_size < 0:
            raise InvalidParameter('invalid mount config for type "tmpfs": invalid tmpfs size')
        return MountPoint("tmpfs", target, rw=not m.read_only, tmpfs_size=m.tmpfs_size, tmpfs_mode=m.tmpfs_mode)
    if m.source and not VOLUME_NAME_RE.match(m.source):
        raise InvalidParameter(
            f'create {m.source}: "{m.source}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
    if m.volume_subpath:
        if not m.source:
            raise InvalidParameter('invalid mount config for type "volume": '
                                   "must not set Subpath when using anonymous volumes")
        if not _is_local(m.volume_subpath):
            raise InvalidParameter('invalid mount config for type "volume": '
                                   "subpath must be a relative path within the volume")
    return MountPoint("volume", target, name=m.source, driver=m.volume_driver or "local", rw=not m.read_only,
                      copy_data=not m.volume_no_copy, volume_options=dict(m.volume_driver_options),
                      volume_labels=dict(m.volume_labels), subpath=m.volume_subpath)


def _is_local(path: str) -> bool:
    """Go's filepath.IsLocal: relative, not empty, and not leaving its base lexically."""
    if not path or path.startswith("/"):
        return False
    clean = posixpath.normpath(path)
    return clean != ".." and not clean.startswith("../")


def parse_volumes_from(entry: str) -> tuple[str, str]:
    """"name[:ro|rw]" as (container, mode)."""
    name, _, mode = entry.partition(":")
    if mode not in ("", "ro", "rw") or not name:
        raise InvalidParameter(f"invalid mode: {mode}" if name else f"invalid volumes-from specification: '{entry}'")
    return name, mode


def plan(binds: Iterable[str], specs: Iterable[MountSpec], volumes: Iterable[str],
         inherited: Iterable[tuple[Container, str]], tmpfs: Iterable[str],
         volume_driver: str = "") -> list[MountPoint]:
    """The container's mount points, in Docker's precedence; duplicates refused."""
    points: dict[str, MountPoint] = {}
    for other, mode in inherited:
        for mp in other.mounts:
            if mp.type == "tmpfs":
                continue
            copied = MountPoint(**{**mp.__dict__})
            copied.volume_options = {}
            if mode:
                copied.rw = mode == "rw"
            copied.create_source = False
            points[copied.destination] = copied
    explicit: set[str] = set()
    for spec in binds:
        mp = parse_bind(spec, volume_driver)
        if mp.destination in explicit:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        explicit.add(mp.destination)
        points[mp.destination] = mp
    for m in specs:
        mp = from_spec(m)
        if mp.destination in explicit:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        explicit.add(mp.destination)
        points[mp.destination] = mp
    hidden = {posixpath.normpath(t) for t in tmpfs}
    for path in volumes:
        target = _valid_target(path, "volume")
        if target in points or target in hidden:
            continue
        points[target] = MountPoint("volume", target, driver=volume_driver or "local")
    return sorted(points.values(), key=lambda mp: (mp.destination.count("/"), mp.destination))
