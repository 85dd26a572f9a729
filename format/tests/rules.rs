//! Every validation rule of spec/hhtld.md: a valid file with exactly one rule
//! broken must be rejected with that rule's error kind.

mod common;
mod rules_cases;

use std::collections::BTreeSet;

use common::*;
use hhtld_format::error::{Place, RefProblem, RULES};
use hhtld_format::layout::*;
use hhtld_format::limits::*;
use hhtld_format::{parse, Dtype, ElemType, Encoding, FormatError, Regime, Role, SectionKind};
use rules_cases::cases;
use zerocopy::little_endian::{F32, U16, U32, U64};

/// Tensor 1 (`enc.b`) made I64 [2, 2] and pointed at tensor 2's RAW section.
/// Its own section becomes unreferenced too, but sharing is found first.
fn share_raw() -> Model {
    let mut m = rich_model();
    m.tensors[1].data = m.tensors[2].data;
    m.tensors[1].dtype = Dtype::I64.to_raw();
    m.tensors[1].ndims = 2;
    m.tensors[1].shape = m.tensors[2].shape;
    m
}

type Mutation = Box<dyn Fn(&mut Model)>;

fn rich_model() -> Model {
    rich().0
}

/// A mutated copy of the rich model, built.
fn with(f: impl FnOnce(&mut Model)) -> Vec<u8> {
    let mut m = rich_model();
    f(&mut m);
    m.build()
}

/// The rich file with its bytes patched by `f`, then the header CRC fixed.
fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = rich_model().build();
    f(&mut b);
    fix_header_crc(&mut b);
    b
}

/// Index of the first section of `kind` in the rich model.
fn sec_of(m: &Model, kind: SectionKind) -> usize {
    m.secs.iter().position(|s| s.kind == kind.to_raw()).unwrap()
}

fn expect(rule: &str, bytes: &[u8]) -> FormatError {
    expect_case(rule, "", bytes)
}

