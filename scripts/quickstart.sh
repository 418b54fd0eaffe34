#!/usr/bin/env bash
# The README's first command: install everything, then run a busybox container with
# dockyard-runc from a bundle built offline from Debian's busybox-static.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install.sh"
bundle=$(mktemp -d /tmp/dockyard-quickstart.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
"$here/scripts/make-busybox-bundle.sh" "$bundle" sh -c 'echo "hello from a dockyard container: $(hostname), pid $$"'
"$here/.venv/bin/dockyard-runc" run --bundle "$bundle" "quickstart-$$"
