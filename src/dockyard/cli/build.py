"""`dockyard build` and `dockyard buildx build`: send a build context to POST /build and
show the classic builder's output as `DOCKER_BUILDKIT=0 docker build` does.

The context is a directory (filtered by its .dockerignore here, as the docker CLI does;
the Dockerfile and .dockerignore are always sent so the daemon can read them), `-` (a tar
archive or a Dockerfile on standard input), and `-f` may name a Dockerfile outside the
context (or `-f -`): it is then added to the context under a private name.
`--secret id=ID,src=PATH` (BuildKit-only in docker) is sent in the
X-Dockyard-Build-Secrets header for `RUN --mount=type=secret`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import sys
import tarfile
import tempfile
from typing import Any

from ._args import Spec
from ._context import CommandFailed, Context
from .image import message_error, push_image

_FLAGS: list[Any] = [
    ("", "add-host", "list", [], "Add a custom host-to-IP mapping (\"host:ip\")"),
    ("", "build-arg", "list", [], "Set build-time variables"),
    ("", "cache-from", "list", [], "Images to consider as cache sources"),
    ("f", "file", "str", "", "Name of the Dockerfile (Default is \"PATH/Dockerfile\")"),
    ("", "force-rm", "bool", False, "Always remove intermediate containers"),
    ("", "iidfile", "str", "", "Write the image ID to the file"),
    ("", "label", "list", [], "Set metadata for an image"),
    ("", "network", "str", "default", "Set the networking mode for the RUN instructions "
                                      "during build"),
    ("", "no-cache", "bool", False, "Do not use cache when building the image"),
    ("", "platform", "str", "", "Set platform if server is multi-platform capable"),
    ("", "pull", "bool", False, "Always attempt to pull a newer version of the image"),
    ("q", "quiet", "bool", False, "Suppress the build output and print image ID on success"),
    ("", "rm", "bool", True, "Remove intermediate containers after a successful build"),
    ("", "secret", "list", [], "Secret to expose to the build (format: "
                               "\"id=mysecret[,src=/local/secret]\")"),
    ("", "shm-size", "str", "", "Size of \"/dev/shm\""),
    ("t", "tag", "list", [], "Name and optionally a tag in the \"name:tag\" format"),
    ("", "target", "str", "", "Set the target build stage to build."),
]
BUILD_SPEC = Spec("build", "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
                  _FLAGS, 1, 1)
BUILDX_SPEC = Spec("buildx build", "[OPTIONS] PATH | URL | -",
                   "Start a build (one image per platform, an index over them)",
                   [*_FLAGS, ("", "push", "bool", False, "Shorthand for \"--output=type="
                                                         "registry\""),
                    ("", "load", "bool", False, "Shorthand for \"--output=type=docker\"")],
                   1, 1)


def build(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(BUILD_SPEC, argv)
    return _build(ctx, opts, args[0])


def buildx_build(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(BUILDX_SPEC, argv)
    if opts.push and not opts.tag:
        raise CommandFailed("ERROR: tag is needed when pushing to registry", 1)
    code = _build(ctx, opts, args[0])
    if code == 0 and opts.push:
        # Each tag names the index over the platforms' images: pushed whole.
        for tag in opts.tag:
            code = push_image(ctx, tag, quiet=opts.quiet) or code
    return code


def _build(ctx: Context, opts: Any, path: str) -> int:
    if "://" in path or path.startswith("git@"):
        raise CommandFailed("unable to prepare context: remote contexts are not supported: "
                            "clone it and build the directory", 1)
    with tempfile.TemporaryFile() as body:
        dockerfile = _write_context(body, path, opts.file)
        size = body.tell()
        body.seek(0)
        if not opts.quiet:
            from ..units import human_size

            # Without a terminal the docker CLI's progress ends in an empty line too.
            sys.stdout.write(f"Sending build context to Docker daemon  "
                             f"{human_size(size, 4)}\n" + ("" if sys.stdout.isatty() else "\n"))
            sys.stdout.flush()
        headers = {"Content-Type": "application/x-tar"}
        if opts.secret:
            headers["X-Dockyard-Build-Secrets"] = _secrets(opts.secret)
        response = ctx.client.stream_upload("POST", "/build", _query(opts, dockerfile), body,
                                            headers)
    image_id = _show(response, opts.quiet)
    if opts.iidfile:
        with open(opts.iidfile, "w") as f:
            f.write(image_id)
    if opts.quiet:
        sys.stdout.write(image_id + "\n")
    return 0


def _query(opts: Any, dockerfile: str) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = [("t", tag) for tag in opts.tag]
    query.append(("dockerfile", dockerfile))
    args: dict[str, str | None] = {}
    for item in opts.build_arg:
        key, sep, value = item.partition("=")
        args[key] = value if sep else os.environ.get(key)
    if args:
        query.append(("buildargs", json.dumps(args)))
    labels = {}
    for item in opts.label:
        key, _, value = item.partition("=")
        labels[key] = value
    if labels:
        query.append(("labels", json.dumps(labels)))
    for name, flag in (("nocache", opts.no_cache), ("pull", opts.pull), ("q", opts.quiet),
                       ("forcerm", opts.force_rm)):
        if flag:
            query.append((name, "1"))
    query.append(("rm", "1" if opts.rm else "0"))
    for name, value in (("target", opts.target), ("platform", opts.platform),
                        ("networkmode", opts.network)):
        if value:
            query.append((name, value))
    if opts.cache_from:
        query.append(("cachefrom", json.dumps(opts.cache_from)))
    for host in opts.add_host:
        query.append(("extrahosts", host))
    if opts.shm_size:
        from ..units import ram_in_bytes

        query.append(("shmsize", str(ram_in_bytes(opts.shm_size))))
    return query


def _secrets(specs: list[str]) -> str:
    found: dict[str, str] = {}
    for spec in specs:
        fields = dict(part.partition("=")[::2] for part in spec.split(",") if part)
        secret_id = fields.get("id", "")
        source = fields.get("src") or fields.get("source") or ""
        if not secret_id:
            raise CommandFailed(f"invalid secret {spec}: id is required", 1)
        try:
            if source:
                with open(source, "rb") as f:
                    data = f.read()
            elif fields.get("env") or secret_id in os.environ:
                data = os.environ[fields.get("env") or secret_id].encode()
            else:
                raise OSError(2, "no such file or directory")
        except (OSError, KeyError) as e:
            raise CommandFailed(f"failed to read secret {secret_id}: {e}", 1) from None
        found[secret_id] = base64.b64encode(data).decode()
    return base64.b64encode(json.dumps(found).encode()).decode()


def _show(response: Any, quiet: bool) -> str:
    image_id = ""
    out = sys.stdout
    for message in response.iter_json():
        text = message_error(message)
        if text is not None:
            out.flush()
            raise CommandFailed(text, int((message.get("errorDetail") or {}).get("code") or 1))
        aux = message.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = aux["ID"]
            continue
        if not quiet and message.get("stream"):
            out.write(message["stream"])
            out.flush()
    return image_id


# -- the context ----------------------------------------------------------------------------------

def _write_context(body: Any, path: str, dockerfile_flag: str) -> str:
    """Write the context tar to body; the Dockerfile's name inside it."""
    if path == "-":
        data = sys.stdin.buffer.read()
        if _looks_like_tar(data):
            body.write(data)
            return dockerfile_flag or "Dockerfile"
        with tarfile.open(fileobj=body, mode="w") as tar:
            _add_bytes(tar, "Dockerfile", data)
        return "Dockerfile"
    if not os.path.isdir(path):
        raise CommandFailed(f"unable to prepare context: path \"{path}\" not found", 1)
    dockerfile_bytes: bytes | None = None
    name = dockerfile_flag or "Dockerfile"
    if dockerfile_flag == "-":
        dockerfile_bytes = sys.stdin.buffer.read()
        name = f".dockerfile.{secrets.token_hex(10)}"
    elif dockerfile_flag:
        full = dockerfile_flag if os.path.isabs(dockerfile_flag) else \
            os.path.join(os.getcwd(), dockerfile_flag)
        relative = os.path.relpath(full, os.path.abspath(path))
        if not os.path.isfile(full):
            raise CommandFailed(f"unable to prepare context: unable to evaluate symlinks in "
                                f"Dockerfile path: lstat {full}: no such file or directory", 1)
        if relative.startswith(".."):
            with open(full, "rb") as f:
                dockerfile_bytes = f.read()
            name = f".dockerfile.{secrets.token_hex(10)}"
        else:
            name = relative
    elif not os.path.exists(os.path.join(path, "Dockerfile")):
        raise CommandFailed("unable to prepare context: unable to evaluate symlinks in "
                            f"Dockerfile path: lstat {os.path.abspath(path)}/Dockerfile: no "
                            "such file or directory", 1)
    from ..build import DockerIgnore

    ignore = DockerIgnore([])
    ignore_path = os.path.join(path, ".dockerignore")
    if os.path.isfile(ignore_path):
        with open(ignore_path, encoding="utf-8", errors="replace") as f:
            ignore = DockerIgnore.from_text(f.read())
    with tarfile.open(fileobj=body, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, path, ignore, keep={name, ".dockerignore"})
        if dockerfile_bytes is not None:
            _add_bytes(tar, name, dockerfile_bytes)
    return name


