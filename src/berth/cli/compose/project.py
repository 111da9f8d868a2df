"""What every `berth compose` subcommand gets: the project (loaded from the files the
project flags name, or only its name when a command can do without files), the API
client, and a progress writer like compose v2's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.cli.context import CliContext, CliExit
from berth.cli.flags import FlagSet, ParsedFlags
from berth.cli.streams import is_terminal
from berth.client.engine import Client
from berth.compose import Project, ProjectOptions, load_project, normalize_project_name
from berth.compose.engine.progress import Progress, progress_for
from berth.errors import BerthError


@dataclass
class Subcommand:
    name: str
    use: str  # "up [OPTIONS] [SERVICE...]"
    short: str
    flags: Callable[[], FlagSet]
    run: Callable[[ComposeContext, ParsedFlags], int]
    interspersed: bool = True
    hidden: bool = False
    aliases: list[str] = field(default_factory=list)


class ComposeContext:
    def __init__(self, cli: CliContext, top: ParsedFlags) -> None:
        self.cli = cli
        self.top = top
        self._project: Project | None = None

    @property
    def client(self) -> Client:
        return self.cli.client

    @property
    def env_files(self) -> list[str]:
        return [os.path.abspath(f) for f in self.top["env-file"]]

    def options(self, profiles: list[str] | None = None) -> ProjectOptions:
        files = list(self.top["file"])
        return ProjectOptions(
            config_files=files, project_name=self.top["project-name"] or None,
            project_directory=self.top["project-directory"] or None,
            env_files=list(self.top["env-file"]),
            profiles=list(self.top["profile"]) if profiles is None else profiles,
            environment=dict(os.environ), working_directory=os.getcwd(),
            stdin_content=sys.stdin.buffer.read() if "-" in files else None)

    def project(self, profiles: list[str] | None = None) -> Project:
        """The project from its files; a loading error ends the command (exit 1)."""
        if self._project is None:
            try:
                self._project = load_project(self.options(profiles))
            except BerthError as exc:
                raise CliExit(str(exc), 1) from None
            for warning in self._project.warnings:
                self.cli.err(f"WARN[0000] {warning}")
        return self._project

    def project_or_name(self) -> tuple[Project | None, str]:
        """Compose v2's projectOrName, for the commands that can work on a project by name
        alone (`down`, `ps`, `logs`, `stop`…): with -p and no -f, only the name (the
        files in the working directory are not read); else the project from its files,
        or, when they cannot be loaded, the name COMPOSE_PROJECT_NAME gives."""
        if self.top["project-name"] and not self.top["file"]:
            return None, normalize_project_name(self.top["project-name"])
        try:
            project = self.project()
        except CliExit:
            given = os.environ.get("COMPOSE_PROJECT_NAME", "")
            if given:
                return None, normalize_project_name(given)
            raise
        return project, project.name

    def progress(self, title: str) -> Progress:
        mode = self.top["progress"]
        if mode not in ("auto", "tty", "plain", "quiet", "json"):
            raise CliExit(f"unsupported --progress value {mode!r}", 1)
        tty = mode == "tty" or (mode == "auto" and is_terminal(2) and self.top["ansi"] != "never")
        return progress_for(sys.stderr, tty=tty, title=title, quiet=mode == "quiet")
