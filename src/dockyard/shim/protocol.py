"""The shim's control protocol: newline-delimited JSON over <exec_root>/shim.sock.

Pure encoding and decoding, no I/O, so that the daemon's client and the shim share one
definition and it is tested without sockets.

Messages, one JSON object per line:
  request   {"id": 7, "method": "create", "params": {...}}
  response  {"id": 7, "result": {...}}  or  {"id": 7, "error": {"message": "...", "kind": K}}
            K: "invalid" (400), "not_found" (404), "conflict" (409), "runtime" (the OCI
            runtime failed: message in its own words, e.g. 'exec: "x": executable file
            not found in $PATH' for the daemon to map to 127, "permission denied" to 126),
            "internal".
  event     {"event": "exit", "id": C, ["exec_id": E,] "exit_code": N, "pid": P,
             "finished_at": "2026-11-28T09:15:00.123456789Z"}   (128+N for signal N)
            {"event": "oom", "id": C}   (before the exit event of a container whose memory
             cgroup counted an OOM kill during its life)
            Events go to every control connection (not attach connections). Nobody
            connected: the exit is in <exec_root>/<id>.exit.json and in `list`.

Responses carry the request's id and may come out of order (requests run concurrently).
A process's "exit" event is sent after the response of the `create`, `start` or `exec`
request that started it, and after its output is in the log and on the attach streams.

Methods (params -> result):
  hello        {} -> {version, pid, exec_root, containers, processes}
  create       {id, bundle, runtime, runtime_root, runtime_args?, log_path?,
                log_max_size? (10 MiB), log_max_files? (3), terminal?, stdin_open?,
                console_size? {height, width}} -> {pid}
               `<runtime> --root R [runtime_args] create --bundle B --pid-file F
               [--console-socket S] <id>` with stdio the shim owns; no log_path: no log.
  start        {id, exec_id?} -> {} for a container; {pid} for a prepared exec
  exec         {id, exec_id, process (OCI process object), terminal?, stdin_open?,
                console_size?, start? (true)} -> {pid}, or {} with start=false (prepared:
               attach first, then `start` with the exec_id, as Docker's exec create/start)
               `<runtime> exec --detach --pid-file F --process P [--console-socket S] <id>`
  kill         {id, exec_id?, signal? (15), all?} -> {}   (`<runtime> kill [--all]`, or
               kill(2) on the exec's pid once its start time is checked)
  state        {id, exec_id?} -> a container: {id, status, pid, bundle, terminal,
               stdin_open, log_path, runtime, runtime_root, runtime_args, exit_code?,
               finished_at?, oom_killed?, log_dropped_entries?, log_dropped_bytes?,
               execs: [{exec_id, pid, status, terminal, exit_code?, finished_at?}]};
               an exec: the entry of execs. status: created | running | stopped.
  list         {} -> {containers: [state of each]}: running ones and exit records
               (also those written by an earlier shim of this exec root)
  resize       {id, exec_id?, height, width} -> {}   (TIOCSWINSZ on the pty master)
  close_stdin  {id, exec_id?} -> {}   (closes the stdin pipe once queued input is
               written; a terminal gets an EOT, ^D, as it has no end of file)
  delete       {id, force?} -> {}   (`<runtime> delete [--force]`, then the record and
               the exit file are forgotten; refused while running unless force)
               {id, exec_id} -> {}   (forgets an exited or prepared exec)
  attach       {id, exec_id?, stdin? (false), stdout? (true), stderr? (true),
                stdin_once? (false)} -> {terminal}, then raw stream mode (first request
               of its connection only). From the shim: the output from now on, in
               Docker's frames (8-byte header: stream 1|2, 0, 0, 0, uint32 BE length)
               unless terminal (raw); the end of the stream when the process has exited.
               To the shim: input for the process's stdin; a half-close ends this
               attacher's input (and with stdin_once closes the process's stdin).
               Several attachers at once; what is written while nobody is attached is
               only in the log. An attacher more than 1 MiB behind is disconnected.
  shutdown     {} -> {}, then the shim exits; refused (conflict) while it supervises a
               running process or other requests are in progress.
"""

from __future__ import annotations

import json
import struct
from typing import Any

SOCKET_NAME = "shim.sock"
PID_FILE_NAME = "shim.pid"
START_LOCK_NAME = "shim.start.lock"
LOG_FILE_NAME = "shim.log"
EXIT_SUFFIX = ".exit.json"

PROTOCOL_VERSION = 1

# Docker's stream numbers in the 8-byte frame header (stdcopy).
STDIN = 0
STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

# Error kinds, for the daemon to map to API status codes.
INVALID = "invalid"  # bad request: 400
NOT_FOUND = "not_found"  # no such container or exec: 404
CONFLICT = "conflict"  # wrong state (already exists, still running): 409
RUNTIME = "runtime"  # the OCI runtime failed; message is the runtime's
INTERNAL = "internal"

