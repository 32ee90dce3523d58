//! The two-sample Kolmogorov–Smirnov test exactly as `scipy.stats.ks_2samp` computes it
//! (two-sided, method "auto"): the statistic over the pooled sample, the exact p-value by
//! lattice-path counting when both samples have at most 10,000 values, else the Kolmogorov
//! distribution of the effective size.

use crate::kolmogorov::kolmogorov_sf;

/// Above this sample size scipy's "auto" switches from the exact to the asymptotic p-value.
const MAX_EXACT_N: usize = 10_000;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `(D, p)` for two samples without NaN.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let (n1, n2) = (x.len(), y.len());
    // ECDF difference at every pooled value (right-continuous: counts of values <= v).
    let upper = |s: &[f64], v: f64| s.partition_point(|w| *w <= v);
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    for &v in x.iter().chain(&y) {
        let diff = upper(&x, v) as f64 / n1 as f64 - upper(&y, v) as f64 / n2 as f64;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    let mut d = if min_s > max_s { min_s } else { max_s };
    let g = gcd(n1 as u64, n2 as u64);
    let mut p = None;
    if n1.max(n2) <= MAX_EXACT_N {
        let lcm = (n1 as u64 / g) * n2 as u64;
        let h = (d * lcm as f64).round_ties_even() as u64;
        d = h as f64 / lcm as f64;
        p = if h == 0 {
            Some(1.0)
        } else {
            let prob = if n1 == n2 { prob_outside_square(n1 as u64, h) } else { outer_prob_inside(n1 as u64, n2 as u64, g, h) };
            (prob.is_finite() && (0.0..=1.0).contains(&prob)).then_some(prob)
        };
    }
    let p = p.unwrap_or_else(|| {
        let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
        let en = (m * n / (m + n)).round_ties_even();
        kolmogorov_sf(en as u64, d)
    });
    (d, p.clamp(0.0, 1.0))
}

/// Pr(D_{n,n} >= h/n) for equal sample sizes, by scipy's Horner-like alternating sum.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (n, h) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        for j in 0..h as u64 {
            let j = j as f64;
            p1 = (n - kf * h - j) * p1 / (n + kf * h + j + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// 1 − (the share of lattice paths from (0,0) to (m,n) staying strictly inside the band
/// |x/m − y/n| < h/lcm), by the inside method with Viehmann's recursion for the complement,
/// one sliding column at a time (scipy's `_compute_outer_prob_inside_method`).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let (mg, ng) = (mg as i64, ng as i64);
    let ceil_div = |a: i64, b: i64| (a as f64 / b as f64).ceil() as i64;
    let floor_div = |a: i64, b: i64| (a as f64 / b as f64).floor() as i64;
    let mut minj: i64 = 0;
    let mut maxj = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len];
    for v in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = (jj + minj) as f64;
            val = (a[(jj + minj - lastminj) as usize] * fi + val * j) / (fi + j);
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            a[start..end].iter_mut().for_each(|v| *v = 1.0);
        }
    }
    a[(maxj - minj - 1) as usize]
}
