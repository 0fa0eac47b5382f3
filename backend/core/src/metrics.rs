//! Prometheus metrics without a metrics crate: process-wide counters and fixed-bucket histograms
//! (relaxed atomic increments, no lock on the delivery path), rendered in the text exposition
//! format 0.0.4 for `GET /metrics` ([`crate::render_metrics`]). A registry only: it imports no
//! capability; the scrape-time gauges live with the tables they count (`delivery::gauges`,
//! `logs::gauges`).
//!
//! Counters count what this process did: an API process its HTTP requests and accepted
//! messages, a worker its attempts (`serve` does both). The queue gauges are read from the
//! database at scrape time, so every process reports the same backlog.
//!
//! Where they are counted: `ingest` (accepted messages, once per committed batch),
//! `hookline_worker::engine` (attempts, after the recorder's batch committed, through
//! `delivery::attempts_recorded`), `hookline_api::http_metrics` (requests, through [`http_request`]).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

// ----- primitives --------------------------------------------------------------------------

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// One counter per value of a label whose values are known in advance (no lock, no map).
pub struct CounterSet<const N: usize> {
    label: &'static str,
    values: [&'static str; N],
    counters: [Counter; N],
}

impl<const N: usize> CounterSet<N> {
    /// `values` must not be empty; a value outside them counts under the last one.
    pub const fn new(label: &'static str, values: [&'static str; N]) -> Self {
        CounterSet { label, values, counters: [const { Counter::new() }; N] }
    }

    fn index(&self, value: &str) -> usize {
        self.values.iter().position(|v| *v == value).unwrap_or(N - 1)
    }

    pub fn add(&self, value: &str, n: u64) {
        self.counters[self.index(value)].add(n);
    }

    pub fn get(&self, value: &str) -> u64 {
        self.counters[self.index(value)].get()
    }
}

/// A histogram with fixed upper bounds (`le`, inclusive). Buckets are stored per bucket and made
/// cumulative when rendered; the count is the sum of the buckets, so `+Inf` and `_count` agree
/// even while observations land during a scrape.
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    buckets: [AtomicU64; N],
    /// Observations above every bound.
    overflow: AtomicU64,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

/// A histogram's state: cumulative counts per bound (the last one `+Inf`), sum and count.
#[derive(Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl<const N: usize> Histogram<N> {
    /// `bounds` must be finite and increasing.
    pub const fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0), // 0.0_f64 has all bits zero
        }
    }

    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|bound| *bound < value);
        self.buckets.get(i).unwrap_or(&self.overflow).fetch_add(1, Relaxed);
        let _ =
            self.sum.fetch_update(Relaxed, Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                cumulative += n.load(Relaxed);
                (*bound, cumulative)
            })
            .collect();
        cumulative += self.overflow.load(Relaxed);
        buckets.push((f64::INFINITY, cumulative));
        HistogramSnapshot { buckets, sum: f64::from_bits(self.sum.load(Relaxed)), count: cumulative }
    }
}

/// Series created on first use, for labels not known in advance (HTTP method, route, status).
/// Keep the keys bounded: route patterns, never raw paths.
pub struct Family<K, V> {
    series: RwLock<BTreeMap<K, V>>,
}

impl<K: Ord, V> Family<K, V> {
    pub const fn new() -> Self {
        Family { series: RwLock::new(BTreeMap::new()) }
    }

    /// Calls `f` with the series of `key`, made by `make` on first use.
    pub fn with(&self, key: K, make: impl FnOnce() -> V, f: impl FnOnce(&V)) {
        {
            let series = self.series.read().unwrap_or_else(|p| p.into_inner());
            if let Some(value) = series.get(&key) {
                f(value);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(|p| p.into_inner());
        f(series.entry(key).or_insert_with(make));
    }

    fn each(&self, mut f: impl FnMut(&K, &V)) {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        for (key, value) in series.iter() {
            f(key, value);
        }
    }
}

impl<K: Ord, V> Default for Family<K, V> {
    fn default() -> Self {
        Family::new()
    }
}

// ----- the text exposition format 0.0.4 ----------------------------------------------------

/// The exposition text being written.
#[derive(Default)]
pub struct Text(String);

impl Text {
    pub fn into_string(self) -> String {
        self.0
    }

    /// The `# HELP` and `# TYPE` lines of a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"");
                escape_label_value(&mut self.0, value);
                self.0.push('"');
            }
            self.0.push('}');
        }
        self.0.push(' ');
        self.0.push_str(&number(value));
        self.0.push('\n');
    }

    /// `name_bucket{…,le="…"}` lines (cumulative, ending with `+Inf`), `name_sum`, `name_count`.
    pub fn histogram<const N: usize>(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram<N>) {
        let snapshot = h.snapshot();
        let bucket = format!("{name}_bucket");
        for (bound, count) in &snapshot.buckets {
            let le = number(*bound);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, *count as f64);
        }
        self.sample(&format!("{name}_sum"), labels, snapshot.sum);
        self.sample(&format!("{name}_count"), labels, snapshot.count as f64);
    }
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest form).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

