#!/usr/bin/env bash
# Installs everything Dockyard and its tests need on Debian 12 (as root): apt packages,
# a virtual environment built from the system interpreter, and the package itself.
# Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

packages=(busybox-static python3-venv libseccomp2 iproute2 procps
          runc crun podman conmon docker.io tini qemu-user-static
          skopeo apache2-utils docker-registry iptables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker.io starts dockerd on its default socket; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active -q docker 2>/dev/null; then
  systemctl stop docker docker.socket containerd >/dev/null 2>&1 || true
fi
# Debian's docker-registry serves on :5000 as a service; the tests and bench start their own.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
elif [ -x /etc/init.d/docker-registry ]; then
  /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi

# Foreign-platform images (--platform linux/arm64) run under qemu-user-static through
# binfmt_misc, with the F flag so the emulator works inside containers: mount binfmt_misc
# and register Debian's qemu handlers that are missing (never touching existing ones).
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
if [ -e "$binfmt/register" ]; then
  for conf in /usr/lib/binfmt.d/qemu-*.conf; do
    [ -e "$conf" ] || continue
    line=$(grep -v '^[#;]' "$conf" | head -n1)
    name=$(echo "$line" | cut -d: -f2)
    flags=$(echo "$line" | cut -d: -f8)
    [ -n "$name" ] && [ ! -e "$binfmt/$name" ] || continue
    case "$flags" in *F*) ;; *) line="${line}F" ;; esac
    echo "$line" > "$binfmt/register" 2>/dev/null || echo "could not register $name"
  done
fi
# The system interpreter, not a pyenv shim: entry points start ~200 ms faster.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# dockyard-runc's and dockyard's start-up are on the hot path of every container (and of
# every `dockyard ps`): replace pip's wrappers.
.venv/bin/python -m dockyard.launcher --no-gc .venv/bin/dockyard-runc
.venv/bin/python -m dockyard.launcher --entry dockyard.cli.main:main .venv/bin/dockyard
# Byte-compile now: environments with PYTHONDONTWRITEBYTECODE would otherwise compile the
# runtime's modules on every start.
.venv/bin/python -m compileall -q src >/dev/null
