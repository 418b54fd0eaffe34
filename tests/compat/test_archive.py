"""The real docker CLI (28) against dockyardd: diff, cp, export, commit and import."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from pathlib import Path

from tests.compat.conftest import DOCKER, Daemon

IMAGE = "dockyard-fixture:1.0"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _running(daemon: Daemon, name: str) -> None:
    daemon.docker("run", "-d", "--name", name, IMAGE, "sh", "-c",
                  "trap 'exit 0' TERM; while true; do sleep 0.1; done", check=True)


def test_diff_lists_added_changed_and_deleted(daemon: Daemon) -> None:
    name = _name("diff")
    _running(daemon, name)
    try:
        daemon.docker("exec", name, "sh", "-c",
                      "echo new > /app/new.txt; rm /app/hello.txt; mkdir /made", check=True)
        lines = daemon.docker("diff", name, check=True).stdout.splitlines()
        assert "C /app" in lines
        assert "A /app/new.txt" in lines
        assert "D /app/hello.txt" in lines
        assert "A /made" in lines
        # The mount points the runtime made (Docker's "-init" layer) are not changes.
        assert not {"A /proc", "A /sys", "A /dev", "A /etc/hosts", "C /etc"} & set(lines)
        missing = daemon.docker("diff", "no-such-container")
        assert missing.returncode == 1 and "No such container" in missing.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_cp_both_ways_on_a_running_container(daemon: Daemon, tmp_path: Path) -> None:
    name = _name("cp")
    _running(daemon, name)
    try:
        source = tmp_path / "in.txt"
        source.write_text("from the host\n")
        daemon.docker("cp", str(source), f"{name}:/app/in.txt", check=True)
        shown = daemon.docker("exec", name, "cat", "/app/in.txt", check=True).stdout
        assert shown == "from the host\n"
        tree = tmp_path / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "deep.txt").write_text("deep\n")
        (tree / "top.txt").write_text("top\n")
        daemon.docker("cp", str(tree), f"{name}:/copied", check=True)
        listing = daemon.docker("exec", name, "sh", "-c",
                                "cat /copied/top.txt /copied/sub/deep.txt", check=True)
        assert listing.stdout == "top\ndeep\n"

        out = tmp_path / "hello.txt"
        daemon.docker("cp", f"{name}:/app/hello.txt", str(out), check=True)
        assert out.read_text() == "hello from a file\n"
        back = tmp_path / "back"
        daemon.docker("cp", f"{name}:/copied", str(back), check=True)
        assert (back / "sub" / "deep.txt").read_text() == "deep\n"
        assert (back / "top.txt").read_text() == "top\n"

        missing = daemon.docker("cp", f"{name}:/no/such/file", str(tmp_path / "x"))
        assert missing.returncode == 1
        assert "Could not find the file /no/such/file in container" in missing.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_cp_stays_inside_the_container_through_symlinks(daemon: Daemon,
                                                       tmp_path: Path) -> None:
    name = _name("cpsym")
    marker = f"escape-{uuid.uuid4().hex[:8]}"
    _running(daemon, name)
    try:
        daemon.docker("exec", name, "sh", "-c", "mkdir /inner; "
                      "ln -s ../../../../../../../tmp /app/up", check=True)
        source = tmp_path / marker
        source.write_text("stays inside\n")
        daemon.docker("cp", str(source), f"{name}:/app/up/", check=True)
        assert not Path("/tmp", marker).exists()
        shown = daemon.docker("exec", name, "cat", f"/tmp/{marker}", check=True).stdout
        assert shown == "stays inside\n"
        out = tmp_path / "out"
        daemon.docker("cp", f"{name}:/app/up/{marker}", str(out), check=True)
        assert out.read_text() == "stays inside\n"
    finally:
        daemon.docker("rm", "-f", name)


def test_cp_to_stdout_is_a_tar_named_by_the_basename(daemon: Daemon) -> None:
    name = _name("cptar")
    daemon.docker("create", "--name", name, IMAGE, check=True)
    try:
        result = subprocess.run([DOCKER, "cp", f"{name}:/app", "-"], capture_output=True,
                                env={"DOCKER_HOST": daemon.host}, timeout=60, check=True)
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
            names = tar.getnames()
            assert "app/hello.txt" in names
            data = tar.extractfile("app/hello.txt")
            assert data is not None and data.read() == b"hello from a file\n"
    finally:
        daemon.docker("rm", "-f", name)


def test_cp_on_a_stopped_container(daemon: Daemon, tmp_path: Path) -> None:
    name = _name("cpstopped")
    daemon.docker("create", "--name", name, IMAGE, "cat", "/app/put.txt", check=True)
    try:
        source = tmp_path / "put.txt"
        source.write_text("put while stopped\n")
        daemon.docker("cp", str(source), f"{name}:/app/put.txt", check=True)
        out = tmp_path / "got.txt"
        daemon.docker("cp", f"{name}:/app/put.txt", str(out), check=True)
        assert out.read_text() == "put while stopped\n"
        started = daemon.docker("start", "-a", name, check=True)
        assert started.stdout == "put while stopped\n"
        # Stopped again: its snapshot was mounted only for each copy.
        daemon.docker("cp", f"{name}:/app/hello.txt", str(tmp_path / "h.txt"), check=True)
        assert (tmp_path / "h.txt").read_text() == "hello from a file\n"
        mounts = Path("/proc/self/mountinfo").read_text()
        assert "archive-mounts" not in mounts
    finally:
        daemon.docker("rm", "-f", name)


def test_export_is_a_tar_of_the_whole_filesystem(daemon: Daemon) -> None:
    name = _name("export")
    daemon.docker("create", "--name", name, IMAGE, check=True)
    try:
        result = subprocess.run([DOCKER, "export", name], capture_output=True,
                                env={"DOCKER_HOST": daemon.host}, timeout=60, check=True)
        listing = subprocess.run(["tar", "-t"], input=result.stdout, capture_output=True,
                                 check=True).stdout.decode().splitlines()
        assert "app/hello.txt" in listing
        assert any(line.startswith("bin/") for line in listing)
    finally:
        daemon.docker("rm", "-f", name)


def test_commit_then_run_the_committed_image(daemon: Daemon) -> None:
    name = _name("commit")
    repo = _name("committed")
    _running(daemon, name)
    try:
        daemon.docker("exec", name, "sh", "-c", "echo committed > /app/kept.txt; "
                      "rm /app/hello.txt", check=True)
        image_id = daemon.docker("commit", "--change", "ENV COMMITTED=yes",
                                 "--change", 'CMD ["cat", "/app/kept.txt"]',
                                 "-m", "a message", name, f"{repo}:v1", check=True)
        assert image_id.stdout.strip().startswith("sha256:")
        ran = daemon.docker("run", "--rm", f"{repo}:v1", check=True)
        assert ran.stdout == "committed\n"
        checked = daemon.docker("run", "--rm", f"{repo}:v1", "sh", "-c",
                                "echo $COMMITTED; test -e /app/hello.txt || echo gone",
                                check=True)
        assert checked.stdout == "yes\ngone\n"
        comment = daemon.docker("inspect", "-f", "{{.Comment}}", f"{repo}:v1", check=True)
        assert comment.stdout.strip() == "a message"
        history = daemon.docker("history", "-q", f"{repo}:v1", check=True).stdout.split()
        assert len(history) >= 2
    finally:
        daemon.docker("rm", "-f", name)
        daemon.docker("rmi", f"{repo}:v1")


def test_import_a_tar_then_run_it(daemon: Daemon, tmp_path: Path) -> None:
    # The root file system: the fixture's, exported, plus one file of our own.
    name = _name("forimport")
    repo = _name("imported")
    daemon.docker("create", "--name", name, IMAGE, check=True)
    try:
        exported = tmp_path / "rootfs.tar"
        daemon.docker("export", "-o", str(exported), name, check=True)
    finally:
        daemon.docker("rm", "-f", name)
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["tar", "-xf", str(exported), "-C", str(tree)], check=True)
    (tree / "imported.txt").write_text("imported\n")
    archive = tmp_path / "tree.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(tree), "."], check=True)
    try:
        result = daemon.docker("import", "--change", "CMD [\"cat\", \"/imported.txt\"]",
                               str(archive), f"{repo}:latest", check=True)
        assert result.stdout.strip().startswith("sha256:")
        ran = daemon.docker("run", "--rm", repo, check=True)
        assert ran.stdout == "imported\n"
        hello = daemon.docker("run", "--rm", repo, "cat", "/app/hello.txt", check=True)
        assert hello.stdout == "hello from a file\n"
        comment = daemon.docker("inspect", "-f", "{{.Comment}}", repo, check=True)
        assert comment.stdout.strip() == "Imported from -"
    finally:
        daemon.docker("rmi", repo)


def test_pull_from_an_unreachable_registry_fails_clearly(daemon: Daemon) -> None:
    # Pulls work now (tests/compat/test_distribution_registry.py); nothing listens here.
    from tests.distribution_registry import free_port

    host = f"127.0.0.1:{free_port()}"
    result = daemon.docker("pull", f"{host}/busybox:latest")
    assert result.returncode != 0
    assert f'Get "http://{host}/v2/": dial tcp {host}: connect: connection refused' \
        in result.stderr
