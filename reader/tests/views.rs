//! Views, decoding, alignment and verification on hand-assembled files.

#[path = "../../format/tests/common/mod.rs"]
mod asm;

use asm::*;
use half::{bf16, f16};
use hhtld_format::decode::ElemSlice;
use hhtld_format::{Dtype, ElemType, Encoding, Regime, Role, SectionKind};
use hhtld_reader::{Hhtld, HhtldFile, ReaderError};
use zerocopy::IntoBytes;

fn rich_file() -> (HhtldFile, RichInfo) {
    let (m, info) = rich();
    (HhtldFile::from_vec(m.build()).unwrap(), info)
}

#[test]
fn file_level_accessors() {
    let (f, _) = rich_file();
    let h = f.view();
    assert_eq!(h.version(), (1, 0));
    assert_eq!(
        h.bytes().as_ptr() as usize % 64,
        0,
        "from_vec storage is 64-aligned"
    );
    assert_eq!(h.sections().len(), 12);
    assert_eq!(h.sections()[2].kind, Some(SectionKind::Palette));
    let meta: Vec<_> = h.metadata().map(Result::unwrap).collect();
    assert_eq!(meta, [("a", "1"), ("b", "two")]);
    let raw: Vec<_> = h.metadata_raw().collect();
    assert_eq!(raw, [("a", &b"1"[..]), ("b", &b"two"[..])]);
    assert_eq!(h.metadata_value("b").unwrap(), Some("two"));
    assert_eq!(h.metadata_value("c").unwrap(), None);
    assert_eq!(h.tensor_count(), 3);
    let names: Vec<_> = h.tensors().map(|t| t.name()).collect();
    assert_eq!(names, ["enc.w", "enc.b", "ids"]);
    assert_eq!(h.palette_count(), 2);
    assert_eq!(h.basis_count(), 1);
    assert!(matches!(
        h.tensor(3),
        Err(ReaderError::IndexOutOfRange {
            what: "tensor",
            index: 3,
            count: 3
        })
    ));
    assert!(matches!(
        h.tensor_by_name("nope"),
        Err(ReaderError::NoSuchTensor { .. })
    ));
    assert!(matches!(
        h.palette(2),
        Err(ReaderError::IndexOutOfRange {
            what: "palette",
            ..
        })
    ));
    assert!(matches!(
        h.basis(1),
        Err(ReaderError::IndexOutOfRange { what: "basis", .. })
    ));
    assert!(f.path().is_none());
}

