//! The survival function of the two-sided one-sample Kolmogorov–Smirnov statistic D_n for
//! finite n, as scipy's `kstwo.sf` computes it (Simard & L'Ecuyer's choice of methods): the
//! Ruben–Gambino closed forms at the ends, twice the one-sided Smirnov tail where that is
//! exact or accurate, Durbin's matrix method, Pomeranz's recursion, and the Pelz–Good series
//! for large n.


const E128: i32 = 128;
const P128: f64 = 3.402_823_669_209_385e38; // 2^128
const M128: f64 = 2.938_735_877_055_719e-39; // 2^-128

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// P(D_n > x).
pub fn kolmogorov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |p, i| p * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powi(n as i32));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let nx2 = t * x;
    if n <= 140 {
        if nx2 <= 0.754693 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        if nx2 <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        return clip(2.0 * smirnov_sf(n, x));
    }
    if nx2 >= 370.0 {
        return 0.0;
    }
    if nx2 >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 { durbin_cdf(n, x) } else { return clip(pelz_good_sf(n, x)) };
    clip(1.0 - cdf)
}

fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const C: [f64; 8] = [
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    ];
    let rn = 1.0 / n;
    let poly = C.iter().fold(0.0, |acc, c| acc * (rn / n) + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// One-sided Smirnov tail P(D_n^+ >= x): the Birnbaum–Tingey sum
/// x Σ_{v < n(1−x)} C(n,v) (x+v/n)^(v−1) (1−x−v/n)^(n−v), each term in log space with the
/// integer parts of its bases kept exact (scipy's `smirnov`, which uses double-double).
fn smirnov_sf(n: u64, x: f64) -> f64 {
    if n == 1 {
        return 1.0 - x;
    }
    let nf = n as f64;
    let nx = nf * x;
    let nxfl = nx.floor();
    let alpha = nx - nxfl;
    if nxfl == 0.0 || (nxfl == 1.0 && alpha == 0.0) {
        return 1.0 - x * (1.0 + x).powf(nf - 1.0);
    }
    if -2.0 * nf * x * x < -7.451_332_191_019_412e2 {
        return 0.0;
    }
    if nxfl >= nf - 1.0 {
        return (1.0 - x).powf(nf);
    }
    if n > 1_000_000 {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 { logp.exp() } else { 1.0 - (-logp.exp_m1()) };
    }
    let terms = n - nxfl as u64;
    let mut sum = (1.0 - x).powf(nf) / x;
    let mut ln_binom = 0.0;
    for v in 1..terms {
        let vf = v as f64;
        ln_binom += (nf - vf + 1.0).ln() - vf.ln();
        let b1 = (vf + nxfl + alpha) / nf;
        let b2 = (nf - nxfl - vf - alpha) / nf;
        let term = (ln_binom + (vf - 1.0) * b1.ln() + (nf - vf) * b2.ln()).exp();
        if term.is_finite() && term != 0.0 {
            sum += term;
        }
        if term != 0.0 {
            if 4.0 * (terms - v) as f64 * term.abs() < f64::EPSILON * sum && v != terms - 1 {
                break;
            }
        } else if v > n / 2 {
            break;
        }
    }
    (x * sum).clamp(0.0, 1.0)
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    c
}

/// Durbin's matrix method (Marsaglia, Tsang & Wang), with explicit power-of-two scaling.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|i| 1.0 - h.powi(i as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let mut pwr: Vec<f64> = (0..m * m).map(|i| if i / m == i % m { 1.0 } else { 0.0 }).collect();
    let (mut nn, mut expnt, mut hexpnt) = (n, 0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            pwr = matmul(&pwr, &hm, m);
            expnt += hexpnt;
        }
        hm = matmul(&hm, &hm, m);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > P128 {
            hm.iter_mut().for_each(|x| *x /= P128);
            hexpnt += E128;
        }
        nn /= 2;
    }
    let mut p = pwr[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < M128 {
            p *= P128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p *= 2f64.powi(expnt);
    }
    clip(p)
}

fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = ((i + 1) / 2, (i + 1) % 2);
        if odd == 0 {
            if half == n + 1 { (n - ll - ceilf - 1, n + ll + ceilf - 1) } else { (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1) }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pomeranz's recursion (1974).
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let (mut gp, mut tgp, mut omp) = (vec![1.0; npwrs], vec![1.0; npwrs], vec![1.0; npwrs]);
    let (a, b, c) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        gp[m] = gp[m - 1] * a / m as f64;
        tgp[m] = tgp[m - 1] * b / m as f64;
        omp[m] = omp[m - 1] * c / m as f64;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt = 0i32;
    let mut j1 = pomeranz_j1j2(0, n, ll, ceilf, roundf).0;
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|v| *v = 0.0);
        let j2;
        (j1, j2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        let pw = if i == 1 || i == 2 * n + 1 { &gp } else if i % 2 == 1 { &tgp } else { &omp };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let src = &v0[(k1 - v0s) as usize..(k1 - v0s) as usize + ln2];
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1) as usize;
            // Full convolution of src and pw[..ln2], entries conv_start.. of it.
            for (o, out) in v1.iter_mut().take(conv_len).enumerate() {
                let idx = conv_start + o;
                let mut s = 0.0;
                for q in 0..=idx {
                    if q < ln2 && idx - q < ln2 {
                        s += src[q] * pw[idx - q];
                    }
                }
                *out = s;
            }
            let max = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < max && max < M128 {
                v1.iter_mut().for_each(|v| *v *= P128);
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(n - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > P128 {
            ans *= M128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans *= 2f64.powi(expnt);
    }
    clip(ans)
}

/// The Pelz–Good asymptotic series for P(D_n > x).
fn pelz_good_sf(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 1.0;
    }
    let q = qlog.exp();
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let (k2a, k2b, k2c) = (6.0 * z6 + 2.0 * z4, (2.0 * z4 - 5.0 * z2) * pi2 / 4.0, pi4 * (1.0 - 2.0 * z2) / 16.0);
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qp = q.powf(8.0 * kk as f64);
        let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for i in 0..4 {
            k[i] = k[i] * qp + coeffs[i];
        }
    }
    let s2pi = (2.0 * PI).sqrt();
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for i in 0..4 {
        k[i] = k[i] * q * s2pi / div[i];
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut e2, mut e3) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks2 = (kk * kk) as f64;
        let qp = q2.powf(ks2);
        e2 += ks2 * qp;
        let kpi = PI * kk as f64;
        e3 += (sqrt3z + kpi) * (sqrt3z - kpi) * ks2 * qp;
    }
    k[2] += e2 * pi2 * s2pi / (-36.0 * z3);
    k[3] += e3 * pi2 * s2pi / (216.0 * z6);
    for (i, v) in k.iter_mut().enumerate() {
        *v /= nf.powf(i as f64 / 2.0);
        *v = -*v;
    }
    k[0] += 1.0;
    k.iter().sum()
}
