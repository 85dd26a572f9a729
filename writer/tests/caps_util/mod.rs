//! Helpers of the builder cap tests (`builder_caps*.rs`): in-memory
//! writers, a validity check after a rejected call, and small objects.
#![allow(dead_code, unused_imports)]

pub use std::io::Cursor;

pub use hhtld_format::limits::{
    MAX_DIRECTORY_BYTES, MAX_METADATA_BYTES, MAX_NAME_LEN, MAX_PALETTES, MAX_PALETTE_D,
    MAX_SECTIONS, MAX_TENSORS,
};
pub use hhtld_format::{Dtype, ElemType, Regime, Role};
pub use hhtld_writer::builder::{
    BasisId, EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, Writer,
    WriterLimits,
};
pub use hhtld_writer::error::WriteError;

pub type Mem = Writer<Cursor<Vec<u8>>>;

pub fn mem() -> Mem {
    Writer::new(Cursor::new(Vec::new())).unwrap()
}

pub fn limited(l: WriterLimits) -> Mem {
    Writer::with_limits(Cursor::new(Vec::new()), l).unwrap()
}

/// Finishes and runs the validator: a rejected call never spoils the file.
pub fn still_valid(w: Mem) {
    let (c, _) = w.finish_into_inner().unwrap();
    hhtld_format::parse(c.get_ref()).expect("file valid after a rejected call");
}

pub fn pal(k: usize, d: usize, bits: u8) -> PaletteSpec<'static> {
    let v: &'static [f32] = Vec::leak((0..k * d).map(|i| i as f32 * 0.5).collect());
    PaletteSpec {
        k,
        d,
        bits,
        elem: ElemType::F32,
        values: v,
    }
}

pub fn raw<'a>(name: &'a str, dtype: Dtype, shape: &'a [u64], bytes: &'a [u8]) -> RawTensor<'a> {
    RawTensor::passthrough(name, dtype, shape, bytes)
}

pub fn enc<'a>(name: &'a str, shape: &'a [u64], stages: &'a [Stage<'a>]) -> EncodedTensor<'a> {
    EncodedTensor::new(name, Dtype::F32, shape, Role::Other, Regime::Argmax, stages)
}
