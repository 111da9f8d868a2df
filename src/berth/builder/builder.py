"""The builder: a Dockerfile and a context in, an image out, with the classic builder's
semantics and output.

Each instruction makes an image on top of the previous one (`docker history` shows one
entry per instruction). RUN runs in a container made from the current image through
the container manager, and the container's changes become the new layer; COPY and ADD
make their layer as a tar written here (no container); the other instructions change
only the config. Every step's image is recorded in the build cache (SQLite table
`build_cache`, builder/cache.py: parent image + a key naming the step and, for COPY/ADD, the digest of
what it copies), so a rebuild with nothing changed makes no new image at all.
The output is the classic builder's stream: "Step N/M : …", " ---> Using cache",
" ---> <id>", "Successfully built", "Successfully tagged", and the `aux` ID message.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import hashlib
import io
import json
import logging
import os
import posixpath
import stat
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from berth import httpclient
from berth.builder import context as ctxmod
from berth.builder import dockerfile as df
from berth.builder.cache import BuildCache
from berth.builder.imagefs import ImageFS, user_ids
from berth.distribution.manifest import Platform
from berth.distribution.progress import Message, drain, to_json
from berth.distribution.registry import Credentials
from berth.distribution.service import DistributionService, credentials_for
from berth.errors import BerthError, InvalidParameter
from berth.images import reference
from berth.images.model import Healthcheck, History, Image, ImageConfig, container_config_doc
from berth.images.model import RunConfig as ImageRunConfig
from berth.stdstream import FrameDecoder

if TYPE_CHECKING:
    from berth.containers.manager import ContainerManager
    from berth.images.store import ImageStore

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
DEFAULT_SHELL = ["/bin/sh", "-c"]
PROXY_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    quiet: bool = False
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    memory: int = 0
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    cache_from: list[str] = field(default_factory=list)
    pull: bool = False  # pull every FROM image even if it is here (`--pull`)
    platform: str = ""
    registry_auth: dict[str, Credentials] = field(default_factory=dict)  # X-Registry-Config, by registry


class BuildError(BerthError):
    """A failed step: the stream reports it; nothing is tagged."""

    status = 400


@dataclass
class StageState:
    name: str
    image_id: str  # "" for scratch before any layer
    config: ImageConfig
    env: dict[str, str]
    args: dict[str, str]  # declared ARGs in scope, with their values
    shell: list[str]
    cmd_set: bool = False  # a CMD came in this stage (an ENTRYPOINT then keeps it)


def now_rfc3339() -> str:
    from berth.clock import now_rfc3339 as now

    return now()


class Builder:
    def __init__(self, images: ImageStore, containers: ContainerManager, cache: BuildCache, tmp_root: str,
                 distribution: DistributionService | None = None) -> None:
        self.images = images
        self.distribution = distribution
        self.containers = containers
        self.cache = cache
        images.on_delete.append(cache.forget)
        self.tmp_root = tmp_root

    async def build(self, ctx: ctxmod.Context, opts: BuildOptions, emit: Emit,
                    dockerfile_text: bytes | None = None) -> str:
        """Run the build; returns the image ID. Errors go to the caller (the API turns
        them into the stream's error message)."""
        if dockerfile_text is None:
            dockerfile_text = await ctx.read(opts.dockerfile)
            if dockerfile_text is None:
                raise InvalidParameter(f"Cannot locate specified Dockerfile: {opts.dockerfile}")
        # read before .dockerignore applies: dockerd drops the Dockerfile and .dockerignore
        # from the context too when .dockerignore lists them
        await ctx.apply_dockerignore(set())
        if not opts.quiet:
            return await self._build(ctx, opts, emit, dockerfile_text)
        # as dockerd with -q: the output is held back, sent only if the build fails; on
        # success the stream is the image ID alone
        held: list[dict[str, Any]] = []

        async def hold(doc: dict[str, Any]) -> None:
            held.append(doc)

        try:
            image_id = await self._build(ctx, opts, hold, dockerfile_text)
        except BerthError:
            for doc in held:
                await emit(doc)
            raise
        await emit({"stream": image_id + "\n"})
        return image_id

    async def _build(self, ctx: ctxmod.Context, opts: BuildOptions, emit: Emit, dockerfile_text: bytes) -> str:
        parsed = df.parse(dockerfile_text)
        for warning in parsed.warnings:
            await emit({"stream": f"[WARNING]: {warning}\n"})
        run = _Run(self, ctx, opts, parsed, emit)
        return await run.execute()


class _Run:
    """One build."""

    def __init__(self, builder: Builder, ctx: ctxmod.Context, opts: BuildOptions, parsed: df.Dockerfile,
                 emit: Emit) -> None:
        self.b = builder
        self.ctx = ctx
        self.opts = opts
        self.df = parsed
        self.emit_raw = emit
        self.step = 0
        self.total = 0
        self.stage_images: dict[str, str] = {}  # stage name or index -> image id
        self.used_args: set[str] = set()
        self.escape = parsed.escape

    async def say(self, text: str) -> None:
        await self.emit_raw({"stream": text})

    def _platform(self, stage: df.Stage, meta: dict[str, str]) -> Platform | None:
        """The platform FROM asks for: the stage's `--platform`, else the build's."""
        if stage.platform:
            text = df.expand(stage.platform, meta, self.escape)
            try:
                return Platform.parse(text) if text else None
            except InvalidParameter as e:
                raise InvalidParameter(f"failed to parse platform {text}: {e}") from None
        return Platform.parse(self.opts.platform) if self.opts.platform else None

    async def _pull(self, name: str, platform: Platform | None = None) -> Image:
        """A FROM image from its registry, its progress in the build's stream."""
        service = self.b.distribution
        if service is None:
            raise BuildError(f"pull access denied for {_repository(name)}, repository does not exist "
                             "or may require 'docker login'")
        ref = reference.parse(name)
        creds = credentials_for(self.opts.registry_auth, ref.domain)

        async def sink(msg: Message) -> None:
            await self.emit_raw(to_json(msg))

        await drain(lambda emit: service.pull(str(ref), "", str(platform) if platform else "", creds, emit), sink)
        return self.b.images.resolve(str(ref))

    # -- stage selection -----------------------------------------------------------------

    def _stage_index(self, ref: str) -> int | None:
        for i, s in enumerate(self.df.stages):
            if s.name and s.name == ref.lower():
                return i
        if ref.isdigit() and int(ref) < len(self.df.stages):
            return int(ref)
        return None

    def _needed(self, target: int, meta: dict[str, str]) -> list[int]:
        need: set[int] = set()

        def visit(i: int) -> None:
            if i in need:
                return
            need.add(i)
            stage = self.df.stages[i]
            base = df.expand(stage.base, meta, self.escape)
            j = self._stage_index(base)
            if j is not None and j < i:
                visit(j)
            for instr in stage.instructions:
                src = instr.flag("from") if instr.keyword in ("COPY", "ADD") else None
                if src:
                    k = self._stage_index(src)
                    if k is not None and k < i:
                        visit(k)

        visit(target)
        return sorted(need)

    async def execute(self) -> str:
        meta: dict[str, str] = {}
        for instr in self.df.meta_args:
            for key, default in df.key_values(instr):
                value = self.opts.build_args.get(key)
                if value is None:
                    value = df.expand(default, meta, self.escape) if default is not None else None
                if value is not None:
                    meta[key] = value
                self.used_args.add(key)
        if self.opts.target:
            target = self._stage_index(self.opts.target)
            if target is None:
                raise InvalidParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
        else:
            target = len(self.df.stages) - 1
        order = self._needed(target, meta)
        # as dockerd, each --label is one more LABEL step at the end of the target stage
        self.total = (len(self.df.meta_args) + sum(1 + len(self.df.stages[i].instructions) for i in order)
                      + len(self.opts.labels))
        for instr in self.df.meta_args:  # dockerd counts them as steps, and prints them
            self.step += 1
            await self.say(f"Step {self.step}/{self.total} : {instr.original}\n")
        image_id = ""
        for i in order:
            image_id = await self._stage(i, meta, target=i == target)
            self.stage_images[str(i)] = image_id
            if self.df.stages[i].name:
                self.stage_images[self.df.stages[i].name] = image_id
        unused = sorted(k for k in self.opts.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        await self.emit_raw({"aux": {"ID": image_id}})
        await self.say(f"Successfully built {_short(image_id)}\n")
        for tag in self.opts.tags:
            self.b.images.tag(image_id, tag)
            await self.say(f"Successfully tagged {reference.parse(tag).familiar()}\n")
        return image_id

    # -- one stage -------------------------------------------------------------------------

    async def _stage(self, index: int, meta: dict[str, str], target: bool = False) -> str:
        stage = self.df.stages[index]
        self.step += 1
        await self.say(f"Step {self.step}/{self.total} : {stage_original(stage)}\n")
        base = df.expand(stage.base, meta, self.escape)
        if base.lower() == "scratch":
            state = StageState(stage.name, "", ImageConfig(created=now_rfc3339(), architecture=ARCH, os="linux",
                                                           config=ImageRunConfig(env=[DEFAULT_PATH]), diff_ids=[]),
                               {"PATH": DEFAULT_PATH.partition("=")[2]}, {}, list(DEFAULT_SHELL))
        else:
            j = self._stage_index(base)
            if j is not None and j < index and str(j) in self.stage_images:
                image_id = self.stage_images[str(j)]
            else:
                platform = self._platform(stage, meta)
                img = None if self.opts.pull else self.b.images.lookup(base)
                if img is not None and platform is not None and not platform.matches(_platform_of(img)):
                    img = None  # as dockerd: an image here of another platform is not the one asked for
                if img is None:
                    img = await self._pull(base, platform)
                image_id = img.id
            img = self.b.images.resolve(image_id)
            config = ImageConfig.from_bytes(self.b.images.config_bytes(image_id))
            if not any(e.startswith("PATH=") for e in config.config.env):
                # as dockerd's builder: every stage has a PATH from its start
                config = replace(config, config=_copy_run_config(config.config))
                config.config.env = [*config.config.env, DEFAULT_PATH]
            env = dict(e.partition("=")[::2] for e in config.config.env)
            state = StageState(stage.name, image_id, config, env, {}, list(config.config.shell or DEFAULT_SHELL))
            await self.say(f" ---> {_short(image_id)}\n")
            if config.config.on_build:
                triggers = list(config.config.on_build)
                await self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
                state.image_id = await self._commit_config(state.image_id, lambda cfg: cfg.on_build.clear(),
                                                           "ONBUILD (cleared)", cache=True, state=state)
                for trigger in df.parse_triggers(triggers, self.escape):
                    await self._instruction(state, trigger, meta)
        for instr in stage.instructions:
            self.step += 1
            await self.say(f"Step {self.step}/{self.total} : {instr.original}\n")
            await self._instruction(state, instr, meta)
        if target:
            for key, value in sorted(self.opts.labels.items()):
                self.step += 1
                await self.say(f"Step {self.step}/{self.total} : LABEL {key}={value}\n")
                await self._nop(state, _label_instruction(key, value), functools.partial(_set_label, key, value))
        if not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    # -- instructions -------------------------------------------------------------------------

    async def _instruction(self, state: StageState, instr: df.Instruction, meta: dict[str, str]) -> None:
        kw = instr.keyword
        scope = {**state.args, **state.env}  # what $VAR means here: ENV wins over ARG
        if kw == "RUN":
            await self._run(state, instr)
        elif kw in ("COPY", "ADD"):
            await self._copy(state, instr, scope)
        elif kw == "ARG":
            for key, default in df.key_values(instr, scope):
                self.used_args.add(key)
                value = self.opts.build_args.get(key)
                if value is None and key in meta and default is None:
                    value = meta[key]
                if value is None:
                    value = default
                if value is not None:
                    state.args[key] = value
                else:
                    state.args.pop(key, None)
            await self._nop(state, instr, lambda cfg: None)
        elif kw == "ENV":
            pairs = [(k, v or "") for k, v in df.key_values(instr, scope)]

            def set_env(cfg: ImageRunConfig) -> None:
                env = dict(e.partition("=")[::2] for e in cfg.env)
                for k, v in pairs:
                    env[k] = v
                    state.env[k] = v
                cfg.env = [f"{k}={v}" for k, v in env.items()]

            await self._nop(state, instr, set_env, history=f"ENV {' '.join(f'{k}={v}' for k, v in pairs)}")
        elif kw == "LABEL":
            pairs = [(k, v or "") for k, v in df.key_values(instr, scope)]
            await self._nop(state, instr, lambda cfg: cfg.labels.update(dict(pairs)),
                            history=f"LABEL {' '.join(f'{k}={v}' for k, v in pairs)}")
        elif kw in ("CMD", "ENTRYPOINT"):
            argv = df.json_or_shell(instr, state.shell)

            def set_cmd(cfg: ImageRunConfig) -> None:
                if kw == "CMD":
                    cfg.cmd = argv
                else:
                    cfg.entrypoint = argv
                    if not state.cmd_set:
                        cfg.cmd = None  # an ENTRYPOINT resets the base image's CMD, as Docker
            if kw == "CMD":
                state.cmd_set = True
            await self._nop(state, instr, set_cmd, history=f"{kw} {_go_list(argv, True)}")
        elif kw == "EXPOSE":
            ports = []
            for word in df.expand_words(instr.args[0] if not instr.json_form else " ".join(instr.args), scope,
                                        self.escape):
                port, _, proto = word.partition("/")
                if not port:
                    continue
                ports.append(f"{port}/{(proto or 'tcp').lower()}")
            await self._nop(state, instr, lambda cfg: setattr(cfg, "exposed_ports",
                                                              sorted(set(cfg.exposed_ports) | set(ports))),
                            history=f"EXPOSE {' '.join(ports)}")
        elif kw == "VOLUME":
            vols = list(instr.args) if instr.json_form else df.expand_words(instr.args[0], scope, self.escape)
            if not vols or any(not v.strip() for v in vols):
                raise BuildError("VOLUME specified can not be an empty string")
            await self._nop(state, instr, lambda cfg: setattr(cfg, "volumes", sorted(set(cfg.volumes) | set(vols))),
                            history=f"VOLUME {_go_list(vols, False)}")
        elif kw == "USER":
            user = df.expand(instr.args[0].strip(), scope, self.escape)
            await self._nop(state, instr, lambda cfg: setattr(cfg, "user", user), history=f"USER {user}")
        elif kw == "WORKDIR":
            await self._workdir(state, instr, scope)
        elif kw == "STOPSIGNAL":
            sig = df.expand(instr.args[0].strip(), scope, self.escape)
            await self._nop(state, instr, lambda cfg: setattr(cfg, "stop_signal", sig), history=f"STOPSIGNAL {sig}")
        elif kw == "SHELL":
            if not instr.json_form:
                raise BuildError(f"Dockerfile parse error line {instr.line}: SHELL requires the arguments to be in JSON form")
            shell = list(instr.args)
            state.shell = shell
            await self._nop(state, instr, lambda cfg: setattr(cfg, "shell", shell), history=f"SHELL {_go_list(shell, False)}")
        elif kw == "HEALTHCHECK":
            await self._nop(state, instr, lambda cfg: setattr(cfg, "healthcheck", healthcheck_of(instr, state.shell)))
        elif kw == "ONBUILD":
            inner = instr.args[0] if instr.args else ""
            await self._nop(state, instr, lambda cfg: cfg.on_build.append(inner), history=f"ONBUILD {inner}")
        elif kw == "MAINTAINER":
            await self._nop(state, instr, lambda cfg: None, author=instr.args[0].strip() if instr.args else "")
        else:
            raise BuildError(f"Dockerfile parse error line {instr.line}: unknown instruction: {kw}")

    # -- steps that change only the config ------------------------------------------------------

    async def _nop(self, state: StageState, instr: df.Instruction, change: Callable[[ImageRunConfig], None],
                   history: str | None = None, author: str = "") -> None:
        text = history or instr.original
        state.image_id = await self._commit_config(state.image_id, change, text, cache=True, state=state,
                                                   author=author)

    async def _commit_config(self, parent: str, change: Callable[[ImageRunConfig], None], text: str, *,
                             cache: bool, state: StageState | None = None, author: str = "") -> str:
        key = f"nop|{text}"
        cached = self._cached(parent, key)
        base = state.config if state is not None else ImageConfig.from_bytes(self.b.images.config_bytes(parent))
        run_config = _copy_run_config(base.config)
        change(run_config)
        if cached:
            if state is not None:
                state.config = ImageConfig.from_bytes(self.b.images.config_bytes(cached))
            await self.say(" ---> Using cache\n")
            await self.say(f" ---> {_short(cached)}\n")
            return cached
        created = now_rfc3339()
        # the step's container config, as the classic builder commits it (berth makes no
        # container for such a step, so the image names none)
        step = container_config_doc(run_config, Cmd=[*(run_config.shell or DEFAULT_SHELL), "#(nop) ", text],
                                    Image=parent)
        config = replace(base, created=created, config=run_config, author=author or base.author,
                         history=[*base.history, History(created=created,
                                                         created_by=f"/bin/sh -c #(nop)  {text}",
                                                         empty_layer=True)],
                         container="", container_config=step)
        size = self.b.images.resolve(parent).size if parent else 0
        image_id = self._add_image(config, size, parent, key)
        if state is not None:
            state.config = config
        await self.say(f" ---> {_short(image_id)}\n")
        return image_id

    def _cached(self, parent: str, key: str) -> str | None:
        if self.opts.no_cache:
            return None
        image_id = self.b.cache.get(parent, key)
        if image_id is None or self.b.images.lookup(image_id) is None:
            return None
        if self.opts.cache_from and not self._from_cache_sources(image_id):
            return None
        return image_id

    def _from_cache_sources(self, image_id: str) -> bool:
        for name in self.opts.cache_from:
            img = self.b.images.lookup(name)
            while img is not None:
                if img.id == image_id:
                    return True
                img = self.b.images.lookup(img.parent) if img.parent else None
        return False

    def _add_image(self, config: ImageConfig, size: int, parent: str, key: str) -> str:
        image_id = self.b.images.add(config, size)
        self.b.images.set_parent(image_id, parent)
        self.b.cache.put(parent, key, image_id)
        return image_id

    async def _hit(self, state: StageState, cached: str) -> None:
        await self.say(" ---> Using cache\n")
        await self.say(f" ---> {_short(cached)}\n")
        state.image_id = cached
        state.config = ImageConfig.from_bytes(self.b.images.config_bytes(cached))

    # -- RUN ---------------------------------------------------------------------------------

    async def _run(self, state: StageState, instr: df.Instruction) -> None:
        argv = df.json_or_shell(instr, state.shell)
        if instr.heredocs and not instr.json_form:
            argv = [*state.shell, _heredoc_script(instr, state)]
        if not state.image_id:
            raise BuildError("RUN is not possible on an empty (scratch) image without a shell")
        build_env = [f"{k}={v}" for k, v in sorted(state.args.items()) if k not in state.env]
        marker = (f"|{len(build_env)} {' '.join(build_env)} " if build_env else "") + " ".join(argv)
        key = f"run|{marker}|{self.opts.network_mode}"
        cached = self._cached(state.image_id, key)
        if cached:
            await self._hit(state, cached)
            return
        from berth.containers.model import HostConfig
        from berth.containers.model import RunConfig as ContainerRunConfig

        cfg = state.config.config
        env = list(cfg.env) + build_env
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, DEFAULT_PATH)
        run_config = ContainerRunConfig(image=state.image_id, cmd=argv, entrypoint=[""], env=env,
                                        working_dir=cfg.working_dir, user=cfg.user, attach_stdout=True,
                                        attach_stderr=True, labels={})
        host = HostConfig(network_mode=self.opts.network_mode or "default", extra_hosts=list(self.opts.extra_hosts),
                          shm_size=self.opts.shm_size, memory=self.opts.memory, ulimits=list(self.opts.ulimits))
        mgr = self.b.containers
        c = await mgr.create(None, run_config, host)
        await self.say(f" ---> Running in {c.id[:12]}\n")
        ok = False
        try:
            # registered before the start, or a quick RUN's output is over before anyone listens
            attach = mgr.attach_at_start(c.id, False, True, True)
            await mgr.start(c.id)
            streams = await attach
            if streams is not None:
                reader, writer = streams
                await self._relay(reader)
                writer.close()
            code = await mgr.wait(c.id, "not-running")
            if code != 0:
                err = BuildError(f"The command '{' '.join(argv)}' returned a non-zero code: {code}")
                err.code = code  # type: ignore[attr-defined]
                raise err
            fd, layer_path = tempfile.mkstemp(prefix="run-", dir=self.b.tmp_root)
            try:
                with os.fdopen(fd, "wb") as out:
                    await mgr.write_changes(c.id, out, pause=False)
                # dockerd's "saveCmd": the command, after the build args it ran with
                save_cmd = [f"|{len(build_env)}", *build_env, *argv] if build_env else argv
                step = container_config_doc(state.config.config, Cmd=save_cmd, Image=state.image_id,
                                            Entrypoint=None)
                image_id = await self._commit_layer(state, layer_path, " ".join(argv) if not build_env
                                                    else marker, key, step, c.id)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layer_path)
            ok = True
        finally:
            if (ok and (self.opts.remove or self.opts.force_remove)) or (not ok and self.opts.force_remove):
                with contextlib.suppress(BerthError):
                    await mgr.remove(c.id, force=True)
                if ok:
                    await self.say(f" ---> Removed intermediate container {c.id[:12]}\n")
        state.image_id = image_id
        await self.say(f" ---> {_short(image_id)}\n")

    async def _relay(self, reader: asyncio.StreamReader) -> None:
        """The RUN's output into the build's stream; what it writes to stderr in red, as
        the classic builder's stderr writer wraps it."""
        decoder = FrameDecoder()
        while chunk := await reader.read(65536):
            for stream, payload in decoder.feed(chunk):
                text = payload.decode(errors="replace")
                await self.say(f"\033[91m{text}\033[0m" if stream == 2 else text)

    async def _commit_layer(self, state: StageState, layer_tar: str, created_by: str, key: str,
                            step: dict[str, Any], container: str = "") -> str:
        """One more layer on the stage's image; `step` is the container config the classic
        builder records for the step, `container` the container the layer came from."""
        from berth.images.store import file_chunks

        parent_img = self.b.images.resolve(state.image_id) if state.image_id else None
        top = parent_img.chain_ids[-1] if parent_img and parent_img.chain_ids else None
        with self.b.images.layers.content.lease({"berth.operation": "build"}) as lease:
            layer = await self.b.images.layers.apply(file_chunks(layer_tar), top, lease=lease)
            created = now_rfc3339()
            base = state.config
            config = replace(base, created=created, config=_copy_run_config(base.config),
                             diff_ids=[*base.diff_ids, layer.diff_id],
                             history=[*base.history, History(created=created, created_by=created_by)],
                             container=container, container_config=step)
            image_id = self._add_image(config, (parent_img.size if parent_img else 0) + layer.size,
                                       state.image_id, key)
        state.config = config
        return image_id

    # -- WORKDIR ---------------------------------------------------------------------------------

    async def _workdir(self, state: StageState, instr: df.Instruction, scope: dict[str, str]) -> None:
        path = df.expand(instr.args[0].strip(), scope, self.escape)
        if not path.startswith("/"):
            path = posixpath.join(state.config.config.working_dir or "/", path)
        path = posixpath.normpath(path)
        key = f"workdir|{path}"
        cached = self._cached(state.image_id, key)
        if cached:
            await self._hit(state, cached)
            return
        fs = self._fs(state.image_id)
        missing = []
        probe = path
        while probe != "/" and (fs is None or fs.stat(probe) is None):
            missing.append(probe)
            probe = posixpath.dirname(probe)
        if missing:
            uid, gid = self._user_ids(fs, state.config.config.user) if state.config.config.user else (0, 0)
            fd, layer_path = tempfile.mkstemp(prefix="workdir-", dir=self.b.tmp_root)
            try:
                with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for d in reversed(missing):
                        info = tarfile.TarInfo(d.lstrip("/"))
                        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
                        info.mtime = int(time.time())
                        tar.addfile(info)
                state.config.config.working_dir = path
                image_id = await self._commit_layer(state, layer_path, f"WORKDIR {path}", key,
                                                    _nop_step(state, f"#(nop) WORKDIR {path}"))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layer_path)
            state.image_id = image_id
            await self.say(f" ---> {_short(image_id)}\n")
            return
        state.image_id = await self._commit_config(state.image_id, lambda cfg: setattr(cfg, "working_dir", path),
                                                   f"WORKDIR {path}", cache=True, state=state)

    def _fs(self, image_id: str) -> ImageFS | None:
        if not image_id:
            return None
        img = self.b.images.resolve(image_id)
        return ImageFS([self.b.images.layers.diff_dir(c) for c in reversed(img.chain_ids)])

    def _user_ids(self, fs: ImageFS | None, spec: str) -> tuple[int, int]:
        user, _, group = spec.partition(":")
        if fs is None or (user.isdigit() and (not group or group.isdigit())):
            return int(user) if user.isdigit() else 0, int(group) if group.isdigit() else (
                int(user) if user.isdigit() else 0)
        try:
            return user_ids(fs, spec)
        except LookupError as e:
            raise BuildError(str(e)) from None

    # -- COPY and ADD -------------------------------------------------------------------------

    async def _copy(self, state: StageState, instr: df.Instruction, scope: dict[str, str]) -> None:
        kw = instr.keyword
        if instr.json_form:
            words = [df.expand(w, scope, self.escape) for w in instr.args]
        else:
            words = df.expand_words(instr.args[0], scope, self.escape)
        heredoc_files = {h.name: h for h in instr.heredocs}
        if len(words) < 2:
            raise BuildError(f"Dockerfile parse error line {instr.line}: {kw} requires at least two arguments, "
                             f"but only {len(words)} provided")
        sources, dest = words[:-1], words[-1]
        from_ref = instr.flag("from")
        chown = instr.flag("chown")
        chmod = instr.flag("chmod")
        if chmod is not None:
            try:
                mode_override: int | None = int(chmod, 8)
            except ValueError:
                raise BuildError(f"invalid chmod parameter: {chmod}") from None
        else:
            mode_override = None
        if from_ref:
            from_ref = df.expand(from_ref, scope, self.escape)
            if from_ref in self.stage_images or from_ref.lower() in self.stage_images:
                source_image = self.stage_images.get(from_ref) or self.stage_images[from_ref.lower()]
            else:
                img = self.b.images.lookup(from_ref)
                if img is None:
                    raise BuildError(f"invalid from flag value {from_ref}: pull access denied for {from_ref}, "
                                     "repository does not exist or may require 'docker login'")
                source_image = img.id
            src_fs: ImageFS | None = self._fs(source_image)
        else:
            src_fs = None
        dest_fs = self._fs(state.image_id)
        workdir = state.config.config.working_dir or "/"
        dest_abs = dest if dest.startswith("/") else posixpath.join(workdir, dest)
        dest_is_dir = dest.endswith("/") or dest.endswith("/.") or len(sources) > 1
        if not dest_is_dir and dest_fs is not None:
            st = dest_fs.stat(dest_abs)
            dest_is_dir = st is not None and stat.S_ISDIR(st.st_mode)
        uid, gid = self._user_ids(dest_fs, chown) if chown else (0, 0)
        entries = await asyncio.to_thread(self._collect, sources, src_fs, heredoc_files, kw, from_ref)
        if any(e.wildcard for e in entries) and len(entries) > 1 and not dest_is_dir:
            dest_is_dir = True
        digest = hashlib.sha256()
        plan = _Plan(dest_abs.rstrip("/") or "/", dest_is_dir, uid, gid, mode_override, kw == "ADD" and not from_ref)
        for e in entries:
            digest.update(e.fingerprint.encode())
        key = (f"copy|{kw}|{from_ref or ''}|{digest.hexdigest()}|{plan.dest}|{dest_is_dir}|{uid}:{gid}|"
               f"{mode_override}")
        cached = self._cached(state.image_id, key)
        if cached:
            await self._hit(state, cached)
            return
        if src_fs is None:
            await self.ctx.materialize()  # the files go into the layer from the disk
        fd, layer_path = tempfile.mkstemp(prefix="copy-", dir=self.b.tmp_root)
        try:
            await self._download(entries)
            with os.fdopen(fd, "wb") as f:
                await asyncio.to_thread(self._write_layer, f, entries, plan, dest_fs)
            what = "multi:" + digest.hexdigest() if len(entries) > 1 else (
                ("dir:" if entries and entries[0].is_dir else "file:") + digest.hexdigest())
            image_id = await self._commit_layer(state, layer_path, f"/bin/sh -c #(nop) {kw} {what} in {dest} ",
                                                key, _nop_step(state, f"#(nop) {kw} {what} in {dest} "))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(layer_path)
            for e in entries:
                if e.url is not None and e.host:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.host)
        state.image_id = image_id
        await self.say(f" ---> {_short(image_id)}\n")

    async def _download(self, entries: list[_Source]) -> None:
        """ADD's URLs, each streamed to a file of its own (never held in memory); its
        mtime is the answer's Last-Modified, as dockerd's, else now."""
        for e in entries:
            if e.url is None:
                continue
            fd, path = tempfile.mkstemp(prefix="add-", dir=self.b.tmp_root)
            os.close(fd)
            e.host = path  # removed by the caller, whatever happens
            try:
                got = await httpclient.download(e.url, path)
            except httpclient.HTTPClientError as err:  # one line naming the URL, as dockerd's
                raise BuildError(str(err)) from None
            # before the epoch is the epoch, as dockerd's Chtimes makes it
            e.mtime = max(0, int(got.last_modified)) if got.last_modified is not None else int(time.time())

    def _collect(self, sources: list[str], src_fs: ImageFS | None, heredocs: dict[str, df.Heredoc], kw: str,
                 from_ref: str | None) -> list[_Source]:
        out: list[_Source] = []
        for src in sources:
            if src.startswith("<<") and src[2:].lstrip("-").strip("\"'") in heredocs:
                h = heredocs[src[2:].lstrip("-").strip("\"'")]
                out.append(_Source(h.name, "", False, h.content.encode(), f"heredoc:{h.name}:{h.content}"))
                continue
            if kw == "ADD" and src.startswith(("http://", "https://")):
                out.append(_Source(posixpath.basename(src.split("?")[0]) or "download", "", False, None,
                                   f"url:{src}", url=src))  # host: where _download puts it
                continue
            if src_fs is None and posixpath.normpath(src).startswith(".."):
                raise BuildError(f"{kw} failed: forbidden path outside the build context: {src} ()")
            matches = self._match(src, src_fs)
            if not matches and any(ch in src for ch in "*?["):
                raise BuildError(f"{kw} failed: no source files were specified")
            if not matches:
                where = "in build context or excluded by .dockerignore" if src_fs is None else f"in {from_ref}"
                raise BuildError(f"{kw} failed: file not found {where}: stat {src}: file does not exist")
            wildcard = any(ch in src for ch in "*?[")
            for rel in matches:
                out.extend(self._source_tree(rel, src_fs, wildcard))
        return out

    def _match(self, pattern: str, src_fs: ImageFS | None) -> list[str]:
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if not any(ch in clean for ch in "*?["):
            if src_fs is None:
                return [clean] if self.ctx.lexists(self.ctx.resolve(clean)) else []
            return [clean] if src_fs.lstat("/" + clean) is not None else []
        # wildcards: match component by component
        parts = clean.split("/")
        found = [""]
        for part in parts:
            nxt = []
            for base in found:
                names = (self.ctx.listdir(self.ctx.resolve(base)) if src_fs is None
                         and self.ctx.isdir(self.ctx.resolve(base))
                         else src_fs.listdir("/" + base) if src_fs is not None else [])
                for name in names:
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(posixpath.join(base, name) if base else name)
            found = nxt
        return sorted(found)

    def _source_tree(self, rel: str, src_fs: ImageFS | None, wildcard: bool) -> list[_Source]:
        """A source and, for a directory, everything below it (paths relative to it)."""
        out: list[_Source] = []
        if src_fs is None:
            ctx = self.ctx
            host = ctx.resolve(rel)
            st = ctx.lstat(host)
            if stat.S_ISDIR(st.st_mode):
                out.append(_Source(posixpath.basename(rel), host, True, None, _fp(rel, st), st=st, wildcard=wildcard))
                for dirpath, dirnames, filenames in ctx.walk(host):
                    dirnames.sort()
                    for name in sorted(dirnames + filenames):
                        full = os.path.join(dirpath, name)
                        sub = os.path.relpath(full, host)
                        cst = ctx.lstat(full)
                        out.append(_Source(sub, full, stat.S_ISDIR(cst.st_mode), None,
                                           _fp(f"{rel}/{sub}", cst, ctx.content(full, cst)), st=cst, inside=True))
            else:
                out.append(_Source(posixpath.basename(rel), host, False, None, _fp(rel, st, ctx.content(host, st)),
                                   st=st, wildcard=wildcard))
            return out
        path = "/" + rel
        found = src_fs.lstat(path)
        assert found is not None
        st = found
        if stat.S_ISDIR(st.st_mode):
            out.append(_Source(posixpath.basename(rel), "", True, None, _fp(rel, st), st=st, wildcard=wildcard))
            top = src_fs.resolve(path)
            for child, cst in src_fs.walk(path):
                sub = posixpath.relpath(child, top)
                host = src_fs.host_path(child, follow_last=False) or ""
                out.append(_Source(sub, host, stat.S_ISDIR(cst.st_mode), None,
                                   _fp(child, cst, ctxmod.file_content_id(host, cst) if host else ""),
                                   st=cst, inside=True))
        else:
            host = src_fs.host_path(path, follow_last=False) or ""
            out.append(_Source(posixpath.basename(rel), host, False, None,
                               _fp(rel, st, ctxmod.file_content_id(host, st) if host else ""), st=st,
                               wildcard=wildcard))
        return out

    def _write_layer(self, f: IO[bytes], entries: list[_Source], plan: _Plan, dest_fs: ImageFS | None) -> None:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            made: set[str] = set()

            def parents(path: str) -> None:
                parts = [p for p in path.split("/") if p][:-1]
                for n in range(1, len(parts) + 1):
                    d = "/" + "/".join(parts[:n])
                    if d in made:
                        continue
                    made.add(d)
                    st = dest_fs.stat(d) if dest_fs is not None else None
                    info = tarfile.TarInfo(d.lstrip("/"))
                    info.type = tarfile.DIRTYPE
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        uid, gid = self.b.containers.container_owner(st.st_uid, st.st_gid)
                        info.mode, info.uid, info.gid, info.mtime = (stat.S_IMODE(st.st_mode), uid, gid,
                                                                     int(st.st_mtime))
                    else:  # made by this COPY: it belongs to the --chown user, as dockerd's
                        info.mode, info.uid, info.gid, info.mtime = 0o755, plan.uid, plan.gid, int(time.time())
                    tar.addfile(info)

            for e in entries:
                if not e.inside:
                    if e.is_dir:
                        target = plan.dest
                        # the directory's contents go to dest; dest itself is made
                        parents(target + "/x")
                        if target not in made and target != "/":
                            made.add(target)
                            self._add(tar, target, e, plan, is_dir=True)
                        continue
                    target = posixpath.join(plan.dest, e.name) if plan.dest_is_dir else plan.dest
                else:  # below a directory source: its contents land in dest
                    target = posixpath.join(plan.dest, e.name)
                parents(target)
                if plan.extract_archives and not e.inside and e.host and not e.is_dir and e.url is None \
                        and _is_archive(e.host):
                    self._extract_into(tar, e.host, plan.dest, plan)
                    continue
                self._add(tar, target, e, plan, is_dir=e.is_dir)
                if e.is_dir:
                    made.add(target)

    def _add(self, tar: tarfile.TarFile, target: str, e: _Source, plan: _Plan, is_dir: bool) -> None:
        name = target.lstrip("/")
        if e.url is not None:  # downloaded to e.host by _download
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = os.path.getsize(e.host), \
                plan.mode if plan.mode is not None else 0o600, plan.uid, plan.gid
            info.mtime = e.mtime if e.mtime is not None else int(time.time())
            with open(e.host, "rb") as src:
                tar.addfile(info, src)
            return
        if e.data is not None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(e.data), plan.mode if plan.mode is not None else 0o644, \
                plan.uid, plan.gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(e.data))
            return
        st = e.st
        assert st is not None
        info = tarfile.TarInfo(name)
        info.mtime = int(st.st_mtime)
        info.uid, info.gid = plan.uid, plan.gid
        perm = stat.S_IMODE(st.st_mode)
        if is_dir:
            info.type = tarfile.DIRTYPE
            info.mode = plan.mode if plan.mode is not None else perm
            tar.addfile(info)
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(e.host)
            info.mode = perm
            tar.addfile(info)
        elif stat.S_ISREG(st.st_mode):
            info.size = st.st_size
            info.mode = plan.mode if plan.mode is not None else perm
            with open(e.host, "rb") as src:
                tar.addfile(info, src)
        # devices, fifos and sockets in a context are skipped, as Docker does for sockets

    def _extract_into(self, tar: tarfile.TarFile, archive_path: str, dest: str, plan: _Plan) -> None:
        """ADD of a local tar archive: its members land under dest (names cleaned)."""
        with tarfile.open(archive_path, mode="r:*") as src:
            for member in src:
                clean = posixpath.normpath("/" + member.name).lstrip("/")
                if not clean or clean == ".":
                    continue
                member.name = posixpath.join(dest, clean).lstrip("/")
                if member.islnk():
                    member.linkname = posixpath.join(dest, posixpath.normpath("/" + member.linkname).lstrip("/")).lstrip("/")
                if member.isreg():
                    tar.addfile(member, src.extractfile(member))
                elif member.isdir() or member.issym() or member.islnk():
                    tar.addfile(member)


