"""Builds: the build layer's executor made of the engine's parts, and the service behind
POST /build.

Each RUN is a real container made by the container service and started through the
shim and the OCI runtime like any `run`; COPY/ADD/WORKDIR write into a container's
mounted snapshot; a step's changes are committed into the image store as a layer. Step
images are registered untagged with their parent recorded (hidden from `images` like
Docker's intermediate images); only a finished build is tagged.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..build import (
    BuildCache,
    Builder,
    BuildError,
    BuildImage,
    BuildOptions,
    DockerfileError,
    DockerIgnore,
    RunOptions,
    parse_dockerfile,
)
from ..build import Dockerfile as ParsedDockerfile
from ..compression import (
    MAGIC_LENGTH,
    Prefixed,
    corrupt_data_errors,
    open_decompressed,
    read_exactly,
)
from ..image import (
    Descriptor,
    ImageError,
    build_index,
    describe,
    mediatypes,
    parse_platform,
    parse_reference,
)
from ..image import ReferenceError as ImageReferenceError
from ..shim.protocol import FrameDecoder
from .archive import ArchiveService, placeholders
from .commit import CommitService, _filtered_tar, _spool
from .errors import EngineError, InvalidParameter, NotFound
from .timefmt import rfc3339_now

_CHUNK = 1 << 20


@dataclass
class BuildRequest:
    """What POST /build asks for (the query, decoded)."""

    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    options: BuildOptions = field(default_factory=BuildOptions)
    platforms: list[str] = field(default_factory=list)
    quiet: bool = False


@dataclass
class PreparedBuild:
    """A build whose context is unpacked and whose Dockerfile is checked."""

    request: BuildRequest
    directory: tempfile.TemporaryDirectory[str]
    dockerfiles: list[ParsedDockerfile]

    @property
    def context_dir(self) -> str:
        return str(Path(self.directory.name) / "context")

    def close(self) -> None:
        self.directory.cleanup()


class BuildService:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.root = engine.options.data_root / "build"
        self.root.mkdir(parents=True, exist_ok=True)
        # Contexts of builds a killed daemon left behind.
        for stale in self.root.glob("ctx-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.cache = BuildCache(self.root / "cache.json")
        self.executor = EngineExecutor(engine)

    # -- before anything runs -----------------------------------------------------------------

    def prepare(self, context: IO[bytes], request: BuildRequest) -> PreparedBuild:
        """Unpack the context, read and check the Dockerfile and the tags: every error a
        client should get as an HTTP error (nothing has run yet)."""
        for tag in request.tags:
            _check_tag(tag)
        for platform in request.platforms:
            try:
                parse_platform(platform)
            except ImageError as e:
                raise InvalidParameter(str(e)) from None
        directory = tempfile.TemporaryDirectory(prefix="ctx-", dir=self.root)
        try:
            context_dir = Path(directory.name) / "context"
            context_dir.mkdir()
            _unpack_context(context, context_dir)
            text = _read_dockerfile(context_dir, request.dockerfile)
            try:
                parsed = [parse_dockerfile(text, request.dockerfile)
                          for _ in request.platforms or [""]]
            except DockerfileError as e:
                raise InvalidParameter(e.message) from None
            return PreparedBuild(request, directory, parsed)
        except BaseException:
            directory.cleanup()
            raise

    # -- the build ------------------------------------------------------------------------------

    def build(self, prepared: PreparedBuild, emit: Callable[[dict[str, Any]], None]) -> str:
        """Runs the build, sending Docker's progress messages to emit; the image ID (of
        the index, for several platforms). BuildError ends it."""
        request = prepared.request
        held: list[str] = []  # -q: the output, shown only if the build fails (as dockerd)
        stream = held.append if request.quiet else (lambda text: emit({"stream": text}))
        try:
            return self._build(prepared, emit, stream)
        except BuildError:
            if held:
                emit({"stream": "".join(held)})
            raise

    def _build(self, prepared: PreparedBuild, emit: Callable[[dict[str, Any]], None],
               stream: Callable[[str], None]) -> str:
        request = prepared.request
        platforms = request.platforms or [request.options.platform]
        built: list[BuildImage] = []
        for platform, dockerfile in zip(platforms, prepared.dockerfiles, strict=True):
            options = BuildOptions(**{**request.options.__dict__, "platform": platform,
                                      "cache_dir": str(self.root / "cache-mounts")})
            builder = Builder(self.executor, self.cache, prepared.context_dir, options, stream)
            built.append(builder.build(dockerfile))
        if len(built) == 1:
            image_id = built[0].id
            target = self.executor.target_of(built[0])
        else:
            target = self.executor.index_of(built)
            image_id = str(target.digest)
        emit({"aux": {"ID": image_id}})
        stream(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
        for tag in request.tags:
            name = str(parse_reference(tag).with_default_tag())
            self.engine.images.add(target, name)
            self.engine.events.emit("image", "tag", image_id,
                                    {"name": parse_reference(name).familiar()})
            stream(f"Successfully tagged {parse_reference(name).familiar()}\n")
        if request.quiet:
            # What `docker build -q` prints: dockerd's only output line in quiet mode.
            emit({"stream": f"{image_id}\n"})
        return image_id

    def prune(self, all_images: bool = False) -> dict[str, Any]:
        """POST /build/prune: forget the cache and remove the cache mounts' directories;
        step images stay while a tagged image builds on them."""
        del all_images
        ids = self.cache.image_ids()
        dropped = self.cache.forget(ids)
        reclaimed = 0
        mounts = self.root / "cache-mounts"
        if mounts.exists():
            for path in mounts.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    reclaimed += path.stat().st_size
            shutil.rmtree(mounts, ignore_errors=True)
        return {"CachesDeleted": sorted(ids) if dropped else None,
                "SpaceReclaimed": reclaimed}


def _check_tag(tag: str) -> None:
    try:
        reference = parse_reference(tag)
    except ImageReferenceError:
        raise InvalidParameter(f"invalid reference format: {tag}") from None
    if reference.digest:
        raise InvalidParameter("refusing to create a tag with a digest reference")


def _unpack_context(source: IO[bytes], target: Path) -> None:
    head = read_exactly(source.read, MAGIC_LENGTH)
    stream, _kind = open_decompressed(Prefixed(head, source))
    if not head:
        return  # an empty body: an empty context (the Dockerfile will be missing)
    root = os.path.realpath(target)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = _safe_name(member.name)
                if not name:
                    continue
                member.name = name
                _check_inside(root, name)
                if member.islnk():
                    member.linkname = _safe_name(member.linkname)
                    _check_inside(root, member.linkname)
                tar.extract(member, target, set_attrs=True, numeric_owner=True)
    except (tarfile.TarError, OSError, *corrupt_data_errors()) as e:
        raise InvalidParameter(f"failed to read the build context: {e}") from None


def _check_inside(root: str, name: str) -> None:
    """A member may not be written through a symlink the archive made earlier."""
    parent = os.path.realpath(os.path.join(root, os.path.dirname(name)))
    if parent != root and not parent.startswith(root + os.sep):
        raise InvalidParameter(f"failed to read the build context: {name} leads out of it")


def _safe_name(name: str) -> str:
    """A member name inside the context: no absolute path, no way up."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"failed to read the build context: invalid path {name}")
    return "/".join(parts)


