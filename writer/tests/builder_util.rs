//! Test helpers shared by the `builder*` tests (included with `#[path]`):
//! an independent parser written from `spec/hhtld.md` alone, which asserts
//! every layout rule it reads, and a naive reference row decoder (spec §4).
#![allow(dead_code)]

use half::{bf16, f16};

pub fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
pub fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
pub fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
pub fn f32_at(b: &[u8], o: usize) -> f32 {
    f32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn align64(x: usize) -> usize {
    x.div_ceil(64) * 64
}

/// Elements of type `elem` (1 f32, 2 f16, 3 bf16) converted to f32.
pub fn elems(b: &[u8], elem: u8) -> Vec<f32> {
    match elem {
        1 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        2 => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes(c.try_into().unwrap()).to_f32())
            .collect(),
        3 => b
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
            .collect(),
        e => panic!("bad elem {e}"),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sec {
    pub kind: u16,
    pub crc: u32,
    pub off: usize,
    pub len: usize,
}

#[derive(Debug, Clone)]
pub struct Pal {
    pub section: u32,
    pub d: usize,
    pub k: usize,
    pub bits: u8,
    pub elem: u8,
}

#[derive(Debug, Clone)]
pub struct Bas {
    pub section: u32,
    pub n_cols: usize,
    pub elem: u8,
}

#[derive(Debug, Clone)]
pub struct Fis {
    pub section: u32,
    pub palette: u32,
    pub gamma: f32,
}

#[derive(Debug, Clone)]
pub struct Ten {
    pub name: String,
    pub dtype: u8,
    pub shape: Vec<u64>,
    pub role: u8,
    pub regime: u8,
    pub encoding: u8,
    pub flags: u8,
    pub scale_elem: u8,
    pub data: u32,
    pub scale: u32,
    pub slot_l: u32,
    pub basis: u32,
    pub stages: Vec<u32>,
    pub slot_scale: f32,
    pub quality: [f32; 4],
}

impl Ten {
    pub fn n_rows_cols(&self) -> (usize, usize) {
        match self.shape.len() {
            0 => (1, 1),
            1 => (1, self.shape[0] as usize),
            _ => (
                self.shape[0] as usize,
                self.shape[1..].iter().product::<u64>() as usize,
            ),
        }
    }
}

#[derive(Debug)]
pub struct Parsed {
    pub sections: Vec<Sec>,
    pub table_offset: usize,
    pub palettes: Vec<Pal>,
    pub bases: Vec<Bas>,
    pub fishers: Vec<Fis>,
    pub tensors: Vec<Ten>,
    pub metadata: Vec<(String, String)>,
}

impl Parsed {
    pub fn bytes_of<'a>(&self, file: &'a [u8], section: u32) -> &'a [u8] {
        let s = self.sections[section as usize];
        &file[s.off..s.off + s.len]
    }
    pub fn tensor(&self, name: &str) -> &Ten {
        self.tensors.iter().find(|t| t.name == name).unwrap()
    }
}

