//! Encode memory does not grow with the number of layers: the same small
//! Llama shape with 2 and with 8 layers, encoded by the real binary, must
//! reach about the same peak RSS (as `/usr/bin/time` reports it, mapped
//! input pages included). Before palettes were fitted to a bounded row
//! sample and tensors encoded in chunks, 8 layers took 2.7x the RSS of 2
//! (65 MB against 174 MB).

mod common;
#[allow(dead_code)]
#[path = "../examples/synth_llama.rs"]
mod synth_llama;

use std::path::Path;
use std::process::Command;

use common::assert_ok_for;
use synth_llama::{write_model, Shape};

/// Peak RSS in KiB of `hhtld encode IN -o OUT --profile fidelity`, which
/// must succeed with every gate passed.
fn encode_peak_kib(input: &Path, output: &Path, rss_file: &Path) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file)
        .arg(env!("CARGO_BIN_EXE_hhtld"))
        .args(["encode", "--profile", "fidelity", "--require-gates", "-o"])
        .arg(output)
        .arg(input)
        .output()
        .expect("run /usr/bin/time (GNU time) around hhtld encode");
    assert_ok_for(&out, &format!("encode of {}", input.display()));
    let text = std::fs::read_to_string(rss_file).expect("read the time report");
    text.trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {text:?}"))
}

#[test]
fn encode_peak_memory_does_not_grow_with_layers() {
    let dir = tempfile::tempdir().unwrap();
    // Every role's group is larger than the fit sample (2^20 values) at 2
    // layers already, as in a real model.
    let shape = |layers| Shape {
        layers,
        hidden: 512,
        intermediate: 1536,
        vocab: 4096,
        kv_dim: 512,
    };
    let mut peaks = Vec::new();
    for layers in [2, 8] {
        let input = dir.path().join(format!("l{layers}.safetensors"));
        write_model(&input, &shape(layers), 7).unwrap();
        let output = dir.path().join(format!("l{layers}.hhtld"));
        let kib = encode_peak_kib(&input, &output, &dir.path().join("rss.txt"));
        let meta = std::fs::metadata(&output).unwrap();
        assert!(meta.len() > 0);
        peaks.push(kib);
        std::fs::remove_file(&input).unwrap();
    }
    let (rss2, rss8) = (peaks[0], peaks[1]);
    // 8 layers hold 2.9x the parameters of 2; the peak may grow only by
    // noise (allocator, directory records).
    assert!(
        rss8 as f64 <= rss2 as f64 * 1.25 + 16.0 * 1024.0,
        "peak RSS grows with layers: {rss2} KiB at 2 layers, {rss8} KiB at 8"
    );
}
