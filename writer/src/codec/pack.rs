//! Code packing into the ENTRY layout (spec §4 "ENTRY layout and code packing").

/// Packs one stage of one row: `codes` (one per sub-vector, each `< 2^bits`)
/// into `out`, which must hold `ceil(codes.len() * bits / 8)` bytes.
/// `bits = 8`: one byte per code. `bits = 4`: code `j` in the low nibble of
/// byte `j / 2` when `j` is even, the high nibble when odd; an odd count
/// leaves the last high nibble 0. Any other width writes nothing.
pub fn pack_stage_row(codes: &[u8], bits: u8, out: &mut [u8]) {
    match bits {
        8 => {
            for (o, &c) in out.iter_mut().zip(codes) {
                *o = c;
            }
        }
        4 => {
            for (o, pair) in out.iter_mut().zip(codes.chunks(2)) {
                let lo = pair[0] & 0x0F;
                let hi = pair.get(1).map_or(0, |&c| c & 0x0F);
                *o = lo | (hi << 4);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hhtld_format::decode::{code_bytes, unpack_code};

    #[test]
    fn round_trips_through_the_format_unpacker() {
        for bits in [4u8, 8] {
            for n in 0..9usize {
                let codes: Vec<u8> = (0..n).map(|j| ((j * 7 + 3) % (1 << bits)) as u8).collect();
                let len = if n == 0 {
                    0
                } else {
                    code_bytes(n, 1, bits).unwrap()
                };
                let mut out = vec![0xAAu8; len];
                pack_stage_row(&codes, bits, &mut out);
                for (j, &c) in codes.iter().enumerate() {
                    assert_eq!(unpack_code(&out, bits, j), Some(c));
                }
                if bits == 4 && n % 2 == 1 {
                    assert_eq!(out[n / 2] >> 4, 0, "last high nibble must be zero");
                }
            }
        }
    }
}
