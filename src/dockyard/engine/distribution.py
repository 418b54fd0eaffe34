"""Pull and push as the Engine API does them: references resolved against the daemon's
registry settings, progress as Docker's JSON messages, layers unpacked into the
snapshotter while the next ones download, images named when complete.

Which repository each blob came from (or went to) is kept in
<data-root>/image/distribution-sources.json, so that a push to another repository of the
same registry can mount the blob instead of uploading it again.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ..atomicfile import write_atomic
from ..distribution import (
    PROGRESS_INTERVAL,
    Credentials,
    GunzipReader,
    NotFoundError,
    PulledImage,
    Registries,
    RegistryClient,
    RegistryError,
    UnauthorizedError,
    get_manifest,
    list_tags,
    pull,
    push,
    short_id,
)
from ..image import (
    Descriptor,
    ImageError,
    Platform,
    Reference,
    mediatypes,
    normalize_platform,
    parse_config,
    parse_index,
    parse_manifest,
    parse_platform,
    parse_reference,
)
from ..image import ReferenceError as ImageReferenceError
from ..image.config import chain_ids
from ..snapshot import SnapshotError, Snapshotter, StagedLayer
from .errors import EngineError, InvalidParameter, NotFound
from .images import ImageService
from .options import EngineOptions

Emit = Callable[[dict[str, Any]], None]
_SOURCES = "distribution-sources.json"


class RegistryUnauthorized(EngineError):
    """The registry refused the credentials (the API answers 401)."""


def credentials_from(username: str = "", password: str = "", auth: str = "",
                     identitytoken: str = "", registrytoken: str = "") -> Credentials:
    """Credentials from the fields of the Engine API's AuthConfig ("auth" is
    base64("user:password"), used when username is empty)."""
    if auth and not username:
        try:
            username, _, password = base64.b64decode(auth).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidParameter("invalid auth configuration: bad \"auth\" field") from None
    return Credentials(username, password, identitytoken, registrytoken)


def progress_bar(current: int, total: int) -> str:
    """The "progress" text of a JSON message (jsonmessage's JSONProgress at width 200)."""
    from ..units import human_size

    if total <= 0:
        return f"{human_size(current, 4):>8}" if current > 0 else ""
    filled = min(int(current / total * 100) // 2, 50)
    bar = "=" * filled + ">" + " " * (50 - filled)
    return f"[{bar}] {human_size(current, 4):>8}/{human_size(total, 4)}"


def _message(layer_id: str, status: str, current: int = -1, total: int = -1) -> dict[str, Any]:
    message: dict[str, Any] = {"status": status, "progressDetail": {}, "id": layer_id}
    if current >= 0:
        message["progressDetail"] = {"current": current, "total": total}
        message["progress"] = progress_bar(current, total)
    return message


def _emit_lock(emit: Emit) -> Emit:
    lock = threading.Lock()

    def locked(message: dict[str, Any]) -> None:
        with lock:
            emit(message)

    return locked


class DistributionService:
    def __init__(self, options: EngineOptions, images: ImageService,
                 snapshots: Snapshotter) -> None:
        self.registries = Registries(options.insecure_registries, options.registry_mirrors)
        self.images = images
        self.snapshots = snapshots
        self._sources_lock = threading.Lock()
        self._sources_path = images.root / _SOURCES
        # Blob digest -> "domain/repository" names it is known to be in.
        self._sources: dict[str, list[str]] = {}
        if self._sources_path.exists():
            try:
                self._sources = dict(json.loads(self._sources_path.read_bytes()))
            except (ValueError, TypeError):
                self._sources = {}  # only an optimisation: start again

    # -- pull -------------------------------------------------------------------------------

    def pull(self, from_image: str, tag: str, platform: str, credentials: Credentials,
             emit: Emit) -> None:
        """POST /images/create?fromImage=&tag=: every tag of the repository when neither
        the image nor `tag` names one."""
        ref = _parse(from_image)
        if tag:
            if ":" in tag and tag.partition(":")[0] in ("sha256", "sha384", "sha512"):
                ref = _parse(f"{ref.name}@{tag}")
            else:
                try:
                    ref = ref.with_tag(tag)
                except ImageReferenceError as e:
                    raise InvalidParameter(str(e)) from None
        wanted = None
        if platform:
            try:
                wanted = normalize_platform(parse_platform(platform))
            except ImageError as e:
                raise InvalidParameter(str(e)) from None
        emit = _emit_lock(emit)
        if ref.tag is None and ref.digest is None:
            tags = self._attempt(ref, credentials, lambda c: list_tags(c, ref.path))
            for name in sorted(tags):
                self._pull_one(Reference(ref.domain, ref.path, name), wanted, credentials,
                               emit)
            return
        self._pull_one(ref, wanted, credentials, emit)

    def _attempt(self, ref: Reference, credentials: Credentials,
                 operation: Callable[[RegistryClient], Any], push_: bool = False) -> Any:
        try:
            return self.registries.attempt(ref.domain, credentials, operation, push=push_)
        except UnauthorizedError as e:
            raise RegistryUnauthorized(str(e)) from None
        except NotFoundError as e:
            if "MANIFEST_UNKNOWN" in e.codes or "NAME_UNKNOWN" in e.codes or not e.codes:
                raise NotFound(f"manifest for {ref.familiar()} not found: {e}") from None
            raise NotFound(str(e)) from None
        except RegistryError as e:
            raise EngineError(str(e)) from None

    def _pull_one(self, ref: Reference, platform: Platform | None, credentials: Credentials,
                  emit: Emit) -> None:
        handler = _PullProgress(self, ref, platform, emit)
        reference = ref.digest or ref.tag or "latest"
        name = str(ref)
        previous = self.images.target_of(name)
        try:
            pulled: PulledImage = self._attempt(
                ref, credentials,
                lambda c: pull(c, ref.path, reference, self.images.content, platform, handler))
        except (ImageError, SnapshotError) as e:
            self.snapshots.settle_later()  # the layers it published before it failed
            raise EngineError(str(e)) from None
        except BaseException:
            self.snapshots.settle_later()
            raise
        self._remember(ref, [pulled.target.digest, pulled.manifest.digest,
                             pulled.config.digest, *(layer.digest for layer in pulled.layers)])
        self.images.add(pulled.target, name, platform=platform)
        emit({"status": f"Digest: {pulled.target.digest}"})
        familiar = ref.familiar()
        if pulled.fetched or previous != str(pulled.target.digest):
            emit({"status": f"Status: Downloaded newer image for {familiar}"})
        else:
            emit({"status": f"Status: Image is up to date for {familiar}"})
        # The layers it published, synced in the background (snapshot/_snapshotter.py).
        self.snapshots.settle_later()

    # -- push -------------------------------------------------------------------------------

    def push(self, name: str, tag: str, credentials: Credentials, emit: Emit,
             chunk_size: int = 0, platform: Platform | None = None) -> None:
        """POST /images/{name}/push?tag=&platform=: every local tag of the repository
        without a tag; only the manifest of `platform` when one is given."""
        ref = _parse(name)
        if tag:
            try:
                ref = ref.with_tag(tag)
            except ImageReferenceError as e:
                raise InvalidParameter(str(e)) from None
        if ref.tag is not None:
            refs = [ref]
        else:
            prefix = ref.name + ":"
            refs = [parse_reference(n) for n in self.images.names() if n.startswith(prefix)]
            if not refs:
                raise NotFound(f"An image does not exist locally with the tag: {ref.name}")
        for each in refs:
            self.images.find(str(each))  # NotFound before the stream says anything
        emit = _emit_lock(emit)
        emit({"status": f"The push refers to repository [{ref.name}]"})
        for each in refs:
            self._push_one(each, credentials, emit, chunk_size, platform)

    def _push_one(self, ref: Reference, credentials: Credentials, emit: Emit,
                  chunk_size: int, platform: Platform | None = None) -> None:
        try:
            target_digest, resolved = self.images.find(str(ref), platform)
        except NotFound:
            raise NotFound(f"An image does not exist locally with the tag: {ref.name}") \
                from None
        content = self.images.content
        target = resolved.target
        manifests = list(resolved.manifests)
        if platform is not None:
            target, manifests = resolved.manifest, [resolved.manifest]
            target_digest = str(target.digest)
        elif mediatypes.is_index(target.media_type):
            index = parse_index(content.read_bytes(target.digest), target.media_type)
            children = [m for m in index.manifests
                        if mediatypes.is_manifest(m.media_type) or mediatypes.is_index(
                            m.media_type)]
            if any(not content.has(m.digest) for m in children):
                # A sparse index (some platforms not here) cannot be pushed as it is: push
                # the platform manifest this daemon runs, as dockerd does.
                target, manifests = resolved.manifest, [resolved.manifest]
            else:
                # Every child, attestations included, goes up before the index.
                manifests = list(children)
        plan = [(m, self._layer_ids(m)) for m in manifests]
        blobs = [str(target.digest)]
        for manifest, _ in plan:
            parsed = parse_manifest(content.read_bytes(manifest.digest), manifest.media_type)
            blobs += [str(manifest.digest), str(parsed.config.digest),
                      *(str(layer.digest) for layer in parsed.layers)]

        def handler_progress(layer_id: str, status: str, current: int = -1,
                             total: int = -1) -> None:
            if layer_id:
                emit(_message(layer_id, status, current, total))

        handler = _Handler(handler_progress)
        pushed = self._attempt(ref, credentials, lambda c: push(
            c, ref.path, ref.tag or "", content, target, plan, handler,
            lambda digest: self._mount_sources(ref, digest), chunk_size), push_=True)
        self._remember(ref, blobs)
        if str(pushed.digest) != target_digest:
            raise EngineError(f"the registry stored {pushed.digest}, not {target_digest}")
        emit({"status": f"{ref.tag}: digest: {pushed.digest} size: {pushed.size}"})
        emit({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": str(pushed.digest),
                                            "Size": pushed.size}})

    def _layer_ids(self, manifest: Descriptor) -> tuple[str, ...]:
        """Docker shows a pushed layer by its diff ID."""
        content = self.images.content
        try:
            parsed = parse_manifest(content.read_bytes(manifest.digest), manifest.media_type)
            if not mediatypes.is_config(parsed.config.media_type):
                return ()
            config = parse_config(content.read_bytes(parsed.config.digest))
        except (ImageError, OSError):
            return ()
        return tuple(short_id(d) for d in config.diff_ids)

    # -- sources (for cross-repository mounts) ---------------------------------------------

    def _remember(self, ref: Reference, digests: list[str]) -> None:
        repository = f"{ref.domain}/{ref.path}"
        with self._sources_lock:
            changed = False
            for digest in digests:
                known = self._sources.setdefault(str(digest), [])
                if repository not in known:
                    known.append(repository)
                    changed = True
            if changed:
                write_atomic(self._sources_path, json.dumps(self._sources), durable=True)

    def _mount_sources(self, ref: Reference, digest: str) -> list[str]:
        with self._sources_lock:
            known = list(self._sources.get(digest, []))
        prefix = ref.domain + "/"
        return [name[len(prefix):] for name in known
                if name.startswith(prefix) and name[len(prefix):] != ref.path]

    # -- login and inspection ---------------------------------------------------------------

    def login(self, server: str, credentials: Credentials) -> dict[str, str]:
        """POST /auth: check the credentials against the registry."""
        domain = _server_domain(server)
        try:
            status = self.registries.attempt(domain, credentials,
                                             lambda c: c.login(), push=True)
        except UnauthorizedError as e:
            raise RegistryUnauthorized(str(e)) from None
        except RegistryError as e:
            raise EngineError(str(e)) from None
        return {"Status": status, "IdentityToken": ""}

    def inspect(self, name: str, credentials: Credentials) -> dict[str, Any]:
        """GET /distribution/{name}/json: the descriptor the name has in the registry and
        the platforms it offers."""
        ref = _parse(name).with_default_tag()
        reference = ref.digest or ref.tag or "latest"

        def fetch(client: RegistryClient) -> dict[str, Any]:
            data, descriptor = get_manifest(client, ref.path, reference)
            platforms: list[dict[str, Any]] = []
            if mediatypes.is_index(descriptor.media_type):
                for entry in parse_index(data, descriptor.media_type).manifests:
                    if entry.platform is not None:
                        platforms.append(entry.platform.to_json())
            else:
                manifest = parse_manifest(data, descriptor.media_type)
                with client.request("GET", ref.path, f"blobs/{manifest.config.digest}") as r:
                    config_bytes = r.read(1 << 20)
                try:
                    platforms.append(parse_config(config_bytes).platform.to_json())
                except ImageError:
                    pass
            return {"Descriptor": descriptor.to_json(), "Platforms": platforms}

        return self._attempt(ref, credentials, fetch)

    def manifests(self, name: str, credentials: Credentials) -> dict[str, Any]:
        """`manifest inspect`: the document `name` has in the registry ("Raw", base64),
        and for an index each platform manifest too ("Manifests")."""
        ref = _parse(name).with_default_tag()
        reference = ref.digest or ref.tag or "latest"

        def fetch(client: RegistryClient) -> dict[str, Any]:
            data, descriptor = get_manifest(client, ref.path, reference)
            result: dict[str, Any] = {"Ref": str(ref), "Descriptor": descriptor.to_json(),
                                      "Raw": base64.b64encode(data).decode(),
                                      "Manifests": []}
            if mediatypes.is_index(descriptor.media_type):
                for child in parse_index(data, descriptor.media_type).manifests:
                    child_data, _ = get_manifest(client, ref.path, str(child.digest))
                    result["Manifests"].append({
                        "Ref": f"{ref.name}@{child.digest}", "Descriptor": child.to_json(),
                        "Raw": base64.b64encode(child_data).decode()})
            return result

        return self._attempt(ref, credentials, fetch)


class _Handler:
    def __init__(self, progress: Callable[..., None]) -> None:
        self.progress = progress


class _PullProgress:
    """The PullHandler of one pull: JSON messages, and the snapshotter."""

    def __init__(self, service: DistributionService, ref: Reference,
                 platform: Platform | None, emit: Emit) -> None:
        self.service = service
        self.ref = ref
        self.platform = platform
        self.emit = emit
        self.chains: list[str] = []

    def progress(self, layer_id: str, status: str, current: int = -1, total: int = -1) -> None:
        self.emit(_message(layer_id, status, current, total))

    def resolved(self, target: Descriptor, manifest: Descriptor) -> None:
        self.emit({"status": f"Pulling from {self.ref.path}",
                   "id": self.ref.digest or self.ref.tag or "latest"})

    def unpacked(self, config: bytes, layers: tuple[Descriptor, ...]) -> list[bool]:
        try:
            parsed = parse_config(config)
        except ImageError as e:
            raise RegistryError(str(e)) from None
        if len(parsed.diff_ids) != len(layers):
            raise RegistryError(f"the manifest has {len(layers)} layers, but its config "
                                f"lists {len(parsed.diff_ids)} diff_ids")
        if self.platform is not None:
            actual = normalize_platform(parsed.platform)
            if (actual.os, actual.architecture) != (self.platform.os,
                                                    self.platform.architecture):
                raise RegistryError(
                    f"image with reference {self.ref.familiar()} was found but does not "
                    f"match the specified platform: wanted {self.platform}, actual: {actual}")
        self.chains = [str(c) for c in chain_ids([str(d) for d in parsed.diff_ids])]
        return [self.service.snapshots.has_layer(chain) for chain in self.chains]

    def stage(self, position: int, layer: Descriptor, stream: Any,
              progress: Callable[[int], None]) -> StagedLayer:
        source: Any = _Counting(stream, progress, layer.size)
        if mediatypes.layer_compression(layer.media_type) == "gzip":
            source = GunzipReader(source)
        try:
            return self.service.snapshots.stage_layer(source)
        except ValueError as e:  # the gzip stream itself is broken
            raise RegistryError(f"layer {layer.digest}: {e}") from None

    def publish(self, position: int, staged: object) -> None:
        assert isinstance(staged, StagedLayer)
        parent = self.chains[position - 1] if position else None
        # Not synced before it is visible: the blob, fsynced in the content store, is the
        # durable copy (see snapshot/_snapshotter.py); settle() follows after the pull.
        self.service.snapshots.publish_layer(staged, self.chains[position], parent,
                                             durable=False)

    def discard(self, staged: object) -> None:
        assert isinstance(staged, StagedLayer)
        self.service.snapshots.discard_staged(staged)


class _Counting:
    """"Extracting" progress: every megabyte, but at most ten times a second (dockerd's
    rate), and at the end."""

    _STEP = 1 << 20

    def __init__(self, source: Any, progress: Callable[[int], None], total: int) -> None:
        self._source = source
        self._progress = progress
        self._total = total
        self._done = 0
        self._reported = -1
        self._reported_at = 0.0

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._source.read(size)
        self._done += len(data)
        if self._done == self._total and self._reported != self._done:
            self._reported = self._done
            self._progress(self._done)
        elif self._done - self._reported >= self._STEP:
            now = time.monotonic()
            if now - self._reported_at >= PROGRESS_INTERVAL:
                self._reported, self._reported_at = self._done, now
                self._progress(self._done)
        return data


def _parse(name: str) -> Reference:
    try:
        return parse_reference(name)
    except ImageReferenceError as e:
        raise InvalidParameter(str(e)) from None


def _server_domain(server: str) -> str:
    """The registry domain of a login's server address ("https://index.docker.io/v1/",
    "http://host:5000", "host:5000")."""
    text = server.strip() or "docker.io"
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.split("/", 1)[0]
    if text in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return text


def download_url(url: str, sink: Any) -> str:
    """`import` from a URL (POST /images/create?fromSrc=URL): the archive at `url`
    written to `sink`. As dockerd does, a URL without a scheme is taken as http://.
    Returns the URL fetched."""
    import urllib.error
    import urllib.request

    if "://" not in url:
        url = f"http://{url}"
    if not url.startswith(("http://", "https://")):
        raise InvalidParameter(f"unsupported URL scheme: {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - checked
            while chunk := response.read(1 << 20):
                sink.write(chunk)
    except urllib.error.HTTPError as e:
        raise EngineError(f"Get \"{url}\": {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise EngineError(f"Get \"{url}\": {reason}") from None
    sink.flush()
    sink.seek(0)
    return url


def registry_config(insecure_registries: list[str], mirrors: list[str]) -> dict[str, Any]:
    """/info's RegistryConfig as dockerd fills it: CIDRs apart, named registries as
    insecure IndexConfigs, Docker Hub official and secure."""
    import ipaddress

    cidrs = ["127.0.0.0/8"]
    indexes: dict[str, Any] = {"docker.io": {"Name": "docker.io", "Mirrors": list(mirrors),
                                             "Secure": True, "Official": True}}
    for entry in insecure_registries:
        try:
            network = str(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            indexes[entry] = {"Name": entry, "Mirrors": [], "Secure": False,
                              "Official": False}
            continue
        if network not in cidrs:
            cidrs.append(network)
    return {"AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": indexes, "Mirrors": list(mirrors)}
