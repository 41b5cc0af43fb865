//! Exact sums and means of compound scores, shared by the per-group and per-rating figures.
//!
//! A mean computed as a running f64 sum can land on the other side of a 4th-decimal half than
//! the exact mean does (Python's `statistics.mean` is exact), so these sums are kept as integers
//! of `compound · 2⁶⁶` and divided once at the end.

/// Every nonzero compound of 4 decimals is at least 10⁻⁴ > 2⁻¹⁴ in magnitude, so its lowest
/// significant bit is at 2⁻⁶⁶ or above and `compound · 2⁶⁶` is an integer.
pub const FIXED_EXP: i32 = 66;

/// 2^e for e in -1022..=1023, exactly.
pub fn pow2(e: i32) -> f64 {
    f64::from_bits(((1023 + e) as u64) << 52)
}

/// `sum / (count · 2⁶⁶)` rounded once to the nearest f64.
pub fn fixed_mean(sum: i128, count: u64) -> f64 {
    if sum == 0 || count == 0 {
        return 0.0;
    }
    let (a, d) = (sum.unsigned_abs(), count as u128);
    let bits = |x: u128| 128 - x.leading_zeros() as i32;
    // Scale so the quotient has 61 or 62 bits; its last bit then stands for any remainder, far
    // below the 53rd bit where the conversion to f64 rounds, so that rounding is the only one.
    let k = 61 + bits(d) - bits(a);
    let (q, r) = if k >= 0 {
        ((a << k) / d, (a << k) % d)
    } else {
        (a / (d << -k), a % (d << -k))
    };
    let magnitude = (q | u128::from(r != 0)) as f64 * pow2(-(k + FIXED_EXP));
    if sum < 0 { -magnitude } else { magnitude }
}

/// `compound · 2⁶⁶` as an integer (exact for every compound of at most 4 decimals).
pub fn fixed(compound: f64) -> i128 {
    (compound.clamp(-1.0, 1.0) * pow2(FIXED_EXP)).round() as i128
}