fn expect_case(rule: &str, what: &str, bytes: &[u8]) -> FormatError {
    let e = match parse(bytes) {
        // Open must not read padding: it is verification's (spec §7).
        Ok(l) if rule == "R-PADDING" => match l.check_deferred(bytes) {
            Err(e) => e,
            Ok(()) => panic!("{what}: the padding passed verification"),
        },
        Ok(_) => panic!("{rule} / {what}: the file parsed"),
        Err(e) if e.rule() == "R-PADDING" => panic!("{what}: open read the padding: {e}"),
        Err(e) => e,
    };
    assert_eq!(e.rule(), rule, "{what}: wrong rule; error was: {e}");
    let kind = RULES.iter().find(|(r, _)| *r == rule).unwrap().1;
    assert_eq!(e.kind(), kind);
    // The kind is the variant name.
    assert!(format!("{e:?}").starts_with(kind), "{e:?}");
    // One line, ending with the rule id.
    let msg = e.to_string();
    assert!(msg.ends_with(&format!("[{rule}]")), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    e
}

#[test]
fn the_rich_file_is_valid() {
    let (m, _) = rich();
    let b = m.build();
    let l = parse(&b).unwrap();
    assert_eq!(l.version, (1, 0));
    assert_eq!(l.file_len, b.len());
    assert_eq!(l.palettes.len(), 2);
    assert_eq!(l.bases.len(), 1);
    assert_eq!(l.fishers.len(), 1);
    assert_eq!(l.palettes[0].fisher, Some(0));
    assert_eq!(l.palettes[1].fisher, None);
    assert_eq!(l.tensors.len(), 3);
    let t = &l.tensors[0];
    assert_eq!(l.tensor_name(&b, 0), Some("enc.w"));
    assert_eq!((t.n_rows, t.n_cols, t.numel), (3, 10, 30));
    assert_eq!(t.encoding, Encoding::Palette);
    assert_eq!(t.role, Role::AttnQ);
    let st = t.stages();
    assert_eq!(st.len(), 2);
    assert_eq!(
        (st[0].d, st[0].bits, st[0].code_offset, st[0].cb),
        (4, 8, 0, 3)
    );
    assert_eq!(
        (st[1].d, st[1].bits, st[1].code_offset, st[1].cb),
        (1, 4, 3, 5)
    );
    assert_eq!(t.stride, 8);
    assert_eq!(t.data.len(), 24);
    assert_eq!(t.scale.as_ref().unwrap().elem, ElemType::F16);
    assert_eq!(t.slot.as_ref().unwrap().slot_scale, 0.03125);
    assert_eq!(t.quality.unwrap().rho_p5, 0.95);
    assert_eq!(l.tensors[2].dims(), &[2, 2]);
    assert_eq!(l.tensors[2].dtype, Dtype::I64);
    assert_eq!(l.tensor_index(&b, "ids"), Some(2));
    assert_eq!(l.tensor_index(&b, "enc.b"), Some(1));
    assert_eq!(l.tensor_index(&b, "enc"), None);
    assert_eq!(l.metadata_entries.len(), 2);
    assert_eq!(l.metadata_entry(&b, 1).unwrap().unwrap(), ("b", "two"));
    assert_eq!(l.metadata_raw(&b, 1), Some(("b", &b"two"[..])));
    assert!(l.metadata_entry(&b, 2).is_none());
    for i in 0..l.sections.len() {
        assert!(l.section_crc_ok(&b, i));
    }
    assert!(!l.section_crc_ok(&b, l.sections.len()));
}

#[test]
fn a_file_with_no_tensors_parses() {
    let b = Model::new().build();
    let l = parse(&b).unwrap();
    assert!(l.tensors.is_empty() && l.palettes.is_empty());
    assert_eq!(l.sections.len(), 2);
    assert_eq!(l.metadata, None);
    assert_eq!(l.table_offset, 128); // directory header 32 bytes at 64, strings empty at 128
}

#[test]
fn a_file_with_no_sections_is_missing_its_directory() {
    let b = assemble(&[]);
    assert_eq!(b.len(), 64);
    let e = expect("R-SECTION-COUNT", &b);
    assert!(matches!(
        e,
        FormatError::SectionCount {
            kind: SectionKind::Directory,
            count: 0
        }
    ));
}

#[test]
fn unknown_optional_sections_are_skipped() {
    let mut m = rich_model();
    m.secs.insert(
        2,
        Sec {
            kind: 4242,
            flags: 0,
            data: vec![9; 100],
        },
    );
    // Every section index >= 2 moved by one.
    let shift = |v: &mut U32| {
        if v.get() != NONE && v.get() >= 2 {
            *v = U32::new(v.get() + 1)
        }
    };
    for p in &mut m.palettes {
        shift(&mut p.section);
    }
    for p in &mut m.bases {
        shift(&mut p.section);
    }
    for p in &mut m.fishers {
        shift(&mut p.section);
    }
    for t in &mut m.tensors {
        shift(&mut t.data);
        shift(&mut t.scale);
        shift(&mut t.slot_l);
    }
    let b = m.build();
    let l = parse(&b).unwrap();
    assert_eq!(l.sections[2].kind, None);
    assert_eq!(l.sections[2].raw_kind, 4242);
    assert_eq!(l.tensors.len(), 3);
}

#[test]
fn every_rule_is_enforced() {
    let mut seen = BTreeSet::new();
    for (rule, what, bytes) in cases() {
        let e = expect_case(rule, what, &bytes);
        println!("{rule} / {what}: {e}");
        seen.insert(rule);
    }
    let all: BTreeSet<&str> = RULES.iter().map(|(r, _)| *r).collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "rules without a case: {missing:?}");
    assert_eq!(all.len(), RULES.len(), "RULES lists a rule twice");
}

