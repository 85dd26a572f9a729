//! Helpers shared by the integration tests that drive the `hhtld` binary.
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The real model (all-MiniLM-L6-v2): `HHTLD_MODEL` (set by
/// scripts/test.sh), else what scripts/fetch_model.sh fetches; once per
/// test binary.
pub fn model() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        if let Ok(m) = std::env::var("HHTLD_MODEL") {
            return m.into();
        }
        let o = Command::new(root().join("scripts/fetch_model.sh"))
            .output()
            .expect("run scripts/fetch_model.sh");
        assert!(
            o.status.success(),
            "fetch failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap().trim().into()
    })
}

/// Runs the `hhtld` binary built for these tests.
pub fn hhtld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hhtld"))
        .args(args)
        .output()
        .expect("run hhtld")
}

/// The command's stdout as JSON; panics with its stderr when it is not.
pub fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The element of `v[list]` whose `"name"` is `name`.
pub fn named<'a>(v: &'a Value, list: &str, name: &str) -> &'a Value {
    entry(v, list, "name", name)
}

/// The element of `v[list]` whose `key` is `value`.
pub fn entry<'a>(v: &'a Value, list: &str, key: &str, value: &str) -> &'a Value {
    v[list]
        .as_array()
        .and_then(|a| a.iter().find(|t| t[key] == value))
        .unwrap_or_else(|| panic!("no {key} {value} in {list}"))
}

/// `hhtld encode INPUT -o OUT --profile PROFILE --require-gates --json`.
pub fn encode_gated(input: &str, out: &str, profile: &str) -> Output {
    hhtld(&[
        "encode",
        input,
        "-o",
        out,
        "--profile",
        profile,
        "--require-gates",
        "--json",
    ])
}

/// Asserts the command exited with status `code`, showing its stderr
/// otherwise.
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Asserts the command succeeded, showing its stderr otherwise.
pub fn assert_ok(o: &Output) {
    assert_ok_for(o, "command");
}

/// As [`assert_ok`], naming `what` ran in the message.
pub fn assert_ok_for(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
