//! FisherZ tables (spec §4 FisherRecord): the pairwise correlation of a
//! palette's entries, Fisher z-transformed and quantised to `i8`.
//!
//! The spec fixes the computation for writers: `r(i, j)` is the Pearson
//! correlation of entries `i` and `j` as stored (after rounding to the
//! palette's element type), 0 when either entry has zero variance;
//! `z = atanh(clamp(r, -0.999, 0.999))`; `gamma = max |z| / 127` (`1/127`
//! when that is 0); `q = round_half_away_from_zero(z / gamma)`.
//!
//! ```
//! use hhtld_writer::fisher::fisher_z_table;
//! // Three entries of width 2: the first two are perfectly correlated,
//! // the third is constant (zero variance).
//! let entries = [0.0, 1.0, 2.0, 4.0, 5.0, 5.0];
//! let (gamma, table) = fisher_z_table(&entries, 3, 2).unwrap();
//! assert!(gamma > 0.0);
//! assert_eq!(table[0 * 3 + 1], 127); // r = 1 clamps to 0.999, the largest |z|
//! assert_eq!(table[0 * 3 + 2], 0); // zero variance
//! assert_eq!(table[2 * 3 + 2], 0);
//! ```

use hhtld_format::limits::MAX_PALETTE_K;

use crate::error::WriteError;

/// The clamp applied to correlations before `atanh`, so `z` stays finite.
pub const R_CLAMP: f64 = 0.999;
/// Largest quantised magnitude.
pub const Q_MAX: i8 = 127;

/// Computes the FisherZ table of `k` entries of width `d`, given entry-major
/// (`entries[e * d + j]`), exactly as spec §4 prescribes for writers.
///
/// Pass the values as stored, i.e. already rounded to the palette's element
/// type. Returns `(gamma, table)` with `table[i * k + j]` in `[-127, 127]`,
/// symmetric. Arithmetic is in f64; `gamma` is rounded to f32 at the end.
///
/// # Errors
/// [`WriteError::FisherInput`] when `k` is 0 or over `MAX_PALETTE_K`, `d` is
/// 0, `entries.len() != k * d`, or a value is not finite.
pub fn fisher_z_table(entries: &[f32], k: usize, d: usize) -> Result<(f32, Vec<i8>), WriteError> {
    let bad = |reason: String| WriteError::FisherInput {
        palette: u32::MAX,
        reason,
    };
    if k == 0 || k > MAX_PALETTE_K {
        return Err(bad(format!("k = {k} is outside 1..={MAX_PALETTE_K}")));
    }
    if d == 0 {
        return Err(bad("d = 0".into()));
    }
    if k.checked_mul(d) != Some(entries.len()) {
        return Err(bad(format!(
            "{} values given for k = {k} entries of d = {d}",
            entries.len()
        )));
    }
    if let Some(i) = entries.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("value at index {i} is not finite")));
    }

    // Centre each entry; remember its sum of squares (0 means zero variance).
    let mut centred = Vec::with_capacity(entries.len());
    let mut ss = Vec::with_capacity(k);
    for e in entries.chunks_exact(d) {
        let mean = e.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
        let mut s = 0.0f64;
        for &v in e {
            let c = f64::from(v) - mean;
            centred.push(c);
            s += c * c;
        }
        ss.push(s);
    }

    let mut z = vec![0.0f64; k * k];
    let mut max_abs = 0.0f64;
    for i in 0..k {
        for j in i..k {
            let r = if ss[i] == 0.0 || ss[j] == 0.0 {
                0.0
            } else {
                let (a, b) = (&centred[i * d..(i + 1) * d], &centred[j * d..(j + 1) * d]);
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                dot / (ss[i] * ss[j]).sqrt()
            };
            let zij = r.clamp(-R_CLAMP, R_CLAMP).atanh();
            z[i * k + j] = zij;
            z[j * k + i] = zij;
            max_abs = max_abs.max(zij.abs());
        }
    }

    let gamma = if max_abs > 0.0 {
        max_abs / f64::from(Q_MAX)
    } else {
        1.0 / f64::from(Q_MAX)
    };
    let table = z
        .iter()
        .map(|&v| {
            // f64::round is round-half-away-from-zero, as the spec asks.
            let q = (v / gamma)
                .round()
                .clamp(-f64::from(Q_MAX), f64::from(Q_MAX));
            q as i8
        })
        .collect();
    Ok((gamma as f32, table))
}

