//! Distances between distributions, as scipy computes them: the first Wasserstein distance
//! between two samples, and the divergences over binned proportions (PSI, Kullback–Leibler,
//! Jensen–Shannon, Hellinger).

/// The first Wasserstein (earth mover's) distance between two samples: the area between their
/// empirical CDFs (scipy's `wasserstein_distance`). NaN-free input expected.
pub fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let mut u = u.to_vec();
    let mut v = v.to_vec();
    u.sort_by(f64::total_cmp);
    v.sort_by(f64::total_cmp);
    let mut all: Vec<f64> = u.iter().chain(&v).copied().collect();
    all.sort_by(f64::total_cmp);
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut iu, mut iv) = (0usize, 0usize);
    let mut total = 0.0;
    for w in all.windows(2) {
        // CDFs just right of w[0]: the count of values <= w[0].
        while iu < u.len() && u[iu] <= w[0] {
            iu += 1;
        }
        while iv < v.len() && v[iv] <= w[0] {
            iv += 1;
        }
        total += (iu as f64 / nu - iv as f64 / nv).abs() * (w[1] - w[0]);
    }
    total
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
