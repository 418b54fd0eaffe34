"""A step's commit: its container made (and for file steps, its root changed), the image
committed from it, the container removed, the cache told."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ._config import full_config
from ._executor import BuildImage, RunOptions
from ._stage_state import StageState
from ._step_cache import StepCache


class StepCommits(StepCache):
    """Step commits, shared by every instruction's handler."""

    def _commit_metadata(self, state: StageState, comment: str) -> None:
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

    def _commit_with_files(self, state: StageState, probe: dict[str, Any], extra: str,
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

    def _commit_container(self, state: StageState, container: str, probe: dict[str, Any],
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

    def _finish(self, state: StageState, probe: dict[str, Any], extra: str,
                image: BuildImage) -> None:
        self.cache.put(self._key(state, probe, extra), image.id)
        state.image = image
        state.doc = copy.deepcopy(image.doc)
