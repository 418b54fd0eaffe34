"""login and logout; the credentials live in config.json's "auths" as docker keeps them."""

from __future__ import annotations

import base64
import os
import sys

from ._args import Spec
from ._context import CommandFailed, Context

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

DOCKER_HUB = "https://index.docker.io/v1/"


def _server_key(server: str) -> str:
    if server in ("", "docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB):
        return DOCKER_HUB
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix):]
    return server.rstrip("/")


def _config_path(ctx: Context) -> str:
    return os.path.join(ctx.config_dir, "config.json")


def read_config(ctx: Context) -> dict[str, Any]:
    import json

    try:
        with open(_config_path(ctx), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CommandFailed(f"loading config file {_config_path(ctx)}: {err}", 1) from None
    return data if isinstance(data, dict) else {}


def write_config(ctx: Context, config: dict[str, Any]) -> None:
    import json

    path = _config_path(ctx)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(config, f, indent="\t")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _helper_for(config: dict[str, Any], server: str) -> str:
    """The credential helper that keeps `server`'s credentials ("" for config.json)."""
    helpers = config.get("credHelpers") or {}
    return str(helpers.get(server) or config.get("credsStore") or "")


def _run_helper(helper: str, action: str, data: str) -> str:
    """`docker-credential-<helper> <action>` with `data` on stdin, as docker runs it."""
    import subprocess

    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run([program, action], input=data, capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise CommandFailed(f"error getting credentials - err: exec: \"{program}\": "
                            "executable file not found in $PATH, out: ``", 1) from None
    if done.returncode != 0:
        out = (done.stdout or done.stderr).strip()
        if action == "get" and "credentials not found" in out:
            return ""
        raise CommandFailed(f"error {'storing' if action == 'store' else action + 'ing'} "
                            f"credentials - err: exit status {done.returncode}, out: `{out}`",
                            1)
    return done.stdout


def credentials(ctx: Context, registry: str) -> dict[str, str]:
    config = read_config(ctx)
    helper = _helper_for(config, _server_key(registry))
    if helper:
        import json

        out = _run_helper(helper, "get", _server_key(registry))
        if not out.strip():
            return {}
        found = json.loads(out)
        if found.get("Username") == "<token>":
            return {"identitytoken": found.get("Secret", "")}
        return {"username": found.get("Username", ""), "password": found.get("Secret", "")}
    entry = (config.get("auths") or {}).get(_server_key(registry)) or {}
    result: dict[str, str] = {}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        result = {"username": user, "password": password}
    if entry.get("identitytoken"):
        result["identitytoken"] = entry["identitytoken"]
    return result


def encoded_auth(ctx: Context, registry: str) -> str:
    """The X-Registry-Auth header: base64url of the AuthConfig JSON ("{}" when none)."""
    from ._jsonlite import dumps

    auth = credentials(ctx, registry) if os.path.exists(_config_path(ctx)) else {}
    if auth:
        auth["serveraddress"] = _server_key(registry)
    return base64.urlsafe_b64encode(dumps(auth).encode()).decode()


LOGIN_SPEC = Spec("login", "[OPTIONS] [SERVER]", "Authenticate to a registry", [
    ("p", "password", "str", "", "Password or Personal Access Token (PAT)"),
    ("", "password-stdin", "bool", False, "Take the Password or Personal Access Token (PAT) "
                                          "from stdin"),
    ("u", "username", "str", "", "Username"),
], 0, 1)


def login(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(LOGIN_SPEC, argv)
    server = _server_key(args[0] if args else "")
    username, password = opts.username, opts.password
    if opts.password_stdin:
        if password:
            raise CommandFailed("--password and --password-stdin are mutually exclusive", 1)
        if not username:
            raise CommandFailed("Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use "
                         "--password-stdin.\n")
    if not username:
        if not os.isatty(0):
            raise CommandFailed("Error: Cannot perform an interactive login from a non TTY "
                                "device", 1)
        sys.stdout.write("Username: ")
        sys.stdout.flush()
        username = sys.stdin.readline().strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CommandFailed("Error: Non-null Username Required" if not username
                            else "Error: Password Required", 1)
    result = ctx.client.post("/auth", None, {"username": username, "password": password,
                                             "serveraddress": server})
    config = read_config(ctx)
    auths = config.setdefault("auths", {})
    entry: dict[str, str] = {
        "auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    token = (result or {}).get("IdentityToken")
    if token:
        entry = {"auth": "", "identitytoken": token}
    helper = _helper_for(config, server)
    if helper:
        from ._jsonlite import dumps

        # The secret goes to the helper; config.json only lists the server, as docker does.
        _run_helper(helper, "store", dumps({
            "ServerURL": server, "Username": "<token>" if token else username,
            "Secret": token or password}))
        entry = {}
    auths[server] = entry
    write_config(ctx, config)
    sys.stdout.write(f"{(result or {}).get('Status') or 'Login Succeeded'}\n")
    return 0


LOGOUT_SPEC = Spec("logout", "[SERVER]", "Log out from a registry", [], 0, 1)


def logout(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(LOGOUT_SPEC, argv)
    server = _server_key(args[0] if args else "")
    config = read_config(ctx)
    auths = config.get("auths") or {}
    helper = _helper_for(config, server)
    if server not in auths and not helper:
        sys.stdout.write(f"Not logged in to {server}\n")
        return 0
    sys.stdout.write(f"Removing login credentials for {server}\n")
    if helper:
        try:
            _run_helper(helper, "erase", server)
        except CommandFailed as err:
            sys.stderr.write(f"WARNING: could not erase credentials: {server}: {err}\n")
    auths.pop(server, None)
    write_config(ctx, config)
    return 0
