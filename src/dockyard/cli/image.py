"""Image commands: images (image ls), image inspect, history, tag, rmi, image prune, save,
load, import, pull, push."""

from __future__ import annotations

import os
import sys

from ..units import human_size, since
from ._args import Spec
from ._client import DaemonError, quote
from ._context import CommandFailed, Context
from .container import (
    FILTER,
    FORMAT,
    confirm,
    encode_filters,
    go_time,
    split_reference,
    truncate_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
                 "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                 "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGE_TABLE_DIGEST = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t" \
                     "{{.CreatedSince}}\t{{.Size}}"


def familiar(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


class ImageRow:
    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
              "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")

    def __init__(self, data: dict[str, Any], repo: str, tag: str, digest: str,
                 trunc: bool) -> None:
        self.data = data
        self.values = {"Repository": repo, "Tag": tag, "Digest": digest}
        self.trunc = trunc

    def field(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        data = self.data
        if name == "ID":
            return truncate_id(data["Id"]) if self.trunc else data["Id"]
        if name == "CreatedSince":
            return since(data.get("Created", 0))
        if name == "CreatedAt":
            return go_time(data.get("Created", 0))
        if name == "Size":
            return human_size(data.get("Size", 0))
        if name == "VirtualSize":
            return human_size(data.get("VirtualSize", data.get("Size", 0)), 4)
        if name == "Containers":
            count = data.get("Containers", -1)
            return "N/A" if count == -1 else str(count)
        if name == "SharedSize":
            shared = data.get("SharedSize", -1)
            return "N/A" if shared == -1 else human_size(shared)
        if name == "UniqueSize":
            shared = data.get("SharedSize", -1)
            return "N/A" if shared == -1 else human_size(data.get("Size", 0) - shared)
        from .container import _template_field_error

        raise _template_field_error(name, "*formatter.imageContext")

    def to_json(self) -> dict[str, Any]:
        return {name: self.field(name) for name in self.FIELDS}


def image_rows(images: list[dict[str, Any]], digests: bool, trunc: bool) -> list[ImageRow]:
    rows = []
    for image in images:
        tags: dict[str, list[str]] = {}
        by_digest: dict[str, list[str]] = {}
        for ref in image.get("RepoTags") or []:
            if ref == "<none>:<none>":
                continue
            repo, tag = split_reference(ref)
            tags.setdefault(familiar(repo), []).append(tag)
        for ref in image.get("RepoDigests") or []:
            repo, _, digest = ref.partition("@")
            if digest and repo != "<none>":
                by_digest.setdefault(familiar(repo), []).append(digest)
        for repo, repo_tags in tags.items():
            repo_digests = by_digest.pop(repo, []) if digests else []
            by_digest.pop(repo, None)
            for tag in repo_tags:
                for digest in repo_digests or ["<none>"]:
                    rows.append(ImageRow(image, repo, tag, digest, trunc))
        for repo, repo_digests in by_digest.items():
            for digest in repo_digests if digests else ["<none>"]:
                rows.append(ImageRow(image, repo, "<none>", digest, trunc))
        if not tags and not by_digest:
            rows.append(ImageRow(image, "<none>", "<none>", "<none>", trunc))
    return rows


IMAGES_SPEC = Spec("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", [
    ("a", "all", "bool", False, "Show all images (default hides intermediate images)"),
    ("", "digests", "bool", False, "Show digests"),
    FILTER,
    FORMAT,
    ("", "no-trunc", "bool", False, "Don't truncate output"),
    ("q", "quiet", "bool", False, "Only show image IDs"),
    ("", "tree", "bool", False, "List multi-platform images as a tree (EXPERIMENTAL)"),
], 0, 1, aliases="dockyard image ls, dockyard image list, dockyard images")


def images(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(IMAGES_SPEC, argv)
    filters = list(opts.filter)
    if args:
        filters.append(f"reference={args[0]}")
    query: dict[str, Any] = {}
    if opts.all:
        query["all"] = "1"
    encoded = encode_filters(filters)
    if encoded:
        query["filters"] = encoded
    found = ctx.client.get("/images/json", query)
    trunc = not opts.no_trunc
    from ._output import write_rows

    fmt = "{{.ID}}" if opts.quiet else opts.format
    digests = opts.digests or ".Digest" in fmt
    rows = image_rows(found, digests, trunc)
    write_rows(fmt, IMAGE_TABLE_DIGEST if opts.digests else IMAGE_TABLE, rows, IMAGE_HEADERS)
    return 0


INSPECT_SPEC = Spec("image inspect", "[OPTIONS] IMAGE [IMAGE...]",
                    "Display detailed information on one or more images", [
                        ("f", "format", "str", "", "Format output using a custom template"),
                        ("", "platform", "str", "", "Inspect a specific platform of the "
                                                    "multi-platform image"),
                    ], 1, None)


def inspect(ctx: Context, argv: list[str]) -> int:
    from .system import inspect_objects

    opts, args = ctx.parse(INSPECT_SPEC, argv)
    return inspect_objects(ctx, args, "image", opts.format, False)


HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

HISTORY_SPEC = Spec("history", "[OPTIONS] IMAGE", "Show the history of an image", [
    FORMAT,
    ("H", "human", "bool", True, "Print sizes and dates in human readable format"),
    ("", "no-trunc", "bool", False, "Don't truncate output"),
    ("", "platform", "str", "", "Show history for the given platform"),
    ("q", "quiet", "bool", False, "Only show image IDs"),
], 1, 1)


def history(ctx: Context, argv: list[str]) -> int:
    from ._output import write_rows
    from .container import ellipsis

    opts, args = ctx.parse(HISTORY_SPEC, argv)
    layers = ctx.client.get(f"/images/{quote(args[0], ':@/')}/history")
    trunc = not opts.no_trunc
    rows = []
    for layer in layers:
        identifier = layer.get("Id", "")
        if identifier in ("", "<missing>"):
            identifier = "<missing>"
        elif trunc:
            identifier = truncate_id(identifier)
        created_by = layer.get("CreatedBy", "").replace("\t", " ")
        if trunc:
            created_by = ellipsis(created_by, 45)
        created = layer.get("Created", 0)
        rows.append({
            "ID": identifier,
            "CreatedSince": since(created) if opts.human else go_time(created),
            "CreatedAt": go_time(created), "CreatedBy": created_by,
            "Size": human_size(layer.get("Size", 0)) if opts.human
            else str(layer.get("Size", 0)),
            "Comment": layer.get("Comment", ""),
        })
    if opts.quiet:
        sys.stdout.write("".join(f"{r['ID']}\n" for r in rows))
        return 0
    write_rows(opts.format, HISTORY_TABLE, rows, HISTORY_HEADERS)
    return 0


TAG_SPEC = Spec("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", [], 2, 2)


def tag(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(TAG_SPEC, argv)
    repo, tag_name = split_reference(args[1])
    ctx.client.request("POST", f"/images/{quote(args[0], ':@/')}/tag",
                       {"repo": repo, "tag": tag_name or "latest"}).read()
    return 0


RMI_SPEC = Spec("rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
    ("f", "force", "bool", False, "Force removal of the image"),
    ("", "no-prune", "bool", False, "Do not delete untagged parents"),
], 1, None, aliases="dockyard image rm, dockyard image remove, dockyard rmi")


def rmi(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(RMI_SPEC, argv)
    query = {"force": opts.force or None, "noprune": opts.no_prune or None}
    failed = False
    for name in args:
        try:
            result = ctx.client.request("DELETE", f"/images/{quote(name, ':@/')}",
                                        query).json()
        except DaemonError as err:
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            failed = failed or not (opts.force and err.status == 404)
            continue
        for entry in result or []:
            if entry.get("Untagged"):
                sys.stdout.write(f"Untagged: {entry['Untagged']}\n")
            if entry.get("Deleted"):
                sys.stdout.write(f"Deleted: {entry['Deleted']}\n")
    return 1 if failed else 0


PRUNE_SPEC = Spec("image prune", "[OPTIONS]", "Remove unused images", [
    ("a", "all", "bool", False, "Remove all unused images, not just dangling ones"),
    ("", "filter", "list", [], "Provide filter values (e.g. \"until=<timestamp>\")"),
    ("f", "force", "bool", False, "Do not prompt for confirmation"),
])


def prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE_SPEC, argv)
    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if opts.all else
               "WARNING! This will remove all dangling images.")
    if not opts.force and not confirm(warning):
        return 0
    filters = encode_filters([*opts.filter, f"dangling={'false' if opts.all else 'true'}"])
    result = ctx.client.post("/images/prune", {"filters": filters})
    deleted = result.get("ImagesDeleted") or []
    out = []
    if deleted:
        out.append("Deleted Images:\n")
        for entry in deleted:
            if entry.get("Untagged"):
                out.append(f"untagged: {entry['Untagged']}\n")
            if entry.get("Deleted"):
                out.append(f"deleted: {entry['Deleted']}\n")
        out.append("\n")
    out.append(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
    sys.stdout.write("".join(out))
    return 0


SAVE_SPEC = Spec("save", "[OPTIONS] IMAGE [IMAGE...]",
                 "Save one or more images to a tar archive (streamed to STDOUT by default)", [
                     ("o", "output", "str", "", "Write to a file, instead of STDOUT"),
                     ("", "platform", "list", [], "Save only the given platform(s)"),
                 ], 1, None)


def save(ctx: Context, argv: list[str]) -> int:
    from .container_io import write_stream

    opts, args = ctx.parse(SAVE_SPEC, argv)
    if not opts.output and os.isatty(1):
        raise CommandFailed("Cowardly refusing to save to a terminal. Use the -o flag or "
                            "redirect", 1)
    response = ctx.client.request("GET", "/images/get", [("names", n) for n in args])
    write_stream(response, opts.output, "save")
    return 0


LOAD_SPEC = Spec("load", "[OPTIONS]", "Load an image from a tar archive or STDIN", [
    ("i", "input", "str", "", "Read from tar archive file, instead of STDIN"),
    ("", "platform", "list", [], "Load only the given platform(s)"),
    ("q", "quiet", "bool", False, "Suppress the load output"),
])


def load(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(LOAD_SPEC, argv)
    if opts.input:
        try:
            source = open(opts.input, "rb")  # noqa: SIM115
        except OSError as err:
            raise CommandFailed(f"open {opts.input}: {(err.strerror or '').lower()}", 1) \
                from None
    else:
        if os.isatty(0):
            raise CommandFailed("requested load from stdin, but stdin is empty", 1)
        source = os.fdopen(os.dup(0), "rb")
    query = {"quiet": "1" if opts.quiet or not os.isatty(1) else "0"}
    with source:
        response = ctx.client.stream_upload("POST", "/images/load", query, source,
                                            {"Content-Type": "application/x-tar"})
    if response.headers.get("content-type", "").startswith("application/json"):
        return display_progress(response)
    sys.stdout.buffer.write(response.read())
    return 0


IMPORT_SPEC = Spec("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                   "Import the contents from a tarball to create a filesystem image", [
                       ("c", "change", "list", [], "Apply Dockerfile instruction to the "
                                                   "created image"),
                       ("m", "message", "str", "", "Set commit message for imported image"),
                       ("", "platform", "str", "", "Set platform if server is "
                                                   "multi-platform capable"),
                   ], 1, 2)


def import_(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(IMPORT_SPEC, argv)
    source_name = args[0]
    query: list[tuple[str, Any]] = []
    source: Any = None
    if source_name == "-":
        query.append(("fromSrc", "-"))
        source = os.fdopen(os.dup(0), "rb")
    elif "://" in source_name:
        query.append(("fromSrc", source_name))
    else:
        query.append(("fromSrc", "-"))
        try:
            source = open(source_name, "rb")  # noqa: SIM115
        except OSError as err:
            raise CommandFailed(f"open {source_name}: {(err.strerror or '').lower()}", 1) \
                from None
    if len(args) > 1:
        repo, tag_name = split_reference(args[1])
        query += [("repo", repo), ("tag", tag_name)]
    if opts.message:
        query.append(("message", opts.message))
    if opts.platform:
        query.append(("platform", opts.platform))
    query += [("changes", change) for change in opts.change]
    client = ctx.client
    if source is None:
        response = client.request("POST", "/images/create", query, raw_body=b"")
    else:
        with source:
            response = client.stream_upload("POST", "/images/create", query, source,
                                            {"Content-Type": "application/x-tar"})
    return display_progress(response)


# -- registries -------------------------------------------------------------------------------

class ProgressError(CommandFailed):
    pass


def message_error(message: dict[str, Any]) -> str | None:
    """The error a JSON progress message carries (errorDetail's, else error), if any."""
    if not (message.get("error") or message.get("errorDetail")):
        return None
    detail = message.get("errorDetail") or {}
    return str(detail.get("message") or message.get("error") or "unknown error")


def drain_quietly(response: Any) -> None:
    """A progress stream read to its end unseen (pull -q, push -q); its error raised."""
    for message in response.iter_json():
        error = message_error(message)
        if error is not None:
            raise ProgressError(error, 1)


def _progress_text(progress: dict[str, Any], width: int) -> str:
    """jsonmessage.JSONProgress.String(): "[=====>    ]  1.2MB/3.4MB"."""
    current = progress.get("current", 0) or 0
    total = progress.get("total", 0) or 0
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        units = progress.get("units", "")
        return f"{current} {units}" if units else f"{human_size(current, 4):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = ""
    if width > 110:
        bar = f"[{'=' * percentage}>{' ' * (50 - percentage)}] "
    numbers = ""
    if current <= total:
        numbers = f"{human_size(current, 4):>8}/{human_size(total, 4)}"
    return bar + numbers


def display_progress(response: Any, out: Any = None) -> int:
    """docker's jsonmessage.DisplayJSONMessagesStream: one line per layer ID, rewritten in
    place on a terminal; without one, progress bars are left out. An error message ends
    the stream with exit status 1."""
    out = out or sys.stdout
    terminal = out.isatty()
    width = 200
    if terminal:
        try:
            width = os.get_terminal_size(out.fileno()).columns
        except OSError:
            pass
    ids: dict[str, int] = {}
    for message in response.iter_json():
        error = message_error(message)
        if error is not None:
            out.flush()
            raise ProgressError(error, 1)
        if message.get("aux") is not None and not message.get("status") and \
                not message.get("stream"):
            continue
        # A progressDetail, even {}, is Go's non-nil Progress.
        detail = message.get("progressDetail")
        has_progress = detail is not None
        progress_text = _progress_text(detail, width) if has_progress else ""
        progress_message = message.get("progress") or ""
        stream = message.get("stream") or ""
        identifier = message.get("id") or ""
        diff = 0
        if identifier and (has_progress or progress_message):
            line = ids.get(identifier)
            if line is None:
                line = len(ids)
                ids[identifier] = line
                if terminal:
                    out.write("\n")
            diff = len(ids) - line
            if terminal:
                out.write(f"\033[{diff}A")
        else:
            ids = {}
        endl = ""
        if terminal and not stream and has_progress:
            out.write("\033[2K\r")
            endl = "\r"
        elif has_progress and progress_text:
            continue      # no progress bars without a terminal
        text = f"{identifier}: " if identifier else ""
        if message.get("from"):
            text += f"(from {message['from']}) "
        status = message.get("status") or ""
        if has_progress and terminal:
            text += f"{status} {progress_text}{endl}"
        elif progress_message:
            text += f"{status} {progress_message}{endl}"
        elif stream:
            text += f"{stream}{endl}"
        else:
            text += f"{status}{endl}\n"
        out.write(text)
        if identifier and terminal and diff:
            out.write(f"\033[{diff}B")
        out.flush()
    return 0


def registry_of(reference: str) -> str:
    """The registry host of a reference ("docker.io" when it names none)."""
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def auth_header(ctx: Context, registry: str) -> str:
    from .registry import encoded_auth

    return encoded_auth(ctx, registry)


def pull_image(ctx: Context, reference: str, platform: str = "", quiet: bool = False,
               out: Any = None, all_tags: bool = False) -> None:
    repo, tag_name = split_reference(reference)
    digest = reference.partition("@")[2]
    query: list[tuple[str, Any]] = [("fromImage", repo)]
    if digest:
        query.append(("tag", digest))
    elif not all_tags:
        query.append(("tag", tag_name or "latest"))
    if platform:
        query.append(("platform", platform))
    headers = {"X-Registry-Auth": auth_header(ctx, registry_of(repo))}
    response = ctx.client.request("POST", "/images/create", query, raw_body=b"",
                                  headers=headers)
    if quiet:
        drain_quietly(response)
        return
    display_progress(response, out)


PULL_SPEC = Spec("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", [
    ("a", "all-tags", "bool", False, "Download all tagged images in the repository"),
    ("", "platform", "str", "", "Set platform if server is multi-platform capable"),
    ("q", "quiet", "bool", False, "Suppress verbose output"),
], 1, 1)


def pull(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(PULL_SPEC, argv)
    reference = args[0]
    if not opts.all_tags and ":" not in reference.rsplit("/", 1)[-1] and "@" not in reference:
        sys.stdout.write("Using default tag: latest\n")
        reference += ":latest"
    pull_image(ctx, reference, opts.platform, opts.quiet, all_tags=opts.all_tags)
    # As docker: the fully qualified reference last, quiet or not.
    pulled = split_reference(reference)[0] if opts.all_tags else reference
    sys.stdout.write(f"{_canonical(pulled)}\n")
    return 0


def _canonical(reference: str) -> str:
    if registry_of(reference) == "docker.io":
        name = reference
        if "/" not in name.split(":")[0]:
            name = f"library/{name}"
        return f"docker.io/{name}"
    return reference


PUSH_SPEC = Spec("push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", [
    ("a", "all-tags", "bool", False, "Push all tags of an image to the repository"),
    ("", "platform", "str", "", "Push a platform-specific manifest"),
    ("q", "quiet", "bool", False, "Suppress verbose output"),
], 1, 1)


def push(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(PUSH_SPEC, argv)
    return push_image(ctx, args[0], opts.platform, opts.quiet, opts.all_tags)


def push_image(ctx: Context, reference: str, platform: str = "", quiet: bool = False,
               all_tags: bool = False) -> int:
    repo, tag_name = split_reference(reference)
    if not all_tags and not tag_name:
        sys.stdout.write("Using default tag: latest\n")
        tag_name = "latest"
    query = {"tag": tag_name} if tag_name else None
    if platform:
        query = {**(query or {}), "platform": platform}
    headers = {"X-Registry-Auth": auth_header(ctx, registry_of(repo))}
    response = ctx.client.request("POST", f"/images/{quote(repo, ':@/')}/push", query,
                                  raw_body=b"", headers=headers)
    if quiet:
        drain_quietly(response)
        sys.stdout.write(f"{reference}\n")
        return 0
    return display_progress(response)