/// Parses `b` following the spec and asserts every rule it touches.
pub fn spec_parse(b: &[u8]) -> Parsed {
    assert!(b.len() >= 64);
    assert_eq!(&b[0..8], b"\x89HHTLD\r\n");
    assert_eq!(u16_at(b, 8), 1, "major");
    assert_eq!(u16_at(b, 10), 0, "minor");
    assert_eq!(u32_at(b, 12), 0, "flags");
    assert_eq!(u64_at(b, 16) as usize, b.len(), "file_len");
    let table_offset = u64_at(b, 24) as usize;
    let n = u32_at(b, 32) as usize;
    assert!(b[36..60].iter().all(|&x| x == 0), "header reserved");
    assert_eq!(table_offset + 32 * n, b.len(), "table ends the file");
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..60]);
    h.update(&b[table_offset..]);
    assert_eq!(u32_at(b, 60), h.finalize(), "header crc");

    let mut sections = Vec::new();
    let mut expect_off = 64;
    for i in 0..n {
        let e = table_offset + 32 * i;
        let s = Sec {
            kind: u16_at(b, e),
            crc: u32_at(b, e + 4),
            off: u64_at(b, e + 8) as usize,
            len: u64_at(b, e + 16) as usize,
        };
        assert!((1..=10).contains(&s.kind), "kind");
        assert_eq!(u16_at(b, e + 2), 1, "REQUIRED flag");
        assert_eq!(u64_at(b, e + 24), 0, "entry reserved");
        assert_eq!(s.off, expect_off, "section {i} offset");
        assert_eq!(s.off % 64, 0);
        assert_eq!(
            crc32fast::hash(&b[s.off..s.off + s.len]),
            s.crc,
            "section {i} crc"
        );
        let end = s.off + s.len;
        assert!(
            b[end..align64(end)].iter().all(|&x| x == 0),
            "padding after {i}"
        );
        expect_off = align64(end);
        sections.push(s);
    }
    assert_eq!(table_offset, expect_off, "table offset");
    let count = |k| sections.iter().filter(|s| s.kind == k).count();
    assert_eq!(count(1), 1, "one DIRECTORY");
    assert_eq!(count(2), 1, "one STRINGS");
    assert!(count(3) <= 1, "at most one METADATA");

    let dir_s = *sections.iter().find(|s| s.kind == 1).unwrap();
    let dir = &b[dir_s.off..dir_s.off + dir_s.len];
    let str_s = *sections.iter().find(|s| s.kind == 2).unwrap();
    let strings = &b[str_s.off..str_s.off + str_s.len];
    let (nt, np, nb, nf) = (
        u32_at(dir, 0) as usize,
        u32_at(dir, 4) as usize,
        u32_at(dir, 8) as usize,
        u32_at(dir, 12) as usize,
    );
    assert!(dir[16..32].iter().all(|&x| x == 0));
    assert_eq!(
        dir.len(),
        32 + 32 * (np + nb + nf) + 160 * nt,
        "directory size"
    );
    let mut refs = vec![0u32; n];
    let mut reference = |sec: u32, kind: u16| {
        assert_eq!(sections[sec as usize].kind, kind, "section {sec} kind");
        refs[sec as usize] += 1;
    };
    // After the 32-byte header: palette, basis and FisherZ records (32
    // bytes each), then tensor records (160 bytes); the size check above
    // holds them all.
    let (pal_recs, rest) = dir[32..].split_at(32 * np);
    let (bas_recs, rest) = rest.split_at(32 * nb);
    let (fis_recs, ten_recs) = rest.split_at(32 * nf);
    let mut palettes = Vec::new();
    for r in pal_recs.chunks_exact(32) {
        let p = Pal {
            section: u32_at(r, 0),
            d: u32_at(r, 4) as usize,
            k: u16_at(r, 8) as usize,
            bits: r[10],
            elem: r[11],
        };
        assert!(r[12..].iter().all(|&x| x == 0));
        assert!(p.bits == 4 || p.bits == 8);
        assert!(p.k >= 1 && p.k <= 1 << p.bits);
        assert!(p.d >= 1 && p.d <= 65536);
        reference(p.section, 4);
        let esz = if p.elem == 1 { 4 } else { 2 };
        assert_eq!(
            sections[p.section as usize].len,
            (1 << p.bits) * p.d * esz,
            "palette len"
        );
        palettes.push(p);
    }
    let mut bases = Vec::new();
    for r in bas_recs.chunks_exact(32) {
        let ba = Bas {
            section: u32_at(r, 0),
            n_cols: u32_at(r, 4) as usize,
            elem: r[10],
        };
        assert_eq!(u16_at(r, 8), 8);
        assert!(r[11..].iter().all(|&x| x == 0));
        assert!(ba.n_cols >= 1);
        reference(ba.section, 5);
        let esz = if ba.elem == 1 { 4 } else { 2 };
        assert_eq!(sections[ba.section as usize].len, 8 * ba.n_cols * esz);
        bases.push(ba);
    }
    let mut fishers: Vec<Fis> = Vec::new();
    for r in fis_recs.chunks_exact(32) {
        let f = Fis {
            section: u32_at(r, 0),
            palette: u32_at(r, 4),
            gamma: f32_at(r, 8),
        };
        assert!(r[12..].iter().all(|&x| x == 0));
        assert!(f.gamma.is_finite() && f.gamma > 0.0);
        let k = palettes[f.palette as usize].k;
        assert_eq!(sections[f.section as usize].len, k * k);
        assert!(
            fishers.iter().all(|g| g.palette != f.palette),
            "one table per palette"
        );
        reference(f.section, 6);
        fishers.push(f);
    }
    let mut tensors: Vec<Ten> = Vec::new();
    for r in ten_recs.chunks_exact(160) {
        let (off, len) = (u32_at(r, 0) as usize, u32_at(r, 4) as usize);
        assert!((1..=4096).contains(&len));
        let name = std::str::from_utf8(&strings[off..off + len])
            .unwrap()
            .to_owned();
        assert!(tensors.iter().all(|t| t.name != name), "unique names");
        let ndims = r[9] as usize;
        assert!(ndims <= 8);
        let shape: Vec<u64> = (0..8).map(|i| u64_at(r, 16 + 8 * i)).collect();
        assert!(shape[ndims..].iter().all(|&s| s == 0));
        let n_stages = r[13] as usize;
        let stages: Vec<u32> = (0..4).map(|i| u32_at(r, 96 + 4 * i)).collect();
        assert!(stages[n_stages..].iter().all(|&s| s == u32::MAX));
        assert!(r[132..].iter().all(|&x| x == 0));
        let t = Ten {
            name,
            dtype: r[8],
            shape: shape[..ndims].to_vec(),
            role: r[10],
            regime: r[11],
            encoding: r[12],
            flags: r[14],
            scale_elem: r[15],
            data: u32_at(r, 80),
            scale: u32_at(r, 84),
            slot_l: u32_at(r, 88),
            basis: u32_at(r, 92),
            stages: stages[..n_stages].to_vec(),
            slot_scale: f32_at(r, 112),
            quality: [
                f32_at(r, 116),
                f32_at(r, 120),
                f32_at(r, 124),
                f32_at(r, 128),
            ],
        };
        let (n_rows, n_cols) = t.n_rows_cols();
        let dsize = [0, 1, 1, 1, 2, 2, 4, 1, 4, 8, 8, 2, 2, 4, 8, 1][t.dtype as usize];
        if t.encoding == 0 {
            assert_eq!(n_stages, 0);
            assert_eq!((t.flags, t.scale_elem), (0, 0));
            assert_eq!((t.scale, t.slot_l, t.basis), (u32::MAX, u32::MAX, u32::MAX));
            assert_eq!(t.slot_scale, 0.0);
            assert_eq!(t.quality, [0.0; 4]);
            reference(t.data, 10);
            assert_eq!(sections[t.data as usize].len, n_rows * n_cols * dsize);
        } else {
            assert_eq!(t.encoding, 1);
            assert!([11, 12, 13, 14].contains(&t.dtype));
            assert_ne!(t.regime, 0);
            assert!((1..=4).contains(&n_stages));
            assert_eq!(t.flags & !7, 0);
            let mut stride = 0;
            for &p in &t.stages {
                let p = &palettes[p as usize];
                assert!(p.d <= n_cols);
                stride += (n_cols.div_ceil(p.d) * p.bits as usize).div_ceil(8);
            }
            reference(t.data, 7);
            assert_eq!(sections[t.data as usize].len, n_rows * stride, "entry len");
            if t.flags & 1 != 0 {
                reference(t.scale, 9);
                let esz = if t.scale_elem == 1 { 4 } else { 2 };
                assert_eq!(sections[t.scale as usize].len, n_rows * esz);
            } else {
                assert_eq!((t.scale, t.scale_elem), (u32::MAX, 0));
            }
            if t.flags & 2 != 0 {
                reference(t.slot_l, 8);
                assert_eq!(bases[t.basis as usize].n_cols, n_cols);
                assert_eq!(sections[t.slot_l as usize].len, n_rows * 8);
                assert!(t.slot_scale.is_finite());
            } else {
                assert_eq!((t.slot_l, t.basis, t.slot_scale), (u32::MAX, u32::MAX, 0.0));
            }
            if t.flags & 4 != 0 {
                assert!(t.quality.iter().all(|q| q.is_finite()));
                assert!(t.quality[..3].iter().all(|q| (-1.0..=1.0).contains(q)));
                assert!(t.quality[3] >= 0.0);
            } else {
                assert_eq!(t.quality, [0.0; 4]);
            }
        }
        tensors.push(t);
    }
    for (i, s) in sections.iter().enumerate() {
        if s.kind >= 4 {
            assert_eq!(refs[i], 1, "section {i} referenced exactly once");
        }
    }

    let mut metadata = Vec::new();
    if let Some(m) = sections.iter().find(|s| s.kind == 3) {
        let m = &b[m.off..m.off + m.len];
        let mut o = 0;
        while o < m.len() {
            let kl = u32_at(m, o) as usize;
            let k = std::str::from_utf8(&m[o + 4..o + 4 + kl])
                .unwrap()
                .to_owned();
            o += 4 + kl;
            let vl = u32_at(m, o) as usize;
            let v = std::str::from_utf8(&m[o + 4..o + 4 + vl])
                .unwrap()
                .to_owned();
            o += 4 + vl;
            if let Some((prev, _)) = metadata.last() {
                assert!(prev < &k, "keys strictly increasing");
            }
            metadata.push((k, v));
        }
        assert_eq!(o, m.len());
    }
    Parsed {
        sections,
        table_offset,
        palettes,
        bases,
        fishers,
        tensors,
        metadata,
    }
}