def _add_tree(tar: tarfile.TarFile, root: str, ignore: Any, keep: set[str]) -> None:
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        relative_dir = os.path.relpath(directory, root)
        relative_dir = "" if relative_dir == "." else relative_dir
        kept_dirs = []
        for name in dirs:
            relative = f"{relative_dir}/{name}" if relative_dir else name
            if ignore and ignore.excluded(relative) and not ignore.may_include_below(relative):
                continue
            if os.path.islink(os.path.join(directory, name)):
                files.append(name)
                continue
            kept_dirs.append(name)
            if not (ignore and ignore.excluded(relative)):
                _add(tar, os.path.join(directory, name), relative)
        dirs[:] = kept_dirs
        for name in sorted(files):
            relative = f"{relative_dir}/{name}" if relative_dir else name
            if ignore and ignore.excluded(relative) and relative not in keep:
                continue
            _add(tar, os.path.join(directory, name), relative)


def _add(tar: tarfile.TarFile, host: str, name: str) -> None:
    info = tar.gettarinfo(host, name)
    # As the docker CLI: the context belongs to root, whoever sends it.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isreg():
        with open(host, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _looks_like_tar(data: bytes) -> bool:
    from ..compression import detect_compression

    if detect_compression(data[:8]) != "none":
        return True
    return len(data) >= 262 and data[257:262] == b"ustar"


PRUNE_SPEC = Spec("builder prune", "[OPTIONS]", "Remove build cache", [
    ("a", "all", "bool", False, "Remove all unused build cache, not just dangling ones"),
    ("f", "force", "bool", False, "Do not prompt for confirmation"),
])


def builder_prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE_SPEC, argv)
    if not opts.force:
        sys.stdout.write("WARNING! This will remove all dangling build cache.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = ctx.client.post("/build/prune", {"all": "1" if opts.all else "0"})
    from ..units import human_size

    sys.stdout.write(f"Total:\t{human_size(result.get('SpaceReclaimed') or 0)}\n")
    return 0
