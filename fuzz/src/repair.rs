//! Recomputes a file's checksums so that fuzzed headers, tables and
//! directories get past the CRC checks and reach the rules behind them.
//! Without this nearly every mutation of a seed stops at R-HEADER-CRC.

/// Little-endian u64 at `at`, if in bounds.
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Rewrites every section CRC whose range lies in the file, then the
/// header CRC, wherever the header's table fields point inside the file.
/// Leaves anything else unchanged; returns whether the header CRC was set.
pub fn fix_crcs(b: &mut [u8]) -> bool {
    if b.len() < 64 {
        return false;
    }
    let (Some(table), Some(count)) = (u64_at(b, 24), b.get(32..36)) else {
        return false;
    };
    let count = u64::from(u32::from_le_bytes(count.try_into().expect("4 bytes")));
    let Some(end) = count
        .checked_mul(32)
        .and_then(|n| n.checked_add(table))
        .filter(|&e| e <= b.len() as u64 && table >= 64)
    else {
        return false;
    };
    let (table, end) = (table as usize, end as usize);
    for e in (table..end).step_by(32) {
        let (Some(off), Some(len)) = (u64_at(b, e + 8), u64_at(b, e + 16)) else {
            continue;
        };
        let Some(range) = off
            .checked_add(len)
            .filter(|&x| x <= b.len() as u64)
            .map(|x| off as usize..x as usize)
        else {
            continue;
        };
        let crc = crc32fast::hash(&b[range]);
        b[e + 4..e + 8].copy_from_slice(&crc.to_le_bytes());
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..60]);
    h.update(&b[table..end]);
    let crc = h.finalize();
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    true
}
