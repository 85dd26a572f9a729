//! The broken-rule cases of `rules.rs`: one entry per rule and case.

use super::*;

/// (rule, case description, file bytes) for every rule, several cases for most.
pub fn cases() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, &'static str, Vec<u8>)> = Vec::new();
    let m = rich_model();
    let good = m.build();
    let table_offset = |b: &[u8]| u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;

    v.push(("R-TRUNCATED", "63 bytes", good[..63].to_vec()));
    v.push(("R-TRUNCATED", "empty", Vec::new()));
    v.push(("R-MAGIC", "first byte", patched(|b| b[0] = 0x88)));
    v.push(("R-MAGIC", "last magic byte, short file", {
        let mut b = good[..64].to_vec();
        b[7] = 0;
        b
    }));
    v.push((
        "R-MAJOR",
        "major 2",
        patched(|b| header_mut(b).major = U16::new(2)),
    ));
    v.push((
        "R-MAJOR",
        "major 0",
        patched(|b| header_mut(b).major = U16::new(0)),
    ));
    v.push(("R-HEADER-CRC", "crc flipped", {
        let mut b = good.clone();
        b[60] ^= 1;
        b
    }));
    v.push(("R-HEADER-CRC", "table byte flipped", {
        let mut b = good.clone();
        let t = table_offset(&b);
        b[t + 4] ^= 0x40; // a section's crc32 field
        b
    }));
    v.push(("R-HEADER-CRC", "minor version changed without CRC", {
        let mut b = good.clone();
        b[10] = 1;
        b
    }));

    v.push((
        "R-RESERVED",
        "header flags",
        patched(|b| header_mut(b).flags = U32::new(1)),
    ));
    v.push((
        "R-RESERVED",
        "header reserved",
        patched(|b| header_mut(b).reserved[23] = 1),
    ));
    v.push((
        "R-RESERVED",
        "section entry reserved",
        patched(|b| entry_mut(b, 3).reserved = U64::new(1 << 63)),
    ));
    v.push(("R-RESERVED", "dir header reserved", {
        let mut m = m.clone();
        let mut d = m.directory_bytes();
        d[31] = 1;
        m.dir_override = Some(d);
        m.build()
    }));
    v.push((
        "R-RESERVED",
        "palette record",
        with(|m| m.palettes[1].reserved[0] = 1),
    ));
    v.push((
        "R-RESERVED",
        "basis record",
        with(|m| m.bases[0].reserved[20] = 1),
    ));
    v.push((
        "R-RESERVED",
        "fisher record",
        with(|m| m.fishers[0].reserved[5] = 1),
    ));
    v.push((
        "R-RESERVED",
        "tensor record",
        with(|m| m.tensors[2].reserved[27] = 1),
    ));

    v.push((
        "R-FILE-LEN",
        "cut inside the table",
        good[..good.len() - 1].to_vec(),
    ));
    v.push(("R-FILE-LEN", "cut to the header", good[..64].to_vec()));
    v.push(("R-FILE-LEN", "one byte appended", {
        let mut b = good.clone();
        b.push(0);
        b
    }));
    v.push((
        "R-FILE-LEN",
        "file_len off by one",
        patched(|b| {
            let h = header_mut(b);
            h.file_len = U64::new(h.file_len.get() + 1);
        }),
    ));
    v.push((
        "R-FILE-LEN",
        "bytes after the table, file_len matching",
        patched(|b| {
            b.extend_from_slice(&[0; 64]);
            let n = b.len() as u64;
            header_mut(b).file_len = U64::new(n);
        }),
    ));
    v.push((
        "R-TABLE-OFFSET",
        "table_offset points past the end",
        patched(|b| {
            header_mut(b).table_offset = U64::new(1 << 40);
        }),
    ));

    v.push((
        "R-TABLE-OFFSET",
        "64 zero bytes inserted before the table",
        {
            let mut b = good.clone();
            let t = table_offset(&b);
            b.splice(t..t, [0u8; 64]);
            let h = header_mut(&mut b);
            h.table_offset = U64::new(t as u64 + 64);
            h.file_len = U64::new(h.file_len.get() + 64);
            fix_header_crc(&mut b);
            b
        },
    ));
    v.push((
        "R-TABLE-OFFSET",
        "last section runs into the table",
        patched(|b| {
            let n = header_mut(b).section_count.get() as usize;
            let e = entry_mut(b, n - 1);
            e.length = U64::new(e.length.get() + 64);
        }),
    ));
    v.push(("R-TABLE-OFFSET", "no sections, table at 128", {
        let mut b = assemble(&[]);
        b.resize(128, 0);
        let h = header_mut(&mut b);
        h.table_offset = U64::new(128);
        h.file_len = U64::new(128);
        fix_header_crc(&mut b);
        b
    }));
    v.push((
        "R-TABLE-OFFSET",
        "last section length overflows",
        patched(|b| {
            let n = header_mut(b).section_count.get() as usize;
            entry_mut(b, n - 1).length = U64::new(u64::MAX);
        }),
    ));
    v.push((
        "R-TABLE-OFFSET",
        "table_offset inside the header",
        patched(|b| header_mut(b).table_offset = U64::new(32)),
    ));

    v.push((
        "R-LIMIT",
        "section_count over MAX_SECTIONS",
        patched(|b| header_mut(b).section_count = U32::new(MAX_SECTIONS as u32 + 1)),
    ));
    for (i, what) in [
        "tensor_count",
        "palette_count",
        "basis_count",
        "fisher_count",
    ]
    .iter()
    .enumerate()
    {
        let mut m = m.clone();
        let mut d = m.directory_bytes();
        d[4 * i..4 * i + 4].copy_from_slice(&(MAX_PALETTES as u32 + 1).to_le_bytes());
        m.dir_override = Some(d);
        v.push(("R-LIMIT", what, m.build()));
    }

    let unknown = |flags: u16| {
        let mut m = rich_model();
        m.secs.push(Sec {
            kind: 99,
            flags,
            data: vec![1, 2, 3],
        });
        m.build()
    };
    v.push((
        "R-SECTION-KIND",
        "kind 0",
        patched(|b| entry_mut(b, 4).kind = U16::new(0)),
    ));
    v.push((
        "R-SECTION-FLAGS",
        "known kind without REQUIRED",
        patched(|b| entry_mut(b, 4).flags = U16::new(0)),
    ));
    v.push((
        "R-SECTION-FLAGS",
        "reserved flag bit",
        patched(|b| entry_mut(b, 0).flags = U16::new(3)),
    ));
    v.push((
        "R-SECTION-FLAGS",
        "unknown kind, reserved bit",
        unknown(0x8000),
    ));
    v.push(("R-UNKNOWN-REQUIRED", "unknown kind 99 required", unknown(1)));

    v.push((
        "R-SECTION-OFFSET",
        "section 2 moved by 64",
        patched(|b| {
            let e = entry_mut(b, 2);
            e.offset = U64::new(e.offset.get() + 64);
        }),
    ));
    v.push((
        "R-SECTION-OFFSET",
        "section 0 at 0",
        patched(|b| entry_mut(b, 0).offset = U64::new(0)),
    ));

    v.push((
        "R-SECTION-OFFSET",
        "section 2 runs past the table: named by section 3",
        patched(|b| entry_mut(b, 2).length = U64::new(u64::MAX)),
    ));
    // Check order where one edit breaks two rules (matches spec/check_vectors.py).
    v.push((
        "R-LIMIT",
        "section_count over the limit with a wrong file_len",
        patched(|b| {
            let h = header_mut(b);
            h.section_count = U32::new(MAX_SECTIONS as u32 + 1);
            h.file_len = U64::new(1);
        }),
    ));
    v.push((
        "R-SECTION-KIND",
        "kind 0 and a reserved byte: kind first",
        patched(|b| {
            let e = entry_mut(b, 1);
            e.kind = U16::new(0);
            e.reserved = U64::new(1);
        }),
    ));
    v.push(("R-PADDING", "padding after the strings", {
        let mut b = good.clone();
        let (o, l) = section_span(&mut b, STRINGS as usize);
        assert_ne!(l % 64, 0);
        b[o + l] = 7;
        b
    }));
    v.push(("R-PADDING", "padding before the table", {
        let mut b = good.clone();
        let t = table_offset(&b);
        assert_eq!(b[t - 1], 0);
        b[t - 1] = 7;
        b
    }));

    v.push((
        "R-SECTION-COUNT",
        "two STRINGS",
        with(|m| {
            m.add_section(SectionKind::Strings, vec![]);
        }),
    ));
    let optional = |m: &mut Model, s: usize| {
        m.secs[s].kind = 77;
        m.secs[s].flags = 0;
    };
    v.push(("R-SECTION-COUNT", "no DIRECTORY", with(|m| optional(m, 0))));
    v.push(("R-SECTION-COUNT", "no STRINGS", with(|m| optional(m, 1))));
    v.push((
        "R-SECTION-COUNT",
        "two METADATA",
        with(|m| {
            m.add_section(SectionKind::Metadata, vec![]);
        }),
    ));

    v.push((
        "R-SECTION-REF",
        "palette section out of range",
        with(|m| m.palettes[0].section = U32::new(1000)),
    ));
    v.push((
        "R-SECTION-REF",
        "palette section NONE",
        with(|m| m.palettes[0].section = U32::new(NONE)),
    ));
    v.push((
        "R-SECTION-REF",
        "palette points at STRINGS",
        with(|m| m.palettes[0].section = U32::new(STRINGS)),
    ));
    v.push((
        "R-SECTION-REF",
        "two tensors share a RAW section",
        share_raw().build(),
    ));
    v.push((
        "R-SECTION-REF",
        "scale points at the ENTRY section",
        with(|m| m.tensors[0].scale = m.tensors[0].data),
    ));
    v.push((
        "R-SECTION-REF",
        "unreferenced RAW section",
        with(|m| {
            m.add_section(SectionKind::Raw, vec![1, 2, 3]);
        }),
    ));
    v.push((
        "R-SECTION-REF",
        "RAW tensor pointing at a PALETTE section",
        with(|m| m.tensors[1].data = m.palettes[0].section),
    ));

    v.push((
        "R-DIR-SIZE",
        "32 extra bytes",
        with(|m| m.dir_extra = vec![0; 32]),
    ));
    v.push(("R-DIR-SIZE", "one tensor too few", {
        let mut m = rich_model();
        let mut d = m.directory_bytes();
        d.truncate(d.len() - TENSOR_RECORD_LEN);
        m.dir_override = Some(d);
        m.build()
    }));
    v.push((
        "R-DIR-SIZE",
        "shorter than its header",
        with(|m| m.dir_override = Some(vec![0; 31])),
    ));
    v.push((
        "R-DIR-SIZE",
        "counts at their limits exceed MAX_DIRECTORY_BYTES",
        {
            let mut m = rich_model();
            let mut d = m.directory_bytes();
            for i in 0..4 {
                d[4 * i..4 * i + 4].copy_from_slice(&(MAX_TENSORS as u32).to_le_bytes());
            }
            m.dir_override = Some(d);
            m.build()
        },
    ));

    v.push(("R-ENUM", "palette elem 4", with(|m| m.palettes[0].elem = 4)));
    v.push(("R-ENUM", "basis elem 0", with(|m| m.bases[0].elem = 0)));
    v.push(("R-ENUM", "dtype 0", with(|m| m.tensors[1].dtype = 0)));
    v.push(("R-ENUM", "dtype 16", with(|m| m.tensors[1].dtype = 16)));
    v.push(("R-ENUM", "role 14", with(|m| m.tensors[0].role = 14)));
    v.push(("R-ENUM", "regime 3", with(|m| m.tensors[0].regime = 3)));
    v.push(("R-ENUM", "encoding 2", with(|m| m.tensors[0].encoding = 2)));
    v.push((
        "R-ENUM",
        "scale_elem 9",
        with(|m| m.tensors[0].scale_elem = 9),
    ));
    v.push((
        "R-ENUM",
        "scale_elem 0 with HAS_SCALE",
        with(|m| m.tensors[0].scale_elem = 0),
    ));

    v.push((
        "R-PALETTE-FIELDS",
        "bits 5",
        with(|m| m.palettes[1].bits = 5),
    ));
    v.push((
        "R-PALETTE-FIELDS",
        "k 0",
        with(|m| m.palettes[0].k = U16::new(0)),
    ));
    v.push((
        "R-PALETTE-FIELDS",
        "k 17 with bits 4",
        with(|m| m.palettes[1].k = U16::new(17)),
    ));
    v.push((
        "R-PALETTE-FIELDS",
        "k 257 with bits 8",
        with(|m| m.palettes[0].k = U16::new(257)),
    ));
    v.push((
        "R-PALETTE-FIELDS",
        "d 0",
        with(|m| m.palettes[0].d = U32::new(0)),
    ));
    v.push((
        "R-PALETTE-FIELDS",
        "d over MAX_PALETTE_D",
        with(|m| m.palettes[0].d = U32::new(MAX_PALETTE_D as u32 + 1)),
    ));
    v.push((
        "R-PALETTE-LEN",
        "one element short",
        with(|m| {
            let s = m.palettes[0].section.get() as usize;
            let n = m.secs[s].data.len();
            m.secs[s].data.truncate(n - 4);
        }),
    ));
    v.push((
        "R-PALETTE-LEN",
        "only k entries stored",
        with(|m| {
            let s = m.palettes[1].section.get() as usize;
            m.secs[s].data.truncate(3 * 2);
        }),
    ));
    v.push((
        "R-PALETTE-LEN",
        "elem changed to f32",
        with(|m| m.palettes[1].elem = 1),
    ));

    v.push((
        "R-BASIS-FIELDS",
        "rows 7",
        with(|m| m.bases[0].rows = U16::new(7)),
    ));
    v.push((
        "R-BASIS-FIELDS",
        "n_cols 0",
        with(|m| m.bases[0].n_cols = U32::new(0)),
    ));
    v.push((
        "R-BASIS-LEN",
        "one byte extra",
        with(|m| {
            let s = m.bases[0].section.get() as usize;
            m.secs[s].data.push(0);
        }),
    ));

    for (g, what) in [
        (0.0, "gamma 0"),
        (-0.5, "gamma negative"),
        (f32::NAN, "gamma NaN"),
        (f32::INFINITY, "gamma inf"),
    ] {
        v.push((
            "R-FISHER-GAMMA",
            what,
            with(|m| m.fishers[0].gamma = F32::new(g)),
        ));
    }
    v.push((
        "R-FISHER-LEN",
        "k x k minus one",
        with(|m| {
            let s = m.fishers[0].section.get() as usize;
            m.secs[s].data.pop();
        }),
    ));
    v.push((
        "R-FISHER-LEN",
        "table for a different k",
        with(|m| m.fishers[0].palette = U32::new(1)),
    ));
    v.push((
        "R-FISHER-DUP",
        "two tables for palette 0",
        with(|m| {
            m.fisher(0, 0.5, &[0; 25]);
        }),
    ));

    v.push((
        "R-INDEX",
        "fisher palette out of range",
        with(|m| m.fishers[0].palette = U32::new(2)),
    ));
    v.push((
        "R-INDEX",
        "stage palette out of range",
        with(|m| m.tensors[0].stage_palette[1] = U32::new(2)),
    ));
    v.push((
        "R-INDEX",
        "stage palette NONE inside n_stages",
        with(|m| m.tensors[0].stage_palette[0] = U32::new(NONE)),
    ));
    v.push((
        "R-INDEX",
        "basis out of range",
        with(|m| m.tensors[0].basis = U32::new(1)),
    ));

    v.push((
        "R-NAME-BOUNDS",
        "name_len 0",
        with(|m| m.tensors[1].name_len = U32::new(0)),
    ));
    v.push((
        "R-NAME-BOUNDS",
        "name past STRINGS",
        with(|m| m.tensors[1].name_off = U32::new(1000)),
    ));
    v.push((
        "R-NAME-BOUNDS",
        "name_off + name_len overflows u32",
        with(|m| {
            m.tensors[1].name_off = U32::new(u32::MAX);
            m.tensors[1].name_len = U32::new(2);
        }),
    ));
    v.push((
        "R-NAME-BOUNDS",
        "name_len over MAX_NAME_LEN",
        with(|m| {
            m.secs[STRINGS as usize]
                .data
                .resize(MAX_NAME_LEN + 16, b'x');
            m.tensors[1].name_off = U32::new(0);
            m.tensors[1].name_len = U32::new(MAX_NAME_LEN as u32 + 1);
        }),
    ));
    v.push((
        "R-NAME-UTF8",
        "0xFF in a name",
        with(|m| m.secs[STRINGS as usize].data[6] = 0xFF),
    ));
    v.push((
        "R-NAME-UTF8",
        "name splits a UTF-8 sequence",
        with(|m| {
            let (off, _) = m.add_name("é");
            m.tensors[2].name_off = U32::new(off);
            m.tensors[2].name_len = U32::new(1);
        }),
    ));
    v.push((
        "R-NAME-DUP",
        "two tensors called enc.w",
        with(|m| {
            m.tensors[2].name_off = m.tensors[0].name_off;
            m.tensors[2].name_len = m.tensors[0].name_len;
        }),
    ));

    v.push(("R-SHAPE", "ndims 9", with(|m| m.tensors[1].ndims = 9)));
    v.push((
        "R-SHAPE",
        "shape entry past ndims",
        with(|m| m.tensors[1].shape[7] = U64::new(1)),
    ));
    v.push((
        "R-SHAPE",
        "numel overflows",
        with(|m| {
            m.tensors[2].shape[0] = U64::new(1 << 33);
            m.tensors[2].shape[1] = U64::new(1 << 31);
        }),
    ));
    v.push((
        "R-SHAPE",
        "n_cols overflows",
        with(|m| {
            m.tensors[1].ndims = 3;
            m.tensors[1].shape = [
                U64::new(1),
                U64::new(u64::MAX),
                U64::new(2),
                U64::new(0),
                U64::new(0),
                U64::new(0),
                U64::new(0),
                U64::new(0),
            ];
        }),
    ));
    v.push((
        "R-RAW-LEN",
        "numel x dtype size overflows u64",
        with(|m| {
            m.tensors[2].shape[0] = U64::new(1 << 62);
            m.tensors[2].shape[1] = U64::new(1);
        }),
    ));

    let tf: Vec<(&'static str, Mutation)> = vec![
        (
            "RAW with n_stages 1",
            Box::new(|m| m.tensors[1].n_stages = 1),
        ),
        (
            "RAW with flags",
            Box::new(|m| m.tensors[1].flags = TENSOR_FLAG_QUALITY),
        ),
        (
            "RAW with scale_elem",
            Box::new(|m| m.tensors[1].scale_elem = 1),
        ),
        (
            "RAW with scale",
            Box::new(|m| m.tensors[1].scale = U32::new(0)),
        ),
        (
            "RAW with slot_l",
            Box::new(|m| m.tensors[1].slot_l = U32::new(3)),
        ),
        (
            "RAW with basis",
            Box::new(|m| m.tensors[1].basis = U32::new(0)),
        ),
        (
            "RAW with a stage palette",
            Box::new(|m| m.tensors[1].stage_palette[2] = U32::new(0)),
        ),
        (
            "RAW with slot_scale",
            Box::new(|m| m.tensors[1].slot_scale = F32::new(1.0)),
        ),
        (
            "RAW with slot_scale -0.0",
            Box::new(|m| m.tensors[1].slot_scale = F32::new(-0.0)),
        ),
        (
            "RAW with rel_fro",
            Box::new(|m| m.tensors[1].rel_fro = F32::new(0.5)),
        ),
        (
            "PALETTE with dtype I32",
            Box::new(|m| m.tensors[0].dtype = Dtype::I32.to_raw()),
        ),
        (
            "PALETTE PASSTHROUGH",
            Box::new(|m| m.tensors[0].regime = Regime::Passthrough.to_raw()),
        ),
        ("PALETTE flag bit 3", Box::new(|m| m.tensors[0].flags |= 8)),
        (
            "PALETTE flag bit 7",
            Box::new(|m| m.tensors[0].flags |= 0x80),
        ),
        (
            "PALETTE n_stages 0",
            Box::new(|m| m.tensors[0].n_stages = 0),
        ),
        (
            "PALETTE n_stages 5",
            Box::new(|m| m.tensors[0].n_stages = 5),
        ),
        (
            "stage_palette past n_stages",
            Box::new(|m| m.tensors[0].stage_palette[3] = U32::new(0)),
        ),
        (
            "scale_elem without HAS_SCALE",
            Box::new(|m| m.tensors[0].flags &= !TENSOR_FLAG_SCALE),
        ),
        (
            "scale without HAS_SCALE",
            Box::new(|m| {
                m.tensors[0].flags &= !TENSOR_FLAG_SCALE;
                m.tensors[0].scale_elem = 0;
            }),
        ),
        (
            "basis without HAS_SLOT_L",
            Box::new(|m| m.tensors[0].flags &= !TENSOR_FLAG_SLOT_L),
        ),
        (
            "slot_l without HAS_SLOT_L",
            Box::new(|m| {
                m.tensors[0].flags &= !TENSOR_FLAG_SLOT_L;
                m.tensors[0].basis = U32::new(NONE);
            }),
        ),
        (
            "slot_scale without HAS_SLOT_L",
            Box::new(|m| {
                m.tensors[0].flags &= !TENSOR_FLAG_SLOT_L;
                m.tensors[0].basis = U32::new(NONE);
                let s = m.tensors[0].slot_l.get() as usize;
                m.tensors[0].slot_l = U32::new(NONE);
                m.secs[s].kind = 200; // keep the section, as an unknown optional kind
                m.secs[s].flags = 0;
            }),
        ),
        (
            "slot_scale NaN",
            Box::new(|m| m.tensors[0].slot_scale = F32::new(f32::NAN)),
        ),
        (
            "slot_scale inf",
            Box::new(|m| m.tensors[0].slot_scale = F32::new(f32::NEG_INFINITY)),
        ),
    ];
    for (what, f) in tf {
        let mut m = rich_model();
        f(&mut m);
        v.push(("R-TENSOR-FIELDS", what, m.build()));
    }

    v.push((
        "R-RAW-LEN",
        "one byte short",
        with(|m| {
            let s = m.tensors[1].data.get() as usize;
            m.secs[s].data.pop();
        }),
    ));
    v.push((
        "R-RAW-LEN",
        "dtype changed to F16",
        with(|m| m.tensors[1].dtype = Dtype::F16.to_raw()),
    ));
    v.push((
        "R-PALETTE-FIT",
        "d = 16 > n_cols = 10",
        with(|m| {
            let p = m.palette(2, 16, 4, ElemType::F32, &[0.0; 32]);
            m.tensors[0].stage_palette[1] = U32::new(p);
        }),
    ));
    v.push((
        "R-PALETTE-FIT",
        "n_cols 0",
        with(|m| m.tensors[0].shape[1] = U64::new(0)),
    ));
    v.push((
        "R-ENTRY-LEN",
        "one byte short",
        with(|m| {
            let s = m.tensors[0].data.get() as usize;
            m.secs[s].data.pop();
        }),
    ));
    v.push((
        "R-ENTRY-LEN",
        "one row more",
        with(|m| m.tensors[0].shape[0] = U64::new(4)),
    ));
    v.push((
        "R-SCALE-LEN",
        "f32 instead of f16",
        with(|m| m.tensors[0].scale_elem = 1),
    ));
    v.push((
        "R-BASIS-FIT",
        "basis of 11 columns",
        with(|m| {
            let b = m.basis(11, ElemType::F32, &[0.0; 88]);
            m.tensors[0].basis = U32::new(b);
        }),
    ));
    v.push((
        "R-SLOT-L-LEN",
        "8 bytes missing",
        with(|m| {
            let s = m.tensors[0].slot_l.get() as usize;
            m.secs[s].data.truncate(16);
        }),
    ));
    for (what, q) in [
        ("rho_median 1.5", [1.5, 0.9, 0.8, 0.1]),
        ("rho_p5 -1.01", [0.9, -1.01, 0.8, 0.1]),
        ("rho_min NaN", [0.9, 0.9, f32::NAN, 0.1]),
        ("rel_fro negative", [0.9, 0.9, 0.8, -0.1]),
        ("rel_fro inf", [0.9, 0.9, 0.8, f32::INFINITY]),
    ] {
        v.push(("R-QUALITY", what, with(|m| m.with_quality(0, q))));
    }
    v.push((
        "R-QUALITY",
        "values without HAS_QUALITY",
        with(|m| m.tensors[0].flags &= !TENSOR_FLAG_QUALITY),
    ));

    let meta = |raw: Vec<u8>| {
        with(|m| {
            let s = sec_of(m, SectionKind::Metadata);
            m.secs[s].data = raw;
        })
    };
    let entry = |k: &[u8], v: &[u8]| {
        let mut b = (k.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(k);
        b.extend_from_slice(&(v.len() as u32).to_le_bytes());
        b.extend_from_slice(v);
        b
    };
    v.push((
        "R-METADATA",
        "keys out of order",
        meta([entry(b"b", b""), entry(b"a", b"")].concat()),
    ));
    v.push((
        "R-METADATA",
        "duplicate key",
        meta([entry(b"a", b"1"), entry(b"a", b"2")].concat()),
    ));
    v.push(("R-METADATA", "empty key", meta(entry(b"", b"x"))));
    v.push(("R-METADATA", "key not UTF-8", meta(entry(b"\xC3", b"x"))));
    v.push(("R-METADATA", "value runs past the end", {
        let mut b = entry(b"k", b"abc");
        b.pop();
        meta(b)
    }));
    v.push((
        "R-METADATA",
        "trailing 3 bytes",
        meta([entry(b"k", b"v"), vec![0, 0, 0]].concat()),
    ));
    v.push(("R-METADATA", "key_len over MAX_NAME_LEN", {
        let k = vec![b'k'; MAX_NAME_LEN + 1];
        meta(entry(&k, b""))
    }));
    v.push(("R-METADATA", "value_len over MAX_METADATA_BYTES", {
        let mut b = entry(b"k", b"");
        let n = b.len();
        b[n - 4..].copy_from_slice(&(MAX_METADATA_BYTES as u32 + 1).to_le_bytes());
        meta(b)
    }));
    v
}