/// Code `j` of one stage's packed bytes (spec §4 ENTRY layout).
pub fn code_at(codes: &[u8], bits: u8, j: usize) -> u8 {
    if bits == 8 {
        codes[j]
    } else {
        (codes[j / 2] >> ((j % 2) * 4)) & 0xF
    }
}

/// All codes of one tensor, per stage, row-major, read from the file.
pub fn read_codes(file: &[u8], p: &Parsed, t: &Ten) -> Vec<Vec<u8>> {
    let (n_rows, n_cols) = t.n_rows_cols();
    let entry = p.bytes_of(file, t.data);
    let cbs: Vec<usize> = t
        .stages
        .iter()
        .map(|&s| {
            let pal = &p.palettes[s as usize];
            (n_cols.div_ceil(pal.d) * pal.bits as usize).div_ceil(8)
        })
        .collect();
    let stride: usize = cbs.iter().sum();
    let mut out = vec![Vec::new(); t.stages.len()];
    for r in 0..n_rows {
        let mut o = r * stride;
        for (s, &pi) in t.stages.iter().enumerate() {
            let pal = &p.palettes[pi as usize];
            let n_sub = n_cols.div_ceil(pal.d);
            let row = &entry[o..o + cbs[s]];
            for j in 0..n_sub {
                out[s].push(code_at(row, pal.bits, j));
            }
            if pal.bits == 4 && n_sub % 2 == 1 {
                assert_eq!(row[cbs[s] - 1] >> 4, 0, "last high nibble is 0");
            }
            o += cbs[s];
        }
    }
    out
}

