//! Builder output checked byte by byte against spec/hhtld.md, plus
//! determinism, empty files, atomic writes, I/O failure and the size report.

#[path = "../../examples/support/mod.rs"]
mod support;
#[path = "builder_util.rs"]
mod util;

use std::io::{self, Cursor, Seek, SeekFrom, Write};

use half::{bf16, f16};
use hhtld_format::{Dtype, ElemType, Regime, Role, SectionKind};
use hhtld_writer::builder::{
    EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, TensorHeader, Writer,
};
use hhtld_writer::error::WriteError;
use hhtld_writer::fisher::fisher_z_table;
use hhtld_writer::report::SizeReport;
use support::dir_entries;
use util::*;

type Mem = Writer<Cursor<Vec<u8>>>;

fn mem() -> Mem {
    Writer::new(Cursor::new(Vec::new())).unwrap()
}

/// Adds the widest palette: 256 scalar F32 entries `i + offset`, 8-bit codes.
fn byte_palette(w: &mut Mem, offset: f32) -> PaletteId {
    let v: Vec<f32> = (0..256).map(|i| i as f32 + offset).collect();
    w.add_palette(PaletteSpec {
        k: 256,
        d: 1,
        bits: 8,
        elem: ElemType::F32,
        values: &v,
    })
    .unwrap()
}

fn done(w: Mem) -> (Vec<u8>, SizeReport) {
    let (c, r) = w.finish_into_inner().unwrap();
    (c.into_inner(), r)
}

fn pal_values(k: usize, d: usize, seed: f32) -> Vec<f32> {
    (0..k * d)
        .map(|i| ((i as f32 * 0.731 + seed).sin() * 3.0) + 0.1 * i as f32)
        .collect()
}

/// Adds a palette of `k` entries of width `d` holding `pal_values(k, d, seed)`.
fn add_pal_values<W: Write + Seek>(
    w: &mut Writer<W>,
    (k, d, bits): (usize, usize, u8),
    elem: ElemType,
    seed: f32,
) -> PaletteId {
    let values = pal_values(k, d, seed);
    w.add_palette(PaletteSpec {
        k,
        d,
        bits,
        elem,
        values: &values,
    })
    .unwrap()
}

/// A file using every feature: two palettes (4- and 8-bit, bf16 and f16),
/// a computed and an explicit FisherZ table, a basis, a two-stage tensor
/// with scales, SlotL and quality, a one-stage tensor with an odd `n_sub`,
/// raw tensors and metadata.
fn build_full<W: Write + Seek>(w: &mut Writer<W>) {
    let p0 = add_pal_values(w, (5, 3, 4), ElemType::Bf16, 0.0);
    let p1 = add_pal_values(w, (200, 1, 8), ElemType::F16, 1.0);
    w.add_fisher_z(p0).unwrap();
    let mut t1 = vec![0i8; 200 * 200];
    t1[1] = 5;
    t1[200] = 5;
    w.add_fisher_z_table(p1, 0.25, &t1).unwrap();
    let basis_v = pal_values(8, 7, 2.0);
    let b = w.add_basis(7, ElemType::F32, &basis_v).unwrap();
    // 3 x 7 tensor: stage 0 d=3 -> n_sub 3 (odd, 4-bit); stage 1 d=1 -> 7.
    let c0: Vec<u8> = (0..9).map(|i| (i * 2 % 5) as u8).collect();
    let c1: Vec<u8> = (0..21).map(|i| (i * 37 % 200) as u8).collect();
    let coef = [[1i8, -2, 3, -4, 5, -6, 7, -128], [0; 8], [127; 8]];
    w.add_encoded_tensor(
        EncodedTensor::new(
            "enc",
            Dtype::Bf16,
            &[3, 7],
            Role::MlpDown,
            Regime::Argmax,
            &[Stage::new(p0, &c0), Stage::new(p1, &c1)],
        )
        .with_scale(ElemType::Bf16, &[0.5, -1.25, 3.0])
        .with_slot_l(SlotL {
            basis: b,
            coef: &coef,
            scale: 0.125,
        })
        .with_quality(Some(Quality {
            rho_median: 0.99,
            rho_p5: 0.9,
            rho_min: -0.5,
            rel_fro: 0.05,
        })),
    )
    .unwrap();
    w.add_raw_tensor(RawTensor::passthrough(
        "raw.i64",
        Dtype::I64,
        &[2, 1, 2],
        &(0u8..32).collect::<Vec<_>>(),
    ))
    .unwrap();
    // Scalar (ndims 0) encoded tensor sharing p0? d=3 > n_cols=1, so use p1.
    w.add_encoded_tensor(EncodedTensor::new(
        "scalar",
        Dtype::F32,
        &[],
        Role::Norm,
        Regime::Index,
        &[Stage::new(p1, &[199])],
    ))
    .unwrap();
    w.add_raw_tensor(RawTensor {
        header: TensorHeader {
            name: "empty",
            dtype: Dtype::F32,
            shape: &[0, 5],
            role: Role::Bias,
            regime: Regime::Index,
        },
        bytes: &[],
    })
    .unwrap();
    w.set_metadata("zeta", "last").unwrap();
    w.set_metadata("alpha", "first").unwrap();
    w.set_metadata("zeta", "replaced").unwrap();
}

