#!/usr/bin/env bash
# Builds an OCI bundle (rootfs + config.json) from Debian's busybox-static, offline.
# usage: make-busybox-bundle.sh DIR [command...]   (default command: sh)
set -euo pipefail
dir=${1:?usage: make-busybox-bundle.sh DIR [command...]}
shift
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-static is not installed: apt-get install busybox-static" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
  echo "$busybox is not static: apt-get install busybox-static" >&2; exit 1
fi
rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,dev,proc,sys,etc,tmp,root}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/.venv/bin/python" - "$dir/config.json" "$@" <<'PY'
import json, sys
from dockyard.runtime.spec import default_spec
spec = default_spec()
spec["process"]["terminal"] = False
spec["process"]["env"] = ["PATH=/bin", "TERM=xterm"]
if len(sys.argv) > 2:
    spec["process"]["args"] = sys.argv[2:]
with open(sys.argv[1], "w") as f:
    json.dump(spec, f, indent=2)
PY
