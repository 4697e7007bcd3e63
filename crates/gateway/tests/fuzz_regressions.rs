//! Replays every committed fuzz input through the code the fuzzer runs
//! (`fuzz/src`, included here as a module): the minimised crash inputs
//! under `fuzz/artifacts/<target>/`, each the regression test of the bug
//! it found, and the seed corpora under `fuzz/corpus/<target>/`, so that
//! the targets' properties are checked on every test run, not only when
//! someone fuzzes. A panic is a failure, whatever the input.
//!
//! It lives in this crate because its tests depend on every role the
//! targets call (ingest, tree, signer) and on prost.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

// The targets' code is the fuzz crate's: its items are public there and
// only some are used here.
#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod evault_fuzz;

use evault_fuzz::{Run, TARGETS};

/// One committed input, and the target it is for.
struct Input {
    target: &'static str,
    run: Run,
    path: PathBuf,
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The inputs under `dir/<target>/`, sorted, with the target they are for.
/// Any other directory, or a file outside a target's directory, fails the
/// test: an input that is never replayed would protect nothing. Notes
/// (`README*`) and hidden files are not inputs.
fn inputs(dir: &Path) -> Vec<Input> {
    let mut found = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return found;
    };
    let is_note = |path: &Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.starts_with("README") || name.starts_with('.')
    };
    for sub in listing {
        let sub = sub.expect("directory entry").path();
        if is_note(&sub) {
            continue;
        }
        let name = sub.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(&(target, run)) = TARGETS.iter().find(|(t, _)| *t == name) else {
            panic!("{} is not the directory of a fuzz target", sub.display());
        };
        assert!(sub.is_dir(), "{} is not a directory", sub.display());
        for file in std::fs::read_dir(&sub).expect("target directory") {
            let file = file.expect("directory entry").path();
            if !is_note(&file) {
                found.push(Input {
                    target,
                    run,
                    path: file,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Runs each input through its target; the failures, described.
fn replay(inputs: &[Input]) -> Vec<String> {
    let mut failures = Vec::new();
    for Input { target, run, path } in inputs {
        let data = std::fs::read(path).expect("input");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{target}: {}: {message}", path.display()));
        }
    }
    failures
}

/// One test, not several: the targets share one set of services, and some
/// inputs change what those hold (an erasure, a signature), which the
/// properties allow for in sequence, not in parallel.
#[test]
fn committed_fuzz_inputs_replay_cleanly() {
    let corpus = inputs(&fuzz_dir().join("corpus"));
    for (target, _) in TARGETS {
        let seeds = corpus.iter().filter(|i| i.target == target).count();
        assert!(seeds > 0, "fuzz target {target} has no seed corpus");
    }
    let artifacts = inputs(&fuzz_dir().join("artifacts"));
    let mut failures = replay(&corpus);
    failures.extend(replay(&artifacts));
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n{}",
        failures.len(),
        corpus.len() + artifacts.len(),
        failures.join("\n")
    );
}
