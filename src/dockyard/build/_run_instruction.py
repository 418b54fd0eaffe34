"""RUN: its command line, the build args it sees, its --mount specs (and what they add
to the cache key), run in a container and committed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import tempfile

from ..runtime.rootfs import secure_join
from ._config import full_config
from ._errors import BuildError, DockerfileError
from ._executor import RunMount, RunOptions
from ._instructions import PROXY_ARGS, Instruction
from ._parser import Heredoc
from ._sources import hash_sources, resolve_sources
from ._stage_state import StageState
from ._step_commit import StepCommits
from ._values import mount_fields


class RunInstruction(StepCommits):
    """The handler of RUN; `Builder` dispatches to it by name."""

    def _do_run(self, state: StageState, ins: Instruction) -> None:
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

    def _run_command(self, state: StageState, ins: Instruction) -> list[str]:
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

    def _build_arg_env(self, state: StageState) -> list[str]:
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

    def _mounts_key(self, state: StageState, ins: Instruction) -> str:
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

    def _run_mounts(self, state: StageState, ins: Instruction, scratch: str,
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


def _shebang_heredoc(ins: Instruction) -> Heredoc | None:
    if len(ins.heredocs) != 1 or ins.json:
        return None
    heredoc = ins.heredocs[0]
    if ins.text.strip().lstrip("<-").strip("'\"") != heredoc.name:
        return None
    return heredoc if heredoc.content.startswith("#!") else None
