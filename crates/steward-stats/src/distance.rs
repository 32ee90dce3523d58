//! Distances between distributions, as scipy computes them: the first Wasserstein distance
//! between two samples, and the divergences over binned proportions (PSI, Kullback–Leibler,
//! Jensen–Shannon, Hellinger).

/// The first Wasserstein (earth mover's) distance between two samples: the area between their
/// empirical CDFs (scipy's `wasserstein_distance`). NaN-free input expected.
pub fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (u, v) = (sorted(u), sorted(v));
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    // Walk both in merged order; between consecutive values the CDF gap is constant. Between
    // equal values the width is 0, so ties need no care.
    let (mut iu, mut iv) = (0usize, 0usize);
    let mut total = 0.0;
    let next = |iu: usize, iv: usize| match (u.get(iu), v.get(iv)) {
        (Some(a), Some(b)) => Some(if a.total_cmp(b).is_le() { (*a, true) } else { (*b, false) }),
        (Some(a), None) => Some((*a, true)),
        (None, Some(b)) => Some((*b, false)),
        (None, None) => None,
    };
    let Some((mut x, from_u)) = next(iu, iv) else { return 0.0 };
    if from_u { iu += 1 } else { iv += 1 }
    while let Some((y, from_u)) = next(iu, iv) {
        total += (iu as f64 / nu - iv as f64 / nv).abs() * (y - x);
        if from_u { iu += 1 } else { iv += 1 }
        x = y;
    }
    total
}

/// A sorted copy (in `f64::total_cmp` order) by an LSD radix sort over the bytes of the
/// order-preserving integer image of each value: linear time, a few times faster than a
/// comparison sort on the million-row columns a drift report sees.
pub fn sorted(x: &[f64]) -> Vec<f64> {
    if x.len() < 4096 {
        let mut v = x.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        return v;
    }
    let key = |f: f64| {
        let b = f.to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    };
    let mut keys: Vec<u64> = x.iter().map(|f| key(*f)).collect();
    let mut scratch = vec![0u64; keys.len()];
    // Every byte's histogram in one pass; then one scatter per byte that varies.
    let mut counts = vec![[0usize; 256]; 8];
    for k in &keys {
        for (byte, c) in counts.iter_mut().enumerate() {
            c[((k >> (8 * byte)) & 255) as usize] += 1;
        }
    }
    for (byte, c) in counts.iter_mut().enumerate() {
        if c.iter().any(|n| *n == keys.len()) {
            continue;
        }
        let mut offset = 0;
        for n in c.iter_mut() {
            let here = *n;
            *n = offset;
            offset += here;
        }
        let shift = 8 * byte;
        for k in &keys {
            let d = ((k >> shift) & 255) as usize;
            scratch[c[d]] = *k;
            c[d] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    keys.into_iter().map(|k| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })).collect()
}

/// Population stability index: Σ (cur − ref) · ln(cur / ref) over bins of proportions.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference.iter().zip(current).map(|(r, c)| (c - r) * (c / r).ln()).sum()
}

/// Kullback–Leibler divergence KL(reference ‖ current), scipy's `entropy(p, q)` (natural log;
/// both are normalised to sum to 1 first).
pub fn kl_divergence(reference: &[f64], current: &[f64]) -> f64 {
    let (sp, sq) = (reference.iter().sum::<f64>(), current.iter().sum::<f64>());
    reference.iter().zip(current).map(|(p, q)| rel_entr(p / sp, q / sq)).sum()
}

/// Jensen–Shannon distance (the square root of the divergence), scipy's
/// `spatial.distance.jensenshannon(p, q, base)`; natural log when `base` is `None`.
pub fn jensen_shannon(p: &[f64], q: &[f64], base: Option<f64>) -> f64 {
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    let mut left = 0.0;
    let mut right = 0.0;
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    let mut js = (left + right) / 2.0;
    if let Some(base) = base {
        js /= base.ln();
    }
    js.sqrt()
}

/// Hellinger distance: sqrt(Σ (√p − √q)²) / √2 over normalised proportions.
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    let s: f64 = p.iter().zip(q).map(|(a, b)| ((a / sp).sqrt() - (b / sq).sqrt()).powi(2)).sum();
    s.sqrt() / std::f64::consts::SQRT_2
}

/// scipy's `rel_entr`: x ln(x / y), 0 at x = 0, ∞ where y = 0 < x.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_as_total_cmp() {
        let mut x: Vec<f64> = (0..20_000u64).map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 1e3).collect();
        x.extend([0.0, -0.0, 1e-310, -1e-310, f64::INFINITY, f64::NEG_INFINITY, 5.0, 5.0, -7.25, f64::MAX, f64::MIN]);
        let mut want = x.clone();
        want.sort_by(f64::total_cmp);
        let got = sorted(&x);
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // Integral data (few varying bytes) and a constant column.
        let ints: Vec<f64> = (0..10_000).map(|i| f64::from(i % 97)).collect();
        assert!(sorted(&ints).windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(sorted(&[3.0; 5000]), vec![3.0; 5000]);
    }

    #[test]
    fn wasserstein_matches_scipy_examples() {
        // scipy.stats.wasserstein_distance docstring examples.
        assert!((wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-12);
        assert!((wasserstein(&[3.4, 3.9, 7.5, 7.8], &[4.5, 1.4]) - 2.7).abs() < 1e-12);
    }

    #[test]
    fn divergences_vanish_on_equal_distributions() {
        let p = [0.2, 0.3, 0.5];
        assert!(psi(&p, &p).abs() < 1e-15);
        assert!(kl_divergence(&p, &p).abs() < 1e-15);
        assert!(jensen_shannon(&p, &p, None).abs() < 1e-7);
        assert!(hellinger(&p, &p).abs() < 1e-15);
    }
}
