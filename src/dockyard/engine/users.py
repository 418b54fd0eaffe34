"""Docker's `--user` resolution: name or uid, optional group, against the container's own
/etc/passwd and /etc/group (read without following links out of the rootfs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runtime.rootfs import secure_join
from .errors import InvalidParameter


def _read_table(rootfs: Path, name: str) -> list[list[str]]:
    try:
        text = Path(secure_join(str(rootfs), name)).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines()
            if line and not line.startswith("#") and line.count(":") >= 2]


def resolve_user(rootfs: Path, user: str, group_add: list[str]) -> dict[str, Any]:
    """{"uid", "gid", "additionalGids"} as the runtime spec wants them."""
    passwd = _read_table(rootfs, "/etc/passwd")
    groups = _read_table(rootfs, "/etc/group")
    name, _, group = user.partition(":")
    uid, gid, username = 0, 0, "root"
    if name:
        entry = next((e for e in passwd if e[0] == name or (name.isdigit() and e[2] == name)),
                     None)
        if entry is not None:
            username = entry[0]
            uid = int(entry[2])
            gid = int(entry[3]) if len(entry) > 3 and entry[3].isdigit() else 0
        elif name.isdigit():
            # A uid the image does not know: Docker runs it with gid 0 and no groups.
            uid, username = int(name), ""
        else:
            raise InvalidParameter(f"unable to find user {name}: no matching entries in "
                                   "passwd file")
    elif passwd:
        root = next((e for e in passwd if e[2] == "0"), None)
        if root is not None and len(root) > 3 and root[3].isdigit():
            gid = int(root[3])
    if group:
        gid = _group_id(groups, group)
    additional = []
    if username:
        additional = [int(e[2]) for e in groups
                      if len(e) > 3 and username in e[3].split(",") and e[2].isdigit()]
    for extra in group_add:
        additional.append(_group_id(groups, extra))
    additional = [g for g in dict.fromkeys(additional) if g != gid]
    result: dict[str, Any] = {"uid": uid, "gid": gid}
    if additional:
        result["additionalGids"] = additional
    return result


def _group_id(groups: list[list[str]], group: str) -> int:
    entry = next((e for e in groups if e[0] == group or (group.isdigit() and e[2] == group)),
                 None)
    if entry is not None and entry[2].isdigit():
        return int(entry[2])
    if group.isdigit():
        return int(group)
    raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