@dataclass
class _Plan:
    dest: str
    dest_is_dir: bool
    uid: int
    gid: int
    mode: int | None
    extract_archives: bool


@dataclass
class _Source:
    name: str  # the top source's base name, or a path relative to the top directory
    host: str  # where its bytes are on the host ("" for none)
    is_dir: bool
    data: bytes | None  # a heredoc's content
    fingerprint: str
    st: os.stat_result | None = None
    inside: bool = False  # below a directory source
    wildcard: bool = False
    url: str | None = None
    mtime: int | None = None  # a downloaded URL's, from its Last-Modified


def _fp(rel: str, st: os.stat_result, content: str = "") -> str:
    """What the cache key covers of one source: its path, type, mode and content (the
    sha256 of a file's bytes, a symlink's target)."""
    return f"{rel}|{stat.S_IFMT(st.st_mode)}|{stat.S_IMODE(st.st_mode)}|{content}"


def _is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _repository(name: str) -> str:
    from berth.images import reference

    try:
        return reference.parse(name).familiar().rsplit(":", 1)[0] if "@" not in name else name.split("@")[0]
    except InvalidParameter:
        return name


def _go_list(values: list[str], quoted: bool) -> str:
    """A list as Go's fmt prints it in dockerd's history: %q -> ["a" "b"], %v -> [a b]."""
    return "[" + " ".join(json.dumps(v) if quoted else v for v in values) + "]"


