//! Writes the seed files of the `open`, `decode` and `mutate` targets:
//! `cargo run --manifest-path fuzz/Cargo.toml --features seeds --bin make_seeds -- fuzz/seeds`.
//! Each file is checked to open and verify before it is written.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (name, bytes) in hhtld_fuzz::sample::seed_files() {
        let file = hhtld_fuzz::check::open(&bytes).expect("seed opens");
        file.view().verify().expect("seed verifies");
        hhtld_fuzz::check::views(&file.view());
        assert!(!hhtld_fuzz::mutate::caught(&bytes));
        let path = dir.join(name);
        std::fs::write(&path, &bytes).expect("write seed");
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
}