// ----- Hookline's metrics ------------------------------------------------------------------

/// Request and attempt durations: 5 ms to the longest endpoint timeout.
const DURATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Accepted → delivered: from the fast path (milliseconds) to a retry hours later.
const LATENCY_BUCKETS: [f64; 16] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 86400.0];
const HTTP_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

static MESSAGES_ACCEPTED: Counter = Counter::new();
static ATTEMPTS: CounterSet<2> = CounterSet::new("outcome", ["succeeded", "failed"]);
static ATTEMPT_ERRORS: CounterSet<9> = CounterSet::new(
    "class",
    ["dns", "connect", "tls", "timeout", "status", "ssrf", "config", "internal", "other"],
);
static ATTEMPT_DURATION: Histogram<12> = Histogram::new(DURATION_BUCKETS);
static DELIVERY_LATENCY: Histogram<16> = Histogram::new(LATENCY_BUCKETS);
static DEAD: Counter = Counter::new();
static ENGINE_ERRORS: CounterSet<9> = CounterSet::new(
    "stage",
    ["fanout", "claim", "payloads", "targets", "type_schedule", "record", "release", "leases", "other"],
);
static SOURCE_REQUESTS: CounterSet<6> =
    CounterSet::new("outcome", ["accepted", "duplicate", "stale", "handshake", "rejected", "filtered"]);
static SOURCE_REJECTED: CounterSet<8> = CounterSet::new(
    "reason",
    [
        "signature_missing",
        "signature_mismatch",
        "timestamp_out_of_tolerance",
        "credentials_invalid",
        "rate_limited",
        "payload_too_large",
        "source_quota_exceeded",
        "other",
    ],
);
/// By method, route pattern and status.
static HTTP_REQUESTS: Family<(&'static str, String, u16), Counter> = Family::new();
/// By method and route pattern.
static HTTP_DURATION: Family<(&'static str, String), Histogram<12>> = Family::new();

/// The ingest writer committed `n` messages.
pub fn messages_accepted(n: usize) {
    MESSAGES_ACCEPTED.add(n as u64);
}

/// One attempt the recorder committed.
pub struct RecordedAttempt<'a> {
    pub duration_ms: i32,
    /// `Ok(latency)`: it succeeded, `latency` from acceptance to this success when it counts as
    /// a delivery's latency (not a manual resend). `Err(class)`: it failed with this error class.
    pub outcome: Result<Option<f64>, &'a str>,
    /// It failed and no attempt follows: its delivery is dead.
    pub dead: bool,
}

/// The recorder committed these attempts.
pub fn attempts_recorded<'a>(attempts: impl IntoIterator<Item = RecordedAttempt<'a>>) {
    let (mut succeeded, mut failed, mut dead) = (0, 0, 0);
    for attempt in attempts {
        ATTEMPT_DURATION.observe(f64::from(attempt.duration_ms.max(0)) / 1000.0);
        match attempt.outcome {
            Ok(latency) => {
                succeeded += 1;
                if let Some(seconds) = latency {
                    DELIVERY_LATENCY.observe(seconds);
                }
            }
            Err(class) => {
                failed += 1;
                ATTEMPT_ERRORS.add(class, 1);
            }
        }
        if attempt.dead {
            dead += 1;
        }
    }
    ATTEMPTS.add("succeeded", succeeded);
    ATTEMPTS.add("failed", failed);
    DEAD.add(dead);
}

