//! Criterion benchmarks of the statistics a monitor runs per window and a report per column:
//! `cargo bench -p steward-stats`. Inputs are deterministic pseudo-random samples.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use steward_stats::drift::{self, ColumnType, DriftOptions, StatTest, Values};
use steward_stats::profile::ColumnProfiler;
use steward_stats::{cbpe, distance, fairness, ks, quality};

/// xorshift64*: uniform numbers in [0, 1), the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self, mean: f64) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        mean + (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn sample(n: usize, mean: f64, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..n).map(|_| r.normal(mean)).collect()
}

fn drift_tests(c: &mut Criterion) {
    let mut g = c.benchmark_group("drift");
    for n in [1_000usize, 100_000] {
        let (a, b) = (sample(n, 0.0, 1), sample(n, 0.1, 2));
        g.bench_with_input(BenchmarkId::new("ks_2samp", n), &n, |bench, _| bench.iter(|| ks::ks_2samp(black_box(&a), black_box(&b))));
        g.bench_with_input(BenchmarkId::new("wasserstein", n), &n, |bench, _| bench.iter(|| distance::wasserstein(black_box(&a), black_box(&b))));
        let (ra, rb) = (Values::Numeric(a.clone()), Values::Numeric(b.clone()));
        for test in [StatTest::Psi, StatTest::JensenShannon] {
            let options = DriftOptions { stattest: Some(test), ..Default::default() };
            g.bench_with_input(BenchmarkId::new(format!("column_drift_{}", test.name()), n), &n, |bench, _| {
                bench.iter(|| drift::column_drift("x", ColumnType::Numerical, black_box(&ra), black_box(&rb), &options).unwrap())
            });
        }
        let mut r = Rng(3);
        let cats = |r: &mut Rng| Values::Categorical((0..n).map(|_| format!("c{}", (r.next() * 12.0) as u32)).collect());
        let (ca, cb) = (cats(&mut r), cats(&mut r));
        g.bench_with_input(BenchmarkId::new("column_drift_default_categorical", n), &n, |bench, _| {
            bench.iter(|| drift::column_drift("c", ColumnType::Categorical, black_box(&ca), black_box(&cb), &DriftOptions::default()).unwrap())
        });
    }
    g.finish();
}

fn quality_and_fairness(c: &mut Criterion) {
    let n = 100_000;
    let mut r = Rng(4);
    let scores: Vec<f64> = (0..n).map(|_| r.next()).collect();
    let labels: Vec<u8> = scores.iter().map(|s| u8::from(r.next() < *s)).collect();
    let predicted: Vec<u8> = scores.iter().map(|s| u8::from(*s >= 0.5)).collect();
    let groups: Vec<String> = (0..n).map(|i| format!("g{}", i % 4)).collect();
    c.bench_function("classification_100000", |b| b.iter(|| quality::classification(black_box(&labels), black_box(&scores), 0.5).unwrap()));
    c.bench_function("fairness_100000", |b| b.iter(|| fairness::fairness(black_box(&predicted), black_box(&labels), black_box(&groups), 0.8).unwrap()));
    c.bench_function("estimate_cbpe_100000", |b| b.iter(|| cbpe::estimate(black_box(&scores), 0.5).unwrap()));
    c.bench_function("profile_100000", |b| {
        b.iter(|| {
            let mut p = ColumnProfiler::new("x", ColumnType::Numerical);
            scores.iter().for_each(|v| p.push_number(Some(*v)));
            p.finish()
        })
    });
}

criterion_group!(benches, drift_tests, quality_and_fairness);
criterion_main!(benches);
