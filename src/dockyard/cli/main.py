"""`dockyard`: the docker-compatible command line, a client of the daemon's Engine API.

This module is the whole start-up path: it parses the global options, finds the command in
a table and imports only that command's module. Each module is one command group
(container, image, system, registry), the container group split into container (ps, stats,
create, run), container_control (lifecycle) and container_io (streams and files); see
DESIGN.md.
"""

from __future__ import annotations

import sys

# command -> (module, function); management commands map their subcommands the same way.
COMMANDS: dict[str, tuple[str, str]] = {
    "ps": ("container", "ps"), "run": ("container", "run"), "create": ("container", "create"),
    "start": ("container_control", "start"), "stop": ("container_control", "stop"),
    "kill": ("container_control", "kill"), "restart": ("container_control", "restart"),
    "pause": ("container_control", "pause"), "unpause": ("container_control", "unpause"),
    "rm": ("container_control", "rm"), "wait": ("container_control", "wait"),
    "rename": ("container_control", "rename"), "update": ("container_control", "update"),
    "logs": ("container_io", "logs"), "attach": ("container_io", "attach"),
    "exec": ("container_io", "exec_"), "top": ("container_io", "top"),
    "stats": ("container", "stats"), "port": ("container_io", "port"),
    "cp": ("container_io", "cp"), "diff": ("container_io", "diff"),
    "export": ("container_io", "export"), "commit": ("container_io", "commit"),
    "images": ("image", "images"), "history": ("image", "history"), "tag": ("image", "tag"),
    "rmi": ("image", "rmi"), "save": ("image", "save"), "load": ("image", "load"),
    "import": ("image", "import_"), "pull": ("image", "pull"), "push": ("image", "push"),
    "login": ("registry", "login"), "logout": ("registry", "logout"),
    "version": ("system", "version"), "info": ("system", "info"),
    "events": ("system", "events"), "inspect": ("system", "inspect"),
    "build": ("build", "build"),
}
_CONTAINER = {name: COMMANDS[name] for name in (
    "run", "create", "start", "stop", "kill", "restart", "pause", "unpause", "rm", "wait",
    "rename", "update", "logs", "attach", "exec", "top", "stats", "port", "cp", "diff",
    "export", "commit")}
GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "container": {**_CONTAINER, "ls": ("container", "ps"), "ps": ("container", "ps"),
                  "list": ("container", "ps"), "remove": ("container_control", "rm"),
                  "inspect": ("container_control", "inspect"),
                  "prune": ("container_control", "prune")},
    "image": {"ls": ("image", "images"), "list": ("image", "images"),
              "inspect": ("image", "inspect"), "history": ("image", "history"),
              "tag": ("image", "tag"), "rm": ("image", "rmi"), "remove": ("image", "rmi"),
              "prune": ("image", "prune"), "save": ("image", "save"),
              "load": ("image", "load"), "import": ("image", "import_"),
              "pull": ("image", "pull"), "push": ("image", "push"),
              "build": ("build", "build")},
    "system": {"df": ("system", "df"), "info": ("system", "info"),
               "events": ("system", "events")},
    "volume": {"create": ("volume", "create"), "ls": ("volume", "ls"),
               "list": ("volume", "ls"), "inspect": ("volume", "inspect"),
               "rm": ("volume", "rm"), "remove": ("volume", "rm"),
               "prune": ("volume", "prune")},
    "network": {"create": ("network", "create"), "ls": ("network", "ls"),
                "list": ("network", "ls"), "inspect": ("network", "inspect"),
                "rm": ("network", "rm"), "remove": ("network", "rm"),
                "prune": ("network", "prune"), "connect": ("network", "connect"),
                "disconnect": ("network", "disconnect")},
    "registry": {"serve": ("registry_server", "serve"),
                 "garbage-collect": ("registry_server", "garbage_collect")},
    "buildx": {"build": ("build", "buildx_build")},
    "builder": {"build": ("build", "build"), "prune": ("build", "builder_prune")},
    "manifest": {"inspect": ("manifest", "inspect")},
}
GROUP_SUMMARIES = {"container": "Manage containers", "image": "Manage images",
                   "system": "Manage Dockyard", "volume": "Manage volumes",
                   "network": "Manage networks", "registry": "Run a registry server",
                   "buildx": "Build images (one per platform)", "builder": "Manage builds",
                   "manifest": "Manage Docker image manifests and manifest lists"}

