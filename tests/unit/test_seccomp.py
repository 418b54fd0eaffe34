"""Seccomp filters loaded for real, each in a forked child so pytest itself stays unfiltered.

The child sets no_new_privs first, which lets an unprivileged process load a filter.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime import seccomp as seccomp_module
from dockyard.runtime.config import Seccomp, SeccompArg, SeccompRule
from dockyard.runtime.seccomp import SeccompError, load_filter, resolve_syscall

PR_SET_NO_NEW_PRIVS = 38
PER_QUERY = 0xFFFFFFFF  # personality(0xffffffff) reads the persona without changing it
PER_LINUX32 = 0x0008
_CHILD_FAILED = 120

_libc = ctypes.CDLL(None, use_errno=True)
_libc.personality.argtypes = [ctypes.c_ulong]
_libc.personality.restype = ctypes.c_int


def personality(persona: int) -> int:
    """0 when the call succeeded, else its errno."""
    return 0 if _libc.personality(persona) != -1 else ctypes.get_errno()


def errno_of(call: Callable[[], object]) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno or 0
    return 0


def run_filtered(seccomp: Seccomp, probe: Callable[[], Any]) -> tuple[int, Any]:
    """Load `seccomp` in a child, run `probe` there; return the wait status and its result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            # A SIGSYS kill would otherwise leave a core file behind.
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
            load_filter(seccomp)
            report = {"result": probe()}
            code = 0
        except BaseException:
            report = {"error": traceback.format_exc()}
            code = _CHILD_FAILED
        try:
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    report = json.loads(raw) if raw else {}
    if "error" in report:
        pytest.fail(f"child failed:\n{report['error']}")
    return status, report.get("result")


def allow_all(*rules: SeccompRule, **kwargs: Any) -> Seccomp:
    return Seccomp("SCMP_ACT_ALLOW", syscalls=list(rules), **kwargs)


def test_errno_rule_returns_errno_ret(tmp_path: Path) -> None:
    config = allow_all(SeccompRule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=99))
    status, result = run_filtered(config, lambda: errno_of(lambda: os.mkdir(tmp_path / "d")))
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == 99
    assert not (tmp_path / "d").exists()


