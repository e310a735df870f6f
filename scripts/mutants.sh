#!/usr/bin/env bash
# Mutation testing of the pure-logic modules with cargo-mutants: each mutant (a function body
# replaced, an operator flipped) must make a unit test fail. Slow (one rebuild of the core crate
# per mutant), so it is a separate command, not part of scripts/test.sh. docs/TESTING.md has
# the figures and the survivors left on purpose.
#
#   scripts/mutants.sh                                  # every module below
#   scripts/mutants.sh crates/core/src/schedule.rs ...  # just these files
#   MUTANTS_JOBS=2 scripts/mutants.sh                   # parallel builds (default 1)
#   MUTANTS_ARGS="--in-place --iterate" scripts/mutants.sh FILE  # more cargo-mutants options
#
# --in-place reuses the tree's own warm target/ instead of building a scratch copy (minutes):
# run it in a private copy of the tree, never in a checkout you are editing, because the
# mutated file is rewritten while a mutant is tested. --iterate re-runs only the mutants the
# previous run of that file did not catch. Give an --in-place run a target directory of its
# own (not CARGO_TARGET_DIR shared with other checkouts): cargo judges freshness by file times
# relative to each tree, so another checkout with older files can reuse the last mutant's build.
#
# Results: target/mutants/<file>/mutants.out/{caught,missed,timeout,unviable}.txt
# Needs cargo-mutants: cargo install --locked cargo-mutants
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
command -v cargo-mutants >/dev/null 2>&1 \
    || die "cargo-mutants is not installed; run: cargo install --locked cargo-mutants"

# One line per module: the file, then the cargo-mutants options that pick its functions and
# its tests. Most run the core crate's unit tests (the Docker tests would take hours per file;
# `dr::bundle` is skipped because its key derivation is slow and it tests none of these files).
# Retention lives in the repository module beside engine code, and is tested through a real
# repository: only its functions are mutated, against `crates/core/tests/repo.rs`.
LIB="--cargo-arg=--lib -- -- --skip dr::bundle"
MODULES=(
    "crates/core/src/config/load.rs $LIB"
    "crates/core/src/config/values.rs $LIB"
    "crates/core/src/schedule.rs $LIB"
    "crates/core/src/repo/meta.rs $LIB"
    "crates/core/src/restore/points.rs $LIB"
    "crates/core/src/backup/recipe.rs --re redact|secret_|token_like|password_hash $LIB"
    "crates/core/src/repo/location.rs $LIB"
    "crates/core/src/repo/mod.rs --re RetentionItem|keep_options --exclude-re WriteRepo --cargo-arg=--test=repo -- -- retention"
    "crates/core/src/unit/mod.rs $LIB"
    "crates/core/src/unit/mounts.rs $LIB"
    "crates/core/src/lock/journal.rs $LIB"
)

if (($#)); then
    selected=()
    for file in "$@"; do
        match="$file $LIB"
        for module in "${MODULES[@]}"; do
            [[ ${module%% *} == "$file" ]] && match=$module
        done
        selected+=("$match")
    done
else
    selected=("${MODULES[@]}")
fi

# cargo-mutants refuses --jobs with --in-place (one tree, one build at a time).
jobs=(--jobs "${MUTANTS_JOBS:-1}")
[[ " ${MUTANTS_ARGS:-} " == *" --in-place "* ]] && jobs=()

status=0
for module in "${selected[@]}"; do
    read -r -a words <<<"$module"
    file=${words[0]}
    [[ -f $file ]] || die "no such file: $file"
    out="target/mutants/$(basename "$(dirname "$file")")-$(basename "$file" .rs)"
    mkdir -p "$out"
    printf '==> %s\n' "$module"
    # Options first: everything after the first `--` goes to cargo test.
    # shellcheck disable=SC2086 # MUTANTS_ARGS is a list of options
    cargo mutants --package kopi-docka-core "${jobs[@]}" --output "$out" \
        ${MUTANTS_ARGS:-} --file "${words[@]}" || status=$?
done
exit "$status"