#[test]
fn full_file_matches_spec_byte_for_byte() {
    let mut w = mem();
    build_full(&mut w);
    let (f, report) = done(w);
    let p = spec_parse(&f);
    hhtld_format::parse(&f).expect("validator accepts the file");

    // Section order: objects in the order added, then STRINGS, METADATA, DIRECTORY.
    let kinds: Vec<u16> = p.sections.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![4, 4, 6, 6, 5, 7, 9, 8, 10, 7, 10, 2, 3, 1]);

    // Palettes: values rounded to elem (RNE) then zero padding to 2^bits.
    let p0 = &p.palettes[0];
    assert_eq!((p0.k, p0.d, p0.bits, p0.elem), (5, 3, 4, 3));
    let stored0 = elems(p.bytes_of(&f, p0.section), 3);
    let want0: Vec<f32> = pal_values(5, 3, 0.0)
        .iter()
        .map(|&v| bf16::from_f32(v).to_f32())
        .chain(vec![0.0; (16 - 5) * 3])
        .collect();
    assert_eq!(stored0, want0);
    let p1 = &p.palettes[1];
    assert_eq!((p1.k, p1.d, p1.bits, p1.elem), (200, 1, 8, 2));
    let stored1 = elems(p.bytes_of(&f, p1.section), 2);
    assert_eq!(stored1.len(), 256);
    for (i, v) in pal_values(200, 1, 1.0).iter().enumerate() {
        assert_eq!(stored1[i], f16::from_f32(*v).to_f32());
    }
    assert!(stored1[200..].iter().all(|&v| v == 0.0));

    // FisherZ: computed from the stored (rounded) entries.
    let (g, table) = fisher_z_table(&want0[..15], 5, 3).unwrap();
    assert_eq!(p.fishers[0].palette, 0);
    assert_eq!(p.fishers[0].gamma, g);
    let t0: Vec<i8> = p
        .bytes_of(&f, p.fishers[0].section)
        .iter()
        .map(|&x| x as i8)
        .collect();
    assert_eq!(t0, table);
    assert_eq!(p.fishers[1].palette, 1);
    assert_eq!(p.fishers[1].gamma, 0.25);
    assert_eq!(p.bytes_of(&f, p.fishers[1].section)[200], 5);

    // Basis.
    assert_eq!(p.bases[0].n_cols, 7);
    assert_eq!(
        elems(p.bytes_of(&f, p.bases[0].section), 1),
        pal_values(8, 7, 2.0)
    );

    // Encoded tensor record and its sections.
    let t = p.tensor("enc");
    assert_eq!((t.dtype, t.role, t.regime, t.encoding), (12, 11, 2, 1));
    assert_eq!(t.shape, vec![3, 7]);
    assert_eq!(t.stages, vec![0, 1]);
    assert_eq!(t.flags, 7);
    assert_eq!(t.scale_elem, 3);
    assert_eq!(t.basis, 0);
    assert_eq!(t.slot_scale, 0.125);
    assert_eq!(t.quality, [0.99, 0.9, -0.5, 0.05]);
    // Row stride: stage 0 ceil(3*4/8)=2, stage 1 7 bytes.
    let entry = p.bytes_of(&f, t.data);
    assert_eq!(entry.len(), 3 * 9);
    // Row 0 stage 0 codes 0,2,4 -> bytes 0x20, 0x04 (last high nibble 0).
    assert_eq!(&entry[0..2], &[0x20, 0x04]);
    assert_eq!(&entry[2..9], &[0, 37, 74, 111, 148, 185, 22]);
    let codes = read_codes(&f, &p, t);
    assert_eq!(
        codes[0],
        (0..9).map(|i| (i * 2 % 5) as u8).collect::<Vec<_>>()
    );
    assert_eq!(
        codes[1],
        (0..21).map(|i| (i * 37 % 200) as u8).collect::<Vec<_>>()
    );
    assert_eq!(elems(p.bytes_of(&f, t.scale), 3), vec![0.5, -1.25, 3.0]);
    let slot = p.bytes_of(&f, t.slot_l);
    assert_eq!(&slot[..8], &[1, 0xFE, 3, 0xFC, 5, 0xFA, 7, 0x80]);
    assert_eq!(&slot[8..16], &[0; 8]);
    assert_eq!(&slot[16..], &[127; 8]);

    // Raw tensors.
    let r = p.tensor("raw.i64");
    assert_eq!((r.dtype, r.encoding, r.regime), (9, 0, 0));
    assert_eq!(
        p.bytes_of(&f, r.data),
        (0u8..32).collect::<Vec<_>>().as_slice()
    );
    let e = p.tensor("empty");
    assert_eq!(p.sections[e.data as usize].len, 0);
    let s = p.tensor("scalar");
    assert_eq!(p.bytes_of(&f, s.data), &[199]);

    // Metadata sorted, last value wins.
    assert_eq!(
        p.metadata,
        vec![
            ("alpha".into(), "first".into()),
            ("zeta".into(), "replaced".into())
        ]
    );

    // Naive decode of a row by hand for one column, against the spec formula.
    let row1 = naive_decode_row(&f, &p, t, 1);
    let c = 4; // stage 0: j = 1, code = codes[0][3 + 1]; stage 1: code = codes[1][7 + 4]
    let b_stored = pal_values(8, 7, 2.0);
    let mut acc = want0[codes[0][4] as usize * 3 + 1] + stored1[codes[1][11] as usize];
    acc *= -1.25;
    let mut tt = 0.0f32;
    for i in 0..8 {
        tt += [0i8; 8][i] as f32 * b_stored[i * 7 + c];
    }
    acc += 0.125 * tt;
    assert_eq!(row1[c], acc);

    report.check().unwrap();
    assert_eq!(report.file_len, f.len() as u64);
}

