"""`dockyard-runc`: the entry point. Parses runc's command line and runs one command.

Errors are reported as runc reports them, because callers parse them: a logrus line on
stderr, or with --log a line in that file (text or JSON) and the bare message on stderr.
"""

import sys
import time

from .errors import RuntimeFailure
from .jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .args import Options as Namespace
    from .spawn import Intermediate
    from .state import StateStore


class _Log:
    def __init__(self, path: str, fmt: str, debug: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def write(self, level: str, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            line = dumps({"level": level, "msg": message, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg={dumps(message)}'
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        else:
            sys.stderr.write(line + "\n")

    def error(self, message: str) -> None:
        self.write("error", message)
        if self.path:
            sys.stderr.write(message + "\n")


def main(argv: list[str] | None = None) -> int:
    from .args import USAGE, parse_args

    raw = sys.argv[1:] if argv is None else argv
    try:
        options = parse_args(raw)
    except RuntimeFailure as e:
        _Log("", "text", False).error(str(e))
        return 1
    log = _Log(options.log, options.log_format, options.debug)
    if options.version:
        _print_version()
        return 0
    if options.command is None or options.help:
        sys.stdout.write(USAGE)
        return 0
    try:
        if getattr(options, "format", "table") not in ("table", "json"):
            raise RuntimeFailure(f"invalid format option {options.format!r}")
        if options.systemd_cgroup:
            raise RuntimeFailure("--systemd-cgroup is not supported by dockyard-runc: use "
                                 "the cgroupfs driver (a cgroupsPath like /parent/name)")
        return _dispatch(options)
    except RuntimeFailure as e:
        log.error(str(e))
        return 1
    except OSError as e:
        log.error(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")
        return 1
    except ValueError as e:  # ConfigError and bad flag values
        log.error(str(e))
        return 1


class NeedsProcess(Exception):
    """call() cannot run this command in the caller's process."""


# Commands that fork nothing of their own and need no stdio: call() may run them in the
# caller's thread.
_CALLABLE = frozenset({"start", "delete", "kill"})


def call(argv: list[str]) -> str | None:
    """main(argv) as a library call in the calling thread, for a process that has the
    runtime imported (the shim): no fork, no new interpreter. Returns runc's error message,
    or None on success. Raises NeedsProcess for what must run as a process of its own:
    other commands, and containers with hooks (a hook is a child process, which a caller
    that reaps every child, as the shim does, would take away from us)."""
    from .args import parse_args

    try:
        options = parse_args(argv)
        if options.command not in _CALLABLE or options.log or options.debug or \
                options.systemd_cgroup or options.help or options.version:
            raise NeedsProcess(options.command)
        from .container import Container
        from .errors import ContainerNotFound
        from .state import StateStore

        store = StateStore(options.root)
        try:
            container = Container.load(store, options.id)
        except ContainerNotFound:
            if options.command == "delete" and options.force:
                return None
            raise
        if container.state.config.get("hooks"):
            raise NeedsProcess(options.command)
        _dispatch(options)
    except RuntimeFailure as e:
        return str(e)
    except OSError as e:
        return f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}"
    except ValueError as e:
        return str(e)
    return None


def _dispatch(o: "Namespace") -> int:
    from .container import Container
    from .state import StateStore

    store = StateStore(o.root)
    command = o.command
    if command == "spec":
        from .spec import write_spec

        write_spec(o.bundle or ".", o.rootless)
        return 0
    if command == "features":
        from .info import features, print_json

        print_json(features())
        return 0
    if command == "list":
        from .info import list_containers

        list_containers(store, o.format, o.quiet)
        return 0
    if command in ("create", "run"):
        return _create_or_run(store, o)
    if not o.id:
        raise RuntimeFailure(f'"{command}" requires a container id')
    if command == "delete":
        from .delete import delete_container
        from .errors import ContainerNotFound

        try:
            container = Container.load(store, o.id)
        except ContainerNotFound:
            if o.force:
                return 0
            raise
        delete_container(container, o.force)
        return 0
    container = Container.load(store, o.id)
    if command == "state":
        from .jsonio import dumps_indented

        # Not through info.py: `state` is the command engines call most, keep it light.
        sys.stdout.write(dumps_indented(container.oci_state()) + "\n")
    elif command == "start":
        from .start import start_container

        start_container(container)
    elif command == "kill":
        from .delete import kill_container, parse_signal

        kill_container(container, parse_signal(o.signal), o.all)
    elif command == "pause":
        from .info import pause_container

        pause_container(container)
    elif command == "resume":
        from .info import resume_container

        resume_container(container)
    elif command == "ps":
        from .info import ps_container

        ps_container(container, o.format, o.ps_args)
    elif command == "exec":
        return _exec(container, o)
    return 0


def _create_or_run(store: object, o: "Namespace") -> int:
    from .spawn import start_init_intermediate
    from .state import StateStore, validate_id

    assert isinstance(store, StateStore)
    validate_id(o.id)
    intermediate = start_init_intermediate()
    try:
        return _create_or_run_with(store, o, intermediate)
    finally:
        intermediate.abandon()  # a no-op once create has launched it


def _create_or_run_with(store: "StateStore", o: "Namespace",
                        intermediate: "Intermediate") -> int:
    from .cgroups import start_migration_warmup
    from .create import CreateOptions, create_container

    start_migration_warmup()
    foreground = o.command == "run" and not o.detach
    opts = CreateOptions(bundle=o.bundle, console_socket=o.console_socket, pid_file=o.pid_file,
                         no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring,
                         preserve_fds=o.preserve_fds)
    opts.intermediate = intermediate
    ours = None
    if foreground:
        from .foreground import become_subreaper, console_pair

        if not o.no_subreaper:
            opts.meanwhile = become_subreaper
        if o.console_socket is None and _wants_terminal(o.bundle):
            ours, opts.console_fd = console_pair()
    container = create_container(store, o.id, opts)
    if opts.console_fd is not None:
        opts.console_fd.close()
    if o.command == "create":
        return 0
    from .start import start_container

    try:
        start_container(container)
    except BaseException:
        from .delete import delete_container

        delete_container(container, force=True)
        raise
    if not foreground:
        return 0
    from .delete import delete_container
    from .foreground import wait_in_foreground

    code = wait_in_foreground(container.state.pid, ours)
    if not o.keep:
        delete_container(container, force=True)
    return code


def _wants_terminal(bundle: str) -> bool:
    try:
        with open(f"{bundle}/config.json", "rb") as f:
            return bool((loads(f.read()).get("process") or {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return False  # create reports the problem with the config itself


def _exec(container: object, o: "Namespace") -> int:
    from .container import Container
    from .exec import ExecOptions, exec_in_container

    assert isinstance(container, Container)
    opts = ExecOptions(process_file=o.process, args=o.args, tty=o.tty, cwd=o.cwd, env=o.env,
                       user=o.user, additional_gids=o.additional_gids, caps=o.cap,
                       no_new_privs=o.no_new_privs, console_socket=o.console_socket,
                       pid_file=o.pid_file, preserve_fds=o.preserve_fds,
                       ignore_paused=o.ignore_paused)
    ours = None
    if not o.detach:
        from .foreground import become_subreaper, console_pair

        if not o.no_subreaper:
            opts.meanwhile = become_subreaper
        if o.console_socket is None and (o.tty or _process_file_wants_terminal(o.process)):
            ours, opts.console_fd = console_pair()
    pid = exec_in_container(container, opts)
    if opts.console_fd is not None:
        opts.console_fd.close()
    if o.detach:
        return 0
    from .foreground import wait_in_foreground

    return wait_in_foreground(pid, ours)


def _process_file_wants_terminal(path: str | None) -> bool:
    if not path:
        return False
    try:
        with open(path, "rb") as f:
            return bool(loads(f.read()).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return False


def _print_version() -> None:
    from .. import __version__
    from .state import OCI_VERSION

    print(f"dockyard-runc version {__version__}\nspec: {OCI_VERSION}\n"
          f"python: {sys.version.split()[0]}")


if __name__ == "__main__":
    sys.exit(main())
