"""The last steps of a container process before execve: limits, identity, capabilities,
no_new_privs and seccomp, in the order that keeps each step permitted (runc's order)."""

import os
import stat

from . import capabilities as caps
from .config import RLIMIT_NAMES, Process, Rlimit
from .errors import RuntimeFailure
from .linux import PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .seccomp_bpf import SeccompProgram
    from .syscalls import Syscall

def apply_rlimits(rlimits: list[Rlimit], sys: "Syscall") -> None:
    for index, limit in enumerate(rlimits):
        # RLIMIT_NAMES is in the kernel's order (asm-generic, as on x86_64 and arm64).
        if limit.type not in RLIMIT_NAMES:
            raise RuntimeFailure(f"process.rlimits[{index}]: {limit.type} is not supported "
                                 "on this system")
        try:
            sys.setrlimit(RLIMIT_NAMES.index(limit.type), limit.soft, limit.hard)
        except OSError as e:
            raise RuntimeFailure(f"process.rlimits[{index}]: setting {limit.type} to "
                                 f"{limit.soft}/{limit.hard}: {e.strerror}") from None


def with_home(env: list[str], uid: int) -> list[str]:
    """runc's rule: without HOME in the environment, the user's home from the container's
    /etc/passwd (read after pivot_root), or "/"."""
    if any(item.startswith("HOME=") for item in env):
        return env
    home = "/"
    try:
        with open("/etc/passwd", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 5 and fields[2] == str(uid):
                    home = fields[5] or "/"
                    break
    except OSError:
        pass
    return [*env, f"HOME={home}"]


def env_path(env: list[str]) -> str | None:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return None


def find_executable(name: str, env: list[str]) -> str:
    """The file execve will run, or the error runc reports for it."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            raise RuntimeFailure(f'exec: "{name}": stat {name}: {e.strerror.lower()}') from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise RuntimeFailure(f'exec: "{name}": permission denied')
        return name
    for directory in (env_path(env) or "").split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise RuntimeFailure(f'exec: "{name}": executable file not found in $PATH')


def become_process_user(process: Process, seccomp: "SeccompProgram | None",
                        sys: "Syscall") -> None:
    """Drops to the process's identity and privileges; then only execve remains.
    `seccomp` is the compiled filter (seccomp_bpf.prepare, before the root changes)."""
    capabilities = process.capabilities
    if capabilities is not None:
        caps.drop_bounding(sys, caps.mask(capabilities.bounding))
    if seccomp is not None and not process.no_new_privileges:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it.
        _load_seccomp(seccomp)
    user = process.user
    # Without a capabilities object the process keeps what setuid leaves it, as in runc.
    keep = capabilities is not None
    if keep:
        sys.prctl(PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.additional_gids)
    except PermissionError:
        # A user namespace with setgroups denied (rootless): keep the groups we have.
        if user.additional_gids:
            raise
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if keep:
        sys.prctl(PR_SET_KEEPCAPS, 0)
        caps.apply_sets(sys, capabilities)
    if process.no_new_privileges:
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if user.umask is not None:
        os.umask(user.umask)
    try:
        os.chdir(process.cwd)
    except OSError as e:
        raise RuntimeFailure(f"chdir to cwd ({process.cwd!r}) set in config.json failed: "
                             f"{e.strerror.lower()}") from None
    if seccomp is not None and process.no_new_privileges:
        # As late as possible, so that the filter only has to allow execve after it.
        _load_seccomp(seccomp)


def _load_seccomp(program: "SeccompProgram") -> None:
    from .seccomp_bpf import load

    load(program)


def close_fds_on_exec(keep_up_to: int) -> None:
    """Marks every descriptor above keep_up_to close-on-exec (runc passes only stdio and
    --preserve-fds to the container)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > keep_up_to:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def reset_signal_dispositions() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across execve,
    so the container's program would inherit that. Restore the defaults."""
    import _signal  # the signal module's enums cost milliseconds to import

    for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(signum, _signal.SIG_DFL)


def exec_process(path: str, args: list[str], env: list[str]) -> None:
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    os.execve(path, args, environ)
