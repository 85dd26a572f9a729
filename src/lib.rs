//! Library side of the `hhtld` command-line tool: the parts other code
//! (tests, fuzzers) must render exactly as the command does.

pub mod inspect;
pub mod verify;
