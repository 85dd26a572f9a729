//! Decompression bombs (spec §7 "Expansion limit"): the 2 MB file of 16 GiB
//! is refused by `hhtld decode` under a 4 GB address-space limit, with one
//! line, exit status 2 and no output; the reader refuses whole-tensor
//! decodes over the limit before allocating, and a raised limit lets a
//! legitimately dense file through, streamed.

use std::path::Path;
use std::process::Command;

use hhtld_reader::{bf16, HhtldFile, ReaderError, DEFAULT_MAX_EXPANSION};

// The generator, for the bomb construction shared with the committed vector.
#[allow(dead_code)]
#[path = "../examples/gen_vectors.rs"]
mod gen_vectors;
#[path = "../examples/support/mod.rs"]
mod support;
use support::dir_entries;

const GIB16: u64 = 65536 * 65536 * 4;

/// Runs `hhtld ARGS` with its address space limited to 4 GB.
fn hhtld_limited(args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_hhtld"))
        .args(args)
        .output()
        .expect("running hhtld under sh")
}

#[test]
fn the_two_megabyte_bomb_is_refused_by_decode_in_four_gigabytes() {
    let bytes = gen_vectors::bomb(65536, 65536).expect("bomb");
    assert!(bytes.len() < 2_200_000, "{} bytes", bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.hhtld");
    std::fs::write(&bomb, &bytes).unwrap();
    let out = dir.path().join("out.safetensors");

    // A valid file: verify accepts it.
    let v = hhtld_limited(&["verify", bomb.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // Decoded to f32, then to the tensor's own dtype (BF16).
    for extra in [&["--dtype", "f32"][..], &[][..]] {
        let mut args = vec![
            "decode",
            bomb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let r = hhtld_limited(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        let decoded = if extra.is_empty() { GIB16 / 2 } else { GIB16 };
        let limit = DEFAULT_MAX_EXPANSION * bytes.len() as u64;
        for want in [
            "bomb.weight".to_owned(),
            format!("decodes to {decoded} bytes"),
            format!("expansion limit of {limit} bytes"),
            "--max-expansion".to_owned(),
        ] {
            assert!(err.contains(&want), "{want:?} missing from: {err}");
        }
        // No output and no temporary file left behind.
        assert_eq!(dir_entries(dir.path()), ["bomb.hhtld"]);
    }

    // The reader refuses too, before allocating 16 GiB.
    let file = HhtldFile::open(&bomb).unwrap();
    let t = file.tensor_by_name("bomb.weight").unwrap();
    match t.decode() {
        Err(ReaderError::ExpansionLimit {
            tensor,
            decoded,
            limit,
            max_expansion,
            file_len,
        }) => {
            assert_eq!(tensor.name.as_deref(), Some("bomb.weight"));
            assert_eq!(decoded, GIB16);
            assert_eq!(max_expansion, DEFAULT_MAX_EXPANSION);
            assert_eq!(file_len, bytes.len() as u64);
            assert_eq!(limit, max_expansion * file_len);
        }
        other => panic!("expected ExpansionLimit, got {:?}", other.map(|v| v.len())),
    }
    assert!(matches!(
        t.decode_as::<bf16>(),
        Err(ReaderError::ExpansionLimit { decoded, .. }) if decoded == GIB16 / 2
    ));
    // Rows into the caller's buffer are not limited.
    let mut row = vec![0f32; 65536];
    t.decode_row_into(65535, &mut row).unwrap();
    assert!(row.iter().all(|x| x.is_finite()));
}

#[test]
fn a_raised_limit_decodes_the_committed_bomb_streamed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/vectors/guarded/bomb.hhtld");
    let file_len = std::fs::metadata(&path).unwrap().len();
    let decoded = 65536 * 1024 * 4u64;
    assert!(decoded / 2 > DEFAULT_MAX_EXPANSION * file_len);

    let file = HhtldFile::open(&path).unwrap();
    let t = file.tensor(0).unwrap();
    assert!(matches!(
        t.check_expansion::<f32>(),
        Err(ReaderError::ExpansionLimit { .. })
    ));
    let raised = file.clone().with_max_expansion(4096);
    assert_eq!(raised.max_expansion(), 4096);
    assert_eq!(
        file.max_expansion(),
        DEFAULT_MAX_EXPANSION,
        "clones keep theirs"
    );
    let rt = raised.tensor(0).unwrap();
    rt.check_expansion::<f32>().unwrap();
    let all: Vec<bf16> = rt.decode_as().unwrap();
    assert_eq!(all.len(), 65536 * 1024);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let (p, o) = (path.to_str().unwrap(), out.to_str().unwrap());
    // Refused in its own dtype (BF16), let through with the limit raised.
    let refused = hhtld_limited(&["decode", p, "-o", o]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(!out.exists());
    let ok = hhtld_limited(&["decode", p, "-o", o, "--max-expansion", "4096"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // 8-byte length, header, then exactly the decoded tensor.
    let bytes = std::fs::read(&out).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["bomb.weight"]["dtype"], "BF16");
    assert_eq!(
        header["bomb.weight"]["shape"],
        serde_json::json!([65536, 1024])
    );
    let data = &bytes[8 + n..];
    assert_eq!(data.len(), all.len() * 2);
    assert!(data
        .chunks_exact(2)
        .zip(&all)
        .all(|(b, v)| b == v.to_le_bytes()));
    assert_eq!(dir_entries(dir.path()), ["out.safetensors"]);
}

#[test]
fn every_valid_vector_is_within_the_default_and_a_limit_of_zero_refuses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/vectors/valid");
    let mut refused = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "hhtld") {
            continue;
        }
        let file = HhtldFile::open(&path).unwrap();
        let strict = file.clone().with_max_expansion(0);
        for (t, s) in file.tensors().zip(strict.tensors()) {
            t.check_expansion::<f32>().unwrap();
            if t.numel() > 0 {
                assert!(matches!(
                    s.check_expansion::<f32>(),
                    Err(ReaderError::ExpansionLimit { limit: 0, .. })
                ));
                refused += 1;
            }
        }
    }
    assert!(refused > 10, "{refused}");
}
