"""manifest inspect: a manifest or index as the registry has it. The daemon fetches it
(GET /distribution/{name}/json?manifests=1, with its registry settings and the
credentials of config.json); the CLI prints it as `docker manifest inspect` does."""

from __future__ import annotations

import base64
import json
import sys
from urllib.parse import quote

from ._args import Spec
from ._context import Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INSPECT_SPEC = Spec("manifest inspect", "[OPTIONS] [MANIFEST_LIST] MANIFEST",
                    "Display an image manifest, or manifest list", [
                        ("", "insecure", "bool", False, "Allow communication with an "
                                                        "insecure registry"),
                        ("v", "verbose", "bool", False, "Output additional info including "
                                                        "layers and platform"),
                    ], 1, 2)
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_INDEXES = ("application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json")


def inspect(ctx: Context, argv: list[str]) -> int:
    from .image import auth_header, registry_of

    opts, args = ctx.parse(INSPECT_SPEC, argv)
    name = args[-1]
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    headers = {"X-Registry-Auth": auth_header(ctx, registry_of(name))}
    found = ctx.client.request("GET", f"/distribution/{quote(name, ':@/')}/json",
                               {"manifests": "1"}, headers=headers).json()
    raw = base64.b64decode(found["Raw"])
    if not opts.verbose:
        _print(json.loads(raw))
    elif found["Descriptor"].get("mediaType") in _INDEXES:
        _print([_verbose(m["Ref"], m["Descriptor"], base64.b64decode(m["Raw"]))
                for m in found["Manifests"]])
    else:
        _print(_verbose(found["Ref"], found["Descriptor"], raw))
    return 0


def _verbose(ref: str, descriptor: dict[str, Any], data: bytes) -> dict[str, Any]:
    key = "OCIManifest" if descriptor.get("mediaType") == _OCI_MANIFEST else "SchemaV2Manifest"
    return {"Ref": ref, "Descriptor": descriptor, "Raw": base64.b64encode(data).decode(),
            key: json.loads(data)}


def _print(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent="\t") + "\n")