#[test]
fn same_calls_give_identical_bytes() {
    let mut a = mem();
    build_full(&mut a);
    let mut b = mem();
    build_full(&mut b);
    let (fa, ra) = done(a);
    let (fb, rb) = done(b);
    assert_eq!(fa, fb);
    assert_eq!(ra, rb);
}

#[test]
fn empty_file_is_valid() {
    let (f, report) = done(mem());
    let p = spec_parse(&f);
    hhtld_format::parse(&f).expect("validator accepts the empty file");
    assert!(p.tensors.is_empty() && p.palettes.is_empty());
    // Header, STRINGS (empty), DIRECTORY (32 bytes, padded), table of 2.
    assert_eq!(f.len(), 64 + 64 + 2 * 32);
    assert_eq!(report.file_len, f.len() as u64);
    assert_eq!(report.bf16_bytes(), 0);
    assert_eq!(report.ratio(), None);
    report.check().unwrap();
}

#[test]
fn file_starts_at_the_writer_position() {
    // A file embedded after a prefix: offsets are relative to its start.
    let mut c = Cursor::new(Vec::new());
    c.write_all(b"prefix").unwrap();
    let mut w = Writer::new(c).unwrap();
    w.add_raw_tensor(RawTensor::passthrough("x", Dtype::U8, &[3], &[1, 2, 3]))
        .unwrap();
    let (c, r) = w.finish_into_inner().unwrap();
    assert_eq!(c.position(), 6 + r.file_len);
    let all = c.into_inner();
    assert_eq!(&all[..6], b"prefix");
    spec_parse(&all[6..]);
}

