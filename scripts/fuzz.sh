#!/usr/bin/env bash
# Fuzzes visorsim's parsers with cargo fuzz (libFuzzer, nightly, ASan).
#
#   scripts/fuzz.sh                 every target, 600 s each, two at a time
#   scripts/fuzz.sh fat             one target, 600 s
#   scripts/fuzz.sh fat 60          one target, 60 s
#   scripts/fuzz.sh all 60          every target, 60 s each
#
# Each run starts from fuzz/corpus/<target>/ (the kept corpus) and
# fuzz/seeds/<target>/ (fuzz/seeds.sh writes them), grows a working corpus in
# fuzz/corpus-work/<target>/ (not committed), and ends with a summary line
# in fuzz/runs.log: target, executions, seconds, findings. A finding is an
# input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# then fix it, copy the input to fuzz/corpus/<target>/regress-<what> and
# check `cargo test -p visorsim --test fuzz_corpus`. After a run, keep the
# new coverage with
#   scripts/fuzz.sh cmin <target>
# which merges the working corpus into a minimal fuzz/corpus/<target>/.
#
# Runs under `nice -n 19` (builds of others come first) with an RSS limit
# of 2 GiB and a 10 s limit per input, so hangs and memory blow-ups are
# findings too. The target is built once (`cargo fuzz build <target>`) and
# its binary run directly, so edits made elsewhere during a run do not
# restart it; FUZZ_NO_BUILD=1 skips the build (runs the binary as built).
# The runs.log line gives the seconds libFuzzer actually ran (a finding
# stops a run early) and the commit checked out when the run started.
# CONTRIBUTING.md, Fuzzing, says more.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

targets=(gpt fat bootcfg gzip state_tgz scenario check_volume)
# Longest input per target: a FAT volume's metadata needs tens of KiB.
max_len() {
  case "$1" in
  gpt | fat | check_volume) echo 65536 ;;
  *) echo 16384 ;;
  esac
}

# Longest input `cmin` keeps (longer ones are truncated to it), so the
# kept corpus stays a few MB per target (docs/fuzzing.md): a FAT volume's
# boot sector, FATs and root fit in 32 KiB even with 4 KiB sectors;
# check_volume keeps 12 KiB (at 32 KiB its merge kept 662 files, 15 MB).
cmin_max_len() {
  case "$1" in
  gpt | fat) echo 32768 ;;
  check_volume) echo 12288 ;;
  *) echo 8192 ;;
  esac
}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "error: cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "Installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The fuzz binary of a target, built unless FUZZ_NO_BUILD=1.
binary() { # target
  [ "${FUZZ_NO_BUILD:-0}" = 1 ] || nice -n 19 cargo +nightly fuzz build "$1" >&2
  echo "target/x86_64-unknown-linux-gnu/release/$1"
}

run_one() { # target seconds
  local t=$1 secs=$2 log bin commit
  mkdir -p "corpus-work/$t" "corpus/$t" "seeds/$t" "artifacts/$t"
  [ -n "$(ls -A "seeds/$t")" ] || ./seeds.sh "$t" >/dev/null
  bin=$(binary "$t")
  commit=$(git rev-parse --short HEAD)
  log=$(mktemp)
  local status=0 start=$SECONDS
  nice -n 19 "$bin" "corpus-work/$t" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  local execs found ran
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  ran=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  found=$(grep -c -E '^(==[0-9]+==ERROR|SUMMARY: libFuzzer|thread .* panicked)' "$log" || true)
  printf '%s  target=%s executions=%s seconds=%s findings=%s exit=%s commit=%s\n' \
    "$(date -u +%FT%TZ)" "$t" "${execs:-?}" "${ran:-$((SECONDS - start))}" "$found" "$status" "$commit" | tee -a runs.log
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 20 >&2
  fi
  rm -f "$log"
  return "$status"
}

cmin_one() { # target
  local t=$1
  mkdir -p "corpus/$t" "corpus-work/$t" "seeds/$t"
  local merged
  merged=$(mktemp -d)
  local bin
  bin=$(binary "$t")
  nice -n 19 "$bin" "$merged" "corpus/$t" "corpus-work/$t" "seeds/$t" \
    -merge=1 -rss_limit_mb=2048 -timeout=10 -max_len="$(cmin_max_len "$t")" >/dev/null 2>&1
  # Fixed findings stay whatever their coverage: they are regression tests.
  find "corpus/$t" -name 'regress-*' -exec cp {} "$merged/" \;
  rm -rf "corpus/$t"
  mv "$merged" "corpus/$t"
  chmod 755 "corpus/$t"
  local files kib
  files=$(find "corpus/$t" -type f | wc -l)
  kib=$(du -sk "corpus/$t" | cut -f1)
  echo "corpus/$t: $files files, $kib KiB"
  if [ "$files" -gt 1000 ] || [ "$kib" -gt 8192 ]; then
    echo "warning: corpus/$t is past 1,000 files or 8 MB; lower cmin_max_len for it" >&2
  fi
}

if [ "${1:-}" = "cmin" ]; then
  shift
  for t in "${@:-${targets[@]}}"; do cmin_one "$t"; done
  exit 0
fi

which=${1:-all}
secs=${2:-600}
if [ "$which" != "all" ]; then
  run_one "$which" "$secs"
  exit
fi
# Two at a time (two cores); the first failure is reported at the end.
failed=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do
    run_one "$t" "$secs" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
done
exit "$failed"
