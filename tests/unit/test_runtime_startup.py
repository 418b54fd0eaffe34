"""What dockyard-runc loads on its start-up path. Each module costs a CPython process
0.1-1 ms; a command such as `start` or `delete` has ~2 ms of its own, so the paths below
must not grow back. (No timing here: the benchmark is bench/runtime_bench.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

# Heavy or needless on the hot path: `os` alone is ~1 ms, `typing`/`json`/`re` more.
_HEAVY = ("os", "__future__", "typing", "json", "re", "types", "enum", "subprocess")


def _loaded_after(setup: str, statement: str) -> set[str]:
    code = (f"import sys; sys.path.insert(0, {SRC!r}); {setup}; before = set(sys.modules); "
            f"{statement}; print(' '.join(sorted(set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                            text=True, check=True)
    return set(result.stdout.split())


def test_start_state_kill_delete_load_no_heavy_module() -> None:
    loaded = _loaded_after("pass", "import dockyard.runtime.cli, dockyard.runtime.args, "
                           "dockyard.runtime.container, dockyard.runtime.start, "
                           "dockyard.runtime.delete, dockyard.runtime.cgroups, "
                           "dockyard.runtime.jsonio")
    assert not loaded & set(_HEAVY), loaded & set(_HEAVY)


def test_create_forks_its_child_before_loading_os() -> None:
    loaded = _loaded_after("pass", "import dockyard.runtime.cli, dockyard.runtime.args, "
                           "dockyard.runtime.state, dockyard.runtime.spawn")
    assert not loaded & set(_HEAVY), loaded & set(_HEAVY)


def test_the_init_side_does_not_load_the_runtime_side() -> None:
    # The forked child loads init.py while the runtime loads create.py: neither may pull
    # in the other's modules, or the child repeats the runtime's imports.
    loaded = _loaded_after("import dockyard.runtime.cli, dockyard.runtime.spawn",
                           "import dockyard.runtime.init")
    assert not {"dockyard.runtime.create", "dockyard.runtime.container",
                "dockyard.runtime.cgroups.v1", "dockyard.runtime.cgroups.v2"} & loaded
