"""A container's configuration over its image's: Docker's merge rules."""

from __future__ import annotations

from typing import Any

from ..image import ImageConfig


def merge_image_config(config: dict[str, Any], image: ImageConfig) -> dict[str, Any]:
    """The container Config as Docker stores it: what the request set, the image's
    defaults for the rest."""
    defaults = image.config
    merged = dict(config)
    merged["Env"] = _merge_env(list(defaults.env), list(config.get("Env") or []))
    if not config.get("Entrypoint") and not config.get("Cmd"):
        merged["Cmd"] = list(defaults.cmd) if defaults.cmd is not None else None
    if config.get("Entrypoint") is None:
        merged["Entrypoint"] = list(defaults.entrypoint) if defaults.entrypoint else None
    elif config.get("Entrypoint") == [""]:
        merged["Entrypoint"] = None  # --entrypoint "" clears the image's
    if not config.get("WorkingDir"):
        merged["WorkingDir"] = defaults.working_dir or ""
    if not config.get("User"):
        merged["User"] = defaults.user or ""
    ports = dict.fromkeys(defaults.exposed_ports, {})
    ports.update(config.get("ExposedPorts") or {})
    merged["ExposedPorts"] = ports or None
    volumes = dict.fromkeys(defaults.volumes, {})
    volumes.update(config.get("Volumes") or {})
    merged["Volumes"] = volumes or None
    labels = dict(defaults.labels or {})
    labels.update(config.get("Labels") or {})
    merged["Labels"] = labels
    if not config.get("StopSignal") and defaults.stop_signal:
        merged["StopSignal"] = defaults.stop_signal
    if config.get("Healthcheck") is None and defaults.healthcheck is not None:
        merged["Healthcheck"] = _healthcheck_json(defaults.healthcheck)
    if config.get("Shell") is None and defaults.shell is not None:
        merged["Shell"] = list(defaults.shell)
    if defaults.on_build:
        merged["OnBuild"] = list(defaults.on_build)
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                "StdinOnce"):
        merged.setdefault(key, False)
    merged.setdefault("Domainname", "")
    return merged


def _merge_env(image_env: list[str], container_env: list[str]) -> list[str]:
    result: dict[str, str] = {}
    for item in image_env + container_env:
        key = item.split("=", 1)[0]
        result.pop(key, None)
        result[key] = item
    return list(result.values())


def _healthcheck_json(check: Any) -> dict[str, Any]:
    return {key: value for key, value in {
        "Test": list(getattr(check, "test", ()) or []),
        "Interval": getattr(check, "interval", 0),
        "Timeout": getattr(check, "timeout", 0),
        "StartPeriod": getattr(check, "start_period", 0),
        "Retries": getattr(check, "retries", 0),
    }.items() if value}
