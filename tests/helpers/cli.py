"""Running the command-line clients (the real docker CLI, berth) against a daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path


class Cli:
    """Runs one command-line client with a fixed environment (DOCKER_HOST and so on)."""

    def __init__(self, program: str, env: dict[str, str]) -> None:
        self.program = program
        self.env = env

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        # Bytes, decoded here: text=True would turn a terminal's "\r\n" into "\n".
        raw = subprocess.run(
            [self.program, *args],
            input=input.encode() if input is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=self.env,
            timeout=timeout,
        )
        return subprocess.CompletedProcess(
            raw.args,
            raw.returncode,
            raw.stdout.decode("utf-8", "replace"),
            raw.stderr.decode("utf-8", "replace"),
        )

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        """Run, require exit status 0, and return stdout."""
        res = self(*args, input=input, timeout=timeout)
        assert res.returncode == 0, describe(res)
        return res.stdout


def describe(res: subprocess.CompletedProcess[str]) -> str:
    """A failed command, for an assertion message."""
    args = " ".join(map(str, res.args))
    return f"`{args}` exited {res.returncode}\nstdout: {res.stdout!r}\nstderr: {res.stderr!r}"


def import_image(
    docker: Cli, tar: Path, ref: str, *changes: str
) -> subprocess.CompletedProcess[str]:
    """`docker import` a rootfs tar with CMD ["sh"] and any further --change lines."""
    args = ["import", "--change", 'CMD ["sh"]']
    for change in changes:
        args += ["--change", change]
    return docker(*args, str(tar), ref, timeout=120)
