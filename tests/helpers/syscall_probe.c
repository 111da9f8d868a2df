/* Makes the system calls named on its command line and prints, for each, "NAME ERRNO"
 * (0 when the call succeeded). Built static by tests/e2e/test_seccomp_default.py with
 * `gcc -static` and bind-mounted into a busybox container, whose shell cannot make
 * these calls itself. Every call is harmless, even run on the host as root: its
 * arguments make it fail (or, for unshare, only leave the probe in a UTS namespace of its
 * own) once past the seccomp filter. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name) {
    if (!strcmp(name, "keyctl")) /* KEYCTL_GET_KEYRING_ID of the thread keyring, no create */
        return syscall(SYS_keyctl, 0, -1, 0);
    if (!strcmp(name, "add_key"))
        return syscall(SYS_add_key, "", "berth-probe", "x", 1, -2); /* no such key type: EINVAL once allowed */
    if (!strcmp(name, "unshare"))
        return unshare(CLONE_NEWUTS);
    if (!strcmp(name, "mount")) /* on a path that does not exist: ENOENT once allowed */
        return mount("none", "/nonexistent/berth-syscall-probe", "tmpfs", 0, NULL);
    if (!strcmp(name, "umount2"))
        return umount2("/nonexistent", 0);
    if (!strcmp(name, "setns"))
        return syscall(SYS_setns, -1, 0);
    if (!strcmp(name, "socket_vsock")) {
        long fd = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
        if (fd >= 0) close(fd);
        return fd;
    }
    if (!strcmp(name, "socket_inet")) {
        long fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0) close(fd);
        return fd;
    }
    if (!strcmp(name, "personality_bsd")) /* PER_BSD: not one Docker's profile allows */
        return syscall(SYS_personality, 0x0006) < 0 ? -1 : 0;
    if (!strcmp(name, "userfaultfd")) {
        long fd = syscall(SYS_userfaultfd, 0);
        if (fd >= 0) close(fd);
        return fd;
    }
    if (!strcmp(name, "ptrace")) /* PTRACE_PEEKDATA of pid 0: ESRCH once allowed */
        return syscall(SYS_ptrace, 2, 0, 0, 0);
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long rc = call(argv[i]);
        if (rc == -2) {
            fprintf(stderr, "syscall_probe: unknown call %s\n", argv[i]);
            return 2;
        }
        printf("%s %d\n", argv[i], rc < 0 ? errno : 0);
    }
    return 0;
}
