//! Safetensors import: files written by the `safetensors` crate (and a few
//! hand-made ones for layouts it never writes) come back with the exact
//! dtype, shape and bytes; f32 conversion is exact; bad files give typed
//! errors that name the tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use hhtld_format::Dtype;
use hhtld_writer::import::{
    decode_f32_into, dtype_from_safetensors, dtype_to_safetensors, ImportError, SafetensorsModel,
};
use safetensors::tensor::TensorView;

/// One tensor to serialize: name, dtype, shape, bytes.
struct T {
    name: &'static str,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn t(name: &'static str, dtype: Dtype, shape: &[usize], data: Vec<u8>) -> T {
    T {
        name,
        dtype,
        shape: shape.to_vec(),
        data,
    }
}

fn write_st(path: &Path, tensors: &[T]) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let v = TensorView::new(dtype_to_safetensors(t.dtype), t.shape.clone(), &t.data)
                .expect("consistent test tensor");
            (t.name, v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("serialize");
}

/// A safetensors file with a hand-written header (for layouts the crate
/// never produces, and for invalid files).
fn write_raw(path: &Path, header: &str, data: &[u8]) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[path = "../../examples/support/mod.rs"]
mod support;

/// Deterministic pseudo-random bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| (support::splitmix64(&mut s) >> 24) as u8)
        .collect()
}

/// Tensor order from the offsets the reference `safetensors` parser reads:
/// by data offset, empty tensors before the tensor starting where they sit,
/// ties by name (the documented rule).
fn reference_order(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut v: Vec<((usize, usize), String)> = meta
        .tensors()
        .into_iter()
        .map(|(n, i)| (i.data_offsets, n))
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

fn mixed_tensors() -> Vec<T> {
    vec![
        t(
            "a.f32",
            Dtype::F32,
            &[3, 5],
            f32_bytes(&(0..15).map(|i| i as f32 * 0.37 - 2.0).collect::<Vec<_>>()),
        ),
        t("b.f16", Dtype::F16, &[4, 2], noise(16, 1)),
        t("c.bf16", Dtype::Bf16, &[2, 3], noise(12, 2)),
        t("d.i64", Dtype::I64, &[1, 7], noise(56, 3)),
        t("e.bool", Dtype::Bool, &[5], vec![0, 1, 1, 0, 1]),
        t("f.3d", Dtype::F32, &[2, 3, 4], noise(96, 4)),
        t("g.scalar", Dtype::F64, &[], noise(8, 5)),
        t("h.u8", Dtype::U8, &[3], noise(3, 6)),
        t("i.empty", Dtype::F32, &[0, 4], vec![]),
    ]
}

#[test]
fn roundtrip_dtype_shape_bytes_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let tensors = mixed_tensors();
    write_st(&path, &tensors);

    let model = SafetensorsModel::open(&path).unwrap();
    assert_eq!(model.len(), tensors.len());
    assert!(!model.is_empty());
    let infos: Vec<_> = model.tensors().collect();
    for want in &tensors {
        let info = infos.iter().find(|i| i.name == want.name).unwrap();
        assert_eq!(info.dtype, want.dtype, "{}", want.name);
        let shape: Vec<u64> = want.shape.iter().map(|&d| d as u64).collect();
        assert_eq!(info.shape, shape, "{}", want.name);
        assert_eq!(info.byte_len, want.data.len() as u64, "{}", want.name);
        assert_eq!(model.raw_bytes(want.name).unwrap(), &want.data[..]);
        assert_eq!(model.get(want.name), Some(info));
    }
    // Order: by data offset, as the reference parser lays them out.
    let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
    assert_eq!(names, reference_order(&path));
}

#[test]
fn order_is_deterministic_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_st(&path, &mixed_tensors());
    let a: Vec<_> = SafetensorsModel::open(&path).unwrap().tensors().collect();
    let b: Vec<_> = SafetensorsModel::open(&path).unwrap().tensors().collect();
    assert_eq!(a, b);
}

