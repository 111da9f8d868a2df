"""`--change` of `docker commit` and `docker import`: Dockerfile instructions applied to
an image's run config, as dockerd's BuildFromConfig applies them.

The lines are parsed by the Dockerfile parser (JSON or shell form, quoting, escapes,
flags, every error worded as a Dockerfile's), only the instructions that change a
config are accepted, and each is applied as the builder applies it: words expanded
with the config's environment as it stands at that instruction, a shell-form CMD or
ENTRYPOINT wrapped in the config's shell, an ENTRYPOINT clearing a CMD that no
earlier change set, WORKDIR relative to the one before. Nothing is run or committed.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from berth.builder import dockerfile as df
from berth.builder.builder import healthcheck_of
from berth.containers.defaults import parse_signal
from berth.errors import InvalidParameter
from berth.images.model import RunConfig

# dockerd's validCommitCommands
CHANGE_KEYWORDS = frozenset({"CMD", "ENTRYPOINT", "HEALTHCHECK", "ENV", "EXPOSE", "LABEL", "ONBUILD",
                             "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"})


def apply_changes(config: RunConfig, changes: Sequence[str]) -> RunConfig:
    """A copy of `config` with `changes` applied; InvalidParameter in dockerd's words for
    a line it would refuse."""
    cfg = RunConfig.from_oci(config.to_oci())
    instructions = df.parse_changes(changes, CHANGE_KEYWORDS) if any(c.strip() for c in changes) else ()
    cmd_set = False
    for instr in instructions:
        env = dict(e.partition("=")[::2] for e in cfg.env)
        shell = list(cfg.shell or df.DEFAULT_SHELL)
        kw = instr.keyword
        if kw == "ENV":
            for key, value in df.key_values(instr, env):
                entry = f"{key}={value or ''}"
                names = [e.partition("=")[0] for e in cfg.env]
                if key in names:
                    cfg.env[names.index(key)] = entry
                else:
                    cfg.env.append(entry)
                env[key] = value or ""
        elif kw == "LABEL":
            cfg.labels.update({key: value or "" for key, value in df.key_values(instr, env)})
        elif kw == "CMD":
            cfg.cmd = df.json_or_shell(instr, shell)
            cmd_set = cmd_set or bool(instr.args)
        elif kw == "ENTRYPOINT":
            cfg.entrypoint = df.json_or_shell(instr, shell)
            if not cmd_set:
                cfg.cmd = None
        elif kw == "EXPOSE":
            words = df.expand_words(" ".join(instr.args), env, instr.escape)
            for word in words:
                port, _, proto = word.partition("/")
                entry = f"{port}/{(proto or 'tcp').lower()}"
                if port and entry not in cfg.exposed_ports:
                    cfg.exposed_ports.append(entry)
        elif kw == "VOLUME":
            volumes = list(instr.args) if instr.json_form else df.expand_words(instr.args[0], env, instr.escape)
            if any(not v.strip() for v in volumes):
                raise InvalidParameter("VOLUME specified can not be an empty string")
            cfg.volumes.extend(v for v in volumes if v not in cfg.volumes)
        elif kw == "USER":
            cfg.user = df.expand(instr.args[0].strip(), env, instr.escape)
        elif kw == "WORKDIR":
            path = df.expand(instr.args[0].strip(), env, instr.escape)
            cfg.working_dir = posixpath.normpath(posixpath.join(cfg.working_dir or "/", path))
        elif kw == "STOPSIGNAL":
            sig = df.expand(instr.args[0].strip(), env, instr.escape)
            parse_signal(sig)
            cfg.stop_signal = sig
        elif kw == "HEALTHCHECK":
            cfg.healthcheck = healthcheck_of(instr, shell)
        elif kw == "ONBUILD":
            cfg.on_build.append(instr.args[0])
    return cfg