/// A step of the delivery engine failed (`stage`: fanout, claim, payloads, targets,
/// type_schedule, record, release, leases; anything else counts as other). The engine logs the cause; this makes a step
/// that keeps failing visible on `/metrics`.
pub fn engine_error(stage: &str) {
    ENGINE_ERRORS.add(stage, 1);
}

/// A request on a source's ingest URL, by what it became.
pub fn source_request(outcome: &str) {
    SOURCE_REQUESTS.add(outcome, 1);
}

/// A request on a source's ingest URL refused, by reason.
pub fn source_rejected(reason: &str) {
    SOURCE_REJECTED.add(reason, 1);
}

/// One HTTP request answered. `route` is the matched route pattern (`None` for the dashboard's
/// fallback); a method outside the standard ones is counted as `other`.
pub fn http_request(method: &str, route: Option<String>, status: u16, seconds: f64) {
    const METHODS: [&str; 9] =
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    let method = METHODS.iter().copied().find(|m| *m == method).unwrap_or("other");
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    HTTP_REQUESTS.with((method, route.clone(), status), Counter::new, Counter::inc);
    HTTP_DURATION.with((method, route), || Histogram::new(HTTP_BUCKETS), |h| h.observe(seconds));
}

/// The counters and histograms of this process.
pub fn render_process(text: &mut Text) {
    text.family("hookline_build_info", "gauge", "The running version of Hookline (always 1).");
    text.sample("hookline_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    text.family(
        "hookline_messages_accepted_total",
        "counter",
        "Messages committed by this process's ingest writer.",
    );
    text.sample("hookline_messages_accepted_total", &[], MESSAGES_ACCEPTED.get() as f64);

    for (name, help, set) in [
        (
            "hookline_delivery_attempts_total",
            "Delivery attempts recorded by this process, by outcome.",
            &ATTEMPTS as &dyn RenderSet,
        ),
        (
            "hookline_delivery_attempt_errors_total",
            "Failed delivery attempts recorded by this process, by error class.",
            &ATTEMPT_ERRORS,
        ),
        (
            "hookline_engine_errors_total",
            "Failed steps of this process's delivery engine, by stage (the log says why).",
            &ENGINE_ERRORS,
        ),
        (
            "hookline_source_requests_total",
            "Requests received on inbound sources' ingest URLs by this process, by outcome.",
            &SOURCE_REQUESTS,
        ),
        (
            "hookline_source_rejected_total",
            "Requests refused on inbound sources' ingest URLs by this process, by reason.",
            &SOURCE_REJECTED,
        ),
    ] {
        text.family(name, "counter", help);
        set.render(text, name);
    }

    text.family(
        "hookline_delivery_attempt_duration_seconds",
        "histogram",
        "Duration of delivery attempts, from building the request to reading the response (millisecond resolution).",
    );
    text.histogram("hookline_delivery_attempt_duration_seconds", &[], &ATTEMPT_DURATION);
    text.family(
        "hookline_delivery_latency_seconds",
        "histogram",
        "From message accepted to its delivery's successful attempt, per delivery (manual resends excluded).",
    );
    text.histogram("hookline_delivery_latency_seconds", &[], &DELIVERY_LATENCY);
    text.family(
        "hookline_deliveries_dead_total",
        "counter",
        "Deliveries that failed their last attempt (no retry left) in this process.",
    );
    text.sample("hookline_deliveries_dead_total", &[], DEAD.get() as f64);

    text.family(
        "hookline_http_requests_total",
        "counter",
        "HTTP requests answered by this process, by method, route pattern and status.",
    );
    HTTP_REQUESTS.each(|(method, route, status), counter| {
        let status = status.to_string();
        text.sample(
            "hookline_http_requests_total",
            &[("method", method), ("route", route), ("status", &status)],
            counter.get() as f64,
        );
    });
    text.family(
        "hookline_http_request_duration_seconds",
        "histogram",
        "Duration of HTTP requests answered by this process, by method and route pattern.",
    );
    HTTP_DURATION.each(|(method, route), histogram| {
        text.histogram(
            "hookline_http_request_duration_seconds",
            &[("method", method), ("route", route)],
            histogram,
        );
    });
}