#[test]
fn header_order_is_irrelevant_offsets_decide() {
    // The header lists tensors out of data order; the data order wins.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let header = r#"{"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"m":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}"#;
    write_raw(&path, header, &[10, 11, 12]);
    let model = SafetensorsModel::open(&path).unwrap();
    let names: Vec<String> = model.tensors().map(|i| i.name).collect();
    // "m" is empty at offset 2 and ends before "a", so it sorts first there.
    assert_eq!(names, ["z", "m", "a"]);
    assert_eq!(model.raw_bytes("z").unwrap(), &[10, 11]);
    assert_eq!(model.raw_bytes("a").unwrap(), &[12]);
    assert_eq!(model.raw_bytes("m").unwrap(), &[] as &[u8]);
}

#[test]
fn metadata_is_exposed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let data = f32_bytes(&[1.0]);
    let v = TensorView::new(safetensors::Dtype::F32, vec![1], &data).unwrap();
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file([("x", v)], Some(meta), &path).unwrap();
    let model = SafetensorsModel::open(&path).unwrap();
    assert_eq!(
        model.metadata().get("format").map(String::as_str),
        Some("pt")
    );
    assert_eq!(model.len(), 1);
}

#[test]
fn empty_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.safetensors");
    write_st(&path, &[]);
    let model = SafetensorsModel::open(&path).unwrap();
    assert_eq!(model.len(), 0);
    assert!(model.is_empty());
    assert_eq!(model.tensors().count(), 0);
    assert!(matches!(
        model.raw_bytes("x"),
        Err(ImportError::TensorNotFound { ref tensor, .. }) if tensor == "x"
    ));
}