# Methods and their parameters: name -> (type, required). Types are checked, extra
# parameters are refused so that a typo is an error, not silently ignored.
_STR, _INT, _BOOL, _LIST, _DICT = str, int, bool, list, dict
METHODS: dict[str, dict[str, tuple[type, bool]]] = {
    "hello": {},
    "create": {
        "id": (_STR, True), "bundle": (_STR, True), "runtime": (_STR, True),
        "runtime_root": (_STR, True), "runtime_args": (_LIST, False),
        "log_path": (_STR, False), "log_max_size": (_INT, False),
        "log_max_files": (_INT, False), "terminal": (_BOOL, False),
        "stdin_open": (_BOOL, False), "console_size": (_DICT, False),
        "delete_on_exit": (_BOOL, False),
    },
    "start": {"id": (_STR, True), "exec_id": (_STR, False)},
    "kill": {"id": (_STR, True), "exec_id": (_STR, False), "signal": (_INT, False),
             "all": (_BOOL, False)},
    "state": {"id": (_STR, True), "exec_id": (_STR, False)},
    "list": {},
    "exec": {"id": (_STR, True), "exec_id": (_STR, True), "process": (_DICT, True),
             "terminal": (_BOOL, False), "stdin_open": (_BOOL, False),
             "console_size": (_DICT, False), "start": (_BOOL, False)},
    "resize": {"id": (_STR, True), "exec_id": (_STR, False), "height": (_INT, True),
               "width": (_INT, True)},
    "close_stdin": {"id": (_STR, True), "exec_id": (_STR, False)},
    "delete": {"id": (_STR, True), "exec_id": (_STR, False), "force": (_BOOL, False)},
    "attach": {"id": (_STR, True), "exec_id": (_STR, False), "stdin": (_BOOL, False),
               "stdout": (_BOOL, False), "stderr": (_BOOL, False),
               "stdin_once": (_BOOL, False)},
    "shutdown": {},
}

DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILES = 3


class ProtocolError(ValueError):
    """A message that does not follow the protocol; `kind` is one of the error kinds."""

    def __init__(self, message: str, kind: str = INVALID) -> None:
        super().__init__(message)
        self.kind = kind


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def encode_request(request_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    return _dump({"id": request_id, "method": method, "params": params or {}})


def encode_result(request_id: Any, result: dict[str, Any]) -> bytes:
    return _dump({"id": request_id, "result": result})


def encode_error(request_id: Any, message: str, kind: str = INTERNAL) -> bytes:
    return _dump({"id": request_id, "error": {"message": message, "kind": kind}})


def encode_event(event: str, **fields: Any) -> bytes:
    return _dump({"event": event, **fields})


def decode_message(line: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("a message must be a JSON object")
    return doc


def parse_request(line: bytes) -> tuple[Any, str, dict[str, Any]]:
    """(id, method, params) of a request line, params checked against METHODS."""
    doc = decode_message(line)
    request_id = doc.get("id")
    method = doc.get("method")
    params = doc.get("params")
    if params is None:
        params = {}
    if not isinstance(method, str):
        raise ProtocolError("method: missing")
    schema = METHODS.get(method)
    if schema is None:
        raise ProtocolError(f"unknown method {method!r}")
    if not isinstance(params, dict):
        raise ProtocolError("params: must be an object")
    for name, value in params.items():
        if name not in schema:
            raise ProtocolError(f"{method}: unknown parameter {name!r}")
        expected = schema[name][0]
        # bool is an int in Python; JSON tells them apart, so must we.
        if value is not None and (not isinstance(value, expected) or
                                  (expected is int and isinstance(value, bool))):
            raise ProtocolError(f"{method}: {name} must be {expected.__name__}")
    for name, (_, required) in schema.items():
        if required and params.get(name) in (None, ""):
            raise ProtocolError(f"{method}: {name} is required")
    return request_id, method, params


class ShimError(Exception):
    """An error response from the shim."""

    def __init__(self, message: str, kind: str = INTERNAL) -> None:
        super().__init__(message)
        self.kind = kind


def response_result(doc: dict[str, Any]) -> dict[str, Any]:
    """The result of a response, or ShimError for an error response."""
    error = doc.get("error")
    if error is not None:
        raise ShimError(str(error.get("message", error)), str(error.get("kind", INTERNAL)))
    return doc.get("result") or {}


# Docker's multiplexed stream format (stdcopy): [stream, 0, 0, 0, size uint32 BE] + data.
_FRAME_HEADER = struct.Struct(">BxxxI")
FRAME_HEADER_SIZE = _FRAME_HEADER.size


def frame(stream: int, data: bytes) -> bytes:
    return _FRAME_HEADER.pack(stream, len(data)) + data


class FrameDecoder:
    """Splits a multiplexed byte stream back into (stream, data) frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= FRAME_HEADER_SIZE:
            stream, size = _FRAME_HEADER.unpack_from(self._buffer)
            end = FRAME_HEADER_SIZE + size
            if len(self._buffer) < end:
                break
            frames.append((stream, bytes(self._buffer[FRAME_HEADER_SIZE:end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buffer)


def exit_code_of(wait_status: int) -> int:
    """A waitpid status as the shell (and Docker) report it: 128+N for signal N."""
    import os

    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    return 255