# Global options: (short, long, takes a value).
_GLOBAL = {"-H": "host", "--host": "host", "--config": "config", "-c": "context",
           "--context": "context", "-l": "log-level", "--log-level": "log-level",
           "--tlscacert": "tls", "--tlscert": "tls", "--tlskey": "tls"}
_GLOBAL_BOOL = {"-D", "--debug", "--tls", "--tlsverify"}

HELP = """Usage:  dockyard [OPTIONS] COMMAND

A self-sufficient runtime for containers (Docker-compatible)

Common Commands:
  run         Create and run a new container from an image
  build       Build an image from a Dockerfile
  exec        Execute a command in a running container
  ps          List containers
  images      List images
  pull        Download an image from a registry
  push        Upload an image to a registry
  login       Authenticate to a registry
  logout      Log out from a registry
  version     Show the Dockyard version information
  info        Display system-wide information

Management Commands:
  builder     Manage builds
  buildx      Build images (one per platform)
  container   Manage containers
  image       Manage images
  network     Manage networks
  registry    Run a registry server
  system      Manage Dockyard
  volume      Manage volumes

Commands:
  attach      Attach local standard input, output, and error streams to a running container
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  daemon      Run the Dockyard daemon (dockyardd)
  diff        Inspect changes to files or directories on a container's filesystem
  events      Get real time events from the server
  export      Export a container's filesystem as a tar archive
  history     Show the history of an image
  import      Import the contents from a tarball to create a filesystem image
  inspect     Return low-level information on Dockyard objects
  kill        Kill one or more running containers
  load        Load an image from a tar archive or STDIN
  logs        Fetch the logs of a container
  pause       Pause all processes within one or more containers
  port        List port mappings or a specific mapping for the container
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  rmi         Remove one or more images
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  start       Start one or more stopped containers
  stats       Display a live stream of container(s) resource usage statistics
  stop        Stop one or more running containers
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  top         Display the running processes of a container
  unpause     Unpause all processes within one or more containers
  update      Update configuration of one or more containers
  wait        Block until one or more containers stop, then print their exit codes

Global Options:
      --config string      Location of client config files (default "~/.docker")
  -D, --debug              Enable debug mode
  -H, --host string        Daemon socket to connect to (DOCKYARD_HOST, DOCKER_HOST)
  -l, --log-level string   Set the logging level (default "info")
  -v, --version            Print version information and quit

Run 'dockyard COMMAND --help' for more information on a command.
"""


_GROUP_ONLY = {"ls": "List {}s", "list": "List {}s", "ps": "List {}s",
               "inspect": "Display detailed information on one or more {}s",
               "prune": "Remove unused {}s", "remove": "Remove one or more {}s",
               "rm": "Remove one or more {}s", "df": "Show disk usage",
               "serve": "Run a registry", "garbage-collect": "Remove unreferenced blobs"}


# Where a group's command says something else than the top-level command of that name.
_GROUP_COMMAND_SUMMARIES = {
    ("network", "create"): "Create a network",
    ("network", "connect"): "Connect a container to a network",
    ("network", "disconnect"): "Disconnect a container from a network",
    ("network", "prune"): "Remove all unused networks",
}


