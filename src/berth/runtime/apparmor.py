"""AppArmor confinement of a container's processes, where the kernel has it.

As runc does: a process's `apparmorProfile` (a profile already loaded into the kernel)
becomes its exec profile: "exec NAME" is written to /proc/thread-self/attr/apparmor/exec
(on older kernels .../attr/exec) just before the process drops its privileges, and the
kernel confines it from its execve on. A bundle that names a profile on a host without
AppArmor is refused before anything is made, naming the field (runc gets as far as the
write and fails there). berthd asks for a profile (`--security-opt apparmor=NAME`) only
where AppArmor is enabled and ignores the option elsewhere, as dockerd does.
"""

from __future__ import annotations

import os

SECURITYFS = "/sys/kernel/security/apparmor"
ENABLED_PARAMETER = "/sys/module/apparmor/parameters/enabled"
UNCONFINED = "unconfined"


class AppArmorError(Exception):
    pass


def enabled(securityfs: str = SECURITYFS, parameter: str = ENABLED_PARAMETER) -> bool:
    """runc's test: AppArmor's securityfs is there and the module says Y."""
    if not os.path.isdir(securityfs):
        return False
    try:
        with open(parameter, "rb") as f:
            return f.read(1) == b"Y"
    except OSError:
        return False


def check(profile: str, field: str = "process.apparmorProfile") -> None:
    """Refuse a profile this host cannot apply."""
    if profile and not enabled():
        raise AppArmorError(f"{field}: {profile!r} cannot be applied: AppArmor is not enabled on this host")


def apply(profile: str, proc: str = "/proc") -> None:
    """Make `profile` the calling thread's exec profile; its next execve enters it."""
    if not profile:
        return
    for attr in ("thread-self/attr/apparmor/exec", "thread-self/attr/exec"):
        path = os.path.join(proc, attr)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise AppArmorError(f"apparmor profile {profile!r}: {path}: {e.strerror}") from None
        try:
            os.write(fd, b"exec " + profile.encode())
        except OSError as e:  # EINVAL/ENOENT: no such profile loaded
            raise AppArmorError(f"apparmor profile {profile!r} cannot be applied: {e.strerror}") from None
        finally:
            os.close(fd)
        return
    raise AppArmorError(f"apparmor profile {profile!r}: {proc}/thread-self/attr has no exec attribute")