#[test]
fn errors_say_where() {
    let e = expect(
        "R-ENTRY-LEN",
        &with(|m| {
            let s = m.tensors[0].data.get() as usize;
            m.secs[s].data.pop();
        }),
    );
    assert_eq!(
        e.to_string(),
        "tensor 0 (\"enc.w\"): ENTRY section 6 has 23 bytes, expected 24 (n_rows 3 x stride 8) [R-ENTRY-LEN]"
    );
    let e = expect("R-SECTION-REF", &share_raw().build());
    assert!(
        matches!(
            &e,
            FormatError::SectionRef { section: 10, problem: RefProblem::Shared { first: Place::Tensor(t), first_field: "data", .. } }
                if t.name.as_deref() == Some("enc.b")
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "tensor 2 (\"ids\"): data refers to section 10, which tensor 1 (\"enc.b\") already references in data [R-SECTION-REF]"
    );
    let e = expect("R-RESERVED", &with(|m| m.tensors[2].reserved[27] = 1));
    let FormatError::ReservedNotZero { offset, .. } = e else {
        unreachable!()
    };
    // tensor 2's last reserved byte: directory at 64, header 32, 2 palettes + basis + fisher, 3 x 160.
    assert_eq!(offset, 64 + 32 + 4 * 32 + 3 * 160 - 1);
}

#[test]
fn truncation_at_every_length_is_an_error() {
    let b = rich_model().build();
    for n in 0..b.len() {
        let e = parse(&b[..n]).unwrap_err();
        let want = if n < 64 { "R-TRUNCATED" } else { "R-FILE-LEN" };
        assert_eq!(e.rule(), want, "length {n}: {e}");
    }
}

/// Spec §1: any single-byte change is caught by open or by verification.
#[test]
fn every_single_byte_change_is_caught() {
    let b = rich_model().build();
    for i in 0..b.len() {
        for x in [0x01u8, 0x80] {
            let mut c = b.clone();
            c[i] ^= x;
            if let Ok(l) = parse(&c) {
                let bad = (0..l.sections.len())
                    .filter(|&s| !l.section_crc_ok(&c, s))
                    .count();
                // A section's byte fails its CRC; a padding byte fails
                // verification's padding check; never both.
                let padding = l.check_padding(&c).is_err();
                assert_eq!(
                    bad + usize::from(padding),
                    1,
                    "flip of byte {i} by {x:#x}: {bad} CRCs fail, padding check failed: {padding}"
                );
            }
        }
    }
}

#[test]
fn name_lookup_and_duplicates_over_many_tensors() {
    let mut m = Model::new();
    for i in 0..500u32 {
        m.raw_tensor(&format!("layer.{i}.w"), Dtype::U8, &[1], vec![i as u8]);
    }
    let b = m.build();
    let l = parse(&b).unwrap();
    for i in 0..500 {
        assert_eq!(l.tensor_index(&b, &format!("layer.{i}.w")), Some(i));
    }
    assert_eq!(l.tensor_index(&b, "layer.500.w"), None);
    assert_eq!(l.tensor_index(&b, ""), None);

    // Names x, y, x, y: the first repeat in index order is tensor 2 of tensor 0.
    let mut m = Model::new();
    for name in ["x", "y", "x", "y"] {
        m.raw_tensor(name, Dtype::U8, &[1], vec![0]);
    }
    let e = expect("R-NAME-DUP", &m.build());
    assert!(
        matches!(&e, FormatError::NameDup { tensor: 2, first: 0, name } if name == "x"),
        "{e:?}"
    );
}

#[test]
fn a_metadata_value_that_is_not_utf8_is_reported_when_read_not_at_open() {
    // Open reads no value (spec §5): the file parses, the bad value is
    // R-METADATA at its first bad byte when read or verified, and the good
    // one still reads.
    let mut m = rich_model();
    let s = sec_of(&m, SectionKind::Metadata);
    let mut raw = Vec::new();
    for (k, v) in [(&b"a"[..], &b"ok"[..]), (b"b", b"x\xFFy")] {
        raw.extend_from_slice(&(k.len() as u32).to_le_bytes());
        raw.extend_from_slice(k);
        raw.extend_from_slice(&(v.len() as u32).to_le_bytes());
        raw.extend_from_slice(v);
    }
    m.secs[s].data = raw;
    let b = m.build();
    let l = parse(&b).expect("open does not read values");
    let base = l.sections[s].offset as u64;
    assert_eq!(l.metadata_entry(&b, 0).unwrap().unwrap(), ("a", "ok"));
    assert_eq!(l.metadata_raw(&b, 1), Some(("b", &b"x\xFFy"[..])));
    let e = l.metadata_entry(&b, 1).unwrap().unwrap_err();
    // Entry 1's value starts after entry 0 (4 + 1 + 4 + 2) and its key
    // (4 + 1) and length (4); the bad byte is its second.
    let at = base + 11 + 5 + 4 + 1;
    assert_eq!((e.rule(), e.offset()), ("R-METADATA", Some(at)), "{e}");
    assert!(
        matches!(e, FormatError::BadMetadata { entry: 1, .. }),
        "{e:?}"
    );
    assert_eq!(l.check_metadata_values(&b).unwrap_err(), e);
}
