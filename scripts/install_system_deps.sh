#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: Chromium and ChromeDriver (the
# Tuning view's browser tests), PostgreSQL and Redis (the CeleryExecutor cluster tests).
# Does nothing when they are all present; needs root (or sudo) otherwise.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Chromium renders text with whatever fonts exist: without any, screenshots show boxes.
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "install_system_deps: missing Debian packages: ${need[*]}; run as root or install them with apt-get" >&2
    exit 1
fi

echo "install_system_deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# --no-install-recommends keeps the set small; the PostgreSQL package would otherwise also start
# a cluster of its own through the init system, which the tests do not use.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