#[test]
fn tensor_fields_and_rows() {
    let (f, info) = rich_file();
    let h = f.view();
    let t = h.tensor_by_name("enc.w").unwrap();
    assert_eq!(t.index(), 0);
    assert_eq!(t.dtype(), Dtype::F32);
    assert_eq!(t.shape(), &[3, 10]);
    assert_eq!(t.ndims(), 2);
    assert_eq!((t.n_rows(), t.n_cols(), t.numel()), (3, 10, 30));
    assert_eq!(t.role(), Role::AttnQ);
    assert_eq!(t.regime(), Regime::Argmax);
    assert_eq!(t.encoding(), Encoding::Palette);
    assert_eq!(t.quality().unwrap().rho_median, 0.99);
    assert_eq!(t.stages().len(), 2);
    assert_eq!(t.stride(), 8);
    assert_eq!(t.basis_index(), Some(0));
    assert_eq!(t.stage_palette(1).unwrap().index(), 1);
    assert!(t.stage_palette(2).is_err());
    assert!(t.raw_bytes().is_none());
    assert!(matches!(
        t.raw_slice::<f32>(),
        Err(ReaderError::NotRaw { .. })
    ));
    for r in 0..RICH_ROWS {
        let row = t.row(r).unwrap();
        assert_eq!(row.stage_count(), 2);
        assert_eq!(row.codes(0).unwrap(), pack(&info.codes0[r], 8).as_slice());
        assert_eq!(row.codes(1).unwrap(), pack(&info.codes1[r], 4).as_slice());
        assert!(row.codes(2).is_none());
        assert_eq!(row.all_codes().len(), 8);
        for j in 0..3 {
            assert_eq!(row.code(0, j), Some(info.codes0[r][j]));
        }
        for j in 0..10 {
            assert_eq!(row.code(1, j), Some(info.codes1[r][j]));
        }
        assert_eq!(row.code(0, 3), None);
        assert_eq!(row.code(1, 10), None, "the padding nibble is not a code");
        assert_eq!(row.scale(), Some(info.scales[r]));
        assert_eq!(row.slot_l(), Some(&info.coef[r]));
    }
    let e = t.row(3).unwrap_err();
    assert!(matches!(
        e,
        ReaderError::RowOutOfRange {
            row: 3,
            n_rows: 3,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "tensor 0 (\"enc.w\"): row 3 is out of range (n_rows 3)"
    );
}

#[test]
fn palette_decode_matches_the_spec_pseudo_code() {
    let (f, info) = rich_file();
    let h = f.view();
    let t = h.tensor(0).unwrap();
    let mut all = Vec::new();
    for r in 0..RICH_ROWS {
        let mut out = vec![f32::NAN; RICH_COLS];
        t.decode_row_into(r, &mut out).unwrap();
        let want = rich_reference_row(&info, r);
        // Bit-exact: the spec fixes the order of every addition.
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "row {r}"
        );
        all.extend(want);
    }
    assert_eq!(t.decode().unwrap(), all);
    let mut short = vec![0.0; RICH_COLS - 1];
    assert!(matches!(
        t.decode_row_into(0, &mut short),
        Err(ReaderError::OutputLen {
            expected: 10,
            got: 9,
            ..
        })
    ));
    assert!(matches!(
        t.decode_into(&mut short),
        Err(ReaderError::OutputLen { expected: 30, .. })
    ));
    assert!(matches!(
        t.decode_row_into(3, &mut [0.0; 10]),
        Err(ReaderError::RowOutOfRange { .. })
    ));
}

#[test]
fn raw_tensors() {
    let (f, info) = rich_file();
    let h = f.view();
    let b = h.tensor_by_name("enc.b").unwrap();
    assert_eq!(b.encoding(), Encoding::Raw);
    assert_eq!((b.n_rows(), b.n_cols()), (1, 10));
    assert_eq!(b.raw_bytes().unwrap(), info.bias.as_bytes());
    assert_eq!(b.raw_slice::<f32>().unwrap(), info.bias.as_slice());
    assert_eq!(b.decode().unwrap(), info.bias);
    let mut row = vec![0.0; 10];
    b.decode_row_into(0, &mut row).unwrap();
    assert_eq!(row, info.bias);
    assert!(matches!(b.row(0), Err(ReaderError::NotPalette { .. })));
    assert!(matches!(
        b.raw_slice::<f64>(),
        Err(ReaderError::WrongType {
            dtype_size: 4,
            type_size: 8,
            ..
        })
    ));

    let ids = h.tensor_by_name("ids").unwrap();
    assert_eq!(ids.raw_slice::<i64>().unwrap(), info.ids.as_slice());
    assert_eq!(ids.shape(), &[2, 2]);
    assert!(matches!(
        ids.decode(),
        Err(ReaderError::NotFloat {
            dtype: Dtype::I64,
            ..
        })
    ));
    assert!(matches!(
        ids.decode_row_into(0, &mut [0.0; 2]),
        Err(ReaderError::NotFloat { .. })
    ));
}

#[test]
fn raw_float_dtypes_convert() {
    let vals = pattern(24, 9);
    let mut m = Model::new();
    let f16s: Vec<f16> = vals.iter().map(|&v| f16::from_f32(v)).collect();
    let bf16s: Vec<bf16> = vals.iter().map(|&v| bf16::from_f32(v)).collect();
    let f64s: Vec<f64> = vals.iter().map(|&v| f64::from(v) + 1e-12).collect();
    m.raw_tensor("h", Dtype::F16, &[4, 6], f16s.as_bytes().to_vec());
    m.raw_tensor("b", Dtype::Bf16, &[2, 3, 4], bf16s.as_bytes().to_vec());
    m.raw_tensor("d", Dtype::F64, &[24], f64s.as_bytes().to_vec());
    m.raw_tensor("s", Dtype::F32, &[], 7.5f32.to_le_bytes().to_vec());
    let f = HhtldFile::from_vec(m.build()).unwrap();
    let h = f.view();
    let t = h.tensor_by_name("h").unwrap();
    assert_eq!(
        t.decode().unwrap(),
        f16s.iter().map(|v| v.to_f32()).collect::<Vec<_>>()
    );
    assert_eq!(t.raw_slice::<f16>().unwrap(), f16s.as_slice());
    let t = h.tensor_by_name("b").unwrap();
    assert_eq!((t.n_rows(), t.n_cols()), (2, 12));
    let mut row = vec![0.0; 12];
    t.decode_row_into(1, &mut row).unwrap();
    assert_eq!(
        row,
        bf16s[12..].iter().map(|v| v.to_f32()).collect::<Vec<_>>()
    );
    let t = h.tensor_by_name("d").unwrap();
    assert_eq!(
        t.decode().unwrap(),
        f64s.iter().map(|&v| v as f32).collect::<Vec<_>>()
    );
    let t = h.tensor_by_name("s").unwrap();
    assert_eq!((t.ndims(), t.numel()), (0, 1));
    assert_eq!(t.decode().unwrap(), [7.5]);
}

#[test]
fn palette_basis_and_fisher_views() {
    let (f, info) = rich_file();
    let h = f.view();
    let p = h.palette(0).unwrap();
    assert_eq!((p.k(), p.d(), p.bits(), p.elem()), (5, 4, 8, ElemType::F32));
    assert_eq!(p.stored_entries(), 256);
    assert_eq!(p.entries().len(), 256 * 4);
    assert_eq!(p.entry_f32(1).unwrap(), &info.p0[4..8]);
    assert_eq!(
        p.entry_f32(200).unwrap(),
        &[0.0; 4],
        "padding entries are zero"
    );
    assert!(p.entry_f32(256).is_none());
    assert!(p.entry_bf16(0).is_none() && p.entry_f16(0).is_none());
    assert_eq!(p.entry_f32_vec(4).unwrap(), &info.p0[16..20]);
    assert_eq!(p.fisher_index(), Some(0));

    let p = h.palette(1).unwrap();
    assert_eq!(
        (p.k(), p.d(), p.bits(), p.elem()),
        (3, 1, 4, ElemType::Bf16)
    );
    assert_eq!(p.entry_bf16(2).unwrap(), &[bf16::from_f32(info.p1[2])]);
    assert_eq!(p.entry_f32_vec(2).unwrap(), [info.p1[2]]);
    assert!(p.entry_bf16(16).is_none() && p.entry_f32(0).is_none());
    assert!(matches!(p.entries(), ElemSlice::Bf16(s) if s.len() == 16));

    let b = h.basis(0).unwrap();
    assert_eq!((b.rows(), b.n_cols(), b.elem()), (8, 10, ElemType::F16));
    for i in 0..8 {
        let ElemSlice::F16(row) = b.row(i).unwrap() else {
            panic!("f16 basis")
        };
        let got: Vec<f32> = row.iter().map(|v| v.to_f32()).collect();
        assert_eq!(got, &info.basis[i * 10..(i + 1) * 10]);
    }
    assert!(b.row(8).is_none());

    let fz = h.fisher_for_palette(0).unwrap();
    assert_eq!((fz.k(), fz.palette(), fz.gamma()), (5, 0, 0.01));
    assert_eq!(fz.table().len(), 25);
    let (q, rho) = fz.get(0, 2).unwrap();
    assert_eq!(q, -4);
    assert_eq!(rho, (0.01f32 * -4.0).tanh());
    assert_eq!(fz.get(1, 1).unwrap().0, 127);
    assert!(fz.get(5, 0).is_none() && fz.get(0, 5).is_none());
    assert!(h.fisher_for_palette(1).is_none());
    assert!(h.fisher_for_palette(9).is_none());
}

/// An 8-aligned buffer holding `bytes` at offset `shift`.
fn shifted(bytes: &[u8], shift: usize) -> Vec<u64> {
    let mut words = vec![0u64; (bytes.len() + shift).div_ceil(8)];
    words.as_mut_bytes()[shift..shift + bytes.len()].copy_from_slice(bytes);
    words
}

#[test]
fn misaligned_buffers_give_typed_errors() {
    let (m, info) = rich();
    let bytes = m.build();
    let words = shifted(&bytes, 1);
    let slice = &words.as_bytes()[1..1 + bytes.len()];
    let h = Hhtld::from_bytes(slice).unwrap();
    // Byte-level access works at any alignment.
    let t = h.tensor(0).unwrap();
    assert_eq!(t.row(1).unwrap().codes(0).unwrap(), &info.codes0[1]);
    assert_eq!(t.row(2).unwrap().scale(), Some(info.scales[2]));
    assert_eq!(
        h.tensor(1).unwrap().raw_bytes().unwrap(),
        info.bias.as_bytes()
    );
    assert_eq!(h.tensor(1).unwrap().decode().unwrap(), info.bias);
    assert!(h.fisher_for_palette(0).is_some());
    h.verify().unwrap();
    // Typed views report the misalignment.
    let e = h.palette(0).unwrap_err();
    assert!(
        matches!(
            e,
            ReaderError::Misaligned {
                what: "palette",
                align: 4,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        h.palette(1),
        Err(ReaderError::Misaligned { align: 2, .. })
    ));
    assert!(matches!(h.basis(0), Err(ReaderError::Misaligned { .. })));
    assert!(matches!(t.decode(), Err(ReaderError::Misaligned { .. })));
    assert!(matches!(
        h.tensor(1).unwrap().raw_slice::<f32>(),
        Err(ReaderError::Misaligned { .. })
    ));

    // Shifted by 4, f32 and 16-bit views are aligned again.
    let words = shifted(&bytes, 4);
    let h = Hhtld::from_bytes(&words.as_bytes()[4..4 + bytes.len()]).unwrap();
    assert_eq!(h.tensor(0).unwrap().decode().unwrap().len(), 30);
}

#[test]
fn verify_finds_a_flipped_byte() {
    let (m, _) = rich();
    let good = m.build();
    let f = HhtldFile::copy_from_slice(&good).unwrap();
    f.view().verify().unwrap();
    assert!(f.view().verify_sections().iter().all(|s| s.ok()));

    let pal = f.layout().palettes[0].range.clone();
    let mut bad = good.clone();
    bad[pal.start + 100] ^= 0x10;
    let f = HhtldFile::from_vec(bad).unwrap(); // open does not read palette bytes
    let h = f.view();
    let e = h.verify().unwrap_err();
    let ReaderError::Crc {
        section,
        kind,
        offset,
        stored,
        computed,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(section, 2);
    assert_eq!(kind, SectionKind::Palette.to_raw());
    assert_eq!(offset, pal.start);
    assert_ne!(stored, computed);
    assert!(h
        .verify()
        .unwrap_err()
        .to_string()
        .starts_with("section 2 (palette) at offset"));
    let st = h.verify_sections();
    assert_eq!(
        st.iter()
            .filter(|s| !s.ok())
            .map(|s| s.index)
            .collect::<Vec<_>>(),
        [2]
    );
}

#[test]
fn verify_large_sections_in_parallel_chunks() {
    // A 9 MiB RAW section spans several CRC chunks.
    let n = 9 << 20;
    let data: Vec<u8> = (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let mut m = Model::new();
    m.raw_tensor("big", Dtype::U8, &[n as u64], data);
    let mut bytes = m.build();
    let h = Hhtld::from_bytes(&bytes).unwrap();
    h.verify().unwrap();
    let range = h.tensor(0).unwrap().record().data.clone();
    bytes[range.start + (5 << 20) + 3] ^= 1;
    let h = Hhtld::from_bytes(&bytes).unwrap();
    assert!(matches!(
        h.verify(),
        Err(ReaderError::Crc { section: 2, .. })
    ));
}

#[test]
fn large_tensors_decode_in_parallel_like_row_by_row() {
    // 300 x 301 = 90300 elements: over the parallel threshold; d = 4 leaves a
    // partial last sub-vector; one 4-bit stage with odd n_sub.
    let (rows, cols) = (300usize, 301usize);
    let mut m = Model::new();
    let p = m.palette(200, 4, 8, ElemType::Bf16, &pattern(800, 5));
    let q = m.palette(16, 7, 4, ElemType::F16, &pattern(112, 6));
    let (n0, n1) = (cols.div_ceil(4), cols.div_ceil(7));
    let mut entry = Vec::new();
    for r in 0..rows {
        let c0: Vec<u8> = (0..n0).map(|j| ((r * 31 + j * 7) % 200) as u8).collect();
        let c1: Vec<u8> = (0..n1).map(|j| ((r + j * 3) % 16) as u8).collect();
        entry.extend(pack(&c0, 8));
        entry.extend(pack(&c1, 4));
    }
    let t = m.palette_tensor(
        "w",
        Dtype::Bf16,
        &[rows as u64, cols as u64],
        &[p, q],
        entry,
    );
    m.with_scale(t, ElemType::F32, &pattern(rows, 8));
    let raw: Vec<f16> = pattern(rows * cols, 10)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    m.raw_tensor(
        "r",
        Dtype::F16,
        &[rows as u64, cols as u64],
        raw.as_bytes().to_vec(),
    );
    let f = HhtldFile::from_vec(m.build()).unwrap();
    let h = f.view();
    for name in ["w", "r"] {
        let t = h.tensor_by_name(name).unwrap();
        let all = t.decode().unwrap();
        assert_eq!(all.len(), rows * cols);
        let mut row = vec![0.0; cols];
        for r in 0..rows {
            t.decode_row_into(r, &mut row).unwrap();
            assert_eq!(
                &all[r * cols..(r + 1) * cols],
                row.as_slice(),
                "{name} row {r}"
            );
        }
    }
}

#[test]
fn open_maps_files_and_reports_io_and_format_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rich.hhtld");
    let (m, info) = rich();
    std::fs::write(&path, m.build()).unwrap();
    let f = HhtldFile::open(&path).unwrap();
    assert_eq!(f.path(), Some(path.as_path()));
    let h = f.view();
    h.verify().unwrap();
    let mut row = [0.0; 10];
    h.tensor(0).unwrap().decode_row_into(0, &mut row).unwrap();
    assert_eq!(row.to_vec(), rich_reference_row(&info, 0));
    assert_eq!(
        h.tensor_by_name("enc.b").unwrap().decode().unwrap(),
        info.bias
    );

    let missing = dir.path().join("missing.hhtld");
    let e = HhtldFile::open(&missing).unwrap_err();
    assert!(matches!(&e, ReaderError::Io { path, .. } if path == &missing));
    assert!(e.to_string().contains("missing.hhtld"));

    let empty = dir.path().join("empty.hhtld");
    std::fs::write(&empty, b"").unwrap();
    let e = HhtldFile::open(&empty).unwrap_err();
    assert_eq!(e.format_error().map(|e| e.rule()), Some("R-TRUNCATED"));

    let cut = dir.path().join("cut.hhtld");
    std::fs::write(&cut, &m.build()[..200]).unwrap();
    let e = HhtldFile::open(&cut).unwrap_err();
    assert_eq!(e.format_error().map(|e| e.kind()), Some("FileLen"));
}

#[test]
fn empty_file_has_no_tensors() {
    let f = HhtldFile::from_vec(Model::new().build()).unwrap();
    let h = f.view();
    assert_eq!(h.tensor_count(), 0);
    assert_eq!(h.tensors().count(), 0);
    assert_eq!(h.metadata().count(), 0);
    h.verify().unwrap();
}