/// Naive decode of row `r` of tensor `t`, spec §4 "Decoding a PALETTE row".
pub fn naive_decode_row(file: &[u8], p: &Parsed, t: &Ten, r: usize) -> Vec<f32> {
    let (_, n_cols) = t.n_rows_cols();
    let codes = read_codes(file, p, t);
    let pals: Vec<Vec<f32>> = t
        .stages
        .iter()
        .map(|&s| {
            let pal = &p.palettes[s as usize];
            elems(p.bytes_of(file, pal.section), pal.elem)
        })
        .collect();
    let scale = (t.flags & 1 != 0).then(|| elems(p.bytes_of(file, t.scale), t.scale_elem)[r]);
    let slot = (t.flags & 2 != 0).then(|| {
        let ba = &p.bases[t.basis as usize];
        let coef: Vec<i8> = p.bytes_of(file, t.slot_l)[r * 8..r * 8 + 8]
            .iter()
            .map(|&x| x as i8)
            .collect();
        (coef, elems(p.bytes_of(file, ba.section), ba.elem))
    });
    let mut out = vec![0.0f32; n_cols];
    for (c, o) in out.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for (s, &pi) in t.stages.iter().enumerate() {
            let d = p.palettes[pi as usize].d;
            let n_sub = n_cols.div_ceil(d);
            let j = c / d;
            let code = codes[s][r * n_sub + j] as usize;
            acc += pals[s][code * d + c % d];
        }
        if let Some(sc) = scale {
            acc *= sc;
        }
        if let Some((coef, basis)) = &slot {
            let mut tt = 0.0f32;
            for i in 0..8 {
                tt += coef[i] as f32 * basis[i * n_cols + c];
            }
            acc += t.slot_scale * tt;
        }
        *o = acc;
    }
    out
}
