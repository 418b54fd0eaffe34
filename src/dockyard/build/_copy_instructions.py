"""COPY and ADD: sources from the context, an earlier stage or an image, and heredocs,
keyed by their content hash and copied into the step's root."""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any

from ._copy import Ownership, copy_sources, destination, ownership, write_file
from ._errors import BuildError
from ._instructions import Instruction
from ._lexer import expand_variables
from ._sources import Source, hash_sources, resolve_sources
from ._stage_state import StageState
from ._step_commit import StepCommits
from ._values import parse_mode


class CopyInstructions(StepCommits):
    """The handlers of COPY and ADD; `Builder` dispatches to them by name."""

    def _do_copy(self, state: StageState, ins: Instruction) -> None:
        self._copy(state, ins, "COPY")

    def _do_add(self, state: StageState, ins: Instruction) -> None:
        self._copy(state, ins, "ADD")

    def _copy(self, state: StageState, ins: Instruction, name: str) -> None:
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

    def _copy_step(self, state: StageState, ins: Instruction, name: str, sources: list[Source],
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
