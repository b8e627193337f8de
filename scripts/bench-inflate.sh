#!/usr/bin/env bash
# Times inflating the realistic s.v00 (about 124 MB of gzip holding 378 MB)
# with gzip, pigz, libdeflate-gunzip, rapidgzip -P 2 (when installed) and
# visorsim's in-process loader (visorsim_boot::load), in one run, and prints
# the median of each, its output MB/s and its speed relative to
# libdeflate-gunzip. The external tools' output sizes are checked first.
#
#   scripts/bench-inflate.sh            s.v00 only
#   scripts/bench-inflate.sh --image    every gzip module of the realistic image
#                                       (visorsim loads them with load_modules)
#   RUNS=7 scripts/bench-inflate.sh     runs per tool (default 5)
#
# External tools are timed as whole processes (reading the file from the page
# cache, writing to /dev/null). visorsim is timed both ways: the process
# (read + one load + exit) and the load alone (as load-module measures it).
# The contenders run round-robin, RUNS rounds, and each gets its median. Run
# it on an otherwise idle machine: the load average is printed before and
# after.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
MODE=sv00
case "${1:-}" in
  "") ;;
  --image) MODE=image ;;
  *) echo "usage: $0 [--image]" >&2; exit 2 ;;
esac

if ! command -v pigz >/dev/null || ! command -v libdeflate-gunzip >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y pigz libdeflate-tools >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y pigz libdeflate-tools >/dev/null; }
  else
    echo "note: pigz or libdeflate-gunzip missing and not root; skipping them" >&2
  fi
fi

cargo build --release --quiet -p visorsim-benches --example write-sv00
cargo build --release --quiet -p visorsim-boot --example load-module
BIN="${CARGO_TARGET_DIR:-target}/release/examples"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$MODE" = image ]; then
  mapfile -t FILES < <("$BIN/write-sv00" --image "$tmp/image")
else
  "$BIN/write-sv00" "$tmp/s.v00" >/dev/null
  FILES=("$tmp/s.v00")
fi
# With --image, gzip, pigz and libdeflate-gunzip run once per module file
# within a timed run (libdeflate-gunzip sizes its buffer from the last
# member's ISIZE, so a concatenation of members would make it retry), and
# rapidgzip, which takes one input and starts slowly, gets the modules' gzip
# members concatenated into one file. visorsim loads the module files
# themselves, as mboot does.
if [ "${#FILES[@]}" -gt 1 ]; then
  cat "${FILES[@]}" >"$tmp/all.gz"
  GZ="$tmp/all.gz"
else
  GZ=${FILES[0]}
fi
cat "$GZ" "${FILES[@]}" >/dev/null # into the page cache

in_bytes=$(cat "${FILES[@]}" | wc -c)
out_bytes=$("$BIN/load-module" --no-md5 "${FILES[@]}" | sed -n 's/.*out_bytes=\([0-9]*\).*/\1/p')

for tool in "gzip -dc" "pigz -dc" "libdeflate-gunzip -c" "rapidgzip -P 2 -dc"; do
  if command -v "${tool%% *}" >/dev/null; then
    got=$(if [[ $tool == rapidgzip* ]]; then $tool "$GZ"; else for f in "${FILES[@]}"; do $tool "$f"; done; fi | wc -c)
    [ "$got" = "$out_bytes" ] || { echo "$tool gave $got bytes, not $out_bytes" >&2; exit 1; }
  fi
done

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: ${#FILES[@]} file(s), $in_bytes bytes of gzip, $out_bytes bytes uncompressed; $RUNS runs each, median"
echo

# median SECONDS...: the median of the arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The contenders, run round-robin (RUNS rounds of one run each), so that
# whatever else the machine does hits them alike.
# (Paths are joined into command strings: the temporary directory has no spaces.)
labels=()
cmds=()
contender() { labels+=("$1"); cmds+=("$2"); }
# per_file TOOL ARGS...: TOOL ARGS FILE for each module file.
per_file() { for f in "${FILES[@]}"; do "$@" "$f"; done; }
contender "gzip -dc" "per_file gzip -dc"
if command -v pigz >/dev/null; then contender "pigz -dc" "per_file pigz -dc"; fi
if command -v libdeflate-gunzip >/dev/null; then contender "libdeflate-gunzip -c" "per_file libdeflate-gunzip -c"; fi
if command -v rapidgzip >/dev/null; then
  contender "rapidgzip -P 2 -dc" "rapidgzip -P 2 -dc $GZ"
else
  echo "note: rapidgzip is not installed (not in Debian 12; 'pip install rapidgzip' provides it): skipped"
fi
for variant in "libdeflate" "libdeflate --no-md5" "zlib-rs" "zlib-rs --no-md5" "miniz"; do
  contender "visorsim $variant" "$BIN/load-module --backend $variant ${FILES[*]}"
done

declare -A wall inproc
for _ in $(seq "$RUNS"); do
  for i in "${!cmds[@]}"; do
    start=$EPOCHREALTIME
    if [[ ${labels[$i]} == visorsim* ]]; then
      printed=$(${cmds[$i]})
    else
      ${cmds[$i]} >/dev/null
    fi
    end=$EPOCHREALTIME
    wall[$i]+=" $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')"
    if [[ ${labels[$i]} == visorsim* ]]; then
      # load-module also prints its own time for the load alone.
      inproc[$i]+=" $(printf '%s\n' "$printed" | sed -n 's/^median_s=\([0-9.]*\).*/\1/p')"
    fi
  done
done

names=()
secs=()
for i in "${!cmds[@]}"; do
  if [ -n "${inproc[$i]:-}" ]; then
    # shellcheck disable=SC2086
    names+=("${labels[$i]} (process)") && secs+=("$(median ${wall[$i]})")
    # shellcheck disable=SC2086
    names+=("${labels[$i]} (load only)") && secs+=("$(median ${inproc[$i]})")
  else
    # shellcheck disable=SC2086
    names+=("${labels[$i]}") && secs+=("$(median ${wall[$i]})")
  fi
done

ref=""
for i in "${!names[@]}"; do
  if [ "${names[$i]}" = "libdeflate-gunzip -c" ]; then ref=${secs[$i]}; fi
done
printf '%-42s %9s %9s %9s\n' "tool" "median s" "MB/s out" "vs ldg"
for i in "${!names[@]}"; do
  awk -v n="${names[$i]}" -v s="${secs[$i]}" -v o="$out_bytes" -v r="$ref" 'BEGIN {
    ratio = (r == "") ? "-" : sprintf("%.2fx", r / s)
    printf "%-42s %9.3f %9.0f %9s\n", n, s, o / 1e6 / s, ratio
  }'
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(vs ldg: speed relative to libdeflate-gunzip -c; md5 = both MD5s, as mboot computes them)"
