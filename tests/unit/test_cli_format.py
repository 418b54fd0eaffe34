"""The CLI's output pieces: Go templates, docker's tables (tabwriter), human units, the ps
and images columns. Expected strings are docker 28's output for the same data."""

from __future__ import annotations

import time

import pytest

from dockyard.cli._output import FormatError, parse_format, tabwrite, write_rows
from dockyard.cli._template import Template, TemplateError, to_text
from dockyard.cli.container import PS_HEADERS, PS_TABLE, ContainerRow, displayable_ports, stats_row
from dockyard.cli.image import IMAGE_HEADERS, IMAGE_TABLE, image_rows
from dockyard.cli.system import disk_usage_rows, format_event
from dockyard.gostrings import go_quote
from dockyard.units import (
    bytes_size,
    from_human_size,
    human_duration,
    human_size,
    ram_in_bytes,
    since,
)


class Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


# -- templates --------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ("{{.Name}}", "web"),
    ("{{.State.Status}}/{{.State.ExitCode}}", "running/0"),
    ("{{json .Config.Cmd}}", '["sleep","10"]'),
    ("{{json .State}}", '{"Status":"running","ExitCode":0,"Running":true}'),
    ("{{json .Config.Labels}}", '{"a":"1","b":"<x>"}'),
    ("{{.Config.Cmd}}", "[sleep 10]"),
    ("{{.Config.Labels}}", "map[a:1 b:<x>]"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.State.Running}}", "true"),
    ("{{upper .Name}} {{lower \"ABC\"}} {{.Name | upper}}", "WEB abc WEB"),
    ("{{join .Config.Cmd \",\"}}", "sleep,10"),
    ("{{index .Config.Labels \"a\"}}", "1"),
    ("{{range .Config.Cmd}}<{{.}}>{{end}}", "<sleep><10>"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=<x>;"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.Status \"exited\"}}x{{else if .State.Running}}r{{end}}", "r"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{range .Nothing}}x{{else}}empty{{end}}", "empty"),
    ("{{len .Config.Cmd}} {{printf \"%s:%d\" .Name 5}}", "2 web:5"),
    ("a {{- \" b \" -}} c", "a b c"),
    ("{{json .Config.Labels.b}}", '"<x>"'),
    ("{{$.Name}}{{range .Config.Cmd}}{{$.Name}}{{end}}", "webwebweb"),
    ("{{(index .Config.Cmd 1)}}", "10"),
    ("{{.Ratio}} {{.Big}} {{.Half}}", "1.5 1e+06 0.5"),
])
def test_template(source: str, expected: str) -> None:
    data = {"Name": "web", "State": {"Status": "running", "ExitCode": 0, "Running": True},
            "Config": {"Cmd": ["sleep", "10"], "Labels": {"a": "1", "b": "<x>"},
                       "Entrypoint": None},
            "Ratio": 1.5, "Big": 1e6, "Half": 0.5}
    assert Template(source).render(data) == expected


def test_template_errors() -> None:
    with pytest.raises(TemplateError, match='function "nosuch" not defined'):
        Template("{{nosuch .}}")
    with pytest.raises(TemplateError):
        Template("{{if .A}}unclosed")
    row = ContainerRow({"Id": "a" * 64}, True)
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        Template("{{.Nope}}").render(row)


def test_go_quote_and_values() -> None:
    assert go_quote("sh -c 'echo \"x\"'\n") == '"sh -c \'echo \\"x\\"\'\\n"'
    assert to_text([1, "a", True]) == "[1 a true]"
    assert to_text({}) == "map[]"


# -- tables -----------------------------------------------------------------------------------

def test_tabwrite_matches_go() -> None:
    text = "CONTAINER ID\tNAMES\tPORTS\n1234\tweb\t\n"
    assert tabwrite(text) == ("CONTAINER ID   NAMES     PORTS\n"
                              "1234           web       \n")
    # Column blocks: a line with fewer cells ends the block of the columns it lacks.
    assert tabwrite("a\tb\tc\nlonger-cell\n1\t2\t3\n") == "a         b         c\n" \
        "longer-cell\n1         2         3\n"
    assert tabwrite("UID\tPID\nroot\t1\n", minwidth=20) == \
        "UID                 PID\nroot                1\n"


def test_parse_format() -> None:
    assert parse_format("", "table {{.A}}") == (True, "{{.A}}")
    assert parse_format("table {{.A}}\\t{{.B}}", "x") == (True, "{{.A}}\t{{.B}}")
    assert parse_format("json", "x") == (False, "{{json .}}")
    assert parse_format("{{.ID}}", "x") == (False, "{{.ID}}")


def test_bad_template_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="template parsing error"):
        write_rows("{{.ID", "table {{.ID}}", [], {}, Sink())


# -- units ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "expected"), [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
    (60, "About a minute"), (119, "About a minute"), (120, "2 minutes"),
    (3599, "59 minutes"), (3600, "About an hour"), (5399, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"),
    (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (730 * 86400, "2 years"),
])
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize(("size", "expected"), [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1982464, "1.98MB"), (999_500, "1e+03kB"),
    (123_456_789, "123MB"), (5 * 10**9, "5GB"), (10_240, "10.2kB"),
])
def test_human_size(size: int, expected: str) -> None:
    assert human_size(size) == expected


def test_other_units() -> None:
    assert human_size(1982464, 4) == "1.982MB"
    assert bytes_size(319488) == "312KiB"
    assert bytes_size(25275310080) == "23.54GiB"
    assert ram_in_bytes("64m") == 64 * 1024 * 1024
    assert ram_in_bytes("1.5g") == int(1.5 * 1024**3)
    assert ram_in_bytes("512kb") == 512 * 1024
    assert from_human_size("10MB") == 10_000_000
    with pytest.raises(ValueError):
        ram_in_bytes("lots")
    assert since(time.time() - 3) == "3 seconds ago"


