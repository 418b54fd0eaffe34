"""The builder's dispatch against an in-memory executor: history lines, configs, build
args, the cache and its keys, stages, errors. No containers: RUN "runs" by recording."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.build import (
    BuildCache,
    Builder,
    BuildError,
    BuildImage,
    BuildOptions,
    RunOptions,
    parse_dockerfile,
)

BASE_DOC = {"architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created_by": "base"}]}


class FakeExecutor:
    def __init__(self, exit_codes: dict[str, int] | None = None) -> None:
        self.images: dict[str, BuildImage] = {}
        self.ran: list[tuple[list[str], list[str], RunOptions]] = []
        self.containers: dict[str, dict[str, Any]] = {}
        self.removed: list[str] = []
        self.exit_codes = exit_codes or {}
        self.roots: dict[str, str] = {}
        self._tmp = tempfile.TemporaryDirectory()

    def find_image(self, ref: str, platform: str, pull: bool) -> BuildImage:
        if ref != "base":
            raise BuildError(f"pull access denied for {ref}")
        return BuildImage("sha256:" + "b" * 64, json.loads(json.dumps(BASE_DOC)))

    def image(self, image_id: str) -> BuildImage | None:
        return self.images.get(image_id)

    def create(self, parent: BuildImage | None, config: dict[str, Any], options: RunOptions,
               platform: str) -> str:
        container = hashlib.sha256(f"{len(self.containers)}".encode()).hexdigest()
        self.containers[container] = {"config": config, "options": options}
        return container

    def run(self, container: str, output: Any) -> int:
        config = self.containers[container]["config"]
        self.ran.append((config["Cmd"], config["Env"], self.containers[container]["options"]))
        output(b"ran\n")
        return self.exit_codes.get(config["Cmd"][-1], 0)

    @contextmanager
    def rootfs(self, container: str) -> Iterator[str]:
        root = Path(self._tmp.name) / container
        root.mkdir(exist_ok=True)
        self.roots[container] = str(root)
        yield str(root)

    @contextmanager
    def image_rootfs(self, image: BuildImage) -> Iterator[str]:
        yield self._tmp.name

    def commit(self, container: str | None, parent: BuildImage | None, doc: dict[str, Any],
               history: dict[str, Any]) -> BuildImage:
        parent_doc = parent.doc if parent else {}
        entry = dict(history)
        if container is None:
            entry["empty_layer"] = True
        doc = {**doc, "history": list(parent_doc.get("history") or []) + [entry],
               "rootfs": parent_doc.get("rootfs") or {"type": "layers", "diff_ids": []}}
        image_id = "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()
                                              ).hexdigest()
        self.images[image_id] = BuildImage(image_id, doc)
        return self.images[image_id]

    def adopt(self, *args: Any) -> BuildImage:
        raise AssertionError("no cache sources here")

    def remove(self, container: str) -> None:
        self.removed.append(container)


def _build(tmp_path: Path, text: str, executor: FakeExecutor | None = None,
           **options: Any) -> tuple[BuildImage, list[str], FakeExecutor]:
    executor = executor or FakeExecutor()
    out: list[str] = []
    context = tmp_path / "context"
    context.mkdir(exist_ok=True)
    if not (context / "f.txt").exists():
        (context / "f.txt").write_text("f")
    builder = Builder(executor, BuildCache(tmp_path / "cache.json"), str(context),
                      BuildOptions(**options), out.append)
    return builder.build(parse_dockerfile(text)), out, executor


def _created_by(image: BuildImage) -> list[str]:
    return [entry["created_by"] for entry in image.doc["history"][1:]]


def test_history_lines_as_the_classic_builder(tmp_path: Path) -> None:
    image, out, _ = _build(tmp_path, "FROM base\nLABEL a=b\nENV X=1 Y=\"2 3\"\nEXPOSE 80\n"
                                     "USER nobody\nVOLUME /v /w\nSTOPSIGNAL 9\n"
                                     "ENTRYPOINT [\"/e\"]\nCMD [\"c\"]\nMAINTAINER me\n"
                                     "HEALTHCHECK NONE\nONBUILD RUN x\nSHELL [\"/bin/ash\", "
                                     "\"-c\"]\nARG Z=9\n")
    assert _created_by(image) == [
        "/bin/sh -c #(nop)  LABEL a=b", "/bin/sh -c #(nop)  ENV X=1 Y=2 3",
        "/bin/sh -c #(nop)  EXPOSE 80", "/bin/sh -c #(nop)  USER nobody",
        "/bin/sh -c #(nop)  VOLUME [/v /w]", "/bin/sh -c #(nop)  STOPSIGNAL 9",
        '/bin/sh -c #(nop)  ENTRYPOINT ["/e"]', '/bin/sh -c #(nop)  CMD ["c"]',
        "/bin/sh -c #(nop)  MAINTAINER me",
        "/bin/sh -c #(nop)  HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'}",
        "/bin/sh -c #(nop)  ONBUILD RUN x", "/bin/ash -c #(nop)  SHELL [/bin/ash -c]",
        "/bin/ash -c #(nop)  ARG Z=9"]
    config = image.doc["config"]
    assert config["Env"] == ["PATH=/bin", "X=1", "Y=2 3"]
    assert config["Volumes"] == {"/v": {}, "/w": {}}
    assert config["Cmd"] == ["c"] and config["Entrypoint"] == ["/e"]
    assert image.doc["author"] == "me"
    assert out[0] == "Step 1/14 : FROM base\n"
    assert out[out.index("Step 2/14 : LABEL a=b\n") + 1].startswith(" ---> Running in ")


def test_entrypoint_clears_an_inherited_cmd(tmp_path: Path) -> None:
    image, _, _ = _build(tmp_path, "FROM base\nENTRYPOINT [\"/e\"]\n")
    assert image.doc["config"]["Cmd"] is None
    image, _, _ = _build(tmp_path, "FROM base\nCMD [\"x\"]\nENTRYPOINT [\"/e\"]\n")
    assert image.doc["config"]["Cmd"] == ["x"]


def test_run_sees_build_args_and_records_only_declared_ones(tmp_path: Path) -> None:
    image, out, executor = _build(
        tmp_path, "FROM base\nARG A=default\nARG B\nENV B=env\nRUN echo $A\n",
        build_args={"A": "given", "HTTP_PROXY": "http://p", "UNUSED": "x"})
    cmd, env, _ = executor.ran[0]
    assert cmd == ["/bin/sh", "-c", "echo $A"]
    assert "A=given" in env and "HTTP_PROXY=http://p" in env and "B=env" in env
    assert _created_by(image)[-1] == "|1 A=given /bin/sh -c echo $A"
    assert "[Warning] One or more build-args [UNUSED] were not consumed\n" in out


def test_failing_run_and_forcerm(tmp_path: Path) -> None:
    executor = FakeExecutor({"exit 3": 3})
    with pytest.raises(BuildError) as caught:
        _build(tmp_path, "FROM base\nRUN exit 3\n", executor)
    assert caught.value.message == "The command '/bin/sh -c exit 3' returned a non-zero " \
        "code: 3"
    assert caught.value.code == 3
    assert not executor.removed  # --rm keeps the failed container, as Docker
    executor = FakeExecutor({"exit 3": 3})
    with pytest.raises(BuildError):
        _build(tmp_path, "FROM base\nRUN exit 3\n", executor, force_rm=True)
    assert len(executor.removed) == 1


def test_cache_hits_and_what_breaks_them(tmp_path: Path) -> None:
    text = "FROM base\nENV A=1\nCOPY f.txt /f\nRUN step\n"
    first, out1, executor = _build(tmp_path, text)
    again, out2, _ = _build(tmp_path, text, executor)
    assert again.id == first.id and out2.count(" ---> Using cache\n") == 3
    (tmp_path / "context" / "f.txt").write_text("changed")
    changed, out3, _ = _build(tmp_path, text, executor)
    assert changed.id != first.id and out3.count(" ---> Using cache\n") == 1
    other_arg, out4, _ = _build(tmp_path, "FROM base\nARG V\nRUN step\n", executor,
                                build_args={"V": "1"})
    _, out5, _ = _build(tmp_path, "FROM base\nARG V\nRUN step\n", executor,
                        build_args={"V": "2"})
    assert out5.count(" ---> Using cache\n") == 1  # the ARG step only: RUN sees V=2
    del other_arg, out4
    _, out6, _ = _build(tmp_path, text, executor, no_cache=True)
    assert " ---> Using cache\n" not in out6


def test_stages_target_copy_from_and_labels(tmp_path: Path) -> None:
    text = ("FROM base AS one\nRUN one\nFROM one AS two\nRUN two\n"
            "FROM base\nCOPY --from=two /nothing /x\n")
    image, out, executor = _build(tmp_path, text, target="two", labels={"k": "v"})
    assert [cmd[-1] for cmd, _, _ in executor.ran] == ["one", "two"]
    assert image.doc["config"]["Labels"] == {"k": "v"}
    assert "Step 5/7 : LABEL \"k\"='v'\n" in out
    with pytest.raises(BuildError, match="failed to reach build target nope in Dockerfile"):
        _build(tmp_path, text, target="nope")
    with pytest.raises(BuildError, match="COPY failed: file not found"):
        _build(tmp_path, text)


def test_meta_args_in_from_and_missing_base(tmp_path: Path) -> None:
    image, out, _ = _build(tmp_path, "ARG IMG=nope\nFROM ${IMG}\n", build_args={"IMG": "base"})
    assert out[:2] == ["Step 1/2 : ARG IMG=nope\n", "Step 2/2 : FROM ${IMG}\n"]
    with pytest.raises(BuildError, match="pull access denied for nope"):
        _build(tmp_path, "ARG IMG=nope\nFROM ${IMG}\n")


def test_run_mounts_and_network(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache-mounts"
    _, _, executor = _build(tmp_path, "FROM base\nRUN --network=none "
                                      "--mount=type=cache,target=/c --mount=type=tmpfs,"
                                      "target=/t --mount=type=secret,id=s step\n",
                            cache_dir=str(cache_dir), secrets={"s": b"x"})
    _, _, options = executor.ran[0]
    assert options.network_mode == "none"
    assert [(m.type, m.target) for m in options.mounts] == [
        ("bind", "/c"), ("tmpfs", "/t"), ("bind", "/run/secrets/s")]
    with pytest.raises(BuildError, match="secret s not found"):
        _build(tmp_path, "FROM base\nRUN --mount=type=secret,id=s,required step\n",
               cache_dir=str(cache_dir))
