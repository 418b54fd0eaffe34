"""Where COPY and ADD read from (the build context or another stage's / image's root):
resolving source paths and wildcards as Docker does, and the content hash that decides
whether a cached step may be reused."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
from dataclasses import dataclass

from ._errors import BuildError


@dataclass(frozen=True)
class Source:
    """One source of a COPY/ADD: its path relative to the root it is read from."""

    relative: str
    host_path: str
    is_dir: bool


def _has_wildcards(path: str) -> bool:
    return any(char in path for char in "*?[")


def _clean(path: str) -> str:
    cleaned = posixpath.normpath("/" + path).lstrip("/")
    return cleaned or "."


def resolve_sources(root: str, patterns: list[str], command: str, from_context: bool,
                    follow_root: bool = False) -> list[Source]:
    """The sources the patterns name under root, in Docker's order. Errors as Docker's
    classic builder words them."""
    found: list[Source] = []
    for pattern in patterns:
        joined = posixpath.normpath(posixpath.join("/", pattern))
        if from_context and posixpath.normpath(pattern).startswith("../"):
            raise BuildError(f"{command} failed: forbidden path outside the build context: "
                             f"{pattern} ()")
        relative = _clean(joined)
        if _has_wildcards(relative):
            matches = _walk_matches(root, relative)
            found.extend(matches)
            continue
        host = _inside(root, relative, follow_root)
        try:
            st = os.lstat(host)
            if stat.S_ISLNK(st.st_mode) and follow_root:
                st = os.stat(host)
        except OSError:
            where = "build context or excluded by .dockerignore" if from_context else \
                "source image"
            raise BuildError(f"{command} failed: file not found in {where}: stat {pattern}: "
                             "file does not exist") from None
        found.append(Source(relative, host, stat.S_ISDIR(st.st_mode)))
    if not found:
        raise BuildError(f"{command} failed: no source files were specified")
    return found


def _inside(root: str, relative: str, follow: bool) -> str:
    """The host path of a source: symlinks on the way are resolved inside root (a link in
    the context to /etc leads to the context's own etc), the last one only if follow."""
    from ..runtime.rootfs import secure_join

    if relative == ".":
        return root
    if follow:
        return secure_join(root, relative)
    parent = secure_join(root, posixpath.dirname(relative))
    return os.path.join(parent, posixpath.basename(relative))


def _walk_matches(root: str, pattern: str) -> list[Source]:
    matches: list[Source] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        base = os.path.relpath(directory, root)
        base = "" if base == "." else base
        keep = []
        for name in dirs + sorted(files):
            relative = f"{base}/{name}" if base else name
            if fnmatch.fnmatchcase(relative, pattern) and not _crosses(relative, pattern):
                is_dir = name in dirs and not os.path.islink(os.path.join(directory, name))
                matches.append(Source(relative, os.path.join(directory, name), is_dir))
            elif name in dirs:
                keep.append(name)
        dirs[:] = keep
    return sorted(matches, key=lambda s: s.relative)


def _crosses(relative: str, pattern: str) -> bool:
    """fnmatch's * crosses '/', Go's filepath.Match does not: same depth or no match."""
    return relative.count("/") != pattern.count("/")


def hash_sources(sources: list[Source]) -> str:
    """Docker's form ("file:<hex>", "dir:<hex>", "multi:<hex>") of a digest over the
    sources' names, types, modes, link targets and contents (not their times: touching
    a file keeps the cache, as with Docker)."""
    digests = [_hash_one(source) for source in sources]
    if len(sources) == 1:
        kind = "dir" if sources[0].is_dir else "file"
        return f"{kind}:{digests[0]}"
    return "multi:" + hashlib.sha256("".join(digests).encode()).hexdigest()


def _hash_one(source: Source) -> str:
    hasher = hashlib.sha256()
    if not source.is_dir:
        _hash_entry(hasher, "", source.host_path)
        return hasher.hexdigest()
    for directory, dirs, files in os.walk(source.host_path):
        dirs.sort()
        relative = os.path.relpath(directory, source.host_path)
        _hash_entry(hasher, relative, directory)
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(
                directory, d))]:
            _hash_entry(hasher, posixpath.join(relative, name), os.path.join(directory, name))
    return hasher.hexdigest()


def _hash_entry(hasher: hashlib._Hash, name: str, path: str) -> None:
    st = os.lstat(path)
    hasher.update(f"{name}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
    if stat.S_ISLNK(st.st_mode):
        hasher.update(os.readlink(path).encode() + b"\0")
    elif stat.S_ISREG(st.st_mode):
        hasher.update(f"{st.st_size}\0".encode())
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                hasher.update(chunk)