# -- ps, images, stats, df, events ------------------------------------------------------------

def test_ports_column() -> None:
    ports = [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
             {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"},
             {"PrivatePort": 443, "Type": "tcp"}, {"PrivatePort": 444, "Type": "tcp"},
             {"PrivatePort": 53, "Type": "udp"}]
    assert displayable_ports(ports) == \
        "53/udp, 443-444/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert displayable_ports([{"PrivatePort": 90, "PublicPort": 90, "Type": "tcp",
                               "IP": "127.0.0.1"}]) == "127.0.0.1:90->90/tcp"


def test_ps_table() -> None:
    now = time.time()
    containers = [
        {"Id": "dbd823df565aaa0b83675498b517537a524b1ff2289d013b69378f9b65335770",
         "Names": ["/exited"], "Image": "busybox:test", "Command": "sh -c 'exit 3'",
         "Created": now - 0.2, "State": "exited", "Status": "Exited (3) Less than a second ago",
         "Ports": []},
        {"Id": "e1a2f78133ba23dcaa813105413587a629ae0b2de6bd58e59bb41b1896a2bfed",
         "Names": ["/longcmd"], "Image": "busybox:test",
         "Command": "sh -c 'echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'", "Created": now - 18.5,
         "State": "created", "Status": "Created", "Ports": []},
    ]
    sink = Sink()
    write_rows("", PS_TABLE, [ContainerRow(c, True) for c in containers], PS_HEADERS, sink)
    assert sink.text == (
        "CONTAINER ID   IMAGE          COMMAND                  CREATED                  "
        "STATUS                              PORTS     NAMES\n"
        "dbd823df565a   busybox:test   \"sh -c 'exit 3'\"         Less than a second ago   "
        "Exited (3) Less than a second ago             exited\n"
        "e1a2f78133ba   busybox:test   \"sh -c 'echo aaaaaaa…\"   18 seconds ago           "
        "Created                                       longcmd\n")
    json_sink = Sink()
    write_rows("{{json .}}", PS_TABLE, [ContainerRow(containers[1], True)], PS_HEADERS,
               json_sink)
    assert json_sink.text.startswith('{"Command":"\\"sh -c \'echo aaaaaaa…\\"","CreatedAt":')
    assert '"Names":"longcmd","Networks":"","Platform":null' in json_sink.text


def test_images_rows() -> None:
    image = {"Id": "sha256:7c1f31e4943022de40c3d3caf850d6eadd30ac53c5fe04d1650bd697f5e31efc",
             "RepoTags": ["busybox:test", "busybox:other"],
             "RepoDigests": ["busybox@sha256:" + "1" * 64], "Created": time.time() - 34.2,
             "Size": 1982464, "SharedSize": -1, "Containers": -1}
    dangling = {"Id": "sha256:" + "2" * 64, "RepoTags": [], "RepoDigests": [],
                "Created": time.time() - 34.2, "Size": 10, "SharedSize": -1, "Containers": -1}
    sink = Sink()
    write_rows("", IMAGE_TABLE, image_rows([image, dangling], False, True), IMAGE_HEADERS,
               sink)
    assert sink.text == (
        "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE\n"
        "busybox      test      7c1f31e49430   34 seconds ago   1.98MB\n"
        "busybox      other     7c1f31e49430   34 seconds ago   1.98MB\n"
        "<none>       <none>    222222222222   34 seconds ago   10B\n")
    with_digests = image_rows([image], True, True)
    assert [r.field("Digest") for r in with_digests] == ["sha256:" + "1" * 64] * 2
    assert with_digests[0].to_json()["SharedSize"] == "N/A"


def test_stats_row() -> None:
    data = {"id": "43e71ea7957ec032", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000}, "system_cpu_usage": 10**9,
                          "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000},
                             "system_cpu_usage": 10**9 - 10**8},
            "memory_stats": {"usage": 419_430, "limit": 25275310080,
                             "stats": {"inactive_file": 99_942}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}]},
            "pids_stats": {"current": 1}}
    assert stats_row("web", data) == {
        "ID": "43e71ea7957e", "Name": "web", "Container": "web", "CPUPerc": "2.00%",
        "MemUsage": "312KiB / 23.54GiB", "MemPerc": "0.00%", "NetIO": "1.5kB / 0B",
        "BlockIO": "4.1kB / 0B", "PIDs": "1"}


def test_system_df_rows() -> None:
    data = {"LayersSize": 1982464,
            "Images": [{"Containers": 1, "Size": 1982464, "SharedSize": 0}],
            "Containers": [{"State": "running", "SizeRw": 0}, {"State": "exited",
                                                                "SizeRw": 0}],
            "Volumes": [], "BuildCache": []}
    rows = disk_usage_rows(data)
    assert [list(r.values()) for r in rows] == [
        ["Images", "1", "1", "1.982MB", "0B (0%)"],
        ["Containers", "2", "1", "0B", "0B"],
        ["Local Volumes", "0", "0", "0B", "0B"],
        ["Build Cache", "0", "0", "0B", "0B"]]


def test_event_line() -> None:
    event = {"Type": "container", "Action": "start", "Actor": {
        "ID": "abc", "Attributes": {"name": "web", "image": "busybox:test"}},
        "time": 1700000000, "timeNano": 1700000000123456789}
    line = format_event(event)
    assert line.endswith(" container start abc (image=busybox:test, name=web)")
    assert ".123456789" in line.split()[0]