def _set_label(key: str, value: str, cfg: ImageRunConfig) -> None:
    cfg.labels[key] = value


def _label_instruction(key: str, value: str) -> df.Instruction:
    """A `--label` as the LABEL instruction dockerd adds for it (never expanded)."""
    text = f"LABEL {key}={value}"
    return df.Instruction("LABEL", (key, value), False, (), 0, text)


def _platform_of(img: Image) -> Platform:
    return Platform(img.config.os or "linux", img.config.architecture or ARCH)


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _nop_step(state: StageState, comment: str) -> dict[str, Any]:
    """The container config the classic builder records for a step that runs nothing:
    the stage's config, its command the shell and a `#(nop)` comment."""
    cfg = state.config.config
    return container_config_doc(cfg, Cmd=[*(cfg.shell or DEFAULT_SHELL), comment], Image=state.image_id)


def _copy_run_config(cfg: ImageRunConfig) -> ImageRunConfig:
    return ImageRunConfig.from_oci(json.loads(json.dumps(cfg.to_oci())))


def stage_original(stage: df.Stage) -> str:
    if stage.from_instruction is not None:
        return stage.from_instruction.original
    text = f"FROM {stage.base}"
    if stage.name:
        text += f" AS {stage.name}"
    return text


def _heredoc_script(instr: df.Instruction, state: StageState) -> str:
    script = instr.args[0] if instr.args else ""
    for h in instr.heredocs:
        if script.strip().startswith(f"<<{h.name}") or script.strip() in (f"<<{h.name}", f"<<-{h.name}"):
            return h.content
    return script + "\n" + "\n".join(f"{h.content}" for h in instr.heredocs)


def healthcheck_of(instr: df.Instruction, shell: list[str]) -> Healthcheck:
    hc = Healthcheck(test=df.healthcheck_test(instr))
    if hc.test == ["NONE"]:
        return hc
    for name, attr in (("interval", "interval"), ("timeout", "timeout"), ("start-period", "start_period"),
                       ("start-interval", "start_interval")):
        value = instr.flag(name)
        if value:
            setattr(hc, attr, df.parse_duration(value))
    retries = instr.flag("retries")
    if retries:
        hc.retries = int(retries)
    return hc
