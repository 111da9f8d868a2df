"""`berth compose` commands that change a project: up, create, start, stop, restart,
kill, pause, unpause, rm, down, run, build, pull, push, scale, wait — Compose v2's flags,
progress lines and exit codes, over the engine in berth.compose.engine.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from berth.cli.compose.project import ComposeContext, Subcommand
from berth.cli.container import start_attached
from berth.cli.context import CliExit
from berth.cli.flags import FlagSet, ParsedFlags
from berth.client import credentials
from berth.client.engine import APIError, ClientError, iter_json_stream
from berth.compose.engine import convert, lifecycle
from berth.compose.engine import labels as L
from berth.compose.engine.lifecycle import Target
from berth.compose.engine.observed import list_containers
from berth.compose.engine.progress import Progress
from berth.compose.engine.up import (
    RECREATE_DIVERGED,
    RECREATE_FORCE,
    RECREATE_NEVER,
    Compose,
    ComposeError,
    CreateOptions,
    StartOptions,
)
from berth.compose.model import Project
from berth.images.reference import ReferenceError, parse_normalized

# -- shared ------------------------------------------------------------------------------


def _fail(exc: Exception) -> CliExit:
    if isinstance(exc, APIError):
        return CliExit(f"Error response from daemon: {exc.message}", 1)
    return CliExit(str(exc), 1)


def _engine(ctx: ComposeContext, project: Project, progress: Progress, *, quiet_build: bool = True) -> Compose:
    """The project's engine, with the command line's env files and credentials; build
    output goes to stderr unless `quiet_build`."""
    return Compose(ctx.client, project, progress, env_files=ctx.env_files, config_dir=ctx.cli.config,
                   build_output=_build_output(ctx, quiet_build))


def _target(ctx: ComposeContext, progress: Progress) -> Target:
    project, name = ctx.project_or_name()
    return Target(ctx.client, name, project, progress)


def _run_with(progress: Progress, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (ComposeError, ClientError) as exc:
        raise _fail(exc) from None
    finally:
        progress.close()


def _scale_pairs(items: list[str]) -> dict[str, int]:
    scale: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise CliExit(f"invalid --scale option {item!r}. Should be SERVICE=NUM", 1)
        scale[name] = int(count)
    return scale


def _timeout(flags: ParsedFlags) -> int | None:
    return flags["timeout"] if "timeout" in flags.changed else None


def _create_flags(f: FlagSet) -> None:
    f.add("build", "", "bool", "Build images before starting containers")
    f.add("no-build", "", "bool", "Don't build an image, even if it's policy")
    f.add("force-recreate", "", "bool", "Recreate containers even if their configuration and image haven't changed")
    f.add("no-recreate", "", "bool", "If containers already exist, don't recreate them. Incompatible with --force-recreate.")
    f.add("always-recreate-deps", "", "bool", "Recreate dependent containers. Incompatible with --no-recreate.")
    f.add("remove-orphans", "", "bool", "Remove containers for services not defined in the Compose file")
    f.add("pull", "", "string", 'Pull image before running ("always"|"missing"|"never"|"build")', "policy")
    f.add("quiet-pull", "", "bool", "Pull without printing progress information")
    f.add("scale", "", "stringArray", "Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose file if present.")
    f.add("renew-anon-volumes", "V", "bool", "Recreate anonymous volumes instead of retrieving data from the previous containers")
    f.add("yes", "y", "bool", 'Assume "yes" as answer to all prompts and run non-interactively')


def _create_options(flags: ParsedFlags, services: list[str]) -> CreateOptions:
    if flags["force-recreate"] and flags["no-recreate"]:
        raise CliExit("--force-recreate and --no-recreate are incompatible", 1)
    if flags["build"] and flags["no-build"]:
        raise CliExit("--build and --no-build are incompatible", 1)
    recreate = RECREATE_FORCE if flags["force-recreate"] else RECREATE_NEVER if flags["no-recreate"] else RECREATE_DIVERGED
    deps = RECREATE_FORCE if flags.get("always-recreate-deps") else RECREATE_NEVER if flags["no-recreate"] else RECREATE_DIVERGED
    pull = flags["pull"]
    if pull not in ("policy", "always", "missing", "never", "build", "daily", "weekly"):
        raise CliExit(f"invalid --pull option {pull!r}", 1)
    return CreateOptions(
        services=services, recreate=recreate, recreate_dependencies=deps,
        remove_orphans=flags["remove-orphans"] or os.environ.get("COMPOSE_REMOVE_ORPHANS", "") in ("1", "true"),
        ignore_orphans=os.environ.get("COMPOSE_IGNORE_ORPHANS", "") in ("1", "true", "True"),
        build=True if flags["build"] else False if flags["no-build"] else None,
        pull=None if pull == "policy" else pull, quiet_pull=flags["quiet-pull"],
        inherit=not flags["renew-anon-volumes"], timeout=_timeout(flags) if "timeout" in flags.values else None,
        scale=_scale_pairs(flags["scale"]), no_deps=bool(flags.get("no-deps")))


def _build_output(ctx: ComposeContext, quiet: bool) -> Callable[[str], None]:
    def write(text: str) -> None:
        if not quiet:
            sys.stderr.write(text)
            sys.stderr.flush()
    return write


# -- up / create / start ------------------------------------------------------------------


def _up_flags() -> FlagSet:
    f = FlagSet()
    _create_flags(f)
    f.add("detach", "d", "bool", "Detached mode: Run containers in the background")
    f.add("no-start", "", "bool", "Don't start the services after creating them")
    f.add("no-deps", "", "bool", "Don't start linked services")
    f.add("wait", "", "bool", "Wait for services to be running|healthy. Implies detached mode.")
    f.add("wait-timeout", "", "int", "Maximum duration in seconds to wait for the project to be running|healthy", 0)
    f.add("abort-on-container-exit", "", "bool", "Stops all containers if any container was stopped. Incompatible with -d")
    f.add("abort-on-container-failure", "", "bool", "Stops all containers if any container exited with failure. Incompatible with -d")
    f.add("exit-code-from", "", "string", "Return the exit code of the selected service container. Implies --abort-on-container-exit")
    f.add("attach", "", "stringArray", "Restrict attaching to the specified services. Incompatible with --attach-dependencies.")
    f.add("no-attach", "", "stringArray", "Do not attach (stream logs) to the specified services")
    f.add("attach-dependencies", "", "bool", "Automatically attach to log output of dependent services")
    f.add("no-color", "", "bool", "Produce monochrome output")
    f.add("no-log-prefix", "", "bool", "Don't print prefix in logs")
    f.add("timestamps", "", "bool", "Show timestamps")
    f.add("quiet-build", "", "bool", "Suppress the build output")
    f.add("timeout", "t", "int", "Use this timeout in seconds for container shutdown when attached or when containers are already running", 0)
    f.add("menu", "", "bool", "Enable interactive shortcuts when running attached.", hidden=True)
    f.add("watch", "w", "bool", "Watch source code and rebuild/refresh containers when files are updated.", hidden=True)
    return f


def run_up(ctx: ComposeContext, flags: ParsedFlags) -> int:
    services = flags.args
    detach = flags["detach"] or flags["wait"]
    exit_from = flags["exit-code-from"]
    abort = flags["abort-on-container-exit"] or bool(exit_from)
    if detach and (abort or flags["abort-on-container-failure"]):
        raise CliExit("--abort-on-container-exit and --detach are incompatible", 1)
    if flags["no-start"] and (detach and flags["wait"]):
        raise CliExit("--no-start and --wait are incompatible", 1)
    options = _create_options(flags, services)
    project = ctx.project()
    if exit_from and exit_from not in project.services:
        raise CliExit(f"no such service: {exit_from}", 1)
    progress = ctx.progress("Running")
    engine = _engine(ctx, project, progress, quiet_build=flags["quiet-build"])

    def converge() -> list[str]:
        names = engine.create(options)
        if not flags["no-start"]:
            engine.start(StartOptions(services=services if options.no_deps else names, wait=flags["wait"],
                                      wait_timeout=flags["wait-timeout"] or None))
        return names

    if detach or flags["no-start"]:
        _run_with(progress, converge)
        return 0
    names = _run_with(progress, lambda: engine.create(options))
    return _attached(ctx, engine, names, flags, abort, exit_from)


def _attached(ctx: ComposeContext, engine: Compose, names: list[str], flags: ParsedFlags,
              abort: bool, exit_from: str) -> int:
    """`up` without -d: attach to the containers, start the project, print every
    container's output with its prefix until they have all stopped. Ctrl-C stops the
    project (a second one kills it); --abort-on-container-exit stops it when a container
    exits, --exit-code-from SERVICE returns that service's exit code."""
    from berth.compose.engine.logs import (
        LogFollower,
        LogOptions,
        LogPrinter,
        LogSource,
        container_log_name,
    )

    project = engine.project
    if flags["attach"]:
        attach_to = list(flags["attach"])
    elif flags["attach-dependencies"] or not flags.args:
        attach_to = names
    else:
        attach_to = list(flags.args)
    attach_to = [n for n in attach_to if n not in flags["no-attach"]]
    containers = [c for n in attach_to for c in engine.containers_of(n)]
    printer = LogPrinter(sys.stdout.buffer, color=not flags["no-color"] and sys.stdout.isatty(),
                         prefix=not flags["no-log-prefix"], timestamps=flags["timestamps"])
    log_names = {c.id: container_log_name(c.name, project.name, c.service, c.number) for c in containers}
    for c in containers:
        printer.register(log_names[c.id])
    by_id = {c.id: c for c in containers}
    stopping = threading.Event()
    exit_codes: dict[str, int] = {}
    first_exit: list[str] = []

    ended: set[str] = set()

    def on_end(source: Any, error: Any) -> None:
        ended.add(source.id)
        if stopping.is_set() and error is not None:
            return
        try:
            state = ctx.client.get_json(f"/containers/{source.id}/json").get("State") or {}
        except ClientError:
            return
        if state.get("Running"):
            return
        code = int(state.get("ExitCode", 0))
        container = by_id[source.id]
        exit_codes.setdefault(container.service, code)
        printer.status(source.name, f"exited with code {code}")
        if not first_exit:
            first_exit.append(container.service)
        if (abort and (not exit_from or container.service == exit_from)) or \
                (flags["abort-on-container-failure"] and code != 0):
            stopping.set()

    follower = LogFollower(ctx.client, printer, LogOptions(follow=True, timestamps=flags["timestamps"]),
                           on_end=on_end)
    ctx.cli.out("Attaching to " + ", ".join(log_names[c.id] for c in containers))
    for c in containers:
        follower.add(LogSource(c.id, log_names[c.id]), attach=True)
    interrupts: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        interrupts.append(signum)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        progress = ctx.progress("Running")
        _run_with(progress, lambda: engine.start(StartOptions(services=names)))
        while not stopping.wait(0.2):
            if len(ended) == len(containers):
                break
        if stopping.is_set():
            if interrupts:
                ctx.cli.out("Gracefully Stopping... press Ctrl+C again to force")
            else:
                ctx.cli.out("Aborting on container exit...")
            stop_progress = ctx.progress("Stopping")
            target = Target(ctx.client, project.name, project, stop_progress)
            signal.signal(signal.SIGINT, lambda *_: lifecycle.kill(
                Target(ctx.client, project.name, project, Progress()), names))
            _run_with(stop_progress, lambda: lifecycle.stop(target, names, _timeout(flags)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        follower.close()
    if exit_from:
        return exit_codes.get(exit_from, 0)
    if abort and first_exit:
        return exit_codes.get(first_exit[0], 0)
    if interrupts:
        return 130
    return 0


def _create_cmd_flags() -> FlagSet:
    f = FlagSet()
    _create_flags(f)
    f.add("quiet-build", "", "bool", "Suppress the build output", hidden=True)
    return f


def run_create(ctx: ComposeContext, flags: ParsedFlags) -> int:
    options = _create_options(flags, flags.args)
    progress = ctx.progress("Creating")
    engine = _engine(ctx, ctx.project(), progress, quiet_build=flags["quiet-build"])
    _run_with(progress, lambda: engine.create(options))
    return 0


def _start_flags() -> FlagSet:
    f = FlagSet()
    f.add("wait", "", "bool", "Wait for services to be running|healthy. Implies detached mode.")
    f.add("wait-timeout", "", "int", "Maximum duration in seconds to wait for the project to be running|healthy", 0)
    return f


def run_start(ctx: ComposeContext, flags: ParsedFlags) -> int:
    project, name = ctx.project_or_name()
    progress = ctx.progress("Running")
    if project is None:
        _run_with(progress, lambda: lifecycle.start(Target(ctx.client, name, None, progress), flags.args))
        return 0
    engine = _engine(ctx, project, progress)

    def start() -> None:
        engine.refresh()
        wanted = engine.selected(flags.args) if flags.args else list(project.services)
        if not any(engine.containers_of(n) for n in wanted):
            raise ComposeError("service(s) not found" if flags.args else "no containers to start")
        engine.start(StartOptions(services=[n for n in wanted if engine.containers_of(n)], wait=flags["wait"],
                                  wait_timeout=flags["wait-timeout"] or None))

    _run_with(progress, start)
    return 0


# -- stop, restart, kill, pause, unpause, rm, down ----------------------------------------


def _timeout_flags(extra: Callable[[FlagSet], Any] | None = None) -> Callable[[], FlagSet]:
    def make() -> FlagSet:
        f = FlagSet()
        f.add("timeout", "t", "int", "Specify a shutdown timeout in seconds", 0)
        if extra is not None:
            extra(f)
        return f
    return make


def run_stop(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Stopping")
    target = _target(ctx, progress)
    _run_with(progress, lambda: lifecycle.stop(target, flags.args, _timeout(flags)))
    return 0


def run_restart(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Restarting")
    target = _target(ctx, progress)
    _run_with(progress, lambda: lifecycle.restart(target, flags.args, _timeout(flags)))
    return 0


def _kill_flags() -> FlagSet:
    f = FlagSet()
    f.add("signal", "s", "string", "SIGNAL to send to the container", "SIGKILL")
    f.add("remove-orphans", "", "bool", "Remove containers for services not defined in the Compose file")
    return f


def run_kill(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Killing")
    target = _target(ctx, progress)
    _run_with(progress, lambda: lifecycle.kill(target, flags.args, flags["signal"]))
    return 0


def run_pause(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Pausing")
    target = _target(ctx, progress)
    _run_with(progress, lambda: lifecycle.pause(target, flags.args))
    return 0


def run_unpause(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Unpausing")
    target = _target(ctx, progress)
    _run_with(progress, lambda: lifecycle.unpause(target, flags.args))
    return 0


def _rm_flags() -> FlagSet:
    f = FlagSet()
    f.add("force", "f", "bool", "Don't ask to confirm removal")
    f.add("stop", "s", "bool", "Stop the containers, if required, before removing")
    f.add("volumes", "v", "bool", "Remove any anonymous volumes attached to containers")
    f.add("all", "a", "bool", "Deprecated - no effect", hidden=True)
    return f


def run_rm(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Removing")
    target = _target(ctx, progress)
    try:
        if flags["stop"]:
            lifecycle.stop(target, flags.args)
        found = [c for c in target.containers(flags.args) if c.state not in ("running", "paused", "restarting")]
    except (ComposeError, ClientError) as exc:
        progress.close()
        raise _fail(exc) from None
    if not found:
        progress.close()
        ctx.cli.err("No stopped containers")
        return 0
    if not flags["force"]:
        progress.close()
        names = "\n".join(c.name for c in found)
        ctx.cli.out(f"Going to remove {names}\n? Are you sure? (y/N) ", end="")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
        progress = ctx.progress("Removing")
        target.progress = progress
    def remove() -> None:
        for c in found:
            lifecycle.remove_container(target, c, volumes=flags["volumes"])

    _run_with(progress, remove)
    return 0


def _down_flags() -> FlagSet:
    f = FlagSet()
    f.add("remove-orphans", "", "bool", "Remove containers for services not defined in the Compose file")
    f.add("rmi", "", "string", 'Remove images used by services. "local" remove only images that don\'t have a '
          'custom tag ("local"|"all")')
    f.add("timeout", "t", "int", "Specify a shutdown timeout in seconds", 0)
    f.add("volumes", "v", "bool", "Remove named volumes declared in the \"volumes\" section of the Compose file "
          "and anonymous volumes attached to containers")
    return f


def run_down(ctx: ComposeContext, flags: ParsedFlags) -> int:
    progress = ctx.progress("Running")
    target = _target(ctx, progress)
    remove_orphans = flags["remove-orphans"] or os.environ.get("COMPOSE_REMOVE_ORPHANS", "") in ("1", "true")
    _run_with(progress, lambda: lifecycle.down(target, volumes=flags["volumes"], remove_orphans=remove_orphans,
                                               rmi=flags["rmi"], timeout=_timeout(flags), services=flags.args))
    return 0


# -- scale, wait ---------------------------------------------------------------------------


def _scale_flags() -> FlagSet:
    f = FlagSet()
    f.add("no-deps", "", "bool", "Don't start linked services")
    return f


def run_scale(ctx: ComposeContext, flags: ParsedFlags) -> int:
    if not flags.args:
        raise CliExit("requires at least 1 arg(s), only received 0", 1)
    scale = _scale_pairs(flags.args)
    progress = ctx.progress("Running")
    engine = _engine(ctx, ctx.project(), progress)
    options = CreateOptions(services=list(scale), scale=scale, no_deps=flags["no-deps"])

    def go() -> None:
        names = engine.create(options)
        engine.start(StartOptions(services=names))

    _run_with(progress, go)
    return 0


def _wait_flags() -> FlagSet:
    f = FlagSet()
    f.add("down-project", "", "bool", "Drops project when the first container stops")
    return f


def run_wait(ctx: ComposeContext, flags: ParsedFlags) -> int:
    if not flags.args:
        raise CliExit("requires at least 1 arg(s), only received 0", 1)
    project, name = ctx.project_or_name()
    found = list_containers(ctx.client, name, services=flags.args)
    if not found:
        raise CliExit("no containers for project " + name, 1)
    results: dict[str, int] = {}

    def wait_one(c: Any) -> None:
        body = ctx.client.post_json(f"/containers/{c.id}/wait")
        results[c.id] = int(body.get("StatusCode", 0))

    threads = [threading.Thread(target=wait_one, args=(c,), daemon=True) for c in found]
    for t in threads:
        t.start()
    code = 0
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.1)
        if flags["down-project"] and results:
            break
    for c in found:
        if c.id in results:
            ctx.cli.out(f"{c.name} exited with code {results[c.id]}")
            code = code or results[c.id]
    if flags["down-project"]:
        progress = ctx.progress("Running")
        _run_with(progress, lambda: lifecycle.down(Target(ctx.client, name, project, progress)))
    return code


# -- build, pull, push ---------------------------------------------------------------------


def _build_flags() -> FlagSet:
    f = FlagSet()
    f.add("build-arg", "", "stringArray", "Set build-time variables for services")
    f.add("no-cache", "", "bool", "Do not use cache when building the image")
    f.add("pull", "", "bool", "Always attempt to pull a newer version of the image")
    f.add("quiet", "q", "bool", "Suppress the build output")
    f.add("push", "", "bool", "Push service images")
    f.add("with-dependencies", "", "bool", "Also build dependencies (transitively)")
    f.add("builder", "", "string", "Set builder to use", hidden=True)
    f.add("memory", "m", "string", "Set memory limit for the build container. Not supported by BuildKit.", hidden=True)
    f.add("ssh", "", "string", "Set SSH authentications used when building service images.", hidden=True)
    return f


def run_build(ctx: ComposeContext, flags: ParsedFlags) -> int:
    project = ctx.project()
    progress = ctx.progress("Building")
    engine = _engine(ctx, project, progress, quiet_build=flags["quiet"])
    args: dict[str, str] = {}
    for item in flags["build-arg"]:
        key, sep, value = item.partition("=")
        args[key] = value if sep else os.environ.get(key, "")

    def build() -> None:
        names = engine.selected(flags.args, with_deps=flags["with-dependencies"])
        for name in names:
            svc = project.services[name]
            if svc.build is None:
                continue
            svc.build.args.update(args)
            svc.build.no_cache = svc.build.no_cache or flags["no-cache"]
            svc.build.pull = svc.build.pull or flags["pull"]
            engine.build_service(name)
            if flags["push"]:
                _push(ctx, convert.image_name(project, svc), progress, name)

    _run_with(progress, build)
    return 0


def _pull_flags() -> FlagSet:
    f = FlagSet()
    f.add("ignore-buildable", "", "bool", "Ignore images that can be built")
    f.add("ignore-pull-failures", "", "bool", "Pull what it can and ignores images with pull failures")
    f.add("include-deps", "", "bool", "Also pull services declared as dependencies")
    f.add("policy", "", "string", 'Apply pull policy ("missing"|"always")')
    f.add("quiet", "q", "bool", "Pull without printing progress information")
    return f


def run_pull(ctx: ComposeContext, flags: ParsedFlags) -> int:
    project = ctx.project()
    progress = ctx.progress("Pulling")
    engine = _engine(ctx, project, progress)

    def pull() -> None:
        names = engine.selected(flags.args, with_deps=flags["include-deps"])
        failures: list[str] = []
        for name in names:
            svc = project.services[name]
            if not svc.image or (svc.build is not None and flags["ignore-buildable"]):
                continue
            if svc.build is not None and engine.image_exists(svc.image) is None:
                continue  # compose v2 builds it later rather than failing the pull
            if flags["policy"] == "missing" and engine.image_exists(svc.image) is not None:
                continue
            try:
                engine.pull_image(svc.image, [name], flags["quiet"])
            except ComposeError as exc:
                if not flags["ignore-pull-failures"]:
                    raise
                failures.append(str(exc))

    _run_with(progress, pull)
    return 0


def _push_flags() -> FlagSet:
    f = FlagSet()
    f.add("ignore-push-failures", "", "bool", "Push what it can and ignores images with push failures")
    f.add("include-deps", "", "bool", "Also push images of services declared as dependencies")
    f.add("quiet", "q", "bool", "Push without printing progress information")
    return f


def _push(ctx: ComposeContext, image: str, progress: Progress, event: str) -> None:
    try:
        ref = parse_normalized(image)
    except ReferenceError as exc:
        raise ComposeError(str(exc)) from None
    progress.working(event, "Pushing")
    auth = credentials.registry_auth_header(ref.domain, ctx.cli.config)
    try:
        resp = ctx.client.request("POST", f"/images/{ref.name}/push", {"tag": ref.tag or "latest"},
                                  headers={"X-Registry-Auth": auth})
        for message in iter_json_stream(resp.iter_chunks()):
            if isinstance(message, dict) and message.get("error"):
                raise ComposeError(str(message["error"]))
    except (APIError, ComposeError) as exc:
        msg = exc.message if isinstance(exc, APIError) else str(exc)
        progress.error(event, "Error", msg)
        raise ComposeError(msg) from None
    progress.done(event, "Pushed")


def run_push(ctx: ComposeContext, flags: ParsedFlags) -> int:
    project = ctx.project()
    progress = ctx.progress("Pushing")
    engine = _engine(ctx, project, progress)

    def push() -> None:
        for name in engine.selected(flags.args, with_deps=flags["include-deps"]):
            svc = project.services[name]
            if not svc.image:
                continue
            try:
                _push(ctx, svc.image, progress, name)
            except ComposeError:
                if not flags["ignore-push-failures"]:
                    raise

    _run_with(progress, push)
    return 0


# -- run -------------------------------------------------------------------------------------


def _run_flags() -> FlagSet:
    f = FlagSet()
    f.add("build", "", "bool", "Build image before starting container")
    f.add("cap-add", "", "list", "Add Linux capabilities")
    f.add("cap-drop", "", "list", "Drop Linux capabilities")
    f.add("detach", "d", "bool", "Run container in background and print container ID")
    f.add("entrypoint", "", "string", "Override the entrypoint of the image")
    f.add("env", "e", "stringArray", "Set environment variables")
    f.add("env-from-file", "", "stringArray", "Set environment variables from file")
    f.add("interactive", "i", "bool", "Keep STDIN open even if not attached", True)
    f.add("label", "l", "stringArray", "Add or override a label")
    f.add("name", "", "string", "Assign a name to the container")
    f.add("no-TTY", "T", "bool", "Disable pseudo-TTY allocation (default: auto-detected)")
    f.add("no-deps", "", "bool", "Don't start linked services")
    f.add("publish", "p", "stringArray", "Publish a container's port(s) to the host")
    f.add("pull", "", "string", 'Pull image before running ("always"|"missing"|"never")', "policy")
    f.add("quiet", "q", "bool", "Don't print anything to STDOUT")
    f.add("quiet-build", "", "bool", "Suppress progress output from the build process")
    f.add("quiet-pull", "", "bool", "Pull without printing progress information")
    f.add("remove-orphans", "", "bool", "Remove containers for services not defined in the Compose file")
    f.add("rm", "", "bool", "Automatically remove the container when it exits")
    f.add("service-ports", "P", "bool", "Run command with all service's ports enabled and mapped to the host")
    f.add("use-aliases", "", "bool", "Use the service's network useAliases in the network(s) the container connects to")
    f.add("user", "u", "string", "Run as specified username or uid")
    f.add("volume", "v", "stringArray", "Bind mount a volume")
    f.add("workdir", "w", "string", "Working directory inside the container")
    f.add("tty", "t", "bool", "Allocate a pseudo-TTY", hidden=True)
    return f


def run_run(ctx: ComposeContext, flags: ParsedFlags) -> int:
    """A one-off container of a service, as compose v2 makes it: named
    `PROJECT-SERVICE-run-ID`, labelled oneoff with a slug, no restart policy, the
    service's ports only with --service-ports; its dependencies started first (unless
    --no-deps); the command's exit code returned."""
    if not flags.args:
        raise CliExit("requires at least 1 arg(s), only received 0", 1)
    name, command = flags.args[0], flags.args[1:]
    project = ctx.project()
    if name not in project.services:
        raise CliExit(f"no such service: {name}", 1)
    if flags["publish"] and flags["service-ports"]:
        raise CliExit("--service-ports and --publish are incompatible", 1)
    progress = ctx.progress("Running")
    engine = _engine(ctx, project, progress, quiet_build=flags["quiet-build"])
    deps = sorted(graph_dependencies(project, name))

    def prepare() -> None:
        if deps and not flags["no-deps"]:
            engine.create(CreateOptions(services=deps, remove_orphans=flags["remove-orphans"], ignore_orphans=True))
            engine.start(StartOptions(services=deps))
        else:
            engine.ensure_networks()
            engine.ensure_volumes()
            engine.refresh()
        engine.ensure_images([name], build=True if flags["build"] else None,
                             pull=None if flags["pull"] == "policy" else flags["pull"], quiet_pull=flags["quiet-pull"])
        if not flags["no-deps"]:
            engine.wait_dependencies(name, project.services[name], None)

    _run_with(progress, prepare)
    svc = _one_off(project, name, flags, command, sys.stdout.isatty())
    svc = engine.resolved(svc)
    slug = secrets.token_hex(32)
    svc.container_name = svc.container_name or f"{project.name}-{name}-run-{slug[:12]}"
    opts = convert.CreateOptions(number=-1, links=engine.links(svc, -1), oneoff=True, env_files=ctx.env_files,
                                 auto_remove=flags["rm"], attach_stdin=svc.stdin_open,
                                 use_aliases=flags["use-aliases"], image_id=engine.image_ids.get(name))
    body = convert.container_body(project, svc, opts)
    body["Labels"][L.SLUG] = slug
    try:
        created = ctx.client.post_json("/containers/create", {"name": svc.container_name}, body)
    except APIError as exc:
        raise _fail(exc) from None
    cid = created["Id"]
    if flags["detach"]:
        try:
            ctx.client.post(f"/containers/{cid}/start")
        except APIError as exc:
            raise _fail(exc) from None
        ctx.cli.out(svc.container_name)
        return 0
    return start_attached(ctx.cli, cid, tty=svc.tty, stdin=svc.stdin_open, auto_remove=flags["rm"])


def graph_dependencies(project: Any, name: str) -> set[str]:
    from berth.compose.engine import graph

    return graph.with_dependencies(project.services, [name]) - {name}


def _one_off(project: Any, name: str, flags: ParsedFlags, command: list[str], stdout_tty: bool) -> Any:
    """The service as `run` changes it (compose v2's applyRunOptions)."""
    import copy

    from berth.compose.normalize import parse_port, parse_volume, split_command

    svc = copy.deepcopy(project.services[name])
    # compose v2: a TTY when stdout is a terminal, unless stdin is not one and no flag
    # asked for one (a script piping into `run`)
    no_tty = not stdout_tty
    if "tty" in flags.changed:
        if "no-TTY" in flags.changed:
            raise CliExit("--tty and --no-TTY can't be used together", 1)
        no_tty = not flags["tty"]
    elif "no-TTY" in flags.changed:
        no_tty = flags["no-TTY"]
    elif "interactive" not in flags.changed and not sys.stdin.isatty():
        no_tty = True
    svc.tty = not no_tty
    svc.stdin_open = flags["interactive"]
    svc.container_name = flags["name"] or None
    if command:
        svc.command = command
    if flags["user"]:
        svc.user = flags["user"]
    if flags["cap-add"]:
        svc.cap_add = svc.cap_add + flags["cap-add"]
        svc.cap_drop = [c for c in svc.cap_drop if c not in flags["cap-add"]]
    if flags["cap-drop"]:
        svc.cap_drop = svc.cap_drop + flags["cap-drop"]
        svc.cap_add = [c for c in svc.cap_add if c not in flags["cap-drop"]]
    if flags["workdir"]:
        svc.working_dir = flags["workdir"]
    if "entrypoint" in flags.changed:
        svc.entrypoint = split_command(flags["entrypoint"]) or []
        if not command:
            svc.command = []
    for path in flags["env-from-file"]:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    svc.environment[key] = value
    for item in flags["env"]:
        key, sep, value = item.partition("=")
        resolved = value if sep else project.environment.get(key, os.environ.get(key))
        if resolved is not None:
            svc.environment[key] = resolved
    for item in flags["label"]:
        key, _, value = item.partition("=")
        svc.labels[key] = value
    if not flags["service-ports"]:
        svc.ports = [p for spec in flags["publish"] for p in parse_port(spec)]
    for spec in flags["volume"]:
        from pathlib import Path

        svc.volumes = [*svc.volumes, parse_volume(spec, Path.cwd())]
    svc.scale = 1
    svc.restart = None
    if svc.deploy is not None:
        svc.deploy.restart_policy = None
    return svc


SUBCOMMANDS = [
    Subcommand("up", "up [OPTIONS] [SERVICE...]", "Create and start containers", _up_flags, run_up),
    Subcommand("create", "create [OPTIONS] [SERVICE...]", "Creates containers for a service.",
               _create_cmd_flags, run_create),
    Subcommand("start", "start [SERVICE...]", "Start services", _start_flags, run_start),
    Subcommand("stop", "stop [OPTIONS] [SERVICE...]", "Stop services", _timeout_flags(), run_stop),
    Subcommand("restart", "restart [OPTIONS] [SERVICE...]", "Restart service containers",
               _timeout_flags(lambda f: f.add("no-deps", "", "bool", "Don't restart dependent services")),
               run_restart),
    Subcommand("kill", "kill [OPTIONS] [SERVICE...]", "Force stop service containers", _kill_flags, run_kill),
    Subcommand("pause", "pause [SERVICE...]", "Pause services", FlagSet, run_pause),
    Subcommand("unpause", "unpause [SERVICE...]", "Unpause services", FlagSet, run_unpause),
    Subcommand("rm", "rm [OPTIONS] [SERVICE...]", "Removes stopped service containers", _rm_flags, run_rm),
    Subcommand("down", "down [OPTIONS] [SERVICES]", "Stop and remove containers, networks", _down_flags, run_down),
    Subcommand("scale", "scale [SERVICE=REPLICAS...]", "Scale services ", _scale_flags, run_scale),
    Subcommand("wait", "wait SERVICE [SERVICE...] [OPTIONS]", "Block until containers of all (or specified) "
               "services stop.", _wait_flags, run_wait),
    Subcommand("build", "build [OPTIONS] [SERVICE...]", "Build or rebuild services", _build_flags, run_build),
    Subcommand("pull", "pull [OPTIONS] [SERVICE...]", "Pull service images", _pull_flags, run_pull),
    Subcommand("push", "push [OPTIONS] [SERVICE...]", "Push service images", _push_flags, run_push),
    Subcommand("run", "run [OPTIONS] SERVICE [COMMAND] [ARGS...]", "Run a one-off command on a service",
               _run_flags, run_run, interspersed=False),
]
