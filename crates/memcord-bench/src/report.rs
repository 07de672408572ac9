//! Counting while a run goes ([`Tally`], one per connection) and the merged result ([`Report`]):
//! a table for people, JSON with the same fields for scripts.

use super::Plan;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Highest latency the histograms keep exactly (longer ones are clamped), in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Error counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// `SERVER_ERROR …` replies.
    pub server_error: u64,
    /// `CLIENT_ERROR …` replies.
    pub client_error: u64,
    /// `ERROR` replies.
    pub error: u64,
    /// Any other reply that does not fit the request (`NOT_STORED` to a set, say).
    pub unexpected: u64,
    /// Requests whose reply did not come within the timeout.
    pub timeout: u64,
    /// Requests lost to a broken connection, an unparsable reply or a failed reconnect.
    pub connection: u64,
}

impl ErrorCounts {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.server_error
            + self.client_error
            + self.error
            + self.unexpected
            + self.timeout
            + self.connection
    }

    fn add(&mut self, other: &ErrorCounts) {
        self.server_error += other.server_error;
        self.client_error += other.client_error;
        self.error += other.error;
        self.unexpected += other.unexpected;
        self.timeout += other.timeout;
        self.connection += other.connection;
    }
}

/// One connection's counts and latencies for the measured phase.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Gets answered.
    pub gets: u64,
    /// Gets that found their key.
    pub hits: u64,
    /// Sets answered `STORED`.
    pub sets: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Latency of every answered request, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            gets: 0,
            hits: 0,
            sets: 0,
            errors: ErrorCounts::default(),
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Tally {
    /// Records one answered request's latency.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: &Tally) {
        self.gets += other.gets;
        self.hits += other.hits;
        self.sets += other.sets;
        self.errors.add(&other.errors);
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// The result of a run; every field is also a JSON field.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Targets, as resolved.
    pub targets: Vec<String>,
    /// Connections.
    pub connections: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Keys.
    pub keys: usize,
    /// Key length.
    pub key_size: usize,
    /// Value length.
    pub value_size: usize,
    /// Fraction of gets asked for.
    pub get_ratio: f64,
    /// Key popularity.
    pub distribution: super::Distribution,
    /// The protocol the load spoke.
    pub protocol: super::Protocol,
    /// Seed.
    pub seed: u64,
    /// Seconds actually measured.
    pub elapsed_s: f64,
    /// Requests answered without error (gets + sets).
    pub ops: u64,
    /// Answered requests per second.
    pub ops_per_sec: f64,
    /// Gets answered.
    pub gets: u64,
    /// Gets per second.
    pub gets_per_sec: f64,
    /// Sets answered.
    pub sets: u64,
    /// Sets per second.
    pub sets_per_sec: f64,
    /// Gets that hit, as a fraction of gets.
    pub hit_ratio: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Highest latency, µs.
    pub max_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// All errors.
    pub errors: u64,
    /// Errors by kind.
    pub error_kinds: ErrorCounts,
    /// Errors while preloading the keys.
    pub preload_errors: u64,
}

fn per_sec(count: u64, elapsed: f64) -> f64 {
    if elapsed > 0.0 {
        count as f64 / elapsed
    } else {
        0.0
    }
}

impl Report {
    /// Builds the report of `plan` from the merged tally of a phase that lasted `elapsed`.
    pub fn new(plan: &Plan, tally: &Tally, elapsed: Duration, preload_errors: u64) -> Report {
        let secs = elapsed.as_secs_f64();
        let us = |ns: u64| ns as f64 / 1000.0;
        let h = &tally.latency;
        let ops = tally.gets + tally.sets;
        Report {
            targets: plan.targets.iter().map(ToString::to_string).collect(),
            connections: plan.connections,
            pipeline: plan.pipeline,
            keys: plan.workload.key_count(),
            key_size: plan.workload.key_size(),
            value_size: plan.workload.value_size(),
            get_ratio: plan.workload.get_ratio,
            distribution: plan.workload.distribution,
            protocol: plan.protocol,
            seed: plan.seed,
            elapsed_s: secs,
            ops,
            ops_per_sec: per_sec(ops, secs),
            gets: tally.gets,
            gets_per_sec: per_sec(tally.gets, secs),
            sets: tally.sets,
            sets_per_sec: per_sec(tally.sets, secs),
            hit_ratio: if tally.gets > 0 {
                tally.hits as f64 / tally.gets as f64
            } else {
                0.0
            },
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
            errors: tally.errors.total(),
            error_kinds: tally.errors,
            preload_errors,
        }
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let e = &self.error_kinds;
        let rows: Vec<(&str, String)> = vec![
            ("targets", self.targets.join(",")),
            (
                "workload",
                format!(
                    "{} conns × pipeline {}, {} keys ({} B, {}), {} B values, {:.0}% gets, {}",
                    self.connections,
                    self.pipeline,
                    self.keys,
                    self.key_size,
                    self.distribution.name(),
                    self.value_size,
                    self.get_ratio * 100.0,
                    self.protocol.name()
                ),
            ),
            ("elapsed", format!("{:.2} s", self.elapsed_s)),
            (
                "ops/s",
                format!("{:.0}  ({} ops)", self.ops_per_sec, self.ops),
            ),
            ("gets/s", format!("{:.0}", self.gets_per_sec)),
            ("sets/s", format!("{:.0}", self.sets_per_sec)),
            ("hit ratio", format!("{:.4}", self.hit_ratio)),
            ("p50", format!("{:.1} µs", self.p50_us)),
            ("p99", format!("{:.1} µs", self.p99_us)),
            ("p999", format!("{:.1} µs", self.p999_us)),
            ("max", format!("{:.1} µs", self.max_us)),
            (
                "errors",
                format!(
                    "{} (server {}, client {}, error {}, unexpected {}, timeout {}, \
                     connection {}; preload {})",
                    self.errors,
                    e.server_error,
                    e.client_error,
                    e.error,
                    e.unexpected,
                    e.timeout,
                    e.connection,
                    self.preload_errors
                ),
            ),
        ];
        let mut out = String::new();
        for (name, value) in rows {
            let _ = writeln!(out, "{name:>10}  {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_merge_counts_and_latencies() {
        let mut a = Tally {
            gets: 3,
            hits: 2,
            ..Tally::default()
        };
        a.record(Duration::from_micros(10));
        a.errors.timeout = 1;
        let mut b = Tally {
            sets: 4,
            ..Tally::default()
        };
        b.record(Duration::from_micros(1000));
        b.errors.server_error = 2;
        a.merge(&b);
        assert_eq!((a.gets, a.hits, a.sets, a.errors.total()), (3, 2, 4, 3));
        assert_eq!(a.latency.len(), 2);
        assert!(a.latency.max() >= 999_000);
    }
}
