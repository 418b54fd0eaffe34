"""A container created with delete_on_exit: the shim starts the runtime's delete once the
init has exited and nothing is in flight about it, and the client's `delete` takes that
outcome. With the shim's own runtime, start and delete run as calls in the shim."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.test_shim_containers import (  # noqa: F401 - the fixtures
    ShimHarness,
    make_shim,
    runtime,
    shim,
)


def _runtime_state(shim: ShimHarness, container_id: str) -> Path:  # noqa: F811
    return Path(shim.runtime_root, container_id)


def test_runtime_state_goes_at_exit_and_delete_takes_the_outcome(
        shim: ShimHarness, runtime: str) -> None:  # noqa: F811
    quick = shim.create(["true"], runtime, delete_on_exit=True)
    kept = shim.create(["true"], runtime)  # without: the runtime's state stays until delete
    for container_id in (quick, kept):
        shim.client.start(container_id)
        assert shim.wait_exit(container_id)["exit_code"] == 0
    deadline = time.monotonic() + 10
    while _runtime_state(shim, quick).exists():
        assert time.monotonic() < deadline, "the runtime's state outlived the exit"
        time.sleep(0.01)
    assert _runtime_state(shim, kept).exists()
    assert shim.client.state(quick)["status"] == "stopped"  # the shim still knows it
    for container_id in (quick, kept):
        shim.client.delete(container_id)
        assert not _runtime_state(shim, container_id).exists()
    assert shim.client.list()["containers"] == []


def test_killed_container_with_delete_on_exit(make_shim: Callable[..., ShimHarness],  # noqa: F811
                                              ) -> None:
    harness = make_shim()
    container_id = harness.create(["sleep", "60"], delete_on_exit=True)
    harness.client.start(container_id)
    harness.client.kill(container_id, 9)
    assert harness.wait_exit(container_id)["exit_code"] == 137
    harness.client.delete(container_id)
    assert harness.client.list()["containers"] == []