def _group_help(group: str) -> str:
    summaries = {}
    for line in HELP.splitlines():
        word, _, text = line.strip().partition(" ")
        if line.startswith("  ") and word and text:
            summaries[word] = text.strip()
    lines = [f"Usage:  dockyard {group} COMMAND\n", GROUP_SUMMARIES[group], "", "Commands:"]
    for name in sorted(GROUPS[group]):
        text = summaries.get(name, "")
        if name in _GROUP_ONLY:
            text = _GROUP_ONLY[name].format(group)
        elif name == "create" and group != "container":
            text = f"Create a {group}"
        text = _GROUP_COMMAND_SUMMARIES.get((group, name), text)
        lines.append(f"  {name.ljust(10)}  {text}".rstrip())
    lines += ["", f"Run 'dockyard {group} COMMAND --help' for more information on a command.",
              ""]
    return "\n".join(lines)


def _unknown(command: str) -> int:
    sys.stderr.write(f"dockyard: unknown command: dockyard {command}\n\n"
                     "Run 'dockyard --help' for more information\n")
    return 125


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    host: str | None = None
    config: str | None = None
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "-":
        arg = args[index]
        name, has_value, value = arg.partition("=")
        index += 1
        if arg in ("-v", "--version"):
            from .. import __version__

            sys.stdout.write(f"Dockyard version {__version__}\n")
            return 0
        if arg in ("-h", "--help"):
            sys.stdout.write(HELP)
            return 0
        if name in _GLOBAL:
            if not has_value:
                if index >= len(args):
                    sys.stderr.write(f"flag needs an argument: {arg}\n\n"
                                     "Usage:  dockyard [OPTIONS] COMMAND\n\n"
                                     "Run 'dockyard --help' for more information\n")
                    return 125
                value = args[index]
                index += 1
            if _GLOBAL[name] == "host":
                host = value
            elif _GLOBAL[name] == "config":
                config = value
            continue
        if name in _GLOBAL_BOOL:
            continue
        sys.stderr.write(f"unknown flag: {name}\n\nUsage:  dockyard [OPTIONS] COMMAND\n\n"
                         "Run 'dockyard --help' for more information\n")
        return 125
    rest = args[index:]
    if not rest:
        sys.stdout.write(HELP)
        return 0
    command = rest[0]
    if command in GROUPS:
        group = GROUPS[command]
        if len(rest) < 2 or rest[1] in ("-h", "--help"):
            sys.stdout.write(_group_help(command))
            return 0
        target = group.get(rest[1])
        if target is None:
            return _unknown(f"{command} {rest[1]}")
        name = f"{command} {rest[1]}"
        rest = rest[2:]
    elif command in COMMANDS:
        target = COMMANDS[command]
        name = command
        rest = rest[1:]
    elif command == "help":
        sys.stdout.write(HELP)
        return 0
    elif command == "daemon":
        # `dockyard daemon` is dockyardd: the daemon's own flags follow.
        from ..daemon.main import main as daemon_main

        return daemon_main(rest[1:])
    else:
        return _unknown(command)
    return run_command(target, name, rest, host, config)


def run_command(target: tuple[str, str], name: str, argv: list[str], host: str | None,
                config: str | None) -> int:
    from ._args import HelpRequested, UsageError, help_text, usage_error_text
    from ._client import ConnectError, DaemonError
    from ._context import CommandFailed, Context

    ctx = Context(name, host, config)
    module = __import__(f"dockyard.cli.{target[0]}", fromlist=["_"])
    function = getattr(module, target[1])
    try:
        return int(function(ctx, argv) or 0)
    except HelpRequested:
        if ctx.spec is not None:
            sys.stdout.write(help_text(ctx.spec, name) + "\n")
        return 0
    except UsageError as err:
        assert ctx.spec is not None
        sys.stderr.write(usage_error_text(ctx.spec, err, name) + "\n")
        return err.exit_code
    except DaemonError as err:
        sys.stderr.write(f"Error response from daemon: {err.message}\n")
        return 1
    except ConnectError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    except CommandFailed as err:
        if err.message:
            sys.stderr.write(err.message.rstrip("\n") + "\n")
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None  # type: ignore[assignment]
        except Exception:
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
