#!/usr/bin/env bash
# Runs every test of visorsim. Installs the Debian tools the interop tests
# compare against (dosfstools: fsck.fat, gdisk: sgdisk, mtools: mdir/mtype,
# qemu-utils: qemu-img) when they are missing, then runs the workspace tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v fsck.fat >/dev/null 2>&1 || need+=(dosfstools)
command -v sgdisk >/dev/null 2>&1 || need+=(gdisk)
command -v mdir >/dev/null 2>&1 || need+=(mtools)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} for the interop tests"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Interop tests must not be skipped quietly when a tool is missing.
export VISORSIM_REQUIRE_TOOLS=1
cargo test --workspace "$@"
