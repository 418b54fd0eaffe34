"""The step cache: the configuration a step is keyed and committed under, a hit in the
cache index, and --cache-from (a step reused from a source image's history)."""

from __future__ import annotations

import copy
from typing import Any

from ._builder_base import BuilderBase
from ._cache import step_key
from ._config import full_config
from ._errors import BuildError
from ._executor import BuildImage
from ._stage_state import StageState


class StepCache(BuilderBase):
    """Step keys and cache hits, shared by every instruction's handler."""

    def _probe(self, state: StageState, cmd: list[str]) -> dict[str, Any]:
        """The configuration a step is cached and committed under (Docker's
        runConfigForCacheProbe): the state's, its Cmd replaced by the step's."""
        return full_config({**state.config, "Cmd": cmd, "Image": state.image_id})

    def _key(self, state: StageState, probe: dict[str, Any], extra: str) -> str:
        # The platform counts too: FROM scratch has no parent to tell arm64 from amd64.
        platform = "/".join(str(state.doc.get(k) or "") for k in ("os", "architecture",
                                                                   "variant"))
        return step_key(state.image_id, probe, f"{platform}|{extra}")

    def _use_cache(self, state: StageState, probe: dict[str, Any], extra: str) -> bool:
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

    def _from_cache_sources(self, state: StageState, probe: dict[str, Any]) -> BuildImage | None:
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

    def _new_doc(self, state: StageState, probe: dict[str, Any],
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


def _history_key(entry: dict[str, Any]) -> tuple[str, bool, str]:
    return (entry.get("created_by", ""), bool(entry.get("empty_layer")),
            entry.get("comment", ""))
