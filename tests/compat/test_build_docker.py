"""Builds through the real docker CLI's classic builder (DOCKER_BUILDKIT=0) and through
`dockyard build`, against a temporary dockyardd: image configs, file trees, history,
the cache, errors, .dockerignore, and the fixture image real Docker built."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import FIXTURES, Daemon
from tests.integration.test_registry_server_support import start_registry

BASE = "dockyard-build-base:latest"


@pytest.fixture(autouse=True)
def _classic_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")


@pytest.fixture(autouse=True)
def _no_leftover_containers(daemon: Daemon) -> Iterator[None]:
    """A failed step's container stays, as with Docker; the daemon is shared: remove them."""
    before = set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split())
    yield
    left = set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split()) - before
    if left:
        daemon.docker("rm", "-f", *sorted(left))


@pytest.fixture(scope="module")
def base(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fixture's busybox layer imported as `busybox:latest` was (ENV PATH, CMD sh)."""
    directory = tmp_path_factory.mktemp("base")
    with tarfile.open(FIXTURES / "fixture-docker20-save.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = archive.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        (directory / "layer.tar").write_bytes(layer.read())
    daemon.docker("import", "-c", "ENV PATH=/bin", "-c", 'CMD ["sh"]',
                  str(directory / "layer.tar"), BASE, check=True)
    return BASE


def _build(daemon: Daemon, context: Path, *args: str, tool: str = "docker",
           check: bool = True) -> Any:
    run = daemon.docker if tool == "docker" else daemon.dockyard
    result = run("build", *args, str(context), timeout=180)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _inspect(daemon: Daemon, ref: str) -> dict[str, Any]:
    return json.loads(daemon.docker("image", "inspect", ref, check=True).stdout)[0]


def _history(daemon: Daemon, ref: str) -> list[str]:
    out = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref,
                        check=True).stdout
    return list(reversed(out.splitlines()))


def _run(daemon: Daemon, ref: str, script: str) -> str:
    result = daemon.docker("run", "--rm", "--entrypoint", "sh", ref, "-c", script)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


# -- the fixture built by Docker 20.10 ----------------------------------------------------------

def _fixture_dockerfile(base: str) -> str:
    readme = (FIXTURES / "README.md").read_text()
    block = readme.split("```")[1].strip("\n")
    # The README annotates the first lines with comments after the instruction; Docker's
    # syntax has none there, so they go (as they did from the file Docker built).
    lines = [re.sub(r"\s+# .*$", "", line) for line in block.splitlines()]
    return "\n".join(lines).replace("FROM busybox:latest", f"FROM {base}") + "\n"


def _layer_trees(archive_path: Path) -> list[list[tuple[Any, ...]]]:
    with tarfile.open(archive_path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        trees = []
        for name in manifest[0]["Layers"]:
            data = archive.extractfile(name).read()  # type: ignore[union-attr]
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                entries = []
                for member in layer:
                    content = layer.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
                    link = member.linkname if member.type in (tarfile.LNKTYPE,
                                                              tarfile.SYMTYPE) else ""
                    entries.append((member.name.rstrip("/"), member.type, member.mode & 0o7777,
                                    link, member.uid, member.gid, content))
                trees.append(sorted(entries))
        return trees


def test_fixture_dockerfile_gives_dockers_image(daemon: Daemon, base: str,
                                                tmp_path: Path) -> None:
    context = _write(tmp_path, {"Dockerfile": _fixture_dockerfile(base),
                                "hello.txt": "hello from a file\n"})
    result = _build(daemon, context, "-t", "built-fixture:1.0")
    assert "Successfully tagged built-fixture:1.0" in result.stdout
    daemon.docker("save", "-o", str(tmp_path / "built.tar"), "built-fixture:1.0", check=True)
    assert _layer_trees(tmp_path / "built.tar") == \
        _layer_trees(FIXTURES / "fixture-docker20-save.tar")
    built, fixture = _inspect(daemon, "built-fixture:1.0"), _inspect(daemon,
                                                                    "dockyard-fixture:1.0")
    for key in ("Env", "Cmd", "WorkingDir", "ExposedPorts", "Labels", "Entrypoint", "User",
                "Volumes", "OnBuild", "Hostname", "Domainname"):
        assert built["Config"].get(key) == fixture["Config"].get(key), key
    assert built["Architecture"] == fixture["Architecture"] and built["Os"] == fixture["Os"]
    file_hash = re.compile(r"file:[0-9a-f]{64}")
    assert [file_hash.sub("file:*", line) for line in _history(daemon, "built-fixture:1.0")] \
        == [file_hash.sub("file:*", line) for line in _history(daemon, "dockyard-fixture:1.0")]
    assert daemon.docker("run", "--rm", "built-fixture:1.0").stdout == "hello from fixture\n"


# -- every instruction -------------------------------------------------------------------------

EVERYTHING = """\
# syntax=docker/dockerfile:1
ARG BASE={base}
ARG VERSION=1.0
FROM ${{BASE}} AS builder
ARG VERSION
RUN echo "built $VERSION" > /out.txt
COPY <<EOF /heredoc.txt
hello $VERSION
EOF
RUN <<EOT
echo from heredoc
echo line2 > /h2.txt
EOT

FROM {base}
MAINTAINER someone
COPY --from=builder /out.txt /heredoc.txt /from/
COPY dir /copied
COPY dir/ /copied2/
COPY *.txt /globbed/
ADD arch.tar.gz /extracted
ADD plain.txt /added.txt
COPY --chown=1000:1000 --chmod=600 x.txt /owned.txt
ENV A=1 B="two words"
ENV OLD old form value
ARG TARGETX=${{A}}-z
LABEL a.b="c d" e=$A
RUN echo "targetx=$TARGETX http=$HTTP_PROXY" > /args.txt
USER 1000
WORKDIR sub1
WORKDIR sub2
EXPOSE 80/udp 443
VOLUME ["/vol"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD echo ok
SHELL ["/bin/sh", "-xc"]
ONBUILD RUN echo triggered by $(id -u)
ONBUILD ENV TRIGGERED=yes
ENTRYPOINT ["/bin/echo"]
CMD ["default"]
"""


@pytest.fixture(scope="module")
def everything(daemon: Daemon, base: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    context = tmp_path_factory.mktemp("everything")
    _write(context, {"Dockerfile": EVERYTHING.format(base=base), "dir/a.txt": "a",
                     "dir/sub/b.txt": "b", "x.txt": "x", "y.md": "y", "plain.txt": "p",
                     "tarsrc/t.txt": "intar"})
    with tarfile.open(context / "arch.tar.gz", "w:gz") as archive:
        archive.add(context / "tarsrc" / "t.txt", "t.txt")
    result = _build(daemon, context, "-t", "everything:1", "--build-arg", "VERSION=2.5",
                    "--build-arg", "UNUSED=1", "--build-arg", "HTTP_PROXY=http://proxy:3128",
                    "--label", "from.cli=yes")
    return result


def test_every_instruction_config(daemon: Daemon, everything: Any) -> None:
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in everything.stdout
    assert "Step 1/34 : ARG BASE=" in everything.stdout
    assert 'Step 34/34 : LABEL "from.cli"=\'yes\'' in everything.stdout
    info = _inspect(daemon, "everything:1")
    config = info["Config"]
    assert info["Author"] == "someone"
    assert config["User"] == "1000"
    assert config["WorkingDir"] == "/sub1/sub2"
    assert config["Env"] == ["PATH=/bin", "A=1", "B=two words", "OLD=old form value"]
    assert config["ExposedPorts"] == {"443/tcp": {}, "80/udp": {}}
    assert config["Volumes"] == {"/vol": {}}
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "echo ok"],
                                     "Interval": 5_000_000_000, "Retries": 3}
    assert config["Shell"] == ["/bin/sh", "-xc"]
    assert config["OnBuild"] == ["RUN echo triggered by $(id -u)", "ENV TRIGGERED=yes"]
    assert config["Entrypoint"] == ["/bin/echo"] and config["Cmd"] == ["default"]
    assert config["Labels"] == {"a.b": "c d", "e": "1", "from.cli": "yes"}
    history = _history(daemon, "everything:1")
    assert "/bin/sh -c #(nop)  ENV A=1 B=two words" in history
    assert "/bin/sh -c #(nop)  ARG TARGETX=1-z" in history
    assert "/bin/sh -c #(nop)  VOLUME [/vol]" in history
    assert "/bin/sh -c #(nop)  EXPOSE 80/udp 443" in history
    assert "/bin/sh -c #(nop) WORKDIR /sub1/sub2" in history
    assert "/bin/sh -xc #(nop)  SHELL [/bin/sh -xc]" in history
    assert '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" ' \
        "'\\x03'}" in history
    # The proxy arg reaches RUN without being recorded; a declared arg is recorded.
    assert '|1 TARGETX=1-z /bin/sh -c echo "targetx=$TARGETX http=$HTTP_PROXY" > /args.txt' \
        in history
    assert not any("proxy:3128" in line for line in history)


def test_every_instruction_files(daemon: Daemon, everything: Any) -> None:
    del everything
    out = _run(daemon, "everything:1",
               "cat /from/out.txt /from/heredoc.txt /args.txt /added.txt; echo; "
               "ls /copied /copied/sub /copied2 /globbed /extracted; ls -ln /owned.txt")
    lines = out.splitlines()
    assert lines[:4] == ["built 2.5", "hello 2.5", "targetx=1-z http=http://proxy:3128", "p"]
    assert "a.txt" in lines and "b.txt" in lines and "t.txt" in lines and "x.txt" in lines
    assert "y.md" not in out
    assert re.search(r"-rw------- +1 1000 +1000 .* /owned.txt", out)


def test_onbuild_target_and_stage_reuse(daemon: Daemon, everything: Any,
                                        tmp_path: Path) -> None:
    del everything
    context = _write(tmp_path, {"Dockerfile": "FROM everything:1\nUSER 0\n"})
    result = _build(daemon, context, "-t", "child:1")
    assert "# Executing 2 build triggers" in result.stdout
    assert "triggered by 1000\n" in result.stdout
    child = _inspect(daemon, "child:1")["Config"]
    assert child["OnBuild"] is None
    assert "TRIGGERED=yes" in child["Env"] and child["User"] == "0"
    staged = _write(tmp_path / "staged", {
        "Dockerfile": f"FROM {BASE} AS one\nRUN echo one > /one\n"
                      "FROM one AS two\nRUN echo two > /two\nFROM {BASE}\nRUN exit 9\n"})
    result = _build(daemon, staged, "--target", "two", "-t", "staged:two")
    assert "Step 4/6" in result.stdout and "Step 5/6" not in result.stdout
    assert _run(daemon, "staged:two", "cat /one /two") == "one\ntwo\n"
    missing = _build(daemon, staged, "--target", "nope", check=False)
    assert missing.returncode == 1
    assert "failed to reach build target nope in Dockerfile" in missing.stderr


# -- the cache ---------------------------------------------------------------------------------

def test_cache_reuse_and_invalidation_by_one_file(daemon: Daemon, base: str,
                                                  tmp_path: Path) -> None:
    import uuid

    unique = uuid.uuid4().hex  # no other test's step can be in the cache
    context = _write(tmp_path, {
        "Dockerfile": f"FROM {base}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a2\n"
                      "COPY b.txt /b.txt\nRUN cat /b.txt > /b2\nENV DONE=1\n",
        "a.txt": unique, "b.txt": "b"})
    first = _build(daemon, context, "-t", "cached:1")
    assert "Using cache" not in first.stdout
    again = _build(daemon, context, "-t", "cached:1")
    assert again.stdout.count(" ---> Using cache") == 5
    assert again.stdout.splitlines()[-2] == first.stdout.splitlines()[-2]  # same image ID
    (context / "b.txt").write_text("changed")
    changed = _build(daemon, context, "-t", "cached:1", tool="dockyard")
    steps = changed.stdout.split("Step ")[1:]
    assert [" ---> Using cache" in step for step in steps] == \
        [False, True, True, False, False, False]
    assert _run(daemon, "cached:1", "cat /a2 /b2") == f"{unique}changed"
    nocache = _build(daemon, context, "--no-cache", "-t", "cached:1")
    assert "Using cache" not in nocache.stdout
    quiet = _build(daemon, context, "-q", "-t", "cached:1")
    assert quiet.stdout == _inspect(daemon, "cached:1")["Id"] + "\n"
    containers = daemon.docker("ps", "-aq", "--no-trunc").stdout.split()
    assert not [c for c in containers if c[:12] in nocache.stdout], \
        "intermediate containers are removed after a successful build"


# -- errors ------------------------------------------------------------------------------------

def test_parse_error_names_the_line(daemon: Daemon, base: str, tmp_path: Path) -> None:
    context = _write(tmp_path, {"Dockerfile": f"FROM {base}\nRUN true\nFORM x\n"})
    for tool in ("docker", "dockyard"):
        result = _build(daemon, context, "-t", "never:1", tool=tool, check=False)
        assert result.returncode == 1
        assert "Dockerfile parse error line 3: unknown instruction: FORM" in result.stderr
        assert "Step 1" not in result.stdout
    assert daemon.docker("image", "inspect", "never:1").returncode == 1


def test_failing_run_reports_command_and_code(daemon: Daemon, base: str,
                                              tmp_path: Path) -> None:
    context = _write(tmp_path, {"Dockerfile": f"FROM {base}\nRUN echo out && exit 3\n"})
    for tool in ("docker", "dockyard"):
        result = _build(daemon, context, "-t", "broken:1", tool=tool, check=False)
        assert result.returncode == 3, result.stderr
        assert "The command '/bin/sh -c echo out && exit 3' returned a non-zero code: 3" \
            in result.stderr
        assert "out\n" in result.stdout
    assert daemon.docker("image", "inspect", "broken:1").returncode == 1
    missing = _write(tmp_path / "m", {"Dockerfile": f"FROM {base}\nCOPY nope /x\n"})
    result = _build(daemon, missing, tool="dockyard", check=False)
    assert result.returncode == 1
    assert "COPY failed: file not found in build context or excluded by .dockerignore: " \
        "stat nope: file does not exist" in result.stderr


# -- .dockerignore and the CLI's options ----------------------------------------------------------

def test_dockerignore_both_clients(daemon: Daemon, base: str, tmp_path: Path) -> None:
    context = _write(tmp_path, {
        "Dockerfile": f"FROM {base}\nCOPY . /ctx/\n",
        ".dockerignore": "*.log\n**/secret*\n!keep.log\nDockerfile\n.dockerignore\n",
        "a.log": "", "keep.log": "", "src/main.c": "", "src/deep/secret.key": "",
        "secret.txt": ""})
    for tool in ("docker", "dockyard"):
        _build(daemon, context, "-t", f"ignored-{tool}:1", tool=tool)
        listing = _run(daemon, f"ignored-{tool}:1", "cd /ctx && find . | sort")
        assert listing.split() == [".", "./keep.log", "./src", "./src/deep",
                                   "./src/main.c"], tool


def test_dockyard_cli_options(daemon: Daemon, base: str, tmp_path: Path) -> None:
    context = _write(tmp_path / "ctx", {"data.txt": "d"})
    outside = _write(tmp_path, {"Other.Dockerfile":
                                f"FROM {base}\nCOPY data.txt /data.txt\n"
                                "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen\n"
                                "RUN --mount=type=cache,target=/c echo x >> /c/f && "
                                "cat /c/f > /cachefile\n"
                                "RUN --mount=type=tmpfs,target=/t touch /t/x && ls /t > /tmpfs\n"
                                "RUN --mount=type=bind,target=/b cat /b/data.txt > /bound\n"})
    (tmp_path / "secret").write_text("s3cret")
    iid = tmp_path / "iid"
    result = daemon.dockyard("build", "-q", "--iidfile", str(iid), "-f",
                             str(outside / "Other.Dockerfile"), "--secret",
                             f"id=tok,src={tmp_path / 'secret'}", "-t", "options:1",
                             str(context), timeout=180)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", result.stdout)
    assert iid.read_text() == result.stdout.strip()
    assert _run(daemon, "options:1", "cat /data.txt /seen /cachefile /tmpfs /bound") == \
        "ds3cretx\nx\nd"
    history = "\n".join(_history(daemon, "options:1"))
    assert "s3cret" not in history


def test_dockerfile_on_stdin(daemon: Daemon, base: str) -> None:
    import subprocess

    from tests.compat.conftest import BIN

    result = subprocess.run([str(BIN / "dockyard"), "-H", daemon.host, "build", "-t",
                             "stdin:1", "-"], input=f"FROM {base}\nENV FROM_STDIN=1\n",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "FROM_STDIN=1" in _inspect(daemon, "stdin:1")["Config"]["Env"]


def test_buildx_builds_an_index_over_platforms(daemon: Daemon, tmp_path: Path) -> None:
    """One build per platform, an index over them; the arm64 RUN runs under qemu-user-static
    (binfmt_misc), the base is the shared amd64+arm64 fixture."""
    daemon.docker("load", "-i", str(FIXTURES / "fixture-multiarch-oci.tar"), check=True)
    context = _write(tmp_path, {"Dockerfile": "FROM multi:1.0\nARG TARGETARCH\n"
                                              "RUN echo \"$TARGETARCH $(uname -m)\" > /arch\n"
                                              "COPY hello.txt /hello.txt\n",
                                "hello.txt": "hi"})
    listed = daemon.docker("images", "-q", "--no-trunc").stdout.split()
    result = daemon.dockyard("buildx", "build", "--platform", "linux/amd64,linux/arm64",
                             "-t", "multi-built:1", str(context), timeout=300)
    assert result.returncode == 0, result.stderr
    # The index is listed; the platform images under it are not (images -a shows them).
    new = set(daemon.docker("images", "-q", "--no-trunc").stdout.split()) - set(listed)
    assert new == {_inspect(daemon, "multi-built:1")["Id"]}
    doc = json.loads((daemon.data_root / "image" / "images.json").read_text())
    target = doc["names"]["docker.io/library/multi-built:1"]
    assert doc["images"][target]["target"]["mediaType"] == \
        "application/vnd.oci.image.index.v1+json"
    for platform, expected in (("linux/amd64", "amd64 x86_64"), ("linux/arm64", "arm64 aarch64")):
        run = daemon.docker("run", "--rm", "--platform", platform, "multi-built:1", "cat",
                            "/arch", "/hello.txt")
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"{expected}\nhi", platform
    # --push sends the index and both platforms' images to Dockyard's own registry, and a
    # build FROM an image that is only there pulls it.
    registry = start_registry(tmp_path / "registry")
    try:
        ref = f"{registry.address}/multi/built:1"
        pushed = daemon.dockyard("buildx", "build", "--platform", "linux/amd64,linux/arm64",
                                 "--push", "-t", ref, str(context), timeout=300)
        assert pushed.returncode == 0, pushed.stderr
        assert "1: digest: sha256:" in pushed.stdout
        index = registry.request("GET", "/v2/multi/built/manifests/1",
                                 headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        assert sorted(m["platform"]["architecture"] for m in index.json()["manifests"]) == \
            ["amd64", "arm64"]
        daemon.docker("rmi", ref, check=True)
        child = _write(tmp_path / "child", {"Dockerfile": f"FROM {ref}\nRUN cat /arch\n"})
        built = daemon.dockyard("build", "--platform", "linux/arm64", "-t", "child:1",
                                str(child), timeout=300)
        assert built.returncode == 0, built.stderr
        assert "arm64 aarch64" in built.stdout
    finally:
        # multi-built's step images name multi:1.0's as their parent: leave nothing that
        # would keep another test's multi:1.0 from being pruned.
        daemon.docker("rmi", "-f", "child:1", ref, "multi-built:1")
        registry.stop()


def test_step_images_hidden_and_removed_with_the_image(daemon: Daemon, base: str,
                                                       tmp_path: Path) -> None:
    import uuid

    marker = uuid.uuid4().hex
    context = _write(tmp_path, {"Dockerfile": f"FROM {base}\nENV M={marker}\nRUN echo {marker}"
                                              " > /m\nCMD [\"cat\", \"/m\"]\n"})
    before = set(daemon.docker("images", "-aq", "--no-trunc").stdout.split())
    _build(daemon, context, "-t", "steps:1")
    listed = set(daemon.docker("images", "-q", "--no-trunc").stdout.split())
    every = set(daemon.docker("images", "-aq", "--no-trunc").stdout.split())
    final = _inspect(daemon, "steps:1")["Id"]
    assert final in listed and len(every - before) == 3
    assert not (every - before - {final}) & listed, "step images are only listed with -a"
    removed = daemon.docker("rmi", "steps:1", check=True).stdout
    assert removed.count("Deleted: ") == 3
    assert set(daemon.docker("images", "-aq", "--no-trunc").stdout.split()) == before


def test_docker_py_build(daemon: Daemon, base: str, tmp_path: Path) -> None:
    import docker as docker_py

    context = _write(tmp_path, {"Dockerfile": f"FROM {base}\nARG WHO\nRUN echo hi $WHO\n"
                                              "LABEL via=docker-py\n"})
    client = docker_py.DockerClient(base_url=daemon.host)
    try:
        image, logs = client.images.build(path=str(context), tag="dockerpy:1",
                                          buildargs={"WHO": "py"}, rm=True)
        assert image.labels == {"via": "docker-py"}
        assert "hi py\n" in [entry.get("stream") for entry in logs]
        with pytest.raises(docker_py.errors.BuildError, match="returned a non-zero code: 4"):
            client.images.build(fileobj=io.BytesIO(f"FROM {base}\nRUN exit 4\n".encode()))
    finally:
        client.close()


def test_missing_base_image_and_remote_add(daemon: Daemon, base: str, tmp_path: Path) -> None:
    # A base image that is not here is pulled; its registry (a closed port on 127.0.0.1:
    # tests never reach Docker Hub) refuses, and the build says so.
    context = _write(tmp_path, {"Dockerfile": "FROM 127.0.0.1:9/no-such-base:1\nRUN true\n"})
    result = _build(daemon, context, "-t", "nobase:1", check=False)
    assert result.returncode == 1
    assert "Step 1/2 : FROM 127.0.0.1:9/no-such-base:1" in result.stdout
    assert "127.0.0.1:9" in result.stderr and "connection refused" in result.stderr, \
        result.stderr
    remote = _write(tmp_path / "r", {"Dockerfile": f"FROM {base}\nADD http://127.0.0.1:9/x /x\n"})
    result = _build(daemon, remote, tool="dockyard", check=False)
    assert result.returncode == 1 and "remote URLs are not supported" in result.stderr
    for ref in ("nobase:1",):
        assert daemon.docker("image", "inspect", ref).returncode == 1


def test_cache_from_a_loaded_image(daemon: Daemon, base: str, tmp_path: Path) -> None:
    import uuid

    marker = uuid.uuid4().hex
    context = _write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {base}\nENV M={marker}\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g\n"
                      "CMD [\"cat\", \"/g\"]\n",
        "f.txt": marker})
    _build(daemon, context, "-t", "cache-source:1")
    original = _inspect(daemon, "cache-source:1")
    daemon.docker("save", "-o", str(tmp_path / "source.tar"), "cache-source:1", check=True)
    daemon.docker("rmi", "cache-source:1", check=True)
    daemon.docker("builder", "prune", "-f", check=True)
    daemon.docker("load", "-i", str(tmp_path / "source.tar"), check=True)
    without = _build(daemon, context, "--no-cache", "-t", "plain:1", tool="dockyard")
    assert "Using cache" not in without.stdout
    daemon.docker("builder", "prune", "-f", check=True)
    result = _build(daemon, context, "--cache-from", "cache-source:1", "-t", "from-cache:1")
    assert result.stdout.count(" ---> Using cache") == 4, result.stdout
    rebuilt = _inspect(daemon, "from-cache:1")
    assert rebuilt["RootFS"]["Layers"] == original["RootFS"]["Layers"]
    # All but the parent's ID (the step images differ in their creation times).
    assert {**rebuilt["Config"], "Image": ""} == {**original["Config"], "Image": ""}
    assert daemon.docker("run", "--rm", "from-cache:1").stdout == marker


def test_run_bind_mounts_from_a_stage_and_the_context(daemon: Daemon, base: str,
                                                      tmp_path: Path) -> None:
    import uuid

    marker = uuid.uuid4().hex
    context = _write(tmp_path, {
        "Dockerfile": f"FROM {base} AS builder\nRUN mkdir /out && echo {marker} > /out/x\n"
                      f"FROM {base}\n"
                      "RUN --mount=type=bind,from=builder,source=/out,target=/in cat /in/x > /y\n"
                      "RUN --mount=type=bind,source=conf,target=/conf cat /conf/c > /z\n"
                      "RUN --mount=type=bind,source=conf,target=/conf,rw echo w > /conf/c\n"
                      "COPY conf/c /copied\n",
        "conf/c": "one"})
    _build(daemon, context, "-t", "bound:1", tool="dockyard")
    assert _run(daemon, "bound:1", "cat /y /z; find /in /conf -mindepth 1 | wc -l") == \
        f"{marker}\none0\n"
    (context / "conf" / "c").write_text("two")
    result = _build(daemon, context, "-t", "bound:1", tool="dockyard")
    steps = result.stdout.split("Step ")[1:]
    assert [" ---> Using cache" in step for step in steps] == [False, True, False, True,
                                                                False, False, False]
    assert _run(daemon, "bound:1", "cat /z /copied") == "twotwo"


def test_heredoc_with_a_shebang_runs_as_its_own_program(daemon: Daemon, base: str,
                                                        tmp_path: Path) -> None:
    context = _write(tmp_path, {"Dockerfile": f"FROM {base}\nRUN <<EOF\n#!/bin/awk -f\n"
                                              "BEGIN {{ print \"from awk\" > \"/awk.txt\" }}\n"
                                              "EOF\n".replace("{{", "{").replace("}}", "}")})
    _build(daemon, context, "--no-cache", "-t", "shebang:1", tool="dockyard")
    assert _run(daemon, "shebang:1", "cat /awk.txt; ls /dev/pipes 2>/dev/null | wc -l") == \
        "from awk\n0\n"
