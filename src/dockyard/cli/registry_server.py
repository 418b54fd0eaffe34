"""`dockyard registry serve` and `dockyard registry garbage-collect`.

Unlike every other command these do not talk to the daemon: the registry is a server of
its own, and this process runs it (dockyard.distribution.server) in-process.
"""

from __future__ import annotations

import sys

from ._args import Spec
from ._context import CommandFailed, Context

SERVE_SPEC = Spec(
    "registry serve", "[OPTIONS]",
    "Run a registry (OCI distribution API) on this host",
    [("", "addr", "str", "127.0.0.1:5000", "Address to listen on (HOST:PORT; port 0 picks one)"),
     ("", "root", "str", "", "Directory holding the registry's content (required)"),
     ("", "htpasswd", "str", "", "htpasswd file (bcrypt entries) for basic authentication"),
     ("", "token-realm", "str", "",
      "Bearer-token mode: the URL of this registry's token endpoint (needs --htpasswd)"),
     ("", "token-service", "str", "dockyard-registry", "Service name in tokens"),
     ("", "access-policy", "str", "",
      "Token mode: file of '<account> <repository-pattern> <actions>' lines"),
     ("", "proxy-remote", "str", "",
      "Pull-through cache mode: the upstream registry's URL (http(s)://host[:port])"),
     ("", "proxy-username", "str", "", "User name for the upstream registry"),
     ("", "proxy-password", "str", "", "Password for the upstream registry"),
     ("", "rate-limit", "float", 0.0,
      "Requests per second allowed per client address (0: no limit); bursts of twice that"),
     ("", "access-log", "bool", False, "Log every request on stderr"),
     ("", "read-only", "bool", False, "Refuse pushes and deletes (while collecting garbage)"),
     ("", "no-fsync", "bool", False, "Do not fsync blobs before they become visible")])

GC_SPEC = Spec(
    "registry garbage-collect", "[OPTIONS]",
    "Remove blobs that no manifest references",
    [("", "root", "str", "", "Directory holding the registry's content (required)"),
     ("", "dry-run", "bool", False, "Only list what would be removed"),
     ("m", "delete-untagged", "bool", False,
      "Also remove the manifests that no tag reaches (directly, as a child of an index "
      "or as a referrer)")])


def _load_site_packages() -> None:
    # The `dockyard` launcher starts without `site` (the client needs only the standard
    # library); the registry needs h11 and bcrypt from the environment's site-packages.
    if sys.flags.no_site:
        import site

        site.main()


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CommandFailed(f"invalid --addr {addr!r}: expected HOST:PORT", 125)
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(SERVE_SPEC, argv)
    if not opts.root:
        raise CommandFailed("--root is required", 125)
    from pathlib import Path

    _load_site_packages()
    from ..distribution.server import ConfigError, RegistryConfig, build_app
    from ..distribution.server import serve as run

    host, port = _split_addr(opts.addr)
    config = RegistryConfig(
        root=Path(opts.root), host=host, port=port,
        htpasswd=Path(opts.htpasswd) if opts.htpasswd else None,
        token_realm=opts.token_realm or None, token_service=opts.token_service,
        access_policy=Path(opts.access_policy) if opts.access_policy else None,
        fsync=not opts.no_fsync, read_only=opts.read_only,
        proxy_remote=opts.proxy_remote or None, proxy_username=opts.proxy_username or None,
        proxy_password=opts.proxy_password or None,
        rate_limit=opts.rate_limit or None, access_log=opts.access_log)
    try:
        build_app(config)   # report configuration errors before listening
    except (ConfigError, OSError) as error:
        raise CommandFailed(f"registry: {error}", 1) from None

    def ready(bound_host: str, bound_port: int) -> None:
        sys.stdout.write(f"registry listening on http://{bound_host}:{bound_port}\n")
        sys.stdout.flush()

    try:
        run(config, ready)
    except OSError as error:
        raise CommandFailed(f"registry: cannot listen on {opts.addr}: {error.strerror}",
                            1) from None
    return 0


def garbage_collect(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(GC_SPEC, argv)
    if not opts.root:
        raise CommandFailed("--root is required", 125)
    from pathlib import Path

    _load_site_packages()
    from ..distribution.server import garbage_collect as collect

    root = Path(opts.root)
    if not (root / "blobs").is_dir():
        raise CommandFailed(f"registry: {root} is not a registry root", 1)
    report = collect(root, dry_run=opts.dry_run, delete_untagged=opts.delete_untagged)
    verb = "would remove" if opts.dry_run else "removed"
    for name, digest in report.untagged:
        sys.stdout.write(f"{verb} manifest {name}@{digest}\n")
    for digest in report.removed:
        sys.stdout.write(f"{verb} blob {digest}\n")
    sys.stdout.write(f"{report.marked} blobs marked, {len(report.removed)} blobs {verb}, "
                     f"{report.freed} bytes\n")
    return 0