/// Checks an explicit FisherZ table: `k x k` values in `[-127, 127]`,
/// symmetric, and `gamma` finite and `> 0`. `palette` only labels errors.
pub(crate) fn check_table(
    palette: u32,
    k: usize,
    gamma: f32,
    table: &[i8],
) -> Result<(), WriteError> {
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(WriteError::FisherGamma { palette, gamma });
    }
    let expected = k.saturating_mul(k);
    if table.len() != expected {
        return Err(WriteError::Length {
            what: format!("FisherZ table of palette {palette} (k = {k})"),
            expected: expected as u64,
            got: table.len() as u64,
        });
    }
    for i in 0..k {
        for j in 0..k {
            let v = table[i * k + j];
            if v == i8::MIN {
                return Err(WriteError::FisherTable {
                    palette,
                    i,
                    j,
                    value: v,
                    reason: "outside [-127, 127]",
                });
            }
            if j > i && table[j * k + i] != v {
                return Err(WriteError::FisherTable {
                    palette,
                    i,
                    j,
                    value: v,
                    reason: "not symmetric",
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive single-pair reference, written independently of the table loop.
    fn pearson(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (*x as f64 - ma, *y as f64 - mb);
            sab += x * y;
            saa += x * x;
            sbb += y * y;
        }
        if saa == 0.0 || sbb == 0.0 {
            0.0
        } else {
            sab / (saa * sbb).sqrt()
        }
    }

    #[test]
    fn matches_pairwise_reference_and_is_symmetric() {
        let (k, d) = (7, 5);
        let entries: Vec<f32> = (0..k * d)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25)
            .collect();
        let (gamma, t) = fisher_z_table(&entries, k, d).unwrap();
        let mut zs = vec![];
        for i in 0..k {
            for j in 0..k {
                let r = pearson(&entries[i * d..][..d], &entries[j * d..][..d]);
                zs.push(r.clamp(-0.999, 0.999).atanh());
            }
        }
        let max = zs.iter().fold(0.0f64, |m, z| m.max(z.abs()));
        assert_eq!(gamma, (max / 127.0) as f32);
        for i in 0..k {
            for j in 0..k {
                assert_eq!(t[i * k + j], t[j * k + i]);
                let q = (zs[i * k + j] / (max / 127.0)).round() as i8;
                assert_eq!(t[i * k + j], q, "({i},{j})");
            }
        }
        // The diagonal holds the largest z (r clamps to 0.999).
        assert_eq!(t[0], 127);
    }

    #[test]
    fn d1_gives_all_zero_and_default_gamma() {
        let (gamma, t) = fisher_z_table(&[1.0, -2.0, 3.0], 3, 1).unwrap();
        assert_eq!(gamma, (1.0f64 / 127.0) as f32);
        assert!(t.iter().all(|&q| q == 0));
    }

    #[test]
    fn anticorrelated_entries_give_minus_127() {
        let (_, t) = fisher_z_table(&[1.0, 2.0, 3.0, -1.0, -2.0, -3.0], 2, 3).unwrap();
        assert_eq!(t, vec![127, -127, -127, 127]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(fisher_z_table(&[], 0, 1).is_err());
        assert!(fisher_z_table(&[1.0], 1, 0).is_err());
        assert!(fisher_z_table(&[1.0, 2.0], 1, 3).is_err());
        assert!(fisher_z_table(&[f32::NAN, 2.0], 1, 2).is_err());
        assert!(fisher_z_table(&vec![0.0; 257], 257, 1).is_err());
    }

    #[test]
    fn check_table_rules() {
        assert!(check_table(0, 2, 0.1, &[1, 2, 2, 1]).is_ok());
        assert!(matches!(
            check_table(0, 2, 0.1, &[1, 2, 3, 1]),
            Err(WriteError::FisherTable {
                reason: "not symmetric",
                ..
            })
        ));
        assert!(matches!(
            check_table(0, 2, 0.1, &[-128, 0, 0, 1]),
            Err(WriteError::FisherTable { i: 0, j: 0, .. })
        ));
        assert!(matches!(
            check_table(0, 2, 0.0, &[0; 4]),
            Err(WriteError::FisherGamma { .. })
        ));
        assert!(matches!(
            check_table(0, 2, f32::NAN, &[0; 4]),
            Err(WriteError::FisherGamma { .. })
        ));
        assert!(matches!(
            check_table(0, 2, 1.0, &[0; 3]),
            Err(WriteError::Length { .. })
        ));
    }
}
