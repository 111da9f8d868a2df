"""OCI bundles and the runtimes that run them, for tests that drive runtimes directly.

A `Lab` owns everything such a test makes: a temp directory holding the bundles (each
with its own busybox rootfs) and one `--root` per runtime, the container ids it handed
out and the cgroup paths the bundles name. `Lab.close()` force-deletes the containers,
removes the cgroups (killing what is left in them), unmounts whatever is left under the
directory and removes it; it returns what it had to clean up, so a test can say "the
runtime left this behind".

    lab = Lab.create()
    berth = lab.runtime("berth")
    bundle = lab.bundle("plain", runc_spec_default(), script=PROBE_SCRIPT)
    result = berth.run(bundle, lab.container_id("plain"))
    ...
    leftovers = lab.close()

The runtimes are berth-runtime (always), runc (when installed) and crun (when
installed and usable here: see `crun_unusable_reason`).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import errno
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .daemon import REPO, VENV_BIN
from .leakcheck import unescape_mountinfo

BERTH_RUNTIME = VENV_BIN / "berth-runtime"
MAKE_ROOTFS = REPO / "scripts" / "make-busybox-rootfs"
BUILT_ROOTFS_TAR = REPO / "build" / "busybox-rootfs.tar"
CGROUP_ROOT = Path("/sys/fs/cgroup")
HUGETLB_V1 = CGROUP_ROOT / "hugetlb"

_made_tar: Path | None = None


def busybox_tar() -> Path:
    """The busybox rootfs tar: scripts/setup's copy, or one made once per process."""
    global _made_tar
    if BUILT_ROOTFS_TAR.exists():
        return BUILT_ROOTFS_TAR
    if _made_tar is None or not _made_tar.exists():
        scratch = tempfile.mkdtemp(prefix="berth-rootfs-", dir="/tmp")
        atexit.register(shutil.rmtree, scratch, True)
        out = Path(scratch) / "busybox-rootfs.tar"
        subprocess.run([str(MAKE_ROOTFS), str(out)], check=True, capture_output=True, timeout=120)
        _made_tar = out
    return _made_tar


def extract_rootfs(dest: Path) -> None:
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(busybox_tar()), "-C", str(dest)], check=True, timeout=60)


def chown_tree(top: Path, owner: tuple[int, int]) -> None:
    """chown -hR: symlinks themselves, never their targets."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), *owner)
    os.lchown(top, *owner)


def runc_spec_default() -> dict[str, Any]:
    """`runc spec`'s config.json (the reference all bundles start from)."""
    with tempfile.TemporaryDirectory(prefix="berth-spec-") as d:
        subprocess.run(["runc", "spec", "--bundle", d], check=True, capture_output=True, timeout=30)
        with open(os.path.join(d, "config.json")) as f:
            config: dict[str, Any] = json.load(f)
    return config


def minimal_config(args: list[str]) -> dict[str, Any]:
    """A small valid bundle config that needs no runc: namespaces, /proc, /dev, no tty."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "lab",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        },
    }  # fmt: skip


# Cgroups (v1 hierarchies, or a v2 mount) as the tests see them.


def cgroup_hierarchies() -> list[Path]:
    """Every cgroup mount under /sys/fs/cgroup (v1 hierarchies, the unified one)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] in ("cgroup", "cgroup2"):
                mp = Path(unescape_mountinfo(fields[4]))
                if mp == CGROUP_ROOT or CGROUP_ROOT in mp.parents:
                    found.append(mp)
    return found


def cgroup_dirs(path: str) -> list[Path]:
    """The directories that exist for cgroupsPath `path` in any hierarchy."""
    rel = path.strip("/")
    return [h / rel for h in cgroup_hierarchies() if rel and (h / rel).is_dir()]


def remove_cgroup(path: str) -> list[str]:
    """Remove a cgroupsPath from every hierarchy, killing what runs in it; returns
    the directories that existed."""
    existed = [str(d) for d in cgroup_dirs(path)]
    for d in cgroup_dirs(path):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _kill_and_rmdir(sub)
        _kill_and_rmdir(d)
    return existed


def _kill_and_rmdir(d: Path) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = unescape_mountinfo(line.split()[4])
            if mp == str(base) or mp.startswith(prefix):
                out.append(mp)
    return out


# crun on a hybrid cgroup host.


HUGETLB_HINT = f"mkdir -p {HUGETLB_V1} && mount -t cgroup -o hugetlb cgroup {HUGETLB_V1}"


def crun_unusable_reason(mount_hugetlb: bool = False) -> str | None:
    """None when crun runs a container here; else why not (for a skip message).

    crun 1.8 refuses a hybrid cgroup layout while a controller (hugetlb, on Debian's
    hybrid systemd layout) is attached only to the v2 hierarchy: "cgroups in hybrid
    mode not supported, drop all controllers from cgroupv2". Mounting hugetlb as a v1
    hierarchy moves it off v2, and crun runs. With mount_hugetlb, a missing mount is
    made and left in place (it is harmless); tests do not ask for it, because a
    session's leak check would count the new mount as left behind, so they skip
    crun and say how to enable it.
    """
    if shutil.which("crun") is None:
        return "crun is not installed (apt-get install crun)"
    first = _probe_crun()
    if first is None:
        return None
    if "hybrid mode" in first:
        if not mount_hugetlb:
            return f"crun refuses this hybrid cgroup layout ({first}); enable it with: {HUGETLB_HINT}"
        if _mount_hugetlb_v1():
            again = _probe_crun()
            return None if again is None else f"crun does not run a container here: {again}"
    return f"crun does not run a container here: {first}"


