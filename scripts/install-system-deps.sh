#!/usr/bin/env bash
# Install the system libraries that handdgp's headless OpenGL renderer needs
# (moderngl on an EGL context, Mesa's llvmpipe when there is no GPU).
#
# Idempotent: does nothing when every package is already installed. Installs
# the missing ones with apt-get (no recommends) only when run as root on a
# Debian/Ubuntu system; otherwise prints the command to run and exits 0, so
# that callers such as `make test` keep working (the renderer then falls back
# to its torch rasterizer; the EGL tests fail under CI, where EGL must exist).
#
# Packages (Debian 12/13, Ubuntu 22.04+):
#   libegl1          libglvnd's EGL loader (libEGL.so.1); pulls in libegl-mesa0
#   libgl1           libglvnd's libGL.so.1, which moderngl's EGL backend loads
#   libgl1-mesa-dri  Mesa's DRI drivers, among them swrast (llvmpipe)
#   chromium         headless browser: the docs test renders pages with math
#                    (tests/docs/test_site.py; skipped where it is absent)
set -euo pipefail

PACKAGES=(libegl1 libgl1 libgl1-mesa-dri chromium)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-system-deps: not a Debian-based system; make sure EGL and Mesa (llvmpipe) are installed: ${PACKAGES[*]}"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-system-deps: all present (${PACKAGES[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing ${missing[*]}; run as root:"
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-system-deps: done"