def _read_dockerfile(context_dir: Path, name: str) -> str:
    relative = _safe_name(name or "Dockerfile")
    path = context_dir / relative
    if not path.is_file() and not name and (context_dir / "dockerfile").is_file():
        path, relative = context_dir / "dockerfile", "dockerfile"
    if not path.is_file():
        raise InvalidParameter(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")
    text = path.read_text(encoding="utf-8", errors="replace")
    ignore_file = context_dir / ".dockerignore"
    if ignore_file.is_file():
        ignore = DockerIgnore.from_text(ignore_file.read_text(errors="replace"))
        # As dockerd: the Dockerfile and .dockerignore are sent for the daemon to read,
        # and taken out again when the patterns exclude them (COPY . must not see them).
        for item in (relative, ".dockerignore"):
            if ignore.excluded(item):
                (context_dir / item).unlink(missing_ok=True)
    return text


# -- the executor -------------------------------------------------------------------------------

class EngineExecutor:
    """The build layer's Executor over the engine's container service and image store."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.images = engine.images
        self.containers = engine.containers
        self.archive = ArchiveService(engine)
        self.committer = CommitService(engine)
        self._lock = threading.Lock()

    # -- images -------------------------------------------------------------------------------

    def find_image(self, ref: str, platform: str, pull: bool) -> BuildImage:
        """The base image: pulled first with --pull, or when it is not here."""
        wanted = parse_platform(platform) if platform else None
        puller = self._pull if getattr(self.engine, "distribution", None) else None
        if pull and puller is not None:
            try:
                puller(ref, platform)
            except EngineError:
                pass  # offline: the local image, if there is one, will do
        try:
            target, resolved = self.images.find(ref, wanted)
        except NotFound:
            if puller is None:
                raise BuildError(f"pull access denied for {ref}, repository does not exist "
                                 "or may require 'docker login': no such image here and "
                                 "no registry client to pull it") from None
            try:
                puller(ref, platform)
                target, resolved = self.images.find(ref, wanted)
            except EngineError as e:
                raise BuildError(str(e)) from None
        except (EngineError, ImageError) as e:
            raise BuildError(str(e)) from None
        return BuildImage(str(resolved.id), self._doc(resolved), target)

    def _pull(self, ref: str, platform: str) -> None:
        # Anonymous, as the classic builder without X-Registry-Config; the progress of a
        # base image's pull is not part of the build's output.
        from .distribution import credentials_from

        self.engine.distribution.pull(ref, "", platform, credentials_from(), lambda _m: None)

    def _resolve(self, image: BuildImage) -> Any:
        if not image.ref:
            return self.images.find(image.id)[1]
        doc = image.doc
        platform = "/".join(str(doc.get(k)) for k in ("os", "architecture", "variant")
                            if doc.get(k))
        return self.images.resolve(image.ref, parse_platform(platform))

    def _doc(self, resolved: Any) -> dict[str, Any]:
        return dict(json.loads(self.images.content.read_bytes(resolved.config.digest)))

    def image(self, image_id: str) -> BuildImage | None:
        try:
            _, resolved = self.images.find(image_id)
        except (EngineError, ImageError):
            return None
        return BuildImage(str(resolved.id), self._doc(resolved))

    def target_of(self, image: BuildImage) -> Descriptor:
        return self._resolve(image).manifest

    def index_of(self, images: list[BuildImage]) -> Descriptor:
        """An image index over per-platform images (buildx build --platform a,b)."""
        manifests = []
        for image in images:
            resolved = self._resolve(image)
            manifests.append(Descriptor(resolved.manifest.media_type,
                                        resolved.manifest.digest, resolved.manifest.size,
                                        platform=resolved.platform))
        data = build_index(manifests)
        index = describe(data, mediatypes.OCI_INDEX)
        self.images.content.ingest(data, str(index.digest))
        self.images.add(index, None)
        return index

    # -- containers -----------------------------------------------------------------------------

    def create(self, parent: BuildImage | None, config: dict[str, Any], options: RunOptions,
               platform: str) -> str:
        if parent is None:
            parent = self._scratch(platform)
        config = {**config, "Image": parent.ref or parent.id}
        host: dict[str, Any] = {"NetworkMode": options.network_mode or "default"}
        if options.extra_hosts:
            host["ExtraHosts"] = list(options.extra_hosts)
        if options.shm_size:
            host["ShmSize"] = options.shm_size
        mounts = [{"Type": m.type, "Target": m.target, "ReadOnly": m.readonly,
                   **({"Source": m.source} if m.source else {})} for m in options.mounts]
        if mounts:
            host["Mounts"] = mounts
        try:
            record = self.containers.create(None, config, host, platform=platform or None)
        except EngineError as e:
            raise BuildError(str(e)) from None
        return str(record["Id"])

    def _scratch(self, platform: str) -> BuildImage:
        """An image with no layers for FROM scratch's first container."""
        doc: dict[str, Any] = {"architecture": "amd64", "os": "linux", "config": {},
                               "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
        if platform:
            wanted = parse_platform(platform)
            doc.update(architecture=wanted.architecture, os=wanted.os)
            if wanted.variant:
                doc["variant"] = wanted.variant
        return self._register(dict(sorted(doc.items())), [], "")

    def run(self, container: str, output: Callable[[bytes], None]) -> int:
        delivered: queue.Queue[Any] = queue.Queue()
        self.containers.attach_when_started(
            container, {"stdin": False, "stdout": True, "stderr": True,
                        "stdin_once": False}, delivered.put)
        try:
            self.containers.start(container)
        except EngineError as e:
            raise BuildError(str(e), 1) from None
        try:
            sock = delivered.get(timeout=30)
        except queue.Empty:
            sock = None
        if sock is not None:
            decoder = FrameDecoder()
            with sock:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    for _, payload in decoder.feed(data):
                        output(payload)
        self.containers.wait_for_exit(container, None)
        return int(self.containers.get(container)["State"]["ExitCode"])

    @contextmanager
    def rootfs(self, container: str) -> Iterator[str]:
        with self.archive._root(container) as (_, root):
            yield root

    @contextmanager
    def image_rootfs(self, image: BuildImage) -> Iterator[str]:
        container = self.create(image, {"Cmd": ["#(nop)"]}, RunOptions(network_mode="none"),
                                "")
        try:
            with self.rootfs(container) as root:
                yield root
        finally:
            self.remove(container)

    def remove(self, container: str) -> None:
        try:
            self.containers.remove(container, force=True)
        except EngineError:
            pass

    # -- commits ----------------------------------------------------------------------------------

    def commit(self, container: str | None, parent: BuildImage | None, doc: dict[str, Any],
               history: dict[str, Any]) -> BuildImage:
        parent_doc = parent.doc if parent is not None else {}
        layers: list[Descriptor] = []
        parent_id = parent.id if parent is not None else ""
        if parent is not None:
            layers = list(self._resolve(parent).layers)
        diff_ids = list((parent_doc.get("rootfs") or {}).get("diff_ids") or [])
        now = rfc3339_now()
        entry: dict[str, Any] = {"created": now}
        if doc.get("author"):
            entry["author"] = doc["author"]
        entry["created_by"] = history["created_by"]
        if container is not None:
            record = self.containers.get(container)
            if not parent_id:
                parent_id = str(record["Image"])  # the scratch image the container used
            with tempfile.TemporaryFile(dir=self.engine.options.data_root) as raw, \
                    tempfile.TemporaryFile(dir=self.engine.options.data_root) as layer:
                try:
                    hidden = placeholders(self.engine.snapshots, container)
                    _spool(self.engine.snapshots.diff(container), raw)
                    raw.seek(0)
                    diff_id, size, empty = _spool(_filtered_tar(raw, hidden), layer)
                except Exception as e:  # noqa: BLE001 - a snapshot error of any kind
                    raise BuildError(f"failed to commit the step: {e}") from None
                if not empty:
                    layer.seek(0)
                    digest, _ = self.images.content.ingest(layer, diff_id, size)
                    layers.append(Descriptor(mediatypes.OCI_LAYER, digest, size))
                    diff_ids.append(diff_id)
        if container is None or history.get("empty_layer") or len(diff_ids) == len(
                (parent_doc.get("rootfs") or {}).get("diff_ids") or []):
            entry["empty_layer"] = True
        doc = {**doc, "created": now, "docker_version": f"dockyard-{__version__}",
               "history": list(parent_doc.get("history") or []) + [entry],
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        return self._register(dict(sorted(doc.items())), layers, parent_id)

    def adopt(self, parent: BuildImage | None, doc: dict[str, Any], history: dict[str, Any],
              source: BuildImage, layer: int | None) -> BuildImage:
        parent_doc = parent.doc if parent is not None else {}
        layers = list(self._resolve(parent).layers) if parent is not None else []
        diff_ids = list((parent_doc.get("rootfs") or {}).get("diff_ids") or [])
        if layer is not None:
            layers.append(self._resolve(source).layers[layer])
            diff_ids.append(source.doc["rootfs"]["diff_ids"][layer])
        doc = {**doc, "created": history.get("created") or rfc3339_now(),
               "docker_version": f"dockyard-{__version__}",
               "history": list(parent_doc.get("history") or []) + [dict(history)],
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        return self._register(dict(sorted(doc.items())), layers,
                              parent.id if parent is not None else "")

    def _register(self, doc: dict[str, Any], layers: list[Descriptor],
                  parent_id: str) -> BuildImage:
        return BuildImage(self.committer._register(doc, layers, None, parent=parent_id), doc)
