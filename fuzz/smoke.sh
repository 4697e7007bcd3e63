#!/usr/bin/env bash
# Smoke-fuzzes every target for FUZZ_SECONDS (default 5) each, starting from
# the committed corpus. The corpus is only a seed: each run works on a temp
# copy, so new inputs never land in the tree. Exits non-zero if any target
# crashes; the crashing input is kept under fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${FUZZ_SECONDS:-5}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

# Stable toolchains have no sanitizers, hence -s none; build flags must match
# the run's so that `cargo fuzz run` finds the binaries already built.
cargo fuzz build -s none

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
for target in $(cargo fuzz list); do
    corpus="$work/corpus-$target"
    log="$work/$target.log"
    mkdir -p "$corpus"
    if [[ -d "corpus/$target" ]]; then
        cp -R "corpus/$target/." "$corpus/"
    fi
    seeds="$(find "$corpus" -type f | wc -l)"
    if cargo fuzz run -s none "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=30 >"$log" 2>&1; then
        # libFuzzer ends a timed run with "Done <n> runs in <s> second(s)".
        runs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')"
        grown="$(find "$corpus" -type f | wc -l)"
        printf '%-14s ok      %10s runs in %ss, corpus %s -> %s\n' \
            "$target" "$runs" "$seconds" "$seeds" "$grown"
    else
        printf '%-14s FAILED  input saved under fuzz/artifacts/%s/\n' "$target" "$target"
        # The panic message, libFuzzer's verdict and the saved input; the
        # whole log if none of them is there (a build or usage error).
        if ! grep -E -A1 'panicked at|== ERROR:|^SUMMARY:|Test unit written' "$log" |
            sed "s/^/  $target: /"; then
            sed "s/^/  $target: /" "$log"
        fi
        failed+=("$target")
    fi
done
# cargo fuzz makes artifacts/<target>/ for every run; keep only those
# holding something.
find artifacts -mindepth 1 -type d -empty -delete 2>/dev/null || true

if ((${#failed[@]} > 0)); then
    echo "fuzz smoke failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz smoke passed"
