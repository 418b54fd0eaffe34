#!/usr/bin/env bash
# The README's second command: the whole test suite (installs what it needs first).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install.sh"
cd "$here"
.venv/bin/ruff check src tests bench
exec .venv/bin/pytest -q "$@"