#[test]
fn to_f32_exact_for_every_float_dtype() {
    let f32_vals = [
        0.0f32,
        -0.0,
        1.5,
        -3.25e-7,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
    ];
    let f16_vals: Vec<f16> = [0.0f32, -0.0, 1.5, -2.25, 65504.0, 5.960_464_5e-8, 0.333]
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let bf16_vals: Vec<bf16> = [0.0f32, -1.0, 3.140625, 1e30, -2.5e-20, 0.1]
        .iter()
        .map(|&x| bf16::from_f32(x))
        .collect();
    // f64 values that are exactly representable in f32.
    let f64_vals = [
        0.0f64,
        -1.0,
        0.5,
        1.0 / 1024.0,
        16_777_216.0,
        -1.25e-3f32 as f64,
    ];
    let tensors = vec![
        t("f32", Dtype::F32, &[7], f32_bytes(&f32_vals)),
        t(
            "f16",
            Dtype::F16,
            &[7],
            f16_vals.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        t(
            "bf16",
            Dtype::Bf16,
            &[2, 3],
            bf16_vals.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        t(
            "f64",
            Dtype::F64,
            &[3, 2],
            f64_vals.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        t("i64", Dtype::I64, &[2], noise(16, 9)),
        t("f8", Dtype::F8E4M3, &[2], vec![0x38, 0x40]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_st(&path, &tensors);
    let model = SafetensorsModel::open(&path).unwrap();

    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&model.to_f32("f32").unwrap()), bits(&f32_vals));
    let want16: Vec<f32> = f16_vals.iter().map(|x| x.to_f32()).collect();
    assert_eq!(bits(&model.to_f32("f16").unwrap()), bits(&want16));
    let wantb: Vec<f32> = bf16_vals.iter().map(|x| x.to_f32()).collect();
    assert_eq!(bits(&model.to_f32("bf16").unwrap()), bits(&wantb));
    let want64: Vec<f32> = f64_vals.iter().map(|&x| x as f32).collect();
    assert_eq!(bits(&model.to_f32("f64").unwrap()), bits(&want64));
    // The f64 inputs were exact in f32: no rounding happened.
    for (a, b) in want64.iter().zip(&f64_vals) {
        assert_eq!(*a as f64, *b);
    }

    for (name, dtype) in [("i64", Dtype::I64), ("f8", Dtype::F8E4M3)] {
        match model.to_f32(name) {
            Err(ImportError::NotFloat { tensor, dtype: d }) => {
                assert_eq!(tensor, name);
                assert_eq!(d, dtype);
            }
            other => panic!("{name}: expected NotFloat, got {other:?}"),
        }
    }
}

#[test]
fn unaligned_tensor_data_decodes() {
    // A 1-byte tensor first puts the F32 and F16 data at odd offsets; the
    // header length 8k+3 misaligns the data area itself as well.
    let vals = [1.0f32, -2.5, 3.75e10];
    let h = [f16::from_f32(0.5), f16::from_f32(-7.0)];
    let mut data = vec![0xAA];
    data.extend(f32_bytes(&vals));
    data.extend(h.iter().flat_map(|x| x.to_le_bytes()));
    let mut header = String::from(
        r#"{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[3],"data_offsets":[1,13]},"h":{"dtype":"F16","shape":[2],"data_offsets":[13,17]}}"#,
    );
    while header.len() % 8 != 3 {
        header.push(' ');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.safetensors");
    write_raw(&path, &header, &data);
    let model = SafetensorsModel::open(&path).unwrap();
    assert_eq!(model.to_f32("w").unwrap(), vals);
    assert_eq!(model.to_f32("h").unwrap(), [0.5, -7.0]);
    assert_eq!(model.raw_bytes("w").unwrap(), &data[1..13]);
}

#[test]
fn decode_f32_into_appends_and_checks_length() {
    let mut out = vec![9.0];
    decode_f32_into("x", Dtype::F32, &f32_bytes(&[1.0, 2.0]), &mut out).unwrap();
    assert_eq!(out, [9.0, 1.0, 2.0]);
    match decode_f32_into("x", Dtype::F32, &[0; 6], &mut out) {
        Err(ImportError::RaggedBytes { len: 6, .. }) => {}
        other => panic!("expected RaggedBytes, got {other:?}"),
    }
}

#[test]
fn dtype_mapping_is_a_bijection_on_known_dtypes() {
    for &d in Dtype::ALL {
        let s = dtype_to_safetensors(d);
        assert_eq!(dtype_from_safetensors("t", s).unwrap(), d);
        assert_eq!(s.bitsize(), 8 * d.size(), "{d}");
        // The safetensors spelling is the hhtld name.
        assert_eq!(serde_json::to_value(s).unwrap(), d.name());
    }
}

fn write_shards(dir: &Path) -> PathBuf {
    // Shard 2 is written first and named so that it sorts last.
    write_st(
        &dir.join("model-00002-of-00002.safetensors"),
        &[
            t(
                "layer.1.w",
                Dtype::F32,
                &[2, 2],
                f32_bytes(&[5.0, 6.0, 7.0, 8.0]),
            ),
            t("lm_head.weight", Dtype::Bf16, &[1, 2], noise(4, 11)),
        ],
    );
    write_st(
        &dir.join("model-00001-of-00002.safetensors"),
        &[
            t("embed.weight", Dtype::F16, &[3, 2], noise(12, 12)),
            t(
                "layer.0.w",
                Dtype::F32,
                &[2, 2],
                f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
            ),
            t("ids", Dtype::I64, &[2], noise(16, 13)),
        ],
    );
    let index = dir.join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"metadata":{"total_size":48},"weight_map":{
            "lm_head.weight":"model-00002-of-00002.safetensors",
            "layer.1.w":"model-00002-of-00002.safetensors",
            "embed.weight":"model-00001-of-00002.safetensors",
            "ids":"model-00001-of-00002.safetensors",
            "layer.0.w":"model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    index
}

#[test]
fn sharded_index_opens_every_shard_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let index = write_shards(dir.path());
    let model = SafetensorsModel::open(&index).unwrap();
    assert_eq!(model.len(), 5);
    let names: Vec<String> = model.tensors().map(|i| i.name).collect();
    let mut want = reference_order(&dir.path().join("model-00001-of-00002.safetensors"));
    want.extend(reference_order(
        &dir.path().join("model-00002-of-00002.safetensors"),
    ));
    assert_eq!(names, want);
    assert_eq!(model.to_f32("layer.0.w").unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(model.to_f32("layer.1.w").unwrap(), [5.0, 6.0, 7.0, 8.0]);
    assert_eq!(
        model.raw_bytes("lm_head.weight").unwrap(),
        &noise(4, 11)[..]
    );
    assert_eq!(model.get("ids").unwrap().dtype, Dtype::I64);

    // The directory resolves to the index.
    let via_dir = SafetensorsModel::open(dir.path()).unwrap();
    assert_eq!(
        via_dir.tensors().collect::<Vec<_>>(),
        model.tensors().collect::<Vec<_>>()
    );
}

#[test]
fn sharded_index_errors() {
    let dir = tempfile::tempdir().unwrap();
    let index = write_shards(dir.path());
    let good = std::fs::read_to_string(&index).unwrap();

    let open_with = |text: &str| {
        std::fs::write(&index, text).unwrap();
        SafetensorsModel::open(&index)
    };

    for (text, what) in [
        (
            good.replace(
                r#""ids":"model-00001-of-00002.safetensors""#,
                r#""ids":"model-00002-of-00002.safetensors""#,
            ),
            "listed for a shard that lacks it",
        ),
        (
            good.replace(r#""ids":"model-00001-of-00002.safetensors","#, ""),
            "in a shard that the index does not list",
        ),
    ] {
        match open_with(&text) {
            Err(ImportError::ShardMismatch { tensor, .. }) => assert_eq!(tensor, "ids", "{what}"),
            other => panic!("{what}: expected ShardMismatch, got {other:?}"),
        }
    }

    // A shard that escapes the directory.
    match open_with(&good.replace(
        r#""ids":"model-00001-of-00002.safetensors""#,
        r#""ids":"../model-00001-of-00002.safetensors""#,
    )) {
        Err(ImportError::BadShardPath { shard, tensor, .. }) => {
            assert_eq!(shard, "../model-00001-of-00002.safetensors");
            assert_eq!(tensor, "ids");
        }
        other => panic!("expected BadShardPath, got {other:?}"),
    }

    // A missing shard file.
    match open_with(r#"{"weight_map":{"x":"model-00009-of-00009.safetensors"}}"#) {
        Err(ImportError::Io { path, .. }) => {
            assert!(path.ends_with("model-00009-of-00009.safetensors"))
        }
        other => panic!("expected Io, got {other:?}"),
    }

    for (text, what) in [
        ("{", "invalid json"),
        ("[]", "not an object"),
        (r#"{"metadata":{}}"#, "no weight_map"),
        (r#"{"weight_map":[]}"#, "weight_map not an object"),
        (r#"{"weight_map":{"x":3}}"#, "shard not a string"),
    ] {
        match open_with(text) {
            Err(ImportError::Json { .. } | ImportError::BadHeader { .. }) => {}
            other => panic!("{what}: expected Json/BadHeader, got {other:?}"),
        }
    }
}

/// Opens the hand-made file `header` + `data`, asserts the error matches
/// the pattern and returns it.
macro_rules! rejects {
    ($header:expr, $data:expr, $pat:pat) => {{
        let e = open_err($header, $data);
        assert!(matches!(e, $pat), "{e:?}");
        e
    }};
}

/// Opens a hand-made file and returns the error.
fn open_err(header: &str, data: &[u8]) -> ImportError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write_raw(&path, header, data);
    SafetensorsModel::open(&path).expect_err(header)
}

#[test]
fn invalid_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();

    // Nonexistent file.
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        SafetensorsModel::open(&missing),
        Err(ImportError::Io { path, .. }) if path == missing
    ));
    // Shorter than the 8-byte length, including empty.
    for len in [0usize, 7] {
        let p = dir.path().join(format!("short{len}.safetensors"));
        std::fs::write(&p, vec![0u8; len]).unwrap();
        assert!(matches!(
            SafetensorsModel::open(&p),
            Err(ImportError::Truncated { len: l, .. }) if l == len as u64
        ));
    }
    // Header length past the end / over the limit.
    let p = dir.path().join("past.safetensors");
    let mut b = 100u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    std::fs::write(&p, &b).unwrap();
    assert!(matches!(
        SafetensorsModel::open(&p),
        Err(ImportError::HeaderPastEnd {
            header_len: 100,
            file_len: 10,
            ..
        })
    ));
    let p = dir.path().join("huge.safetensors");
    std::fs::write(&p, u64::MAX.to_le_bytes()).unwrap();
    assert!(matches!(
        SafetensorsModel::open(&p),
        Err(ImportError::HeaderTooLarge { len: u64::MAX, .. })
    ));
    // A directory with no model.
    assert!(matches!(
        SafetensorsModel::open(dir.path()),
        Err(ImportError::NoModelInDir { .. })
    ));

    assert!(matches!(
        open_err("{not json", &[]),
        ImportError::Json { .. }
    ));
    assert!(matches!(
        open_err("[1,2]", &[]),
        ImportError::BadHeader { .. }
    ));
    assert!(matches!(
        open_err(r#"{"__metadata__":{"a":1}}"#, &[]),
        ImportError::BadHeader { .. }
    ));

    let named = |e: ImportError, want: &str| -> String {
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg:?} should name {want:?}");
        msg
    };

    // Unknown dtype names the tensor and the dtype.
    match open_err(
        r#"{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#,
        &[0],
    ) {
        ImportError::UnknownDtype { tensor, dtype, .. } => {
            assert_eq!(tensor, "w");
            assert_eq!(dtype, "F4");
        }
        other => panic!("expected UnknownDtype, got {other:?}"),
    }
    // Malformed entries.
    for header in [
        r#"{"w":[]}"#,
        r#"{"w":{"shape":[1],"data_offsets":[0,1]}}"#,
        r#"{"w":{"dtype":"U8","data_offsets":[0,1]}}"#,
        r#"{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
        r#"{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#,
        r#"{"w":{"dtype":"U8","shape":[1]}}"#,
        r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
        r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,"1"]}}"#,
    ] {
        let e = open_err(header, &[0]);
        assert!(
            matches!(e, ImportError::BadTensorEntry { .. }),
            "{header}: {e:?}"
        );
        named(e, "\"w\"");
    }
    // Too many dimensions.
    rejects!(
        r#"{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#,
        &[0],
        ImportError::TooManyDims { ndims: 9, .. }
    );
    // Eight is fine.
    let dir2 = tempfile::tempdir().unwrap();
    let p = dir2.path().join("eight.safetensors");
    write_raw(
        &p,
        r#"{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,2],"data_offsets":[0,2]}}"#,
        &[1, 2],
    );
    assert_eq!(
        SafetensorsModel::open(&p)
            .unwrap()
            .get("w")
            .unwrap()
            .shape
            .len(),
        8
    );
    // Overflowing shapes: numel, and the matrix width of an empty tensor.
    rejects!(
        r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#,
        &[],
        ImportError::ShapeOverflow { .. }
    );
    rejects!(
        r#"{"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}"#,
        &[],
        ImportError::ShapeOverflow { .. }
    );
    // Offsets that disagree with shape and dtype.
    rejects!(
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
        &[0; 4],
        ImportError::ByteLenMismatch {
            expected: 8,
            actual: 4,
            ..
        }
    );
    rejects!(
        r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[5,4]}}"#,
        &[0; 5],
        ImportError::BadOffsets { .. }
    );
    // Gap, overlap, past the end, trailing bytes.
    let e = rejects!(
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}"#,
        &[0; 3],
        ImportError::BadOffsets {
            expected_start: 1,
            ..
        }
    );
    named(e, "\"b\"");
    rejects!(
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#,
        &[0; 3],
        ImportError::BadOffsets { .. }
    );
    rejects!(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        &[0; 3],
        ImportError::BadOffsets { data_len: 3, .. }
    );
    rejects!(
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
        &[0; 3],
        ImportError::TrailingData {
            covered: 2,
            data_len: 3,
            ..
        }
    );
    // Empty tensor name.
    rejects!(
        r#"{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
        &[0],
        ImportError::BadName { len: 0, .. }
    );
}

#[test]
fn truncation_anywhere_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_st(&path, &mixed_tensors());
    let full = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    for len in 0..full.len() {
        std::fs::write(&cut, &full[..len]).unwrap();
        assert!(
            SafetensorsModel::open(&cut).is_err(),
            "prefix of {len} bytes opened"
        );
    }
}

#[test]
fn model_is_shareable_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<SafetensorsModel>();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_st(&path, &mixed_tensors());
    let model = SafetensorsModel::open(&path).unwrap();
    let sums: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = ["a.f32", "f.3d"]
            .iter()
            .map(|n| {
                let m = &model;
                s.spawn(move || m.to_f32(n).unwrap().len())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sums, [15, 24]);
}

#[test]
fn oversized_index_is_rejected_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("big.index.json");
    // A sparse file just over the cap: cheap to create, refused by size.
    let f = std::fs::File::create(&index).unwrap();
    f.set_len(hhtld_writer::import::MAX_HEADER_LEN + 1).unwrap();
    drop(f);
    match SafetensorsModel::open(&index) {
        Err(ImportError::HeaderTooLarge { len, max, .. }) => assert!(len > max),
        other => panic!("expected HeaderTooLarge, got {other:?}"),
    }
}
