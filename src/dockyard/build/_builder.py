"""The builder: a checked Dockerfile dispatched step by step as Docker's classic builder
does it, each step reused from the cache when its parent, its configuration and (for
COPY/ADD) its files are the same, else run through the executor and committed."""

from __future__ import annotations

import copy

from ._config import go_list
from ._copy_instructions import CopyInstructions
from ._errors import BuildError, DockerfileError
from ._executor import BuildImage
from ._instructions import PROXY_ARGS, Dockerfile, Instruction, Stage, parse_dockerfile
from ._lexer import expand_word, referenced_names
from ._metadata_instructions import MetadataInstructions
from ._options import BuildOptions
from ._run_instruction import RunInstruction
from ._stage_state import StageState
from ._values import platform_args, scratch_doc

# BuildOptions lives in _options; it stays importable from here, where callers found it.
__all__ = ["BuildOptions", "Builder"]


class Builder(MetadataInstructions, RunInstruction, CopyInstructions):
    """The dispatcher: stages and steps in order, each instruction to its `_do_<name>`
    handler (defined by the instruction modules this class is made of)."""

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
        result: StageState | None = None
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

    def _build_stage(self, stage: Stage) -> StageState:
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

    def _from(self, stage: Stage) -> StageState:
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
        return StageState(stage, image, doc, config, platform)

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, state: StageState, ins: Instruction) -> None:
        handler = getattr(self, f"_do_{ins.command}")
        handler(state, ins)


# -- helpers ------------------------------------------------------------------------------------


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
