//! Every hard limit of the format, in one place. `spec/hhtld.md` §6 says what
//! each one protects; the writer and the reader both enforce them.

/// Largest palette: codes are at most 8 bits wide.
pub const MAX_PALETTE_K: usize = 256;
/// Code widths the format defines packings for.
pub const CODE_BITS: [u8; 2] = [4, 8];
/// Dimensions of a SlotL residual: a row's coefficients are `[i8; 8]`.
pub const SLOT_L_DIMS: usize = 8;
/// Most residual stages a tensor may sum.
pub const MAX_STAGES: usize = 4;
/// Most dimensions a tensor shape may have.
pub const MAX_DIMS: usize = 8;
/// Longest tensor name or metadata key, in bytes.
pub const MAX_NAME_LEN: usize = 4096;
/// Most tensors in one file.
pub const MAX_TENSORS: usize = 1 << 20;
/// Most palette (and basis, and FisherZ) records in one file.
pub const MAX_PALETTES: usize = 1 << 20;
/// Most sections in one file.
pub const MAX_SECTIONS: usize = 1 << 23;
/// Largest directory section, in bytes.
pub const MAX_DIRECTORY_BYTES: u64 = 1 << 28;
/// Widest palette entry.
pub const MAX_PALETTE_D: usize = 1 << 16;
/// Largest metadata value, in bytes.
pub const MAX_METADATA_BYTES: usize = 1 << 24;
/// Alignment of every section start.
pub const ALIGN: u64 = 64;
