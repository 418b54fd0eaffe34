"""What every step handler shares: the build's own state (options, stages, build args
seen), variable expansion in a stage, and the lookup of a --from source."""

from __future__ import annotations

from collections.abc import Callable

from ._cache import BuildCache
from ._errors import BuildError, DockerfileError
from ._executor import BuildImage, Executor
from ._instructions import Instruction
from ._lexer import expand_word, expand_words, referenced_names
from ._options import BuildOptions
from ._stage_state import StageState


class BuilderBase:
    """The base of the builder's parts: the state of one build, which every step reads."""

    def __init__(self, executor: Executor, cache: BuildCache, context_dir: str,
                 options: BuildOptions, emit: Callable[[str], None]) -> None:
        self.executor = executor
        self.cache = cache
        self.context_dir = context_dir
        self.options = options
        self.emit = emit
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.stages: list[StageState] = []
        self.step = 0
        self.total = 0
        self.cache_sources: list[BuildImage] | None = None  # --cache-from, when first needed

    def _env(self, state: StageState) -> dict[str, str]:
        """What variables expand to: the declared build args, the environment over them."""
        env = {k: v for k, v in state.args.items() if v is not None}
        for item in state.config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _expand(self, state: StageState, text: str, ins: Instruction) -> str:
        self._note_used(state, text, ins)
        try:
            return expand_word(text, self._env(state), ins.escape)
        except DockerfileError as e:
            raise e.at(ins.line) from None

    def _expand_words(self, state: StageState, text: str, ins: Instruction) -> list[str]:
        self._note_used(state, text, ins)
        try:
            return expand_words(text, self._env(state), ins.escape)
        except DockerfileError as e:
            raise e.at(ins.line) from None

    def _note_used(self, state: StageState, text: str, ins: Instruction) -> None:
        self.used_args.update(k for k in referenced_names(text, ins.escape) if k in state.args)

    def _source_image(self, name: str, state: StageState) -> BuildImage | None:
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
