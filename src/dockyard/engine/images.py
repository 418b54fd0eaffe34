"""Images as the engine sees them: names pointing at manifests (or indexes) in the
content store, resolved for a platform, unpacked into the snapshotter when run.

On disk: <data-root>/image/content (the CAS) and <data-root>/image/images.json, which
maps each image's target (manifest or index digest) to its descriptor and each name to a
target. The file is small and rewritten atomically on every change.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..atomicfile import write_atomic
from ..image import (
    ContentStore,
    Descriptor,
    ImageError,
    LoadedImage,
    Platform,
    ResolvedImage,
    SaveImage,
    is_image_id_like,
    load_archive,
    mediatypes,
    parse_descriptor,
    parse_platform,
    parse_reference,
    resolve_image,
    save_archive,
)
from ..image import ReferenceError as ImageReferenceError
from .errors import Conflict, InvalidParameter, NotFound
from .events import EventBus
from .timefmt import parse_rfc3339

_RECORDS = "images.json"


class ImageRecord:
    def __init__(self, target: Descriptor, created: float, parent: str = "") -> None:
        self.target = target
        self.created = created  # when it arrived here (load, pull, build, commit)
        self.parent = parent  # the image ID a build step started from ("" otherwise)


class ImageService:
    def __init__(self, root: Path, events: EventBus) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.content = ContentStore(root / "content")
        self.events = events
        # One writer at a time: a failed load removes the blobs it added, which must not
        # race with another load adding the same ones (see image.archive).
        self._lock = threading.RLock()
        self._records: dict[str, ImageRecord] = {}
        self._names: dict[str, str] = {}  # full reference -> target digest
        # Names pulled with --platform: the platform their index stands for, as Docker's
        # tag then names that platform's image (a later inspect or run finds it).
        self._platforms: dict[str, str] = {}
        self._resolved: dict[str, ResolvedImage] = {}
        self._load_records()

    # -- persistence ----------------------------------------------------------------------

    def _load_records(self) -> None:
        path = self.root / _RECORDS
        if not path.exists():
            return
        doc = json.loads(path.read_bytes())
        for digest, entry in doc.get("images", {}).items():
            self._records[digest] = ImageRecord(parse_descriptor(entry["target"], digest),
                                                entry.get("created", 0.0),
                                                entry.get("parent", ""))
        self._names = dict(doc.get("names", {}))
        self._platforms = {name: platform for name, platform
                           in dict(doc.get("platforms", {})).items() if name in self._names}

    def _save_records(self) -> None:
        doc = {
            "images": {digest: {"target": record.target.to_json(), "created": record.created,
                                **({"parent": record.parent} if record.parent else {})}
                       for digest, record in self._records.items()},
            "names": self._names,
            **({"platforms": self._platforms} if self._platforms else {}),
        }
        write_atomic(self.root / _RECORDS, json.dumps(doc, indent=1), durable=True)

    # -- lookup ---------------------------------------------------------------------------

    def resolve(self, target_digest: str, platform: Platform | None = None) -> ResolvedImage:
        key = f"{target_digest}|{platform}"
        cached = self._resolved.get(key)
        if cached is None:
            try:
                cached = resolve_image(self.content, self._records[target_digest].target,
                                       platform)
            except ImageError as e:
                raise InvalidParameter(str(e)) from None
            self._resolved[key] = cached
        return cached

    def find(self, ref: str, platform: Platform | None = None) -> tuple[str, ResolvedImage]:
        """(target digest, resolved image) for a name, an ID or an ID prefix; NotFound as
        Docker says it."""
        with self._lock:
            digest = self._find_target(ref)
            if digest is None:
                raise NotFound(f"No such image: {ref}")
            if platform is None:
                platform = self._platform_of(ref)
            return digest, self.resolve(digest, platform)

    def _platform_of(self, ref: str) -> Platform | None:
        if not self._platforms:
            return None
        try:
            chosen = self._platforms.get(str(parse_reference(ref).with_default_tag()))
        except ImageReferenceError:
            return None
        return parse_platform(chosen) if chosen else None

    def _find_target(self, ref: str) -> str | None:
        try:
            name = str(parse_reference(ref).with_default_tag())
        except ImageReferenceError:
            name = ""
        if name and name in self._names:
            return self._names[name]
        if is_image_id_like(ref) or ref.startswith("sha256:"):
            wanted = ref if ref.startswith("sha256:") else f"sha256:{ref}"
            matches = {digest for digest in self._records
                       if digest.startswith(wanted)
                       or self.resolve(digest).id.startswith(wanted)}
            if len(matches) == 1:
                return matches.pop()
            if matches and len({self.resolve(d).id for d in matches}) == 1:
                # One image held by several records (a build's platform image and the
                # index over it): the named record, else any.
                return sorted(matches, key=lambda d: (not self.names_of(d), d))[0]
        return None

    def target_of(self, name: str) -> str | None:
        """The target digest a full reference names, if any (pull and push)."""
        return self._names.get(name)

    def names(self) -> list[str]:
        return sorted(self._names)

    def names_of(self, target_digest: str) -> list[str]:
        return sorted(name for name, digest in self._names.items() if digest == target_digest)

    def all(self) -> list[tuple[str, ResolvedImage]]:
        with self._lock:
            result = []
            for digest in self._records:
                try:
                    result.append((digest, self.resolve(digest)))
                except InvalidParameter:
                    continue  # an image for no platform we can resolve: not listed
            return result

    # -- changes --------------------------------------------------------------------------

    def load(self, fileobj: IO[bytes]) -> list[LoadedImage]:
        with self._lock:
            try:
                loaded = load_archive(fileobj, self.content)
            except ImageError as e:
                raise InvalidParameter(str(e)) from None
            now = time.time()
            for image in loaded:
                digest = str(image.target.digest)
                self._records.setdefault(digest, ImageRecord(image.target, now))
                for tag in image.repo_tags:
                    self._retarget(str(tag), digest)
            self._save_records()
        for image in loaded:
            self.events.emit("image", "load", str(image.id))
        return loaded

    def add(self, target: Descriptor, name: str | None, parent: str = "",
            platform: Platform | None = None) -> None:
        """Registers an image whose blobs are already in the content store (commit,
        import, build, pull), optionally under a full reference; `parent`: the image ID a
        build step started from; `platform`: the one a pull asked for."""
        with self._lock:
            digest = str(target.digest)
            if digest not in self._records:
                self._records[digest] = ImageRecord(target, time.time(), parent)
            # A pull may have added a platform to an index: resolve it again.
            self._resolved = {k: v for k, v in self._resolved.items()
                              if not k.startswith(digest)}
            if name:
                self._retarget(name, digest)
                if platform is not None:
                    self._platforms[name] = str(platform)
            self._save_records()

    def tag(self, ref: str, repo: str, tag: str) -> None:
        target, image = self.find(ref)
        new = tag_reference(repo, tag)
        with self._lock:
            self._retarget(new, target)
            source = self._platform_of(ref)
            if source is not None:
                self._platforms[new] = str(source)
            self._save_records()
        self.events.emit("image", "tag", str(image.id),
                         {"name": parse_reference(new).familiar()})

    def _retarget(self, name: str, digest: str) -> None:
        self._names[name] = digest
        self._platforms.pop(name, None)

    def remove(self, ref: str, force: bool, in_use_by: list[str]) -> list[dict[str, str]]:
        """Untags ref (when it is a name with other names left) or deletes the image.
        `in_use_by`: IDs of containers made from it (refused unless force)."""
        with self._lock:
            target, image = self.find(ref)
            names = self.names_of(target)
            try:
                by_name = str(parse_reference(ref).with_default_tag())
            except ImageReferenceError:
                by_name = ""
            untagged: list[dict[str, str]] = []
            short_id = str(image.id)[7:19]
            if by_name in self._names and len(names) > 1:
                del self._names[by_name]
                self._platforms.pop(by_name, None)
                self._save_records()
                untagged.append({"Untagged": parse_reference(by_name).familiar()})
                self.events.emit("image", "untag", str(image.id), {"name": by_name})
                return untagged
            if in_use_by and not force:
                if by_name in self._names:
                    raise Conflict(f'conflict: unable to remove repository reference "{ref}" '
                                   f"(must force) - container {in_use_by[0][:12]} is using "
                                   f"its referenced image {short_id}")
                raise Conflict(f"conflict: unable to delete {short_id} (must be forced) - "
                               f"image is being used by stopped container {in_use_by[0][:12]}")
            if len(names) > 1 and not by_name and not force:
                raise Conflict(f"conflict: unable to delete {short_id} (must be forced) - "
                               "image is referenced in multiple repositories")
            for name in names:
                del self._names[name]
                self._platforms.pop(name, None)
                untagged.append({"Untagged": parse_reference(name).familiar()})
            parent = self._records[target].parent
            del self._records[target]
            self._resolved = {k: v for k, v in self._resolved.items()
                              if not k.startswith(target)}
            deleted = [{"Deleted": str(image.id)}] + self._remove_build_steps(parent)
            self._save_records()
        for entry in deleted:
            self.events.emit("image", "delete", entry["Deleted"])
        return untagged + deleted

    def _remove_build_steps(self, image_id: str) -> list[dict[str, str]]:
        """As Docker: removing a built image removes the untagged step images under it
        that nothing else builds on."""
        deleted = []
        while image_id:
            target = next((digest for digest in self._records
                           if self._id_of(digest) == image_id), None)
            if target is None or self.names_of(target) or any(
                    record.parent == image_id for record in self._records.values()):
                break
            parent = self._records.pop(target).parent
            self._resolved = {k: v for k, v in self._resolved.items()
                              if not k.startswith(target)}
            deleted.append({"Deleted": image_id})
            image_id = parent
        return deleted

    def _id_of(self, target_digest: str) -> str:
        try:
            return str(self.resolve(target_digest).id)
        except InvalidParameter:
            return ""

    def save(self, refs: list[str], fileobj: IO[bytes]) -> None:
        images = []
        for ref in refs:
            target, _ = self.find(ref)
            names = [n for n in self.names_of(target)]
            try:
                exact = str(parse_reference(ref).with_default_tag())
                names = [exact] if exact in names else names
            except ImageReferenceError:
                pass
            images.append(SaveImage(self._records[target].target,
                                    names=tuple(parse_reference(n) for n in names)))
        try:
            save_archive(images, fileobj, self.content)
        except ImageError as e:
            raise InvalidParameter(str(e)) from None

    def is_intermediate(self, target_digest: str) -> bool:
        """An untagged build step that another image builds on (`images` hides it
        without --all, as Docker does)."""
        if self.names_of(target_digest):
            return False
        image_id = str(self.resolve(target_digest).id)
        if any(record.parent == image_id for record in self._records.values()):
            return True
        # A platform image a build put under an index (buildx build --platform a,b).
        return any(digest != target_digest and target_digest in {
            str(m.digest) for m in self.resolve(digest).manifests}
            for digest, record in self._records.items()
            if mediatypes.is_index(record.target.media_type))

    def parent_of(self, target_digest: str) -> str:
        record = self._records.get(target_digest)
        return record.parent if record else ""

    def created(self, target_digest: str) -> float:
        return self._records[target_digest].created

    # -- presentation ---------------------------------------------------------------------

    def summary(self, target: str, image: ResolvedImage) -> dict[str, Any]:
        names = self.names_of(target)
        config = image.image_config
        return {
            "Id": str(image.id),
            "ParentId": "",
            "RepoTags": [parse_reference(n).familiar() for n in names if "@" not in n],
            "RepoDigests": _repo_digests(names, target),
            "Created": int(parse_rfc3339(config.created or "") or self.created(target)),
            "Size": self.size(image),
            "SharedSize": -1,
            "Labels": dict(config.config.labels or {}) or None,
            "Containers": -1,
        }

    def size(self, image: ResolvedImage) -> int:
        return sum(layer.size for layer in image.layers)

    def inspect(self, target: str, image: ResolvedImage) -> dict[str, Any]:
        raw = json.loads(self.content.read_bytes(image.config.digest))
        names = self.names_of(target)
        return {
            "Id": str(image.id),
            "RepoTags": [parse_reference(n).familiar() for n in names if "@" not in n],
            "RepoDigests": _repo_digests(names, target),
            "Parent": self.parent_of(target),
            "Comment": raw.get("comment", ""),
            "Created": raw.get("created", ""),
            "DockerVersion": raw.get("docker_version", ""),
            "Author": raw.get("author", ""),
            "Config": raw.get("config") or {},
            "Architecture": raw.get("architecture", ""),
            **({"Variant": raw["variant"]} if raw.get("variant") else {}),
            "Os": raw.get("os", ""),
            "Size": self.size(image),
            "GraphDriver": {"Name": "overlay2", "Data": None},
            "RootFS": {"Type": "layers", "Layers": [str(d) for d in image.diff_ids]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def history(self, image: ResolvedImage) -> list[dict[str, Any]]:
        raw = json.loads(self.content.read_bytes(image.config.digest))
        entries = []
        layers = iter(image.layers)
        for item in raw.get("history") or []:
            empty = item.get("empty_layer", False)
            size = 0 if empty else next(layers, Descriptor("", image.id, 0)).size
            created = int(parse_rfc3339(str(item.get("created") or "")))
            entries.append({"Id": "<missing>", "Created": created,
                            "CreatedBy": item.get("created_by", ""), "Tags": None,
                            "Size": size, "Comment": item.get("comment", "")})
        entries.reverse()
        if entries:
            entries[0]["Id"] = str(image.id)
        return entries


def tag_reference(repo: str, tag: str) -> str:
    """The full reference that `repo` and `tag` name (tag "latest" by default), as a tag
    or a commit records it: a bad one, or one with a digest, is refused."""
    try:
        reference = parse_reference(f"{repo}:{tag}" if tag else repo).with_default_tag()
    except ImageReferenceError as e:
        raise InvalidParameter(str(e)) from None
    if reference.digest:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    return str(reference)


def _repo_digests(names: list[str], target: str) -> list[str]:
    """repo@digest for each repository the image is named in (a name pinned by digest,
    as a pull by digest records it, counts once)."""
    found = {f"{parse_reference(n).familiar_name}@{target}" for n in names}
    return sorted(found)
