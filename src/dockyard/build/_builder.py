"""The builder: a checked Dockerfile dispatched step by step as Docker's classic builder
does it, each step reused from the cache when its parent, its configuration and (for
COPY/ADD) its files are the same, else run through the executor and committed."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..runtime.rootfs import secure_join
from ._cache import BuildCache, step_key
from ._config import (
    full_config,
    go_list,
    go_quote_list,
    healthcheck_comment,
    parse_duration,
)
from ._copy import Ownership, copy_sources, destination, ownership, write_file
from ._errors import BuildError, DockerfileError
from ._executor import BuildImage, Executor, RunMount, RunOptions
from ._instructions import (
    PROXY_ARGS,
    Dockerfile,
    Instruction,
    Stage,
    parse_dockerfile,
    raw_pairs,
)
from ._lexer import expand_variables, expand_word, expand_words, referenced_names
from ._parser import Heredoc
from ._sources import Source, hash_sources, resolve_sources
from ._values import json_list, mount_fields, parse_mode, platform_args, port_specs, scratch_doc

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    rm: bool = True
    force_rm: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    pull: bool = False
    network_mode: str = ""
    platform: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    secrets: dict[str, bytes] = field(default_factory=dict)
    cache_dir: str = ""  # where RUN --mount=type=cache keeps its directories
    cache_from: list[str] = field(default_factory=list)


@dataclass
class _State:
    """One stage as it is being built."""

    stage: Stage
    image: BuildImage | None
    doc: dict[str, Any]  # the current image's config document (a copy)
    config: dict[str, Any]  # the run config (Docker's container config)
    platform: str
    args: dict[str, str | None] = field(default_factory=dict)  # declared in this stage
    cmd_set: bool = False
    maintainer: str = ""

    @property
    def image_id(self) -> str:
        return self.image.id if self.image else ""

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


class Builder:
    def __init__(self, executor: Executor, cache: BuildCache, context_dir: str,
                 options: BuildOptions, emit: Callable[[str], None]) -> None:
        self.executor = executor
        self.cache = cache
        self.context_dir = context_dir
        self.options = options
        self.emit = emit
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.stages: list[_State] = []
        self.step = 0
        self.total = 0
        self.cache_sources: list[BuildImage] | None = None  # --cache-from, when first needed

    # -- the build --------------------------------------------------------------------------

    def build(self, dockerfile: Dockerfile) -> BuildImage:
        last = len(dockerfile.stages) - 1
        if self.options.target:
            found = dockerfile.stage_index(self.options.target)
            if found is None:
                raise BuildError(f"failed to reach build target {self.options.target} in "
                                 "Dockerfile")
            last = found
        if self.options.labels:
            text = "LABEL " + " ".join(f'"{k}"=\'{v}\'' for k, v in
                                       sorted(self.options.labels.items()))
            label = parse_dockerfile("FROM scratch\n" + text).stages[0].instructions[0]
            label.line = 0
            dockerfile.stages[last].instructions.append(label)
        self.total = dockerfile.total_steps
        for instruction in dockerfile.meta_args:
            self._step(instruction)
            for word in instruction.words:
                key, value = self._arg(word, self.meta_args, instruction)
                self.meta_args[key] = value
        result: _State | None = None
        for stage in dockerfile.stages[:last + 1]:
            result = self._build_stage(stage)
        assert result is not None
        if result.image is None:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.options.build_args
                        if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.emit(f"[Warning] One or more build-args {go_list(unused)} were not "
                      "consumed\n")
        return result.image

    def _step(self, instruction: Instruction) -> None:
        self.step += 1
        self.emit(f"Step {self.step}/{self.total} : {instruction.original}\n")

    def _build_stage(self, stage: Stage) -> _State:
        self._step(stage.from_instruction)
        state = self._from(stage)
        self.stages.append(state)
        triggers = list(state.config.get("OnBuild") or [])
        state.config["OnBuild"] = None
        if triggers:
            # The base image's ONBUILD triggers are part of the FROM step.
            noun = "trigger" if len(triggers) == 1 else "triggers"
            self.emit(f"# Executing {len(triggers)} build {noun}\n")
            for text in triggers:
                self._dispatch(state, _trigger(text, stage.from_instruction))
        self.emit(f" ---> {_short(state.image_id)}\n")
        for instruction in stage.instructions:
            self._step(instruction)
            self._dispatch(state, instruction)
            self.emit(f" ---> {_short(state.image_id)}\n")
        return state

    # -- FROM -------------------------------------------------------------------------------

    def _from(self, stage: Stage) -> _State:
        meta = {k: v for k, v in self.meta_args.items() if v is not None}
        self.used_args.update(k for k in referenced_names(stage.base) if k in meta)
        try:
            base = expand_word(stage.base, meta)
            platform = expand_word(stage.platform, {
                **meta, **platform_args(self.options.platform)}) if stage.platform else ""
        except DockerfileError as e:
            raise e.at(stage.from_instruction.line) from None
        platform = platform or self.options.platform
        if not base:
            raise DockerfileError("base name (" + stage.base + ") should not be blank",
                                  stage.from_instruction.line)
        image: BuildImage | None
        previous = next((s for s in self.stages if s.stage.name == base.lower()), None)
        if previous is not None:
            image = previous.image
            doc = copy.deepcopy(previous.doc)
        elif base.lower() == "scratch":
            image = None
            doc = scratch_doc(platform)
        else:
            image = self.executor.find_image(base, platform, self.options.pull)
            doc = copy.deepcopy(image.doc)
        config = dict(doc.get("config") or {})
        return _State(stage, image, doc, config, platform)

    # -- the instructions -------------------------------------------------------------------

    def _env(self, state: _State) -> dict[str, str]:
        """What variables expand to: the declared build args, the environment over them."""
        env = {k: v for k, v in state.args.items() if v is not None}
        for item in state.config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _expand(self, state: _State, text: str, ins: Instruction) -> str:
        self._note_used(state, text, ins)
        try:
            return expand_word(text, self._env(state), ins.escape)
        except DockerfileError as e:
            raise e.at(ins.line) from None

    def _expand_words(self, state: _State, text: str, ins: Instruction) -> list[str]:
        self._note_used(state, text, ins)
        try:
            return expand_words(text, self._env(state), ins.escape)
        except DockerfileError as e:
            raise e.at(ins.line) from None

    def _note_used(self, state: _State, text: str, ins: Instruction) -> None:
        self.used_args.update(k for k in referenced_names(text, ins.escape) if k in state.args)

    def _dispatch(self, state: _State, ins: Instruction) -> None:
        handler = getattr(self, f"_do_{ins.command}")
        handler(state, ins)

    def _do_env(self, state: _State, ins: Instruction) -> None:
        env = list(state.config.get("Env") or [])
        comment = "ENV"
        for key, value in raw_pairs(ins):
            key = self._expand(state, key, ins)
            value = self._expand(state, value, ins)
            env = [item for item in env if item.partition("=")[0] != key] + [f"{key}={value}"]
            state.config["Env"] = env
            comment += f" {key}={value}"
        self._commit_metadata(state, comment)

    def _do_label(self, state: _State, ins: Instruction) -> None:
        labels = dict(state.config.get("Labels") or {})
        comment = "LABEL"
        for key, value in raw_pairs(ins):
            key = self._expand(state, key, ins)
            value = self._expand(state, value, ins)
            labels[key] = value
            comment += f" {key}={value}"
        state.config["Labels"] = labels
        self._commit_metadata(state, comment)

    def _do_maintainer(self, state: _State, ins: Instruction) -> None:
        state.maintainer = ins.text.strip()
        self._commit_metadata(state, f"MAINTAINER {state.maintainer}")

    def _do_expose(self, state: _State, ins: Instruction) -> None:
        ports: list[str] = []
        for word in ins.words:
            ports += self._expand_words(state, word, ins)
        exposed = dict(state.config.get("ExposedPorts") or {})
        for port in ports:
            for spec in port_specs(port, ins.line):
                exposed[spec] = {}
        state.config["ExposedPorts"] = exposed
        self._commit_metadata(state, "EXPOSE " + " ".join(ports))

    def _do_user(self, state: _State, ins: Instruction) -> None:
        state.config["User"] = self._expand(state, ins.text.strip(), ins)
        self._commit_metadata(state, f"USER {state.config['User']}")

    def _do_stopsignal(self, state: _State, ins: Instruction) -> None:
        signal = self._expand(state, ins.text.strip(), ins)
        state.config["StopSignal"] = signal
        self._commit_metadata(state, f"STOPSIGNAL {signal}")

    def _do_volume(self, state: _State, ins: Instruction) -> None:
        paths = [self._expand(state, word, ins) for word in ins.words] if ins.json else \
            [p for word in ins.words for p in self._expand_words(state, word, ins)]
        volumes = dict(state.config.get("Volumes") or {})
        for path in paths:
            if not path.strip():
                raise DockerfileError("VOLUME specified can not be an empty string", ins.line)
            volumes[path] = {}
        state.config["Volumes"] = volumes
        self._commit_metadata(state, f"VOLUME {go_list(paths)}")

    def _do_cmd(self, state: _State, ins: Instruction) -> None:
        state.config["Cmd"] = self._command_line(state, ins)
        state.cmd_set = True
        self._commit_metadata(state, f"CMD {go_quote_list(state.config['Cmd'])}")

    def _do_entrypoint(self, state: _State, ins: Instruction) -> None:
        state.config["Entrypoint"] = self._command_line(state, ins)
        if not state.cmd_set:
            state.config["Cmd"] = None
        self._commit_metadata(state, f"ENTRYPOINT {go_quote_list(state.config['Entrypoint'])}")

    def _do_shell(self, state: _State, ins: Instruction) -> None:
        state.config["Shell"] = list(ins.words)
        self._commit_metadata(state, f"SHELL {go_list(ins.words)}")

    def _do_onbuild(self, state: _State, ins: Instruction) -> None:
        expression = ins.text.strip()
        state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [expression]
        self._commit_metadata(state, f"ONBUILD {expression}")

    def _do_healthcheck(self, state: _State, ins: Instruction) -> None:
        kind = ins.words[0].upper()
        if kind == "NONE":
            check: dict[str, Any] = {"Test": ["NONE"]}
        else:
            rest = ins.text.strip()[len(ins.words[0]):].strip()
            parsed = json_list(rest)
            test = ["CMD", *parsed] if parsed is not None else ["CMD-SHELL", rest]
            check = {"Test": test}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in ins.flags:
                    try:
                        value = parse_duration(ins.flags[flag])
                    except ValueError as e:
                        raise DockerfileError(str(e), ins.line) from None
                    if 0 < value < 1_000_000:
                        raise DockerfileError(f"{key} \"{ins.flags[flag]}\" cannot be less "
                                              "than 1ms", ins.line)
                    if value:
                        check[key] = value
            if "retries" in ins.flags:
                try:
                    retries = int(ins.flags["retries"])
                except ValueError:
                    raise DockerfileError(f"strconv.ParseInt: parsing \"{ins.flags['retries']}"
                                          "\": invalid syntax", ins.line) from None
                if retries < 0:
                    raise DockerfileError("--retries cannot be negative", ins.line)
                if retries:
                    check["Retries"] = retries
        state.config["Healthcheck"] = check
        self._commit_metadata(state, healthcheck_comment(check))

    def _do_arg(self, state: _State, ins: Instruction) -> None:
        comment = []
        for word in ins.words:
            key, value = self._arg(word, self.meta_args, ins, state)
            state.args[key] = value
            default = word.partition("=")
            comment.append(key + ("=" + self._expand(state, default[2], ins)
                                  if default[1] else ""))
        self._commit_metadata(state, "ARG " + " ".join(comment))

    def _arg(self, word: str, meta: dict[str, str | None], ins: Instruction,
             state: _State | None = None) -> tuple[str, str | None]:
        key, has_default, default = word.partition("=")
        if key in self.options.build_args and self.options.build_args[key] is not None:
            self.used_args.add(key)
            return key, self.options.build_args[key]
        if has_default:
            env = self._env(state) if state else {k: v for k, v in meta.items() if v}
            try:
                return key, expand_word(default, env, ins.escape)
            except DockerfileError as e:
                raise e.at(ins.line) from None
        if state is not None and key in meta:
            return key, meta[key]
        automatic = platform_args(state.platform if state else self.options.platform)
        if key in automatic:
            return key, automatic[key]  # ARG TARGETARCH & co. without a default
        return key, None

    def _do_workdir(self, state: _State, ins: Instruction) -> None:
        path = self._expand(state, ins.text.strip(), ins)
        current = state.config.get("WorkingDir") or "/"
        state.config["WorkingDir"] = posixpath.normpath(posixpath.join(current, path))
        comment = f"WORKDIR {state.config['WorkingDir']}"
        probe = self._probe(state, state.shell + [f"#(nop) {comment}"])
        if self._use_cache(state, probe, ""):
            return

        def work(root: str) -> None:
            target = secure_join(root, state.config["WorkingDir"])
            if not os.path.isdir(target):
                os.makedirs(target, 0o755, exist_ok=True)

        self._commit_with_files(state, probe, "", work, comment, announce=True)

    # -- RUN --------------------------------------------------------------------------------

    def _do_run(self, state: _State, ins: Instruction) -> None:
        cmd = self._run_command(state, ins)
        build_env = self._build_arg_env(state)
        save_cmd = cmd
        persisted = sorted(item for item in build_env
                           if item.partition("=")[0] not in PROXY_ARGS
                           or item.partition("=")[0] in state.args)
        if build_env:
            save_cmd = [f"|{len(persisted)}", *persisted, *cmd]
        probe = self._probe(state, save_cmd)
        mounts_key = self._mounts_key(state, ins)
        if self._use_cache(state, probe, mounts_key):
            return
        run_config = full_config({**state.config, "Cmd": cmd, "Entrypoint": [""],
                                  "Env": list(state.config.get("Env") or []) + build_env,
                                  "Image": state.image_id, "Healthcheck": None})
        with tempfile.TemporaryDirectory(prefix="dockyard-build-run-") as scratch, \
                contextlib.ExitStack() as held:
            network = ins.flags.get("network", "")
            network = {"default": "", "sandbox": ""}.get(network, network)
            options = RunOptions(network or self.options.network_mode,
                                 list(self.options.extra_hosts),
                                 self.options.shm_size,
                                 self._run_mounts(state, ins, scratch, held))
            script = _shebang_heredoc(ins)
            if script is not None:
                # RUN <<EOF starting with #!: the heredoc is a program of its own, run from
                # /dev/pipes (a tmpfs: nothing of it reaches the layer), as BuildKit does.
                path = os.path.join(scratch, "heredoc")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(script.content)
                os.chmod(path, 0o755)
                target = f"/dev/pipes/{script.name}"
                options.mounts.append(RunMount("bind", target, path, readonly=True))
                run_config["Cmd"] = [target]
            container = self.executor.create(state.image, run_config, options, state.platform)
            self.emit(f" ---> Running in {container[:12]}\n")
            try:
                code = self.executor.run(container, lambda data: self.emit(
                    data.decode("utf-8", "replace")))
            except BaseException:
                if self.options.force_rm or self.options.rm:
                    self.executor.remove(container)
                raise
            if code != 0:
                if self.options.force_rm:
                    self.executor.remove(container)
                raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: "
                                 f"{code}", code)
            self._commit_container(state, container, probe, mounts_key,
                                   " ".join(save_cmd))

    def _run_command(self, state: _State, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.words)
        text = ins.text
        if ins.heredocs:
            only = ins.text.strip()
            first = ins.heredocs[0]
            if len(ins.heredocs) == 1 and only.lstrip("<-").strip("'\"") == first.name:
                # RUN <<EOF: the heredoc is the script.
                return [*state.shell, first.content]
            text = text + "\n" + "".join(f"{h.content}{h.name}\n" for h in ins.heredocs)
            text = text.rstrip("\n")
        return [*state.shell, text]

    def _command_line(self, state: _State, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.words)
        return [*state.shell, ins.text]

    def _build_arg_env(self, state: _State) -> list[str]:
        """The build args a RUN sees: declared ones with values (not shadowed by ENV), and
        proxy args given on the command line."""
        env_keys = {item.partition("=")[0] for item in state.config.get("Env") or []}
        result = []
        for key, value in state.args.items():
            if value is not None and key not in env_keys:
                result.append(f"{key}={value}")
        for key in sorted(PROXY_ARGS):
            value = self.options.build_args.get(key)
            if value is not None and key not in state.args and key not in env_keys:
                result.append(f"{key}={value}")
        return result

    def _mounts_key(self, state: _State, ins: Instruction) -> str:
        """What RUN's mounts add to its cache key: the specs, and what a bind mount shows
        (the context files' hash, or the source stage's image ID)."""
        parts = []
        for spec in ins.mounts:
            parts.append(spec)
            fields = mount_fields(self._expand(state, spec, ins), ins.line)
            if fields.get("type", "bind") != "bind":
                continue
            source = fields.get("source") or fields.get("src") or "."
            if "from" in fields:
                image = self._source_image(fields["from"], state)
                parts.append(image.id if image else "")
            else:
                parts.append(hash_sources(resolve_sources(
                    self.context_dir, [source], "RUN --mount", from_context=True)))
        return "|".join(parts)

    def _run_mounts(self, state: _State, ins: Instruction, scratch: str,
                    held: contextlib.ExitStack) -> list[RunMount]:
        mounts = []
        for spec in ins.mounts:
            fields = mount_fields(self._expand(state, spec, ins), ins.line)
            kind = fields.get("type", "bind")
            target = fields.get("target") or fields.get("dst") or fields.get("destination")
            if kind == "secret":
                secret_id = fields.get("id") or posixpath.basename(target or "")
                target = target or f"/run/secrets/{secret_id}"
                if secret_id not in self.options.secrets:
                    if fields.get("required", "false") in ("true", ""):
                        raise BuildError(f"secret {secret_id} not found")
                    continue
                path = os.path.join(scratch, f"secret-{len(mounts)}")
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o400), "wb") as f:
                    f.write(self.options.secrets[secret_id])
                mounts.append(RunMount("bind", target, path, readonly=True))
                continue
            if not target:
                raise DockerfileError("mount target is required", ins.line)
            target = posixpath.join(state.config.get("WorkingDir") or "/", target)
            if kind == "tmpfs":
                mounts.append(RunMount("tmpfs", target))
            elif kind == "cache":
                if not self.options.cache_dir:
                    raise BuildError("RUN --mount=type=cache needs a cache directory")
                cache_id = fields.get("id") or target
                name = hashlib.sha256(cache_id.encode()).hexdigest()[:32]
                path = os.path.join(self.options.cache_dir, name)
                os.makedirs(path, 0o755, exist_ok=True)
                mounts.append(RunMount("bind", target, path,
                                       readonly=fields.get("readonly", "false") != "false"))
            elif kind == "bind":
                source = fields.get("source") or fields.get("src") or "."
                root = self.context_dir
                if "from" in fields:
                    image = self._source_image(fields["from"], state)
                    if image is None:
                        raise BuildError(f"RUN --mount: stage {fields['from']} has no files")
                    root = held.enter_context(self.executor.image_rootfs(image))
                host = secure_join(root, source)
                if not os.path.exists(host):
                    raise BuildError(f"failed to compute cache key: \"/{source}\" not found")
                writable = fields.get("rw", fields.get("readwrite", "false")) != "false"
                if writable:
                    # Writes go to a copy, thrown away after the step (as BuildKit's).
                    copy_path = os.path.join(scratch, f"bind-{len(mounts)}")
                    if os.path.isdir(host):
                        shutil.copytree(host, copy_path, symlinks=True)
                    else:
                        shutil.copy2(host, copy_path)
                    host = copy_path
                mounts.append(RunMount("bind", target, host, readonly=not writable))
            else:
                raise DockerfileError(f"unsupported mount type \"{kind}\"", ins.line)
        return mounts

    # -- COPY and ADD -----------------------------------------------------------------------

    def _do_copy(self, state: _State, ins: Instruction) -> None:
        self._copy(state, ins, "COPY")

    def _do_add(self, state: _State, ins: Instruction) -> None:
        self._copy(state, ins, "ADD")

    def _copy(self, state: _State, ins: Instruction, name: str) -> None:
        words = [self._expand(state, w, ins) for w in ins.words] if ins.json else \
            [w for word in ins.words for w in self._expand_words(state, word, ins)]
        heredocs = {h.name: h for h in ins.heredocs}
        sources_text, dest_text = words[:-1], words[-1]
        dest, dest_is_dir = destination(dest_text, state.config.get("WorkingDir") or "/")
        from_flag = self._expand(state, ins.flags["from"], ins) if "from" in ins.flags else ""
        chown = self._expand(state, ins.flags["chown"], ins) if "chown" in ins.flags else ""
        chmod = parse_mode(self._expand(state, ins.flags["chmod"], ins), ins) \
            if "chmod" in ins.flags else None
        if name == "ADD" and any("://" in s for s in sources_text):
            raise BuildError("ADD failed: remote URLs are not supported by this builder "
                             "(no network access for builds)")
        here_sources = [heredocs[s.lstrip("<-").strip("'\"")] for s in sources_text
                        if s.startswith("<<") and s.lstrip("<-").strip("'\"") in heredocs]
        file_patterns = [s for s in sources_text if not s.startswith("<<")]
        source_image = self._source_image(from_flag, state) if from_flag else None
        contents = [(h, expand_variables(h.content, self._env(state)) if h.expand
                     else h.content) for h in here_sources]
        chown_comment = f"--chown={chown} " if chown else ""
        if from_flag:
            if source_image is None:
                raise BuildError(f"{name} failed: no source files were specified")
            key_extra = f"from:{source_image.id}:{file_patterns}"
            with self.executor.image_rootfs(source_image) as root:
                sources = resolve_sources(root, file_patterns, name, from_context=False,
                                          follow_root=True)
                source_hash = hash_sources(sources)
                self._copy_step(state, ins, name, sources, contents, dest, dest_is_dir,
                                chown, chmod, source_hash, key_extra + source_hash,
                                chown_comment)
            return
        sources = resolve_sources(self.context_dir, file_patterns, name, from_context=True) \
            if file_patterns else []
        parts = []
        if sources:
            parts.append(hash_sources(sources))
        for _, text in contents:
            parts.append("file:" + hashlib.sha256(text.encode()).hexdigest())
        source_hash = parts[0] if len(parts) == 1 else \
            "multi:" + hashlib.sha256("".join(parts).encode()).hexdigest()
        self._copy_step(state, ins, name, sources, contents, dest, dest_is_dir, chown, chmod,
                        source_hash, source_hash, chown_comment)

    def _source_image(self, name: str, state: _State) -> BuildImage | None:
        """--from=NAME: an earlier stage (by name or index), else an image."""
        stage = next((s for s in self.stages if s.stage.name == name.lower()), None)
        if stage is None and name.isdigit():
            index = int(name)
            if index >= len(self.stages) - 1:
                raise BuildError(f"invalid from flag value {name}: refers to current build "
                                 "stage" if index == len(self.stages) - 1 else
                                 f"invalid from flag value {name}")
            stage = self.stages[index]
        if stage is not None:
            return stage.image
        return self.executor.find_image(name, state.platform, self.options.pull)

    def _copy_step(self, state: _State, ins: Instruction, name: str, sources: list[Source],
                   contents: list[tuple[Any, str]], dest: str, dest_is_dir: bool, chown: str,
                   chmod: int | None, source_hash: str, key_extra: str,
                   chown_comment: str) -> None:
        shown_dest = dest + ("/" if dest_is_dir and not dest.endswith("/") else "")
        comment = f"{name} {chown_comment}{source_hash} in {shown_dest} "
        probe = self._probe(state, state.shell + [f"#(nop) {comment}"])
        extra = f"{key_extra}|chmod={chmod}|link={ins.flags.get('link', '')}"
        if self._use_cache(state, probe, extra):
            return
        if len(sources) + len(contents) > 1 and not dest_is_dir:
            raise BuildError(f"When using {name} with more than one source file, the "
                             "destination must be a directory and end with a /")

        def work(root: str) -> None:
            owner = ownership(root, chown) if chown else Ownership()
            if sources:
                copy_sources(root, sources, dest, dest_is_dir, owner, chmod, name,
                             extract_archives=name == "ADD")
            for heredoc, text in contents:
                target = posixpath.join(dest, heredoc.name) if dest_is_dir else dest
                write_file(root, target, text.encode(), owner, chmod)

        self._commit_with_files(state, probe, extra, work, comment)

    # -- commits and the cache --------------------------------------------------------------

    def _probe(self, state: _State, cmd: list[str]) -> dict[str, Any]:
        """The configuration a step is cached and committed under (Docker's
        runConfigForCacheProbe): the state's, its Cmd replaced by the step's."""
        return full_config({**state.config, "Cmd": cmd, "Image": state.image_id})

    def _key(self, state: _State, probe: dict[str, Any], extra: str) -> str:
        # The platform counts too: FROM scratch has no parent to tell arm64 from amd64.
        platform = "/".join(str(state.doc.get(k) or "") for k in ("os", "architecture",
                                                                   "variant"))
        return step_key(state.image_id, probe, f"{platform}|{extra}")

    def _use_cache(self, state: _State, probe: dict[str, Any], extra: str) -> bool:
        if self.options.no_cache:
            return False
        image_id = self.cache.get(self._key(state, probe, extra))
        image = self.executor.image(image_id) if image_id else None
        if image is None:
            image = self._from_cache_sources(state, probe)
            if image is None:
                return False
            self.cache.put(self._key(state, probe, extra), image.id)
        self.emit(" ---> Using cache\n")
        state.image = image
        state.doc = copy.deepcopy(image.doc)
        return True

    def _from_cache_sources(self, state: _State, probe: dict[str, Any]) -> BuildImage | None:
        """--cache-from: a step is also reused when a source image's history goes on from
        the current image's with this very step (its layer is taken from the source)."""
        if self.cache_sources is None:
            self.cache_sources = []
            for ref in self.options.cache_from:
                try:
                    self.cache_sources.append(self.executor.find_image(ref, state.platform,
                                                                       False))
                except BuildError:
                    continue  # as dockerd: a cache source that is not here is no source
        mine = list(state.doc.get("history") or [])
        my_layers = list((state.doc.get("rootfs") or {}).get("diff_ids") or [])
        created_by = " ".join(probe["Cmd"])
        for source in self.cache_sources:
            theirs = list(source.doc.get("history") or [])
            layers = list((source.doc.get("rootfs") or {}).get("diff_ids") or [])
            if len(theirs) <= len(mine) or layers[:len(my_layers)] != my_layers or \
                    [_history_key(h) for h in theirs[:len(mine)]] != \
                    [_history_key(h) for h in mine]:
                continue
            entry = theirs[len(mine)]
            if entry.get("created_by", "") != created_by:
                continue
            layer = None if entry.get("empty_layer") else len(my_layers)
            if layer is not None and layer >= len(layers):
                continue
            doc = self._new_doc(state, probe, None)
            return self.executor.adopt(state.image, doc, entry, source, layer)
        return None

    def _new_doc(self, state: _State, probe: dict[str, Any],
                 container: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for key in ("architecture", "variant", "os", "os.version"):
            if state.doc.get(key):
                doc[key] = state.doc[key]
        if state.maintainer:
            doc["author"] = state.maintainer
        doc["config"] = full_config({**state.config, "Image": state.image_id})
        if container:
            doc["container"] = container
        doc["container_config"] = probe
        return doc

    def _commit_metadata(self, state: _State, comment: str) -> None:
        probe = self._probe(state, [*state.shell, "#(nop) ", comment])
        if self._use_cache(state, probe, ""):
            return
        # As the classic builder: the step's container is made (never started) and the
        # image committed from its config alone.
        container = self.executor.create(state.image, probe, RunOptions(network_mode="none"),
                                         state.platform)
        self.emit(f" ---> Running in {container[:12]}\n")
        try:
            doc = self._new_doc(state, probe, container)
            history = {"created_by": " ".join(probe["Cmd"]), "empty_layer": True}
            image = self.executor.commit(None, state.image, doc, history)
        except BaseException:
            self.executor.remove(container)
            raise
        self._remove(container)
        self._finish(state, probe, "", image)

    def _commit_with_files(self, state: _State, probe: dict[str, Any], extra: str,
                           work: Callable[[str], None], comment: str,
                           announce: bool = False) -> None:
        config = full_config({**state.config, "Cmd": [*state.shell, f"#(nop) {comment}"],
                              "Image": state.image_id})
        container = self.executor.create(state.image, config, RunOptions(network_mode="none"),
                                         state.platform)
        if announce:
            self.emit(f" ---> Running in {container[:12]}\n")
        try:
            with self.executor.rootfs(container) as root:
                work(root)
            self._commit_container(state, container, probe, extra, " ".join(probe["Cmd"]),
                                   announce=announce)
        except BaseException:
            self.executor.remove(container)
            raise

    def _commit_container(self, state: _State, container: str, probe: dict[str, Any],
                          extra: str, created_by: str, announce: bool = True) -> None:
        doc = self._new_doc(state, probe, container)
        image = self.executor.commit(container, state.image, doc, {"created_by": created_by})
        if announce:
            self._remove(container)
        else:
            self.executor.remove(container)  # COPY/ADD's container is never shown
        self._finish(state, probe, extra, image)

    def _remove(self, container: str) -> None:
        """A step's container after its commit: removed (and said so) unless --rm=false."""
        if self.options.rm or self.options.force_rm:
            self.emit(f"Removing intermediate container {container[:12]}\n")
            self.executor.remove(container)

    def _finish(self, state: _State, probe: dict[str, Any], extra: str,
                image: BuildImage) -> None:
        self.cache.put(self._key(state, probe, extra), image.id)
        state.image = image
        state.doc = copy.deepcopy(image.doc)


# -- helpers ------------------------------------------------------------------------------------


def _shebang_heredoc(ins: Instruction) -> Heredoc | None:
    if len(ins.heredocs) != 1 or ins.json:
        return None
    heredoc = ins.heredocs[0]
    if ins.text.strip().lstrip("<-").strip("'\"") != heredoc.name:
        return None
    return heredoc if heredoc.content.startswith("#!") else None


def _history_key(entry: dict[str, Any]) -> tuple[str, bool, str]:
    return (entry.get("created_by", ""), bool(entry.get("empty_layer")),
            entry.get("comment", ""))


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _trigger(text: str, where: Instruction) -> Instruction:
    try:
        stage = parse_dockerfile("FROM scratch\n" + text).stages[0]
    except DockerfileError as e:
        raise DockerfileError(f"ONBUILD trigger: {e.problem}", where.line) from None
    instruction = stage.instructions[0]
    instruction.line = where.line
    return instruction