def test_errno_rule_defaults_to_eperm(tmp_path: Path) -> None:
    config = allow_all(SeccompRule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"))
    _, result = run_filtered(config, lambda: errno_of(lambda: os.mkdir(tmp_path / "d")))
    assert result == errno.EPERM


def test_default_errno_with_allow_list() -> None:
    # Enough for the child to compute, report through the pipe and exit.
    allowed = ["brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "futex",
               "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "write", "close",
               "exit", "exit_group", "getppid"]
    config = Seccomp("SCMP_ACT_ERRNO", default_errno_ret=77, architectures=["SCMP_ARCH_X86_64",
                     "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                     syscalls=[SeccompRule(allowed, "SCMP_ACT_ALLOW")])
    parent = os.getpid()
    status, result = run_filtered(config, lambda: [errno_of(os.getcwd), os.getppid()])
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == [77, parent]


def test_rule_with_the_default_action_is_skipped(tmp_path: Path) -> None:
    config = Seccomp("SCMP_ACT_ALLOW", syscalls=[
        SeccompRule(["getcwd"], "SCMP_ACT_ALLOW"),
        SeccompRule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=98),
    ])
    _, result = run_filtered(config, lambda: errno_of(lambda: os.mkdir(tmp_path / "d")))
    assert result == 98


def test_argument_condition() -> None:
    rule = SeccompRule(["personality"], "SCMP_ACT_ERRNO", errno_ret=42,
                       args=[SeccompArg(0, PER_LINUX32, 0, "SCMP_CMP_EQ")])
    _, result = run_filtered(allow_all(rule),
                             lambda: [personality(PER_QUERY), personality(PER_LINUX32)])
    assert result == [0, 42]


def test_conditions_on_different_arguments_must_all_match(tmp_path: Path) -> None:
    target = os.open(tmp_path / "target", os.O_CREAT | os.O_RDWR, 0o600)
    other = os.open(tmp_path / "other", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        # Refuse setting the setuid bit, on `target` only; value is the mask for MASKED_EQ.
        rule = SeccompRule(["fchmod"], "SCMP_ACT_ERRNO", errno_ret=44, args=[
            SeccompArg(0, target, 0, "SCMP_CMP_EQ"),
            SeccompArg(1, 0o4000, 0o4000, "SCMP_CMP_MASKED_EQ"),
        ])
        _, result = run_filtered(allow_all(rule), lambda: [
            errno_of(lambda: os.fchmod(target, 0o4700)),
            errno_of(lambda: os.fchmod(target, 0o700)),
            errno_of(lambda: os.fchmod(other, 0o4700)),
        ])
    finally:
        os.close(target)
        os.close(other)
    assert result == [44, 0, 0]


def test_conditions_on_the_same_argument_become_separate_rules() -> None:
    # libseccomp refuses two conditions on one argument in one rule; like runc, each
    # condition gets its own rule, so either one matching is enough.
    rule = SeccompRule(["personality"], "SCMP_ACT_ERRNO", errno_ret=43, args=[
        SeccompArg(0, 8, 0, "SCMP_CMP_EQ"),
        SeccompArg(0, 9, 0, "SCMP_CMP_EQ"),
    ])
    _, result = run_filtered(allow_all(rule), lambda: [
        personality(PER_QUERY), personality(8), personality(9)])
    assert result == [0, 43, 43]


def test_unknown_syscall_names_are_ignored(tmp_path: Path) -> None:
    config = allow_all(SeccompRule(["no_such_syscall_dockyard", "mkdir", "mkdirat"],
                                   "SCMP_ACT_ERRNO", errno_ret=99))
    _, result = run_filtered(config, lambda: errno_of(lambda: os.mkdir(tmp_path / "d")))
    assert result == 99


def test_kill_process_kills_with_sigsys() -> None:
    config = allow_all(SeccompRule(["getppid"], "SCMP_ACT_KILL_PROCESS"))
    status, _ = run_filtered(config, os.getppid)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGSYS


def test_flags_are_accepted(tmp_path: Path) -> None:
    config = allow_all(SeccompRule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=97),
                       flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                              "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    _, result = run_filtered(config, lambda: errno_of(lambda: os.mkdir(tmp_path / "d")))
    assert result == 97


# The cases below fail before seccomp_load, so they run in the test process itself.

def test_unknown_architecture_is_refused() -> None:
    config = allow_all(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"])
    with pytest.raises(SeccompError, match=r"^linux\.seccomp\.architectures\[1\]: unknown "
                                           r"architecture 'SCMP_ARCH_VAX'"):
        load_filter(config)


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(SeccompError, match=r"^linux\.seccomp\.flags\[0\]: unknown flag"):
        load_filter(allow_all(flags=["SECCOMP_FILTER_FLAG_BOGUS"]))


def test_notify_is_refused() -> None:
    config = allow_all(SeccompRule(["mkdir"], "SCMP_ACT_NOTIFY"))
    with pytest.raises(SeccompError, match=r"^linux\.seccomp\.syscalls\[0\]\.action: "
                                           r"SCMP_ACT_NOTIFY is not supported"):
        load_filter(config)
    with pytest.raises(SeccompError, match=r"^linux\.seccomp\.defaultAction: SCMP_ACT_NOTIFY"):
        load_filter(Seccomp("SCMP_ACT_NOTIFY"))


def test_errno_ret_on_an_action_without_errno_is_refused() -> None:
    config = allow_all(SeccompRule(["getcwd"], "SCMP_ACT_ERRNO"),
                       SeccompRule(["mkdir"], "SCMP_ACT_LOG", errno_ret=5))
    with pytest.raises(SeccompError, match=r"^linux\.seccomp\.syscalls\[1\]\.errnoRet: "):
        load_filter(config)
    with pytest.raises(SeccompError, match=r"^linux\.seccomp\.defaultErrnoRet: "):
        load_filter(Seccomp("SCMP_ACT_ALLOW", default_errno_ret=1))


def test_out_of_range_argument_value_is_refused() -> None:
    rule = SeccompRule(["personality"], "SCMP_ACT_ERRNO",
                       args=[SeccompArg(0, -1, 0, "SCMP_CMP_EQ")])
    with pytest.raises(SeccompError,
                       match=r"^linux\.seccomp\.syscalls\[0\]\.args\[0\]\.value: "):
        load_filter(allow_all(rule))


def test_resolve_syscall() -> None:
    getppid = {"x86_64": 110, "aarch64": 173}.get(os.uname().machine)
    if getppid is not None:
        assert resolve_syscall("getppid") == getppid
    assert resolve_syscall("no_such_syscall_dockyard") is None
    assert resolve_syscall("") is None
    assert resolve_syscall("getppid\0x") is None


def test_missing_library_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str, *args: object, **kwargs: object) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    seccomp_module._library.cache_clear()
    monkeypatch.setattr(seccomp_module.ctypes, "CDLL", no_library)
    try:
        with pytest.raises(SeccompError, match="libseccomp is not installed: "
                                               "apt-get install libseccomp2"):
            load_filter(allow_all())
    finally:
        monkeypatch.undo()
        seccomp_module._library.cache_clear()