def _mount_hugetlb_v1() -> bool:
    if os.path.ismount(HUGETLB_V1):
        return False
    try:
        controllers = (CGROUP_ROOT / "unified" / "cgroup.controllers").read_text().split()
    except OSError:
        return False
    if "hugetlb" not in controllers:
        return False
    HUGETLB_V1.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB_V1)],
                       capture_output=True, timeout=10)  # fmt: skip
    return r.returncode == 0


def _probe_crun() -> str | None:
    lab = Lab.create(prefix="berth-crunprobe-")
    try:
        crun = lab.runtime("crun")
        bundle = lab.bundle("probe", minimal_config(["true"]))
        r = crun.run(bundle, lab.container_id("probe"))
        if r.returncode == 0:
            return None
        return (r.stderr.strip() or f"exit {r.returncode}").splitlines()[-1]
    finally:
        lab.close()


# Runtimes and the lab.


@dataclass
class Runtime:
    name: str
    binary: str
    root: Path
    lab: Lab

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def cmd(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run the runtime; stdout and stderr are captured as text.

        A container made by `create` or `run -d` keeps the runtime's stdio for its
        own, so those two get files, not pipes (a pipe would stay open, and this
        call would wait for the container to exit); the other commands get pipes.
        """
        if args and args[0] in ("create", "run"):
            self.lab.track(self, args[-1])
        detached = bool(args) and (args[0] == "create" or (args[0] == "run" and (
            "-d" in args or "--detach" in args)))  # fmt: skip
        if not detached:
            return subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout)  # fmt: skip
        with tempfile.TemporaryFile("w+", dir=self.lab.dir) as out, \
                tempfile.TemporaryFile("w+", dir=self.lab.dir) as err:  # fmt: skip
            r = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                               timeout=timeout)  # fmt: skip
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())

    def run(self, bundle: Path, cid: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.cmd("run", "--bundle", str(bundle), cid, timeout=timeout)

    def state(self, cid: str) -> dict[str, Any]:
        r = self.cmd("state", cid)
        assert r.returncode == 0, f"{self.name} state {cid}: {r.stderr.strip()}"
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc


_BINARIES = {"berth": str(BERTH_RUNTIME), "runc": "runc", "crun": "crun"}


@dataclass
class Lab:
    dir: Path
    runtimes: dict[str, Runtime] = field(default_factory=dict)
    containers: list[tuple[Runtime, str]] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, prefix: str = "berth-lab-") -> Lab:
        lab = cls(Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")))
        lab.dir.chmod(0o711)  # a container's root in a user namespace must reach its rootfs
        return lab

    def runtime(self, name: str) -> Runtime:
        if name not in self.runtimes:
            root = self.dir / f"root-{name}"
            self.runtimes[name] = Runtime(name, _BINARIES[name], root, self)
        return self.runtimes[name]

    def container_id(self, label: str) -> str:
        return f"berth-lab-{label}-{secrets.token_hex(4)}"

    def cgroup_path(self, label: str) -> str:
        path = f"/berth-lab-{label}-{secrets.token_hex(4)}"
        self.cgroups.append(path)
        return path

    def track(self, runtime: Runtime, cid: str) -> None:
        self.containers.append((runtime, cid))

    def bundle(self, label: str, config: dict[str, Any], *, script: str | None = None,
               owner: tuple[int, int] | None = None) -> Path:  # fmt: skip
        """A fresh bundle directory with its own rootfs; `script` becomes /probe.sh."""
        path = Path(tempfile.mkdtemp(prefix=f"bundle-{label}-", dir=self.dir))
        path.chmod(0o711)
        rootfs = path / "rootfs"
        extract_rootfs(rootfs)
        if script is not None:
            probe = rootfs / "probe.sh"
            probe.write_text(script)
            probe.chmod(0o755)
        if owner is not None:
            chown_tree(rootfs, owner)
        config = copy.deepcopy(config)
        config["root"]["path"] = "rootfs"
        (path / "config.json").write_text(json.dumps(config, indent=2))
        return path

    def close(self) -> list[str]:
        """Remove everything; returns what had to be cleaned up after the runtimes."""
        left: list[str] = []
        for runtime, cid in self.containers:
            if (runtime.root / cid).exists():
                left.append(f"{runtime.name}: container {cid} was not deleted")
                subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True,
                               timeout=30)  # fmt: skip
        for path in self.cgroups:
            left += [f"cgroup {d}" for d in remove_cgroup(path)]
        for proc in processes_under(self.dir):
            left.append(f"process {proc}")
            try:
                os.kill(int(proc.split()[1].rstrip(":")), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mp in sorted(mounts_under(self.dir), key=len, reverse=True):
            left.append(f"mount {mp}")
            subprocess.run(["umount", "-l", mp], capture_output=True, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
        return left


@contextlib.contextmanager
def open_lab(prefix: str) -> Iterator[Lab]:
    """A Lab for a test (or module), failing it if the runtimes left anything behind."""
    lab = Lab.create(prefix=prefix)
    yield lab
    leftovers = lab.close()
    assert not leftovers, "the runtimes left behind:\n" + "\n".join(leftovers)


# Processes.


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def processes_under(base: Path) -> list[str]:
    """Live processes rooted in a rootfs below base (a container's, found by the inode
    of their root: a pivoted root reads as "/"), or whose working directory or command
    line is under base (a runtime working on it)."""
    prefix = str(base).rstrip("/") + "/"
    roots = set()
    for rootfs in base.glob("*/rootfs"):
        st = rootfs.stat()
        roots.add((st.st_dev, st.st_ino))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            root = os.stat(f"/proc/{pid}/root")
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if not pid_alive(pid):
            continue
        if (root.st_dev, root.st_ino) in roots or cwd.startswith(prefix) or prefix in cmdline:
            found.append(f"pid {pid}: {cmdline}")
    return found
