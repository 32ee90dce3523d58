//! Score post-transforms of the `ai.onnx.ml` classifiers and regressors, in onnxruntime's
//! single-precision formulas so that outputs agree to the last few ulps.

use tract_hir::internal::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(s: Option<&str>) -> TractResult<Self> {
        Ok(match s.unwrap_or("NONE") {
            "NONE" => Self::None,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX" => Self::Softmax,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            other => bail!("post_transform {other:?} is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT"),
        })
    }

    /// Applies the transform to one row of scores in place.
    pub fn apply(self, scores: &mut [f32]) {
        match self {
            Self::None => {}
            Self::Logistic => scores.iter_mut().for_each(|v| *v = logistic(*v)),
            Self::Probit => scores.iter_mut().for_each(|v| *v = probit(*v)),
            Self::Softmax => softmax(scores),
            Self::SoftmaxZero => softmax_zero(scores),
        }
    }
}

pub fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// onnxruntime's probit: sqrt(2) * erfinv(2p - 1) with Winitzki's approximation (a = 0.147).
pub fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147f32 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax over the non-zero scores; zeros stay (near) zero.
pub fn softmax_zero(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        if *v > 0.0000001 || *v < -0.0000001 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_inverts_the_normal_cdf_closely() {
        // Phi(1.0) = 0.841344746; the approximation is good to ~1e-3.
        assert!((probit(0.841_344_7) - 1.0).abs() < 5e-3);
        assert!(probit(0.5).abs() < 1e-6);
    }

    #[test]
    fn softmax_zero_leaves_zeros_out() {
        let mut v = [0.0, 1.0, 2.0];
        softmax_zero(&mut v);
        assert!(v[0] < 0.2);
        assert!((v[1] + v[2] - 1.0).abs() < 1e-6);
    }
}