trait RenderSet {
    fn render(&self, text: &mut Text, name: &str);
}

impl<const N: usize> RenderSet for CounterSet<N> {
    fn render(&self, text: &mut Text, name: &str) {
        for (value, counter) in self.values.iter().zip(&self.counters) {
            text.sample(name, &[(self.label, value)], counter.get() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let h = Histogram::new([0.1, 1.0, 10.0]);
        for value in [0.05, 0.1, 0.5, 1.0, 5.0, 50.0, 500.0, f64::NAN] {
            h.observe(value);
        }
        let snapshot = h.snapshot();
        // `le` is inclusive: 0.1 is in the 0.1 bucket; NaN is not observed.
        assert_eq!(snapshot.buckets, vec![(0.1, 2), (1.0, 4), (10.0, 5), (f64::INFINITY, 7)]);
        assert_eq!(snapshot.count, 7);
        assert!((snapshot.sum - 556.65).abs() < 1e-9, "{}", snapshot.sum);

        let mut text = Text::default();
        text.family("t_seconds", "histogram", "A test.");
        text.histogram("t_seconds", &[("lane", "shared")], &h);
        assert_eq!(
            text.into_string(),
            "# HELP t_seconds A test.\n\
             # TYPE t_seconds histogram\n\
             t_seconds_bucket{lane=\"shared\",le=\"0.1\"} 2\n\
             t_seconds_bucket{lane=\"shared\",le=\"1\"} 4\n\
             t_seconds_bucket{lane=\"shared\",le=\"10\"} 5\n\
             t_seconds_bucket{lane=\"shared\",le=\"+Inf\"} 7\n\
             t_seconds_sum{lane=\"shared\"} 556.65\n\
             t_seconds_count{lane=\"shared\"} 7\n"
        );
    }

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let mut text = Text::default();
        text.histogram("e", &[], &Histogram::new([1.0]));
        assert_eq!(text.into_string(), "e_bucket{le=\"1\"} 0\ne_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut text = Text::default();
        text.family("x_total", "counter", "Back\\slash and\nnewline.");
        text.sample("x_total", &[("route", "/a\\b\"c\"\nd"), ("status", "200")], 3.0);
        text.sample("x_total", &[], f64::NEG_INFINITY);
        text.sample("x_total", &[], f64::NAN);
        assert_eq!(
            text.into_string(),
            "# HELP x_total Back\\\\slash and\\nnewline.\n\
             # TYPE x_total counter\n\
             x_total{route=\"/a\\\\b\\\"c\\\"\\nd\",status=\"200\"} 3\n\
             x_total -Inf\n\
             x_total NaN\n"
        );
    }

    #[test]
    fn counter_sets_count_unknown_values_under_the_last() {
        let set = CounterSet::new("class", ["dns", "other"]);
        set.add("dns", 2);
        set.add("weird", 1);
        assert_eq!((set.get("dns"), set.get("other")), (2, 1));
        let mut text = Text::default();
        set.render(&mut text, "e_total");
        assert_eq!(text.into_string(), "e_total{class=\"dns\"} 2\ne_total{class=\"other\"} 1\n");
    }

    #[test]
    fn families_create_series_on_first_use() {
        let family: Family<(&str, u16), Counter> = Family::new();
        for status in [200, 404, 200] {
            family.with(("GET", status), Counter::new, Counter::inc);
        }
        let mut seen = Vec::new();
        family.each(|key, counter| seen.push((*key, counter.get())));
        assert_eq!(seen, vec![(("GET", 200), 2), (("GET", 404), 1)]);
    }

    #[test]
    fn bucket_bounds_increase() {
        for bounds in [&DURATION_BUCKETS[..], &LATENCY_BUCKETS, &HTTP_BUCKETS] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        }
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        http_request("GET", Some("/healthz".to_owned()), 200, 0.002);
        http_request("BREW", None, 404, 0.002);
        let mut text = Text::default();
        render_process(&mut text);
        let text = text.into_string();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{line} has no # TYPE before it");
            }
        }
        assert!(
            text.contains(
                "hookline_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"}"
            )
        );
        assert!(text.contains("hookline_delivery_attempt_errors_total{class=\"ssrf\"} "));
    }
}
