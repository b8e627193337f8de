#!/usr/bin/env bash
# Runs every check of visorsim: formatting, clippy with warnings as errors,
# then every test. Installs the Debian tools the interop tests compare
# against (dosfstools: fsck.fat, gdisk: sgdisk, mtools: mdir/mtype,
# qemu-utils: qemu-img; chromium: the dashboard's headless-browser test)
# when they are missing. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v fsck.fat >/dev/null 2>&1 || need+=(dosfstools)
command -v sgdisk >/dev/null 2>&1 || need+=(gdisk)
command -v mdir >/dev/null 2>&1 || need+=(mtools)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} for the interop tests"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# qemu-system-x86 (qemu-system-x86_64: the boot --qemu tests). Debian 12's
# is 7.2, and a newer qemu-utils (from backports) makes `apt-get install
# qemu-system-x86` fail with "held broken packages"; so both are installed in
# one command, qemu-utils pinned to qemu-system-x86's candidate version
# (downgrading it if need be), which keeps a qemu-img that matches.
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  qemu_version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
  if [ -z "$qemu_version" ] || [ "$qemu_version" = "(none)" ]; then
    echo "error: apt has no qemu-system-x86 package to install" >&2
    exit 1
  fi
  echo "Installing qemu-system-x86 and qemu-utils $qemu_version for the boot --qemu tests"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    --allow-downgrades qemu-system-x86 "qemu-utils=$qemu_version" >/dev/null
  qemu-img --version >/dev/null
  qemu-system-x86_64 --version >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings

# Interop tests must not be skipped quietly when a tool is missing.
export VISORSIM_REQUIRE_TOOLS=1
# Property tests draw their cases from one seed, so a run is reproducible:
# a failure names the seed, and the same seed replays it. Set
# PROPTEST_RNG_SEED yourself to sweep other seeds.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261202}"
echo "== property tests seeded with PROPTEST_RNG_SEED=$PROPTEST_RNG_SEED"
echo "== cargo test --workspace"
cargo test --workspace "$@"
