"""The instructions that change only the image's config (ENV, LABEL, CMD, ARG, ...), each
committed as an empty layer; and WORKDIR, which also makes its directory."""

from __future__ import annotations

import os
import posixpath
from typing import Any

from ..runtime.rootfs import secure_join
from ._config import go_list, go_quote_list, healthcheck_comment, parse_duration
from ._errors import DockerfileError
from ._instructions import Instruction, raw_pairs
from ._lexer import expand_word
from ._stage_state import StageState
from ._step_commit import StepCommits
from ._values import json_list, platform_args, port_specs


class MetadataInstructions(StepCommits):
    """The handlers of the config instructions; `Builder` dispatches to them by name."""

    def _do_env(self, state: StageState, ins: Instruction) -> None:
        env = list(state.config.get("Env") or [])
        comment = "ENV"
        for key, value in raw_pairs(ins):
            key = self._expand(state, key, ins)
            value = self._expand(state, value, ins)
            env = [item for item in env if item.partition("=")[0] != key] + [f"{key}={value}"]
            state.config["Env"] = env
            comment += f" {key}={value}"
        self._commit_metadata(state, comment)

    def _do_label(self, state: StageState, ins: Instruction) -> None:
        labels = dict(state.config.get("Labels") or {})
        comment = "LABEL"
        for key, value in raw_pairs(ins):
            key = self._expand(state, key, ins)
            value = self._expand(state, value, ins)
            labels[key] = value
            comment += f" {key}={value}"
        state.config["Labels"] = labels
        self._commit_metadata(state, comment)

    def _do_maintainer(self, state: StageState, ins: Instruction) -> None:
        state.maintainer = ins.text.strip()
        self._commit_metadata(state, f"MAINTAINER {state.maintainer}")

    def _do_expose(self, state: StageState, ins: Instruction) -> None:
        ports: list[str] = []
        for word in ins.words:
            ports += self._expand_words(state, word, ins)
        exposed = dict(state.config.get("ExposedPorts") or {})
        for port in ports:
            for spec in port_specs(port, ins.line):
                exposed[spec] = {}
        state.config["ExposedPorts"] = exposed
        self._commit_metadata(state, "EXPOSE " + " ".join(ports))

    def _do_user(self, state: StageState, ins: Instruction) -> None:
        state.config["User"] = self._expand(state, ins.text.strip(), ins)
        self._commit_metadata(state, f"USER {state.config['User']}")

    def _do_stopsignal(self, state: StageState, ins: Instruction) -> None:
        signal = self._expand(state, ins.text.strip(), ins)
        state.config["StopSignal"] = signal
        self._commit_metadata(state, f"STOPSIGNAL {signal}")

    def _do_volume(self, state: StageState, ins: Instruction) -> None:
        paths = [self._expand(state, word, ins) for word in ins.words] if ins.json else \
            [p for word in ins.words for p in self._expand_words(state, word, ins)]
        volumes = dict(state.config.get("Volumes") or {})
        for path in paths:
            if not path.strip():
                raise DockerfileError("VOLUME specified can not be an empty string", ins.line)
            volumes[path] = {}
        state.config["Volumes"] = volumes
        self._commit_metadata(state, f"VOLUME {go_list(paths)}")

    def _do_cmd(self, state: StageState, ins: Instruction) -> None:
        state.config["Cmd"] = self._command_line(state, ins)
        state.cmd_set = True
        self._commit_metadata(state, f"CMD {go_quote_list(state.config['Cmd'])}")

    def _do_entrypoint(self, state: StageState, ins: Instruction) -> None:
        state.config["Entrypoint"] = self._command_line(state, ins)
        if not state.cmd_set:
            state.config["Cmd"] = None
        self._commit_metadata(state, f"ENTRYPOINT {go_quote_list(state.config['Entrypoint'])}")

    def _do_shell(self, state: StageState, ins: Instruction) -> None:
        state.config["Shell"] = list(ins.words)
        self._commit_metadata(state, f"SHELL {go_list(ins.words)}")

    def _do_onbuild(self, state: StageState, ins: Instruction) -> None:
        expression = ins.text.strip()
        state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [expression]
        self._commit_metadata(state, f"ONBUILD {expression}")

    def _do_healthcheck(self, state: StageState, ins: Instruction) -> None:
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

    def _do_arg(self, state: StageState, ins: Instruction) -> None:
        comment = []
        for word in ins.words:
            key, value = self._arg(word, self.meta_args, ins, state)
            state.args[key] = value
            default = word.partition("=")
            comment.append(key + ("=" + self._expand(state, default[2], ins)
                                  if default[1] else ""))
        self._commit_metadata(state, "ARG " + " ".join(comment))

    def _arg(self, word: str, meta: dict[str, str | None], ins: Instruction,
             state: StageState | None = None) -> tuple[str, str | None]:
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

    def _do_workdir(self, state: StageState, ins: Instruction) -> None:
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

    def _command_line(self, state: StageState, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.words)
        return [*state.shell, ins.text]
