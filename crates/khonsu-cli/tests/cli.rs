//! Runs the built `khonsu` binary: a short demo must conserve the total and exit 0,
//! help must list every flag, and bad flags must be usage errors, not panics.

use std::process::{Command, Output};

fn khonsu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_khonsu"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the khonsu binary: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn short_demo_conserves_the_total() {
    let out = khonsu(&[
        "demo",
        "--transfers",
        "2000",
        "--no-progress",
        "--seed",
        "1",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("total conserved: yes"), "{stdout}");
    assert!(stdout.contains("committed transfers:  2000"), "{stdout}");
    assert!(stdout.contains("seed 1"), "{stdout}");
    assert!(
        stdout.contains("isolation:            serializable"),
        "{stdout}"
    );
}

#[test]
fn every_isolation_level_conserves_with_fail() {
    for level in ["read-committed", "repeatable-read", "serializable"] {
        let out = khonsu(&[
            "demo",
            "--isolation",
            level,
            "--transfers",
            "1000",
            "--accounts",
            "20",
            "--threads",
            "3",
            "--no-progress",
        ]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{level}:\n{stdout}");
        assert!(
            stdout.contains("total conserved: yes"),
            "{level}:\n{stdout}"
        );
    }
}

#[test]
fn timed_demo_stops() {
    let out = khonsu(&["demo", "--seconds", "0.3", "--no-progress"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("stop after:           0.3 s"), "{stdout}");
}

#[test]
fn help_lists_every_flag() {
    let top = khonsu(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    let top = text(&top.stdout);
    assert!(top.contains("demo"), "{top}");
    assert!(top.contains("Exit codes"), "{top}");

    let demo = khonsu(&["demo", "--help"]);
    assert_eq!(demo.status.code(), Some(0));
    let demo = text(&demo.stdout);
    for flag in [
        "--isolation",
        "--resolution",
        "--threads",
        "--accounts",
        "--seconds",
        "--transfers",
        "--seed",
        "--auditors",
        "--initial-balance",
        "--max-amount",
        "--no-progress",
        "read-committed",
        "repeatable-read",
        "serializable",
        "replace",
        "ignore",
        "append",
    ] {
        assert!(demo.contains(flag), "{flag} missing from\n{demo}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["demo", "--isolation", "snapshot"][..],
        &["demo", "--threads", "0"],
        &["demo", "--accounts", "1"],
        &["demo", "--seconds", "-1"],
        &["demo", "--transfers", "lots"],
        &["frobnicate"],
        &[],
    ] {
        let out = khonsu(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?}");
    }
}
