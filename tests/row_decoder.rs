//! `RowDecoder` (views resolved once) decodes exactly what
//! `TensorView::decode_row_into` does, on every float tensor of every valid
//! conformance vector, and rejects what it rejects.

use hhtld_format::Dtype;
use hhtld_reader::{HhtldFile, ReaderError};

#[test]
fn row_decoder_matches_decode_row_into_on_every_vector() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/vectors/valid");
    let mut rows_checked = 0usize;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("hhtld") {
            continue;
        }
        let file = HhtldFile::open(&path).unwrap();
        let view = file.view();
        for t in view.tensors() {
            let float = matches!(
                t.dtype(),
                Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64
            );
            let dec = match t.row_decoder() {
                Ok(d) => d,
                Err(ReaderError::NotFloat { .. }) if !float => continue,
                Err(e) => panic!("{}: {}: {e}", path.display(), t.name()),
            };
            let mut a = vec![0f32; t.n_cols()];
            let mut b = vec![0f32; t.n_cols()];
            for r in 0..t.n_rows() {
                t.decode_row_into(r, &mut a).unwrap();
                dec.decode_row_into(r, &mut b).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&a),
                    bits(&b),
                    "{} {} row {r}",
                    path.display(),
                    t.name()
                );
                rows_checked += 1;
            }
            assert!(matches!(
                dec.decode_row_into(t.n_rows(), &mut b),
                Err(ReaderError::RowOutOfRange { .. })
            ));
            let mut wrong = vec![0f32; t.n_cols() + 1];
            assert!(matches!(
                dec.decode_row_into(0, &mut wrong),
                Err(ReaderError::OutputLen { .. }) | Err(ReaderError::RowOutOfRange { .. })
            ));
        }
    }
    assert!(rows_checked > 50, "only {rows_checked} rows checked");
}