#[test]
fn report_adds_up_and_splits_shared_bytes() {
    let mut w = mem();
    let p = add_pal_values(&mut w, (3, 2, 4), ElemType::F32, 0.0);
    w.add_fisher_z(p).unwrap();
    let _unused = w
        .add_palette(PaletteSpec {
            k: 1,
            d: 1,
            bits: 4,
            elem: ElemType::F16,
            values: &[1.0],
        })
        .unwrap();
    for (i, regime) in [Regime::Index, Regime::Argmax, Regime::Argmax]
        .into_iter()
        .enumerate()
    {
        w.add_encoded_tensor(EncodedTensor::new(
            &format!("t{i}"),
            Dtype::F32,
            &[4, 4],
            Role::AttnQ,
            regime,
            &[Stage::new(p, &[0, 1, 2, 0, 1, 2, 0, 1])],
        ))
        .unwrap();
    }
    w.add_raw_tensor(RawTensor {
        header: TensorHeader {
            name: "r",
            dtype: Dtype::F32,
            shape: &[10],
            role: Role::Bias,
            regime: Regime::Passthrough,
        },
        bytes: &[0; 40],
    })
    .unwrap();
    w.set_metadata("k", "v").unwrap();
    let (f, rep) = done(w);
    let p = spec_parse(&f);
    rep.check().unwrap();
    assert_eq!(rep.file_len, f.len() as u64);

    // Every byte, counted independently from the parsed file.
    let payload: usize = p.sections.iter().map(|s| s.len).sum();
    let table = p.sections.len() * 32;
    assert_eq!(rep.table_bytes, table as u64);
    assert_eq!(rep.padding_bytes as usize, f.len() - 64 - table - payload);
    for k in SectionKind::ALL {
        let want: usize = p
            .sections
            .iter()
            .filter(|s| s.kind == k.to_raw())
            .map(|s| s.len)
            .sum();
        assert_eq!(rep.kind_bytes(*k), want as u64, "{k}");
    }

    // Palette (16 entries x 2 x 4 = 128 bytes) + FisherZ (9 bytes) shared by 3.
    let shared = 128 + 9;
    assert_eq!(rep.tensors.len(), 4);
    let shares: Vec<u64> = rep.tensors[..3].iter().map(|t| t.shared_bytes).collect();
    assert_eq!(shares.iter().sum::<u64>(), shared);
    // 128 = 42*3 + 2 and 9 = 3*3: the first two get an extra byte.
    assert_eq!(shares, vec![43 + 3, 43 + 3, 42 + 3]);
    for t in &rep.tensors[..3] {
        // 4 rows x ceil(2 sub-vectors x 4 bits / 8) = 4 bytes.
        assert_eq!(t.own_bytes, 4);
        assert_eq!(t.bf16_bytes(), 32);
    }
    assert_eq!(rep.tensors[3].own_bytes, 40);
    assert_eq!(rep.tensors[3].shared_bytes, 0);
    assert_eq!(rep.unused_shared, 16 * 2); // the unused f16 palette
    let argmax = rep
        .by_regime
        .iter()
        .find(|r| r.regime == Regime::Argmax)
        .unwrap();
    assert_eq!(argmax.tensors, 2);
    assert_eq!(
        argmax.bytes,
        rep.tensors[1].bytes() + rep.tensors[2].bytes()
    );
    assert_eq!(argmax.bf16_bytes(), 64);

    // JSON carries the same numbers; the table renders every tensor.
    let j = rep.to_json();
    assert_eq!(j["file_len"], f.len() as u64);
    assert_eq!(j["padding"], rep.padding_bytes);
    assert_eq!(j["tensors"][2]["shared_bytes"], 45);
    assert_eq!(j["by_kind"].as_array().unwrap().len(), rep.by_kind.len());
    let text = rep.to_string();
    for name in ["t0", "t1", "t2", "padding", "fisher_z", "argmax"] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn rejected_object_leaves_the_writer_unchanged() {
    let mut a = mem();
    let mut b = mem();
    for w in [&mut a, &mut b] {
        w.add_raw_tensor(RawTensor::passthrough("good", Dtype::U8, &[2], &[1, 2]))
            .unwrap();
    }
    // `a` also sees rejected calls of every kind; the files must be equal.
    let bad_pal = PaletteSpec {
        k: 2,
        d: 1,
        bits: 4,
        elem: ElemType::F32,
        values: &[1.0, f32::NAN],
    };
    assert!(a.add_palette(bad_pal).is_err());
    assert!(a.add_basis(2, ElemType::F32, &[0.0; 3]).is_err());
    let good_pal = PaletteSpec {
        values: &[1.0, 2.0],
        ..bad_pal
    };
    let p = a.add_palette(good_pal).unwrap();
    b.add_palette(good_pal).unwrap();
    assert!(a
        .add_encoded_tensor(EncodedTensor::new(
            "bad",
            Dtype::F32,
            &[1, 2],
            Role::Other,
            Regime::Index,
            &[Stage::new(p, &[0, 2])]
        ))
        .is_err());
    assert!(a
        .add_raw_tensor(RawTensor::passthrough("good", Dtype::U8, &[2], &[1, 2]))
        .is_err());
    assert!(a.add_fisher_z_table(p, 1.0, &[0, 1, 2, 0]).is_err());
    assert!(a.set_metadata("", "x").is_err());
    assert_eq!(done(a).0, done(b).0);
}

/// An output that fails after `ok` bytes.
struct Failing {
    inner: Cursor<Vec<u8>>,
    ok: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.inner.get_ref().len() + buf.len() > self.ok {
            return Err(io::Error::other("disk full"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Failing {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// A writer whose output fails after `ok` bytes.
fn failing_writer(ok: usize) -> Writer<Failing> {
    Writer::new(Failing {
        inner: Cursor::new(Vec::new()),
        ok,
    })
    .unwrap()
}

#[test]
fn io_error_poisons_the_writer() {
    let mut w = failing_writer(1000);
    let big = vec![7u8; 1 << 17];
    let e = w
        .add_raw_tensor(RawTensor::passthrough("big", Dtype::U8, &[1 << 17], &big))
        .unwrap_err();
    assert!(matches!(e, WriteError::Io { .. }), "{e}");
    let e = w.set_metadata("a", "b").unwrap_err();
    assert!(matches!(e, WriteError::Poisoned), "{e}");
    assert!(matches!(w.finish(), Err(WriteError::Poisoned)));
}

#[test]
fn io_error_at_finish_is_reported() {
    let mut w = failing_writer(200);
    w.add_raw_tensor(RawTensor::passthrough("x", Dtype::U8, &[100], &[0; 100]))
        .unwrap();
    assert!(matches!(w.finish(), Err(WriteError::Io { .. })));
}

#[test]
fn create_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.hhtld");
    let mut w = Writer::create(&dest).unwrap();
    build_full(&mut w);
    // While writing, only the temporary file exists.
    assert!(!dest.exists());
    let names = dir_entries(dir.path());
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(".m.hhtld.tmp-"), "{names:?}");
    let rep = w.finish().unwrap();
    assert_eq!(dir_entries(dir.path()), vec!["m.hhtld".to_owned()]);
    let f = std::fs::read(&dest).unwrap();
    assert_eq!(f.len() as u64, rep.file_len);
    spec_parse(&f);
    hhtld_format::parse(&f).unwrap();

    // Same calls into memory give the same bytes.
    let mut m = mem();
    build_full(&mut m);
    assert_eq!(done(m).0, f);
}

#[test]
fn failed_write_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.hhtld");
    {
        let mut w = Writer::create(&dest).unwrap();
        w.add_raw_tensor(RawTensor::passthrough("a", Dtype::U8, &[4], &[1, 2, 3, 4]))
            .unwrap();
        let e = w
            .add_raw_tensor(RawTensor::passthrough("b", Dtype::U16, &[4], &[1, 2, 3]))
            .unwrap_err();
        assert!(matches!(e, WriteError::Length { .. }));
        // Dropped here without finish.
    }
    assert!(!dest.exists());
    assert!(
        dir_entries(dir.path()).is_empty(),
        "{:?}",
        dir_entries(dir.path())
    );
}

#[test]
fn finish_replaces_an_existing_file_only_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.hhtld");
    std::fs::write(&dest, b"old contents").unwrap();
    {
        let w = Writer::create(&dest).unwrap();
        drop(w);
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"old contents");
    let w = Writer::create(&dest).unwrap();
    let rep = w.finish().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap().len() as u64, rep.file_len);
    assert_eq!(dir_entries(dir.path()), vec!["x.hhtld".to_owned()]);
}

#[test]
fn create_rejects_a_path_without_file_name() {
    assert!(matches!(
        Writer::create("/"),
        Err(WriteError::BadPath { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/f.hhtld");
    assert!(matches!(
        Writer::create(missing),
        Err(WriteError::Io { .. })
    ));
}

#[test]
fn max_k_palette_and_code_255_round_trip() {
    let mut w = mem();
    let p = byte_palette(&mut w, 0.0);
    w.add_fisher_z(p).unwrap();
    let codes: Vec<u8> = (0..=255).rev().collect();
    w.add_encoded_tensor(EncodedTensor::new(
        "w",
        Dtype::F64,
        &[2, 128],
        Role::LmHead,
        Regime::Index,
        &[Stage::new(p, &codes)],
    ))
    .unwrap();
    let (f, _) = done(w);
    let p = spec_parse(&f);
    hhtld_format::parse(&f).unwrap();
    let t = p.tensor("w");
    assert_eq!(read_codes(&f, &p, t)[0], codes);
    let row0 = naive_decode_row(&f, &p, t, 0);
    assert_eq!(row0, (128..256).rev().map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn report_from_layout_equals_the_writer_report() {
    let mut w = mem();
    build_full(&mut w);
    let (f, rep) = done(w);
    let layout = hhtld_format::parse(&f).unwrap();
    assert_eq!(SizeReport::from_layout(&layout, &f), rep);
}

#[test]
fn order_tensors_like_reorders_only_the_directory() {
    let mut w = mem();
    build_full(&mut w);
    w.order_tensors_like(["scalar", "empty"]).unwrap();
    let e = w.order_tensors_like(["nope"]).unwrap_err();
    assert!(matches!(e, WriteError::UnknownTensor { .. }), "{e}");
    let (f, rep) = done(w);
    let p = spec_parse(&f);
    hhtld_format::parse(&f).unwrap();
    let names: Vec<&str> = p.tensors.iter().map(|t| t.name.as_str()).collect();
    // Named first in the given order, the rest keep their order.
    assert_eq!(names, vec!["scalar", "empty", "enc", "raw.i64"]);
    let rep_names: Vec<&str> = rep.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(rep_names, names);
    rep.check().unwrap();
    // The sections are the same bytes as without reordering.
    let mut m = mem();
    build_full(&mut m);
    let (g, _) = done(m);
    let q = spec_parse(&g);
    assert_eq!(p.sections.len(), q.sections.len());
    for (a, b) in p
        .sections
        .iter()
        .zip(&q.sections)
        .filter(|(a, _)| a.kind != 1)
    {
        assert_eq!(&f[a.off..a.off + a.len], &g[b.off..b.off + b.len]);
    }
    let (t, u) = (p.tensor("enc"), q.tensor("enc"));
    assert_eq!((t.data, t.scale, t.slot_l), (u.data, u.scale, u.slot_l));
}

#[test]
fn sections_larger_than_the_write_chunk() {
    // Sections of many sizes around the 64 KiB buffering chunk, so buffered,
    // direct and mixed writes all happen; CRCs and layout must still hold.
    let mut w = mem();
    let wide: Vec<f32> = (0..16 * 40_000).map(|i| (i % 97) as f32 * 0.01).collect();
    let pw = w
        .add_palette(PaletteSpec {
            k: 16,
            d: 40_000,
            bits: 4,
            elem: ElemType::Bf16,
            values: &wide,
        })
        .unwrap();
    let p = byte_palette(&mut w, -128.0);
    let (rows, cols) = (300usize, 1000usize);
    let codes: Vec<u8> = (0..rows * cols).map(|i| (i * 7919 % 256) as u8).collect();
    let scales: Vec<f32> = (0..rows).map(|r| 1.0 + r as f32 / 64.0).collect();
    w.add_encoded_tensor(
        EncodedTensor::new(
            "big",
            Dtype::F32,
            &[rows as u64, cols as u64],
            Role::MlpUp,
            Regime::Argmax,
            &[Stage::new(p, &codes)],
        )
        .with_scale(ElemType::F32, &scales),
    )
    .unwrap();
    let wcodes: Vec<u8> = (0..3).map(|i| i as u8 * 5).collect();
    w.add_encoded_tensor(EncodedTensor::new(
        "wide",
        Dtype::F16,
        &[3, 40_000],
        Role::TokenEmbedding,
        Regime::Index,
        &[Stage::new(pw, &wcodes)],
    ))
    .unwrap();
    for (i, n) in [1usize, 65_535, 65_536, 65_537, 200_003]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        w.add_raw_tensor(RawTensor::passthrough(
            &format!("raw{i}"),
            Dtype::U8,
            &[n as u64],
            &bytes,
        ))
        .unwrap();
    }
    let (f, rep) = done(w);
    let p = spec_parse(&f);
    hhtld_format::parse(&f).unwrap();
    rep.check().unwrap();
    let file = hhtld_reader::HhtldFile::from_vec(f.clone()).unwrap();
    let h = file.view();
    h.verify().unwrap();
    let t = h.tensor_by_name("big").unwrap();
    let mut out = vec![0f32; cols];
    for r in [0, 137, rows - 1] {
        t.decode_row_into(r, &mut out).unwrap();
        let want: Vec<f32> = (0..cols)
            .map(|c| (((r * cols + c) * 7919 % 256) as f32 - 128.0) * scales[r])
            .collect();
        assert_eq!(out, want, "row {r}");
        assert_eq!(naive_decode_row(&f, &p, p.tensor("big"), r), want);
    }
    let tw = h.tensor_by_name("wide").unwrap();
    let mut out = vec![0f32; 40_000];
    tw.decode_row_into(2, &mut out).unwrap();
    let want: Vec<f32> = (0..40_000)
        .map(|c| bf16::from_f32(((10 * 40_000 + c) % 97) as f32 * 0.01).to_f32())
        .collect();
    assert_eq!(out, want);
    for (i, n) in [1usize, 65_535, 65_536, 65_537, 200_003]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        let t = h.tensor_by_name(&format!("raw{i}")).unwrap();
        assert_eq!(t.raw_bytes(), Some(bytes.as_slice()));
    }
}
