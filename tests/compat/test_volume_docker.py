"""Volumes and mounts on real containers, through the docker CLI 28, docker-py and
dockyard against dockyardd: named and anonymous volumes, copy-up, --volumes-from, read-only
and tmpfs mounts, rm -v, prune, the local driver's device options, and the errors."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.conftest import Daemon

IMAGE = "dockyard-fixture:1.0"
FIXTURE_DATA = ["a", "hard", "link", "opaque", "sub"]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _volume_mounts(daemon: Daemon) -> list[str]:
    root = str(daemon.data_root / "volumes")
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if root in line]


@pytest.fixture
def clean(daemon: Daemon) -> Iterator[Daemon]:
    """Containers and volumes the test made are removed; nothing stays mounted."""
    before = set(daemon.docker("volume", "ls", "-q", check=True).stdout.split())
    yield daemon
    for container_id in daemon.docker("ps", "-aq").stdout.split():
        daemon.docker("rm", "-f", "-v", container_id)
    after = set(daemon.docker("volume", "ls", "-q", check=True).stdout.split())
    for name in after - before:
        daemon.docker("volume", "rm", "-f", name)
    assert _volume_mounts(daemon) == []


def test_named_volume_data_survives_its_container_and_is_filled_from_the_image(
        clean: Daemon) -> None:
    daemon, name = clean, _unique("data")
    assert daemon.docker("volume", "create", name, check=True).stdout == f"{name}\n"
    first = daemon.docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "sh", "-c",
                          "ls /data; stat -c %h /data/hard; readlink /data/link; "
                          "cat /data/sub/c; echo kept > /data/note", check=True)
    assert first.stdout.split() == FIXTURE_DATA + ["2", "/data/a", "three"]
    second = daemon.docker("run", "--rm", "-v", f"{name}:/elsewhere", IMAGE, "cat",
                           "/elsewhere/note", check=True)
    assert second.stdout == "kept\n"
    mountpoint = daemon.docker("volume", "inspect", "-f", "{{.Mountpoint}}", name,
                               check=True).stdout.strip()
    assert mountpoint == str(daemon.data_root / "volumes" / name / "_data")
    assert (Path(mountpoint) / "note").read_text() == "kept\n"
    # a volume filled once is not filled again (the note stays, a deleted file stays gone)
    daemon.docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "rm", "/data/a", check=True)
    third = daemon.docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "ls", "/data",
                          check=True)
    assert third.stdout.split() == ["hard", "link", "note", "opaque", "sub"]


def test_anonymous_volumes_from_v_and_image_volume_and_rm_v(clean: Daemon) -> None:
    daemon = clean
    named = _unique("keep")
    source = _unique("src")
    image = f"withvol-{uuid.uuid4().hex[:8]}:1"
    daemon.docker("create", "--name", source, IMAGE, check=True)
    daemon.docker("commit", "--change", 'VOLUME ["/data"]', source, image, check=True)
    daemon.docker("rm", source, check=True)
    try:
        name = _unique("anon")
        daemon.docker("create", "--name", name, "-v", "/app", "-v", f"{named}:/kept", image,
                      "sh", "-c", "cat /app/hello.txt; ls /data", check=True)
        mounts = json.loads(daemon.docker("inspect", "-f", "{{json .Mounts}}", name,
                                          check=True).stdout)
        by_destination = {m["Destination"]: m for m in mounts}
        assert set(by_destination) == {"/app", "/data", "/kept"}
        anonymous = [by_destination["/app"]["Name"], by_destination["/data"]["Name"]]
        for mount in (by_destination["/app"], by_destination["/data"]):
            assert len(mount["Name"]) == 64
            assert mount == {"Type": "volume", "Name": mount["Name"],
                             "Source": str(daemon.data_root / "volumes" / mount["Name"] /
                                           "_data"),
                             "Destination": mount["Destination"], "Driver": "local",
                             "Mode": "", "RW": True, "Propagation": ""}
        assert by_destination["/kept"]["Mode"] == "z"
        labels = daemon.docker("volume", "inspect", "-f", "{{json .Labels}}", anonymous[0],
                               check=True).stdout
        assert json.loads(labels) == {"com.docker.volume.anonymous": ""}
        started = daemon.docker("start", "-a", name, check=True)
        assert started.stdout.split() == ["hello", "from", "a", "file", *FIXTURE_DATA]
        daemon.docker("rm", "-v", name, check=True)
        remaining = daemon.docker("volume", "ls", "-q", check=True).stdout.split()
        assert named in remaining and not set(anonymous) & set(remaining)
        # --rm removes the anonymous volumes too, not the named ones
        daemon.docker("run", "--rm", "-v", "/scratch", "-v", f"{named}:/kept", IMAGE, "true",
                      check=True)
        assert daemon.docker("volume", "ls", "-q", check=True).stdout.split() == remaining
    finally:
        daemon.docker("rmi", image)


def test_volumes_from_and_read_only_mounts(clean: Daemon) -> None:
    daemon = clean
    owner, name = _unique("owner"), _unique("shared")
    daemon.docker("create", "--name", owner, "-v", f"{name}:/shared", "-v", "/anon", IMAGE,
                  check=True)
    daemon.docker("run", "--rm", "--volumes-from", owner, IMAGE, "sh", "-c",
                  "echo via-from > /shared/f; echo anon > /anon/g", check=True)
    read_only = daemon.docker("run", "--rm", "--volumes-from", f"{owner}:ro", IMAGE, "sh",
                              "-c", "cat /shared/f /anon/g; touch /shared/x")
    assert read_only.returncode != 0
    assert read_only.stdout == "via-from\nanon\n"
    assert "Read-only file system" in read_only.stderr
    refused = daemon.docker("run", "--rm", "-v", f"{name}:/ro:ro", IMAGE, "sh", "-c",
                            "touch /ro/x")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    mount = daemon.docker("run", "--rm", "--mount", f"type=volume,src={name},dst=/m,readonly",
                          IMAGE, "sh", "-c", "cat /m/f; touch /m/x")
    assert mount.stdout == "via-from\n" and "Read-only file system" in mount.stderr
    missing = daemon.docker("run", "--rm", "--volumes-from", "no-such-container", IMAGE,
                            "true")
    assert missing.returncode == 125
    assert "No such container: no-such-container" in missing.stderr
    # the owner's anonymous volume survives the users that shared it
    anon = daemon.docker("inspect", "-f",
                         '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}'
                         "{{end}}", owner, check=True).stdout.strip()
    assert anon in daemon.docker("volume", "ls", "-q", check=True).stdout.split()


def test_mount_options_nocopy_tmpfs_and_binds(clean: Daemon, tmp_path: Path) -> None:
    daemon = clean
    empty = daemon.docker("run", "--rm", "--mount", "type=volume,dst=/data,volume-nocopy",
                          IMAGE, "ls", "-A", "/data", check=True)
    assert empty.stdout == ""
    nocopy = _unique("nocopy")
    daemon.docker("run", "--rm", "-v", f"{nocopy}:/data:nocopy", IMAGE, "true", check=True)
    assert list((daemon.data_root / "volumes" / nocopy / "_data").iterdir()) == []
    labelled = _unique("labelled")
    daemon.docker("run", "--rm", "--mount",
                  f"type=volume,src={labelled},dst=/v,volume-label=team=blue", IMAGE, "true",
                  check=True)
    labels = daemon.docker("volume", "inspect", "-f", "{{json .Labels}}", labelled,
                           check=True).stdout
    assert json.loads(labels) == {"team": "blue"}
    tmpfs = daemon.docker("run", "--rm", "--tmpfs", "/scratch:size=2m,mode=1770",
                          "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=0700",
                          IMAGE, "sh", "-c",
                          "stat -c %a /scratch /t; df -k /scratch /t | tail -n 2; "
                          "echo x > /t/f && cat /t/f", check=True)
    lines = tmpfs.stdout.splitlines()
    assert lines[:2] == ["1770", "700"]
    assert lines[2].split()[1] == "2048" and lines[3].split()[1] == "1024"
    assert lines[4] == "x"
    # a missing host path is made for -v and refused for --mount, as Docker does
    made = tmp_path / "made-by-v"
    daemon.docker("run", "--rm", "-v", f"{made}:/m:z", IMAGE, "sh", "-c", "echo hi > /m/f",
                  check=True)
    assert (made / "f").read_text() == "hi\n"
    refused = daemon.docker("run", "--rm", "--mount", f"type=bind,src={tmp_path}/absent,"
                            "dst=/m", IMAGE, "true")
    assert refused.returncode == 125
    assert ("invalid mount config for type \"bind\": bind source path does not exist: "
            f"{tmp_path}/absent") in refused.stderr


def test_local_driver_device_options_mount_while_used(clean: Daemon, tmp_path: Path) -> None:
    daemon = clean
    tmpfs_volume, bind_volume = _unique("tmpfs"), _unique("bind")
    daemon.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o",
                  "o=size=1m,mode=0750", tmpfs_volume, check=True)
    options = daemon.docker("volume", "inspect", "-f", "{{json .Options}}", tmpfs_volume,
                            check=True).stdout
    assert json.loads(options) == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0750"}
    out = daemon.docker("run", "--rm", "-v", f"{tmpfs_volume}:/v", IMAGE, "sh", "-c",
                        "df -k /v | tail -n 1; stat -c %a /v", check=True).stdout.splitlines()
    assert out[0].split()[1] == "1024" and out[1] == "750"
    host = tmp_path / "host-dir"
    host.mkdir()
    daemon.docker("volume", "create", "-o", "type=none", "-o", f"device={host}", "-o",
                  "o=bind", bind_volume, check=True)
    daemon.docker("run", "--rm", "-v", f"{bind_volume}:/v", IMAGE, "sh", "-c",
                  "echo through-bind > /v/f", check=True)
    assert (host / "f").read_text() == "through-bind\n"
    assert _volume_mounts(daemon) == []  # unmounted once no container uses them


def test_volume_commands_list_filter_inspect_remove_prune(clean: Daemon) -> None:
    daemon = clean
    blue, red, used = _unique("blue"), _unique("red"), _unique("used")
    daemon.docker("volume", "create", "--label", "color=blue", blue, check=True)
    daemon.docker("volume", "create", "--name", red, "--label", "color=red", check=True)
    holder = _unique("holder")
    daemon.docker("create", "--name", holder, "-v", f"{used}:/u", IMAGE, check=True)
    listing = daemon.docker("volume", "ls", check=True).stdout.splitlines()
    assert listing[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert f"local     {blue}" in listing
    assert daemon.docker("volume", "ls", "-q", "-f", "label=color=blue",
                         check=True).stdout.split() == [blue]
    assert daemon.docker("volume", "ls", "-q", "-f", f"name={red[:-2]}",
                         check=True).stdout.split() == [red]
    dangling = daemon.docker("volume", "ls", "-q", "-f", "dangling=true", check=True).stdout
    assert blue in dangling and used not in dangling
    assert daemon.docker("volume", "ls", "-q", "-f", "dangling=false",
                         check=True).stdout.split() == [used]
    formatted = daemon.docker("volume", "ls", "-f", f"name={blue}", "--format",
                              "{{.Name}}|{{.Driver}}|{{.Labels}}|{{.Scope}}", check=True)
    assert formatted.stdout == f"{blue}|local|color=blue|local\n"
    # ps: the Mounts column and the volume filter (by name or mount point)
    for cli in (daemon.docker, daemon.dockyard):
        for wanted in (used, "/u"):
            shown = cli("ps", "-a", "--filter", f"volume={wanted}", "--format",
                        "{{.Names}} {{.Mounts}}", check=True)
            assert shown.stdout == f"{holder} {used}\n", (wanted, shown.stdout)
    bad_filter = daemon.docker("volume", "ls", "-f", "colour=blue")
    assert bad_filter.returncode == 1 and "invalid filter 'colour'" in bad_filter.stderr
    # in use: refused, by the CLI and by the API (409)
    in_use = daemon.docker("volume", "rm", used)
    assert in_use.returncode == 1
    holder_id = daemon.docker("inspect", "-f", "{{.Id}}", holder, check=True).stdout.strip()
    assert (f"Error response from daemon: remove {used}: volume is in use - [{holder_id}]"
            in in_use.stderr)
    import docker

    client = docker.APIClient(base_url=daemon.host)
    with pytest.raises(docker.errors.APIError) as caught:
        client.remove_volume(used)
    assert caught.value.status_code == 409
    with pytest.raises(docker.errors.NotFound):
        client.inspect_volume("no-such-volume")
    created = client.create_volume(_unique("api"), labels={"via": "api"})
    assert created["Labels"] == {"via": "api"} and created["Scope"] == "local"
    missing = daemon.docker("volume", "inspect", "no-such-volume")
    assert missing.returncode == 1 and missing.stdout == "[]\n"
    assert "get no-such-volume: no such volume" in missing.stderr
    # prune: anonymous unused volumes by default, all unused ones with -a, never used ones
    anonymous = daemon.docker("volume", "create", check=True).stdout.strip()
    pruned = daemon.docker("volume", "prune", "-f", check=True).stdout
    assert anonymous in pruned and blue not in pruned
    pruned = daemon.docker("volume", "prune", "-af", "--filter", "label=color=red",
                           check=True).stdout
    assert red in pruned and blue not in pruned
    pruned = daemon.docker("volume", "prune", "-af", "--filter", "label!=color",
                           check=True).stdout
    assert blue not in pruned and created["Name"] in pruned
    remaining = daemon.docker("volume", "ls", "-q", check=True).stdout.split()
    assert blue in remaining and used in remaining and red not in remaining
    daemon.docker("rm", holder, check=True)
    assert daemon.docker("volume", "rm", used, blue, check=True).stdout.split() == [used, blue]
    gone = daemon.docker("volume", "rm", used)
    assert gone.returncode == 1 and f"get {used}: no such volume" in gone.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["volume", "create", "a/b"], 'create a/b: "a/b" includes invalid characters for a '
                                  'local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
                                  "allowed. If you intended to pass a host directory, use "
                                  "absolute path"),
    (["volume", "create", "x"], "create x: volume name is too short, names should be at "
                                "least two alphanumeric characters"),
    (["volume", "create", "-o", "foo=bar", "optvol"], 'create optvol: invalid option: "foo"'),
    (["volume", "create", "-o", "type=tmpfs", "optvol"],
     'create optvol: missing required option: "device"'),
    (["volume", "create", "-d", "nosuchdriver", "drvvol"], 'plugin "nosuchdriver" not found'),
    (["run", "--rm", "-v", "bad/name:/d", IMAGE, "true"], '"bad/name" includes invalid'),
    (["run", "--rm", "-v", "vol1:/d:bogus", IMAGE, "true"], "invalid mode: bogus"),
    (["run", "--rm", "-v", "vol1:relative", IMAGE, "true"],
     "invalid volume specification: 'vol1:relative': invalid mount config for type "
     '"volume": invalid mount path: \'relative\' mount path must be absolute'),
    (["run", "--rm", "-v", "v1:/d", "-v", "v2:/d", IMAGE, "true"],
     "Duplicate mount point: /d"),
    (["run", "--rm", "--mount", "type=tmpfs,src=x,dst=/x", IMAGE, "true"],
     'invalid mount config for type "tmpfs": field Source must not be specified'),
])
def test_bad_input_is_refused_with_dockers_messages(clean: Daemon, args: list[str],
                                                    message: str) -> None:
    before = clean.docker("volume", "ls", "-q", check=True).stdout
    result = clean.docker(*args)
    assert result.returncode in (1, 125), result
    assert message in result.stderr
    assert clean.docker("volume", "ls", "-q", check=True).stdout == before  # nothing made
    assert clean.docker("ps", "-aq").stdout == ""


def test_system_df_counts_volumes(clean: Daemon) -> None:
    daemon = clean
    name = _unique("df")
    daemon.docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "true", check=True)
    rows = daemon.docker("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}",
                         check=True).stdout.splitlines()
    volumes_row = next(r for r in rows if r.startswith("Local Volumes|"))
    total, active = (int(x) for x in volumes_row.split("|")[1:])
    assert total >= 1 and active == 0
    holder = _unique("dfholder")
    daemon.docker("create", "--name", holder, "-v", f"{name}:/data", "-v", "/anon", IMAGE,
                  check=True)
    for verbose in (daemon.docker("system", "df", "-v", check=True).stdout,
                    daemon.dockyard("system", "df", "-v", check=True).stdout):
        lines = verbose.splitlines()
        assert [line for line in lines if line.endswith("space usage:")] == [
            "Images space usage:", "Containers space usage:", "Local Volumes space usage:"]
        volume = next(line for line in lines if line.startswith(name))
        assert volume.split()[1:] == ["1", "21B"]  # as Docker counts it: a hard link once
        container = next(line for line in lines if line.endswith(holder))
        assert container.split()[1:4] == [IMAGE, '"sh', "-c"]
        assert "   2   " in container  # LOCAL VOLUMES
    daemon.docker("rm", "-v", holder, check=True)
    api = json.loads(daemon.docker("system", "df", "--format", "{{json .}}",
                                   check=True).stdout.splitlines()[2])
    assert api["Type"] == "Local Volumes"


def test_dockyard_cli_volume_commands(clean: Daemon) -> None:
    daemon = clean
    name = _unique("dy")
    assert daemon.dockyard("volume", "create", "--label", "a=b", name,
                           check=True).stdout == f"{name}\n"
    listing = daemon.dockyard("volume", "ls", "-f", f"name={name}", check=True).stdout
    assert listing.splitlines() == ["DRIVER    VOLUME NAME", f"local     {name}"]
    inspected = json.loads(daemon.dockyard("volume", "inspect", name, check=True).stdout)
    assert inspected[0]["Labels"] == {"a": "b"}
    assert inspected == json.loads(daemon.docker("volume", "inspect", name, check=True).stdout)
    ran = daemon.dockyard("run", "--rm", "-v", f"{name}:/data", IMAGE, "ls", "/data",
                          check=True)
    assert ran.stdout.split() == FIXTURE_DATA
    missing = daemon.dockyard("volume", "inspect", "nope-nope")
    assert missing.returncode == 1
    assert "Error response from daemon: get nope-nope: no such volume" in missing.stderr
    assert daemon.dockyard("volume", "rm", name, check=True).stdout == f"{name}\n"
    anonymous = daemon.dockyard("volume", "create", check=True).stdout.strip()
    pruned = daemon.dockyard("volume", "prune", "-f", check=True).stdout
    assert pruned.startswith(f"Deleted Volumes:\n{anonymous}\n")


def test_device_volume_stays_mounted_while_another_container_uses_it(clean: Daemon) -> None:
    daemon = clean
    name = _unique("sharedtmpfs")
    daemon.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", name,
                  check=True)
    first, second = _unique("first"), _unique("second")
    for container in (first, second):
        daemon.docker("run", "-d", "--name", container, "-v", f"{name}:/v", IMAGE, "sleep",
                      "60", check=True)
    daemon.docker("exec", first, "sh", "-c", "echo shared > /v/f", check=True)
    daemon.docker("rm", "-f", first, check=True)
    assert len(_volume_mounts(daemon)) == 1
    third = daemon.docker("run", "--rm", "-v", f"{name}:/v", IMAGE, "cat", "/v/f", check=True)
    assert third.stdout == "shared\n"  # the same tmpfs, not a new one
    daemon.docker("rm", "-f", second, check=True)
    assert _volume_mounts(daemon) == []


def test_volumes_and_their_mounts_survive_a_daemon_kill(clean: Daemon) -> None:
    daemon = clean
    device, name = _unique("restartdev"), _unique("survivor")
    daemon.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", device,
                  check=True)
    daemon.docker("run", "-d", "--name", name, "-v", f"{device}:/dev-volume", "-v", "/anon",
                  IMAGE, "sh", "-c", "echo in-tmpfs > /dev-volume/f; "
                  "trap 'exit 0' TERM; while true; do sleep 0.1; done", check=True)
    anonymous = daemon.docker("inspect", "-f",
                              '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}'
                              "{{end}}", name, check=True).stdout.strip()
    events = daemon.docker("events", "--since", "0", "--until", f"{time.time() + 0.5:.3f}",
                           "--filter", "type=volume", "--filter", f"volume={device}",
                           "--format", "{{.Action}}", check=True).stdout.split()
    assert events[:2] == ["create", "mount"]
    daemon.stop(kill=True)
    daemon.start()
    assert set(daemon.docker("volume", "ls", "-q", check=True).stdout.split()) >= \
        {device, anonymous}
    assert daemon.docker("exec", name, "cat", "/dev-volume/f", check=True).stdout == \
        "in-tmpfs\n"
    assert len(_volume_mounts(daemon)) == 1
    daemon.docker("stop", "-t", "5", name, check=True)
    assert _volume_mounts(daemon) == []  # the restarted daemon knows who used it
    daemon.docker("rm", "-v", name, check=True)
    assert anonymous not in daemon.docker("volume", "ls", "-q", check=True).stdout.split()
