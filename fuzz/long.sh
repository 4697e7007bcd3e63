#!/usr/bin/env bash
# Fuzzes every target (or the targets named) for a while each, the run to
# schedule nightly. Usage:
#
#   fuzz/long.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to $FUZZ_SECONDS_PER_TARGET, else 600.
#
# Each target fuzzes a temp copy of its committed corpus. Then:
# - a target that crashed has its crashing input minimised (`cargo fuzz
#   tmin`) and kept as fuzz/artifacts/<target>/minimized-from-<sha1>, where
#   the workspace tests replay it (crates/gateway/tests/fuzz_regressions.rs)
#   once it is committed: the fix and that file go in together;
# - a target that did not has the inputs that reached new coverage merged
#   into fuzz/corpus/<target>/ (`-merge=1`: existing seeds stay, only inputs
#   adding coverage are added), for review and commit.
#
# Exits non-zero if any target crashed, naming each and its minimised
# input. Set FUZZ_MERGE=0 to leave the corpora untouched.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
fuzz_dir="$PWD"
seconds="${1:-${FUZZ_SECONDS_PER_TARGET:-600}}"
shift || true
merge="${FUZZ_MERGE:-1}"
# libFuzzer's per-input limit: an input slower than this is a finding too.
timeout="${FUZZ_TIMEOUT:-30}"

if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "long.sh: seconds per target must be a positive integer, got '$seconds'" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "long.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

# Stable toolchains have no sanitizers, hence -s none everywhere; the same
# flags for build, run, tmin and merge let them share one build.
cargo fuzz build -s none

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
    corpus="$work/corpus-$target"
    crashes="$work/crashes-$target"
    log="$work/$target.log"
    mkdir -p "$corpus" "$crashes"
    if [[ -d "corpus/$target" ]]; then
        cp -R "corpus/$target/." "$corpus/"
    fi
    seeds="$(find "$corpus" -type f | wc -l)"
    # Crashing inputs go to the temp directory: only their minimised forms
    # belong in the tree.
    if cargo fuzz run -s none "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout="$timeout" \
        -artifact_prefix="$crashes/" >"$log" 2>&1; then
        runs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')"
        grown="$(find "$corpus" -type f | wc -l)"
        added=0
        if [[ "$merge" != 0 ]]; then
            before="$(find "corpus/$target" -type f 2>/dev/null | wc -l)"
            mkdir -p "corpus/$target"
            cargo fuzz run -s none "$target" "$fuzz_dir/corpus/$target" "$corpus" -- \
                -merge=1 -timeout="$timeout" >"$log.merge" 2>&1 || {
                echo "long.sh: merging into corpus/$target failed:" >&2
                tail -n 20 "$log.merge" >&2
                failed+=("$target")
                continue
            }
            added=$(($(find "corpus/$target" -type f | wc -l) - before))
        fi
        printf '%-14s ok       %10s runs in %ss, corpus %s -> %s, %s merged into corpus/%s\n' \
            "$target" "$runs" "$seconds" "$seeds" "$grown" "$added" "$target"
        continue
    fi

    failed+=("$target")
    crash="$(find "$crashes" -type f -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)"
    if [[ -z "$crash" ]]; then
        # No input to blame: a build or usage error. The log says which.
        printf '%-14s FAILED   without a crashing input:\n' "$target"
        sed "s/^/  $target: /" "$log"
        continue
    fi
    printf '%-14s CRASHED  after fuzzing from %s seeds\n' "$target" "$seeds"
    grep -E -A1 'panicked at|== ERROR:|^SUMMARY:' "$log" | head -n 12 | sed "s/^/  $target: /" || true
    # tmin writes minimized-from-<sha1> under artifacts/<target>/ for each
    # smaller crashing input it finds; anything of that name newer than the
    # crash is this run's.
    cargo fuzz tmin -s none "$target" "$crash" -- -timeout="$timeout" >"$log.tmin" 2>&1 || true
    mkdir -p "artifacts/$target"
    # Keep the smallest.
    minimised=""
    while read -r _ candidate; do
        if [[ -n "$minimised" ]]; then rm -f "$minimised"; fi
        minimised="$candidate"
    done < <(find "artifacts/$target" -name 'minimized-from-*' -newer "$crash" \
        -printf '%s %p\n' | sort -rn)
    if [[ -z "$minimised" ]] && grep -q 'failed to minimize beyond' "$log.tmin"; then
        # It crashes again but no smaller input does: it is minimal already.
        minimised="artifacts/$target/minimized-from-$(sha1sum "$crash" | cut -d' ' -f1)"
        cp "$crash" "$minimised"
    fi
    if [[ -n "$minimised" ]]; then
        printf '  %s: minimised input (%s bytes, from %s): fuzz/%s\n' "$target" \
            "$(wc -c <"$minimised")" "$(wc -c <"$crash")" "$minimised"
    else
        # The crash did not reproduce alone (it may depend on inputs run
        # before it): keep the input as found, under a name git keeps.
        kept="artifacts/$target/unminimized-$(basename "$crash")"
        cp "$crash" "$kept"
        printf '  %s: could not reproduce it alone; input kept as fuzz/%s\n' "$target" "$kept"
        tail -n 5 "$log.tmin" | sed "s/^/  $target tmin: /"
    fi
done
# cargo fuzz makes artifacts/<target>/ for every run; keep only those
# holding something.
find artifacts -mindepth 1 -type d -empty -delete 2>/dev/null || true

if ((${#failed[@]} > 0)); then
    echo "fuzz long run failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz long run passed: ${#targets[@]} targets, ${seconds}s each"
