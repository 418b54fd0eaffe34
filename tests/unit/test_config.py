"""config.json parsing: valid documents load, invalid ones name the offending field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.config import ConfigError, load_bundle_config, parse_process, parse_spec
from dockyard.runtime.spec import default_spec


def spec_with(**changes: Any) -> dict[str, Any]:
    doc = default_spec()
    for dotted, value in changes.items():
        target = doc
        keys = dotted.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return doc


def test_default_spec_parses() -> None:
    spec = parse_spec(default_spec())
    assert spec.process is not None
    assert spec.process.args == ["sh"]
    assert spec.linux.namespace("pid") is not None
    assert spec.process.capabilities is not None
    assert "CAP_KILL" in spec.process.capabilities.bounding
    assert spec.process.rlimits[0].type == "RLIMIT_NOFILE"
    assert spec.root_readonly


def test_rootless_spec_parses() -> None:
    spec = parse_spec(default_spec(rootless=True))
    assert spec.linux.namespace("user") is not None
    assert spec.linux.uid_mappings[0].size == 1


@pytest.mark.parametrize(("doc", "field"), [
    (spec_with(ociVersion=1), "ociVersion"),
    (spec_with(process__args="sh"), "process.args"),
    (spec_with(process__args=[]), "process.args"),
    (spec_with(process__cwd="relative"), "process.cwd"),
    (spec_with(process__terminal="yes"), "process.terminal"),
    (spec_with(process__user={"uid": "0"}), "process.user.uid"),
    (spec_with(process__capabilities={"bounding": ["CAP_FLY"]}),
     "process.capabilities.bounding[0]"),
    (spec_with(process__rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type"),
    (spec_with(process__rlimits=[{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1}]),
     "process.rlimits[0].soft"),
    (spec_with(process__oomScoreAdj=5000), "process.oomScoreAdj"),
    (spec_with(mounts__0={"destination": "proc", "type": "proc"}), "mounts[0].destination"),
    (spec_with(mounts__0={"destination": "/x", "type": "bind"}), "mounts[0].source"),
    (spec_with(mounts__0={"destination": "/x", "type": "tmpfs", "options": [""]}),
     "mounts[0].options[0]"),
    (spec_with(linux__namespaces=[{"type": "bogus"}]), "linux.namespaces[0].type"),
    (spec_with(linux__namespaces=[{"type": "pid"}, {"type": "pid"}]),
     "linux.namespaces[1].type"),
    (spec_with(linux__namespaces=[{"type": "net", "path": "x"}]), "linux.namespaces[0].type"),
    (spec_with(linux__namespaces=[{"type": "network", "path": "relative"}]),
     "linux.namespaces[0].path"),
    (spec_with(linux__maskedPaths=["proc/kcore"]), "linux.maskedPaths[0]"),
    (spec_with(linux__devices=[{"path": "/dev/x", "type": "z"}]), "linux.devices[0].type"),
    (spec_with(linux__resources={"memory": {"limit": "1g"}}), "linux.resources.memory.limit"),
    (spec_with(linux__resources={"cpu": {"cpus": "0-a"}}), "linux.resources.cpu.cpus"),
    (spec_with(linux__resources={"devices": [{"access": "rwm"}]}),
     "linux.resources.devices[0].allow"),
    (spec_with(linux__seccomp={"defaultAction": "SCMP_ACT_BOGUS"}),
     "linux.seccomp.defaultAction"),
    (spec_with(linux__seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
     "linux.seccomp.syscalls[0].args[0].index"),
    (spec_with(linux__uidMappings=[{"containerID": 0, "hostID": 0, "size": 0}]),
     "linux.uidMappings[0].size"),
    (spec_with(hooks={"prestart": [{"path": "relative"}]}), "hooks.prestart[0].path"),
    (spec_with(hooks={"poststart2": []}), "hooks.poststart2"),
    (spec_with(linux__rootfsPropagation="sideways"), "linux.rootfsPropagation"),
])
def test_invalid_field_is_named(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(doc)
    assert str(info.value).startswith(field + ":"), str(info.value)


def test_hostname_needs_uts_namespace() -> None:
    doc = default_spec()
    doc["linux"]["namespaces"] = [ns for ns in doc["linux"]["namespaces"] if ns["type"] != "uts"]
    with pytest.raises(ConfigError, match="^hostname:"):
        parse_spec(doc)


def test_missing_root_is_refused() -> None:
    doc = default_spec()
    del doc["root"]
    with pytest.raises(ConfigError, match="^root: is required"):
        parse_spec(doc)


def test_bundle_rootfs_must_exist(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    with pytest.raises(ConfigError, match="^root.path: rootfs .* does not exist"):
        load_bundle_config(str(tmp_path))


def test_bundle_rootfs_is_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    spec = load_bundle_config(str(tmp_path))
    assert spec.root_path == str(tmp_path / "rootfs")


def test_invalid_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_bundle_config(str(tmp_path))


def test_process_json_for_exec() -> None:
    process = parse_process({"args": ["ls"], "cwd": "/tmp", "env": ["A=1"],
                             "user": {"uid": 1000, "gid": 100, "additionalGids": [5]}})
    assert process.user.uid == 1000
    assert process.user.additional_gids == [5]
    doc = copy.deepcopy({"args": ["ls"], "user": {"additionalGids": [-1]}})
    with pytest.raises(ConfigError, match=r"^process.user.additionalGids\[0\]"):
        parse_process(doc)
