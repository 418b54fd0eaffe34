"""OCI hooks: each runs with the container's state as JSON on its stdin."""

from .errors import RuntimeFailure
from .jsonio import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Hook, Spec


def has_runtime_hooks(spec: "Spec") -> bool:
    """Whether init must stop before pivot_root for prestart/createRuntime/createContainer."""
    return any(spec.hooks.get(name) for name in ("prestart", "createRuntime",
                                                 "createContainer"))


def preload() -> None:
    """Imports what running a hook needs, for a process that will change its root first."""
    import subprocess  # noqa: F401


def run_hooks(kind: str, hooks: "list[Hook]", state: "dict[str, Any]") -> None:
    import subprocess

    payload = dumps(state).encode()
    for index, hook in enumerate(hooks):
        env = dict(item.split("=", 1) for item in hook.env if "=" in item)
        try:
            result = subprocess.run(
                hook.args or [hook.path], executable=hook.path, input=payload,
                env=env, capture_output=True, timeout=hook.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"{kind} hook #{index} ({hook.path}): timed out after "
                                 f"{hook.timeout}s") from None
        except OSError as e:
            raise RuntimeFailure(f"{kind} hook #{index} ({hook.path}): {e.strerror}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise RuntimeFailure(f"{kind} hook #{index} ({hook.path}): exit status "
                                 f"{result.returncode}{': ' + detail if detail else ''}")
