//! One typed, layered, validated configuration: defaults, then a TOML file, then `HOOKLINE_*`
//! environment variables. File keys are the variable names without the prefix, lower-cased
//! (`listen`, `database_url`, …). Secrets are wrapped in [`Secret`] so they never print.

use std::{fmt, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::domain::{Cidr, RetrySchedule};

/// Threads that send webhooks by default (`HOOKLINE_SEND_THREADS`): half the CPUs, at least one.
/// The other half runs the API, the engine's loops and the database writer. On 2 cores one send
/// thread took ≈ 10 % less CPU per request than two (24–26 against 27–30 µs in bench (c): every
/// connection's events on one thread, fewer threads competing for the cores), and one thread
/// sends tens of thousands of requests a second.
pub fn default_send_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, usize::from) / 2).max(1)
}

/// A value that must not appear in logs or debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every setting with its environment variable, default and meaning; `hookline --help` prints it.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "HOOKLINE_CONFIG",
        "./hookline.toml if present",
        "TOML file with the keys below, lower-case and without the prefix",
    ),
    ("HOOKLINE_LISTEN", "127.0.0.1:8080", "address the API and dashboard listen on"),
    (
        "HOOKLINE_WORKER_LISTEN",
        "(none)",
        "address `hookline worker` serves /healthz, /readyz and /metrics on (off when unset)",
    ),
    ("HOOKLINE_DATA_DIR", "./data", "SQLite database, generated master key, local object store"),
    ("HOOKLINE_DATABASE_URL", "sqlite://<data dir>/hookline.db", "sqlite://PATH or postgres://USER@HOST/DB"),
    (
        "HOOKLINE_MASTER_KEY",
        "generated into <data dir>/master.key",
        "base64 of 32 bytes; encrypts secrets at rest and signs sessions",
    ),
    (
        "HOOKLINE_PREVIOUS_MASTER_KEYS",
        "(none)",
        "comma-separated old master keys, still accepted for decryption after a rotation",
    ),
    ("HOOKLINE_OBJECT_STORE", "<data dir>/objects", "directory (or s3://bucket/prefix) for large payloads"),
    (
        "HOOKLINE_SSRF_ALLOW",
        "(none)",
        "comma-separated CIDRs that endpoints may reach despite SSRF rules, e.g. 127.0.0.1/32",
    ),
    (
        "HOOKLINE_TRUSTED_PROXIES",
        "(none)",
        "comma-separated CIDRs of reverse proxies whose X-Forwarded-Proto (Secure cookie, HSTS) and X-Forwarded-For (sign-in throttling) are believed",
    ),
    ("HOOKLINE_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000", "seconds before each retry"),
    (
        "HOOKLINE_DELIVERY_LEASE_SECONDS",
        "30",
        "how long a worker holds a delivery between lease renewals; a dead worker's deliveries are retried after it",
    ),
    (
        "HOOKLINE_CIRCUIT_THRESHOLD",
        "10",
        "consecutive failed attempts that open an endpoint's circuit (pause, then probe one at a time)",
    ),
    ("HOOKLINE_CIRCUIT_COOLDOWN_SECONDS", "30", "how long an open circuit pauses deliveries before a probe"),
    (
        "HOOKLINE_DISABLE_AFTER_SECONDS",
        "432000",
        "an endpoint whose every attempt failed for this long (5 days) is disabled",
    ),
    ("HOOKLINE_MAX_IN_FLIGHT", "1024", "deliveries in flight at once per worker process (shared lane)"),
    ("HOOKLINE_ENDPOINT_IN_FLIGHT", "64", "deliveries in flight at once to one endpoint per worker process"),
    (
        "HOOKLINE_DEDICATED_IN_FLIGHT",
        "256",
        "deliveries in flight at once per worker process for tenants with a dedicated queue",
    ),
    (
        "HOOKLINE_SEND_THREADS",
        "half the CPUs, at least 1",
        "threads that send webhooks, each with its own connections (per worker process)",
    ),
    (
        "HOOKLINE_SEARCH_COMMON_WORD_MATCHES",
        "2000",
        "SQLite payload search: words with at least this many matches walk the messages newest first instead of the matches",
    ),
    (
        "HOOKLINE_MAINTENANCE_INTERVAL_SECONDS",
        "600",
        "how often maintenance runs (retention purge, idempotency-key expiry)",
    ),
    (
        "HOOKLINE_MAX_PAYLOAD_BYTES",
        "20971520",
        "largest accepted message payload, whatever the plan (plans set their own, lower limits)",
    ),
    (
        "HOOKLINE_CLAIM_CHECK_BYTES",
        "262144",
        "payloads over this size are kept in the object store; the row keeps a reference",
    ),
    (
        "HOOKLINE_TRANSFORM_CPU_MS",
        "50",
        "CPU time an endpoint's transform (jq program) may use per delivery before that attempt fails",
    ),
    (
        "HOOKLINE_EVENT_ID_WINDOW_SECONDS",
        "86400",
        "a message or broadcast repeating an event_id accepted this recently is answered with the first; later the id is new again",
    ),
    (
        "HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS",
        "604800",
        "a received webhook repeating an event id its source accepted this recently (7 days) is answered as a duplicate",
    ),
    (
        "HOOKLINE_SQLITE_SYNCHRONOUS",
        "normal",
        "normal (survives a process crash) or full (survives power loss)",
    ),
    ("HOOKLINE_SESSION_TTL_HOURS", "12", "lifetime of a dashboard session"),
    ("HOOKLINE_STRIPE_API_BASE", "https://api.stripe.com", "Stripe API base URL (tests point it at a fake)"),
    ("HOOKLINE_STRIPE_SECRET_KEY", "(none: billing off)", "Stripe secret key"),
    ("HOOKLINE_STRIPE_WEBHOOK_SECRET", "(none)", "Stripe webhook signing secret"),
    ("HOOKLINE_STRIPE_PRO_PRICE", "(none)", "the Stripe price id of the Pro subscription (Checkout)"),
    (
        "HOOKLINE_STRIPE_METER_EVENT",
        "hookline_messages",
        "the Stripe billing meter's event name that overage messages are reported to",
    ),
    (
        "HOOKLINE_BILLING_GRACE_SECONDS",
        "604800",
        "after a failed payment, how long a paid tenant keeps its plan before going back to free",
    ),
    (
        "HOOKLINE_PUBLIC_URL",
        "http://<HOOKLINE_LISTEN>",
        "where users and their consumers reach this server: sources' ingest URLs, thin deliveries' data_url, billing return links (the bound port when HOOKLINE_LISTEN says :0)",
    ),
    ("HOOKLINE_DASHBOARD_DIR", "./frontend/dist", "the built dashboard served at /"),
    (
        "HOOKLINE_METRICS_TOKEN",
        "(none)",
        "GET /metrics requires Authorization: Bearer <token>; unset, /metrics answers only on a loopback listener",
    ),
    ("HOOKLINE_LOG", "info", "tracing filter, e.g. hookline=debug,info"),
    ("HOOKLINE_LOG_FORMAT", "text", "text or json"),
];

/// CPU time an endpoint's transform may use per run unless `HOOKLINE_TRANSFORM_CPU_MS` says
/// otherwise, in milliseconds.
pub const DEFAULT_TRANSFORM_CPU_MS: u64 = 50;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where `hookline worker` serves its health and metrics routes; `None`: it serves nothing.
    pub worker_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// `None` until resolved by [`crate::crypto::Keys::load_or_create`].
    pub master_key: Option<Secret>,
    pub previous_master_keys: Vec<Secret>,
    pub object_store: String,
    pub ssrf_allow: Vec<Cidr>,
    /// Peers whose `X-Forwarded-Proto` / `Forwarded` headers are believed (reverse proxies).
    pub trusted_proxies: Vec<Cidr>,
    pub retry_schedule: RetrySchedule,
    pub max_payload_bytes: usize,
    pub claim_check_bytes: usize,
    /// CPU time a transform may use per run, in milliseconds.
    pub transform_cpu_ms: u64,
    /// How long an `event_id` de-duplicates API messages and broadcasts.
    pub event_id_window_seconds: u64,
    /// How long a source's event id de-duplicates received webhooks.
    pub source_dedup_window_seconds: u64,
    pub delivery_lease_seconds: u32,
    pub circuit_threshold: u32,
    pub circuit_cooldown_seconds: u32,
    pub disable_after_seconds: u64,
    pub maintenance_interval_seconds: u64,
    pub search_common_word_matches: i64,
    pub max_in_flight: usize,
    pub dedicated_in_flight: usize,
    pub endpoint_in_flight: usize,
    pub send_threads: usize,
    pub sqlite_synchronous_full: bool,
    pub session_ttl_hours: u32,
    pub stripe_api_base: String,
    pub stripe_secret_key: Option<Secret>,
    pub stripe_webhook_secret: Option<Secret>,
    pub stripe_pro_price: Option<String>,
    pub stripe_meter_event: String,
    pub billing_grace_seconds: u64,
    pub public_url: String,
    pub dashboard_dir: PathBuf,
    /// `GET /metrics` requires it as a bearer token when set.
    pub metrics_token: Option<Secret>,
    /// The tracing filter (`HOOKLINE_LOG`).
    pub log: String,
    /// Log lines as JSON objects instead of text.
    pub log_json: bool,
}

/// A value in the file: TOML's own types (`send_threads = 3`, `ssrf_allow = ["10.0.0.0/8"]`,
/// `sqlite_synchronous = "full"`) or the text the environment variable takes (`send_threads =
/// "3"`); both are checked by the same rules. A list is the comma-separated list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    List(Vec<FileValue>),
}

impl FileValue {
    fn into_text(self) -> String {
        match self {
            FileValue::Text(text) => text,
            FileValue::Integer(n) => n.to_string(),
            FileValue::Float(x) => x.to_string(),
            FileValue::Boolean(b) => b.to_string(),
            FileValue::List(items) => {
                items.into_iter().map(FileValue::into_text).collect::<Vec<_>>().join(",")
            }
        }
    }
}

/// The file layer: every key optional, named like its variable without `HOOKLINE_`, lower-case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLayer {
    listen: Option<FileValue>,
    worker_listen: Option<FileValue>,
    data_dir: Option<FileValue>,
    database_url: Option<FileValue>,
    master_key: Option<FileValue>,
    previous_master_keys: Option<FileValue>,
    object_store: Option<FileValue>,
    ssrf_allow: Option<FileValue>,
    trusted_proxies: Option<FileValue>,
    retry_schedule: Option<FileValue>,
    max_payload_bytes: Option<FileValue>,
    claim_check_bytes: Option<FileValue>,
    transform_cpu_ms: Option<FileValue>,
    event_id_window_seconds: Option<FileValue>,
    source_dedup_window_seconds: Option<FileValue>,
    delivery_lease_seconds: Option<FileValue>,
    circuit_threshold: Option<FileValue>,
    circuit_cooldown_seconds: Option<FileValue>,
    disable_after_seconds: Option<FileValue>,
    maintenance_interval_seconds: Option<FileValue>,
    search_common_word_matches: Option<FileValue>,
    max_in_flight: Option<FileValue>,
    dedicated_in_flight: Option<FileValue>,
    endpoint_in_flight: Option<FileValue>,
    send_threads: Option<FileValue>,
    sqlite_synchronous: Option<FileValue>,
    session_ttl_hours: Option<FileValue>,
    stripe_api_base: Option<FileValue>,
    stripe_secret_key: Option<FileValue>,
    stripe_webhook_secret: Option<FileValue>,
    stripe_pro_price: Option<FileValue>,
    stripe_meter_event: Option<FileValue>,
    billing_grace_seconds: Option<FileValue>,
    public_url: Option<FileValue>,
    dashboard_dir: Option<FileValue>,
    metrics_token: Option<FileValue>,
    log: Option<FileValue>,
    log_format: Option<FileValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{name}: {detail}")]
    Invalid { name: &'static str, detail: String },
}

impl Config {
    /// Defaults, then the file named by `HOOKLINE_CONFIG` (or `./hookline.toml` when it exists),
    /// then the environment.
    pub fn load() -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file_path = env("HOOKLINE_CONFIG").map(PathBuf::from).or_else(|| {
            let default = PathBuf::from("hookline.toml");
            default.exists().then_some(default)
        });
        let file = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.clone(), source })?
            }
            None => FileLayer::default(),
        };
        Config::from_layers(file, env)
    }

    /// Builds the configuration from a file layer and an environment lookup (tests pass their own).
    fn from_layers(file: FileLayer, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let pick =
            |name: &str, from_file: Option<FileValue>| env(name).or(from_file.map(FileValue::into_text));
        let invalid = |name: &'static str, detail: String| ConfigError::Invalid { name, detail };

        let listen = pick("HOOKLINE_LISTEN", file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
            .parse()
            .map_err(|err| invalid("HOOKLINE_LISTEN", format!("{err}")))?;
        let worker_listen = pick("HOOKLINE_WORKER_LISTEN", file.worker_listen)
            .map(|value| value.parse().map_err(|err| invalid("HOOKLINE_WORKER_LISTEN", format!("{err}"))))
            .transpose()?;
        let data_dir =
            PathBuf::from(pick("HOOKLINE_DATA_DIR", file.data_dir).unwrap_or_else(|| "./data".to_owned()));
        let database_url = pick("HOOKLINE_DATABASE_URL", file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hookline.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "HOOKLINE_DATABASE_URL",
                "must start with sqlite: or postgres://".to_owned(),
            ));
        }
        let master_key = pick("HOOKLINE_MASTER_KEY", file.master_key).map(Secret::new);
        let previous_master_keys = pick("HOOKLINE_PREVIOUS_MASTER_KEYS", file.previous_master_keys)
            .map(|list| list.split(',').map(|k| Secret::new(k.trim().to_owned())).collect())
            .unwrap_or_default();
        let object_store = pick("HOOKLINE_OBJECT_STORE", file.object_store)
            .unwrap_or_else(|| data_dir.join("objects").display().to_string());
        let cidrs = |name: &'static str, list: Option<String>| -> Result<Vec<Cidr>, ConfigError> {
            match list {
                None => Ok(Vec::new()),
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Cidr::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|err| invalid(name, err.to_string())),
            }
        };
        let ssrf_allow = cidrs("HOOKLINE_SSRF_ALLOW", pick("HOOKLINE_SSRF_ALLOW", file.ssrf_allow))?;
        let trusted_proxies =
            cidrs("HOOKLINE_TRUSTED_PROXIES", pick("HOOKLINE_TRUSTED_PROXIES", file.trusted_proxies))?;
        let retry_schedule = match pick("HOOKLINE_RETRY_SCHEDULE", file.retry_schedule) {
            None => RetrySchedule::default(),
            Some(list) => RetrySchedule::parse_list(&list)
                .map_err(|err| invalid("HOOKLINE_RETRY_SCHEDULE", err.to_string()))?,
        };
        let max_payload_bytes = match pick("HOOKLINE_MAX_PAYLOAD_BYTES", file.max_payload_bytes) {
            None => 20 * 1024 * 1024,
            Some(n) => n.parse().map_err(|err| invalid("HOOKLINE_MAX_PAYLOAD_BYTES", format!("{err}")))?,
        };
        let claim_check_bytes = match pick("HOOKLINE_CLAIM_CHECK_BYTES", file.claim_check_bytes) {
            None => 256 * 1024,
            Some(n) => n.parse().map_err(|err| invalid("HOOKLINE_CLAIM_CHECK_BYTES", format!("{err}")))?,
        };
        let transform_cpu_ms = match pick("HOOKLINE_TRANSFORM_CPU_MS", file.transform_cpu_ms) {
            None => DEFAULT_TRANSFORM_CPU_MS,
            Some(n) => match n.parse::<u64>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "HOOKLINE_TRANSFORM_CPU_MS",
                        "must be 1 to 10000 (milliseconds)".to_owned(),
                    ));
                }
            },
        };
        let delivery_lease_seconds =
            match pick("HOOKLINE_DELIVERY_LEASE_SECONDS", file.delivery_lease_seconds) {
                None => 30,
                Some(n) => match n.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(invalid(
                            "HOOKLINE_DELIVERY_LEASE_SECONDS",
                            format!("expected a whole number of seconds, got {n}"),
                        ));
                    }
                },
            };
        fn number<T: std::str::FromStr>(
            name: &'static str,
            value: Option<String>,
            default: T,
        ) -> Result<T, ConfigError> {
            match value {
                None => Ok(default),
                Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
                    name,
                    detail: format!("expected a whole number, got {text}"),
                }),
            }
        }
        let circuit_threshold = number(
            "HOOKLINE_CIRCUIT_THRESHOLD",
            pick("HOOKLINE_CIRCUIT_THRESHOLD", file.circuit_threshold),
            10,
        )?;
        let circuit_cooldown_seconds = number(
            "HOOKLINE_CIRCUIT_COOLDOWN_SECONDS",
            pick("HOOKLINE_CIRCUIT_COOLDOWN_SECONDS", file.circuit_cooldown_seconds),
            30,
        )?;
        let disable_after_seconds = number(
            "HOOKLINE_DISABLE_AFTER_SECONDS",
            pick("HOOKLINE_DISABLE_AFTER_SECONDS", file.disable_after_seconds),
            5 * 24 * 3600,
        )?;
        let maintenance_interval_seconds: u64 = number(
            "HOOKLINE_MAINTENANCE_INTERVAL_SECONDS",
            pick("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", file.maintenance_interval_seconds),
            600,
        )?;
        if maintenance_interval_seconds == 0 {
            return Err(invalid("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", "must be at least 1".to_owned()));
        }
        let event_id_window_seconds: u64 = number(
            "HOOKLINE_EVENT_ID_WINDOW_SECONDS",
            pick("HOOKLINE_EVENT_ID_WINDOW_SECONDS", file.event_id_window_seconds),
            24 * 3600,
        )?;
        let source_dedup_window_seconds: u64 = number(
            "HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS",
            pick("HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS", file.source_dedup_window_seconds),
            7 * 24 * 3600,
        )?;
        let billing_grace_seconds: u64 = number(
            "HOOKLINE_BILLING_GRACE_SECONDS",
            pick("HOOKLINE_BILLING_GRACE_SECONDS", file.billing_grace_seconds),
            7 * 24 * 3600,
        )?;
        let public_url = pick("HOOKLINE_PUBLIC_URL", file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let max_in_flight: usize =
            number("HOOKLINE_MAX_IN_FLIGHT", pick("HOOKLINE_MAX_IN_FLIGHT", file.max_in_flight), 1024)?;
        let dedicated_in_flight: usize = number(
            "HOOKLINE_DEDICATED_IN_FLIGHT",
            pick("HOOKLINE_DEDICATED_IN_FLIGHT", file.dedicated_in_flight),
            256,
        )?;
        let endpoint_in_flight: usize = number(
            "HOOKLINE_ENDPOINT_IN_FLIGHT",
            pick("HOOKLINE_ENDPOINT_IN_FLIGHT", file.endpoint_in_flight),
            64,
        )?;
        let send_threads: usize = number(
            "HOOKLINE_SEND_THREADS",
            pick("HOOKLINE_SEND_THREADS", file.send_threads),
            default_send_threads(),
        )?;
        if send_threads == 0 {
            return Err(invalid("HOOKLINE_SEND_THREADS", "must be at least 1".to_owned()));
        }
        let search_common_word_matches: i64 = number(
            "HOOKLINE_SEARCH_COMMON_WORD_MATCHES",
            pick("HOOKLINE_SEARCH_COMMON_WORD_MATCHES", file.search_common_word_matches),
            2000,
        )?;
        let sqlite_synchronous_full =
            match pick("HOOKLINE_SQLITE_SYNCHRONOUS", file.sqlite_synchronous).as_deref() {
                None | Some("normal") => false,
                Some("full") => true,
                Some(other) => {
                    return Err(invalid(
                        "HOOKLINE_SQLITE_SYNCHRONOUS",
                        format!("expected normal or full, got {other}"),
                    ));
                }
            };
        let session_ttl_hours = match pick("HOOKLINE_SESSION_TTL_HOURS", file.session_ttl_hours) {
            None => 12,
            Some(n) => n.parse().map_err(|err| invalid("HOOKLINE_SESSION_TTL_HOURS", format!("{err}")))?,
        };
        let log = pick("HOOKLINE_LOG", file.log).unwrap_or_else(|| "info".to_owned());
        let log_json = match pick("HOOKLINE_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(invalid("HOOKLINE_LOG_FORMAT", format!("expected text or json, got {other}")));
            }
        };
        Ok(Config {
            log,
            log_json,
            listen,
            worker_listen,
            data_dir,
            database_url,
            master_key,
            previous_master_keys,
            object_store,
            ssrf_allow,
            trusted_proxies,
            retry_schedule,
            max_payload_bytes,
            claim_check_bytes,
            transform_cpu_ms,
            event_id_window_seconds,
            source_dedup_window_seconds,
            delivery_lease_seconds,
            circuit_threshold,
            circuit_cooldown_seconds,
            disable_after_seconds,
            maintenance_interval_seconds,
            search_common_word_matches,
            max_in_flight,
            dedicated_in_flight,
            endpoint_in_flight,
            send_threads,
            sqlite_synchronous_full,
            session_ttl_hours,
            stripe_api_base: pick("HOOKLINE_STRIPE_API_BASE", file.stripe_api_base)
                .unwrap_or_else(|| "https://api.stripe.com".to_owned()),
            stripe_secret_key: pick("HOOKLINE_STRIPE_SECRET_KEY", file.stripe_secret_key).map(Secret::new),
            stripe_webhook_secret: pick("HOOKLINE_STRIPE_WEBHOOK_SECRET", file.stripe_webhook_secret)
                .map(Secret::new),
            stripe_pro_price: pick("HOOKLINE_STRIPE_PRO_PRICE", file.stripe_pro_price),
            stripe_meter_event: pick("HOOKLINE_STRIPE_METER_EVENT", file.stripe_meter_event)
                .unwrap_or_else(|| "hookline_messages".to_owned()),
            billing_grace_seconds,
            public_url,
            dashboard_dir: PathBuf::from(
                pick("HOOKLINE_DASHBOARD_DIR", file.dashboard_dir)
                    .unwrap_or_else(|| "./frontend/dist".to_owned()),
            ),
            metrics_token: pick("HOOKLINE_METRICS_TOKEN", file.metrics_token).map(Secret::new),
        })
    }

    /// The defaults with this database and data directory: for tests and tools.
    pub fn with_database(database_url: &str, data_dir: &std::path::Path) -> Result<Config, ConfigError> {
        let data_dir = data_dir.display().to_string();
        Config::from_layers(FileLayer::default(), |name| match name {
            "HOOKLINE_DATABASE_URL" => Some(database_url.to_owned()),
            "HOOKLINE_DATA_DIR" => Some(data_dir.clone()),
            _ => None,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file: FileLayer = toml::from_str(file).unwrap();
        let env: HashMap<String, String> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_layers(file, |name| env.get(name).cloned())
    }

    #[test]
    fn no_configuration_gives_the_embedded_default() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.worker_listen, None, "a worker serves no HTTP unless told to");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url, "sqlite://./data/hookline.db");
        assert!(config.master_key.is_none());
        assert_eq!(config.retry_schedule.seconds(), &[5, 300, 1800, 7200, 18000, 36000, 36000]);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(config.send_threads, (cpus / 2).max(1), "a send thread per two CPUs");
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = load(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"",
            &[("HOOKLINE_LISTEN", "127.0.0.1:9001")],
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.database_url, "sqlite:///tmp/x/hookline.db");
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let err = load("", &[("HOOKLINE_SSRF_ALLOW", "127.0.0.1/40")]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_SSRF_ALLOW"), "{err}");
        let err = load("", &[("HOOKLINE_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_DATABASE_URL"), "{err}");
        let err = load("", &[("HOOKLINE_RETRY_SCHEDULE", "5,x")]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_RETRY_SCHEDULE"), "{err}");
        let err = load("", &[("HOOKLINE_WORKER_LISTEN", "9090")]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_WORKER_LISTEN"), "{err}");
        let err = load("", &[("HOOKLINE_SEND_THREADS", "0")]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_SEND_THREADS"), "{err}");
        let err = load("send_threads = true", &[]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_SEND_THREADS"), "{err}");
        let err = load("log_format = \"yaml\"", &[]).unwrap_err();
        assert!(err.to_string().starts_with("HOOKLINE_LOG_FORMAT"), "{err}");
        assert_eq!(load("send_threads = \"3\"", &[]).unwrap().send_threads, 3, "text as in the environment");
        let config = load("worker_listen = \"0.0.0.0:9090\"", &[]).unwrap();
        assert_eq!(config.worker_listen.map(|a| a.to_string()).as_deref(), Some("0.0.0.0:9090"));
    }

    #[test]
    fn secrets_do_not_print() {
        let config =
            load("", &[("HOOKLINE_MASTER_KEY", "super-secret"), ("HOOKLINE_METRICS_TOKEN", "scrape-secret")])
                .unwrap();
        assert!(!format!("{config:?}").contains("super-secret"));
        assert!(!format!("{config:?}").contains("scrape-secret"));
        assert_eq!(config.metrics_token.as_ref().map(Secret::expose), Some("scrape-secret"));
    }

    /// Every setting but `HOOKLINE_CONFIG` is a file key, written with its natural TOML type, and
    /// reaches the configuration. (Before: only strings were accepted, and `log`/`log_format`,
    /// listed as file keys by `--help`, were refused.)
    #[test]
    fn every_setting_is_read_from_a_typed_toml_file() {
        let file = r#"
            listen = "127.0.0.1:9100"
            worker_listen = "127.0.0.1:9101"
            data_dir = "/srv/hookline"
            database_url = "postgres://hookline@db/hookline"
            master_key = "a2V5"
            previous_master_keys = ["b2xk", "b2xkZXI="]
            object_store = "s3://bucket/prefix"
            ssrf_allow = ["127.0.0.1/32", "10.0.0.0/8"]
            trusted_proxies = ["192.168.0.0/16"]
            retry_schedule = [1, 2, 3]
            delivery_lease_seconds = 45
            circuit_threshold = 7
            circuit_cooldown_seconds = 12
            disable_after_seconds = 3600
            max_in_flight = 512
            endpoint_in_flight = 16
            dedicated_in_flight = 128
            send_threads = 3
            search_common_word_matches = 500
            maintenance_interval_seconds = 60
            max_payload_bytes = 1048576
            claim_check_bytes = 65536
            transform_cpu_ms = 200
            event_id_window_seconds = 3600
            source_dedup_window_seconds = 7200
            sqlite_synchronous = "full"
            session_ttl_hours = 24
            stripe_api_base = "http://127.0.0.1:12111"
            stripe_secret_key = "sk_test_x"
            stripe_webhook_secret = "whsec_x"
            stripe_pro_price = "price_pro"
            stripe_meter_event = "meter_x"
            billing_grace_seconds = 86400
            public_url = "https://hooks.example.com/"
            dashboard_dir = "/srv/dashboard"
            metrics_token = "scrape"
            log = "hookline=debug,info"
            log_format = "json"
        "#;
        let written: Vec<String> = file
            .lines()
            .filter_map(|line| line.trim().split_once(" = ").map(|(key, _)| key.to_owned()))
            .collect();
        for (name, _, _) in SETTINGS.iter().filter(|(name, _, _)| *name != "HOOKLINE_CONFIG") {
            let key = name.trim_start_matches("HOOKLINE_").to_lowercase();
            assert!(written.contains(&key), "{name} has no file key {key} in this test");
        }
        let c = load(file, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.worker_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9101"));
        assert_eq!(c.data_dir, PathBuf::from("/srv/hookline"));
        assert_eq!(c.database_url, "postgres://hookline@db/hookline");
        assert_eq!(c.master_key.as_ref().map(Secret::expose), Some("a2V5"));
        assert_eq!(
            c.previous_master_keys.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["b2xk", "b2xkZXI="]
        );
        assert_eq!(c.object_store, "s3://bucket/prefix");
        assert_eq!(c.ssrf_allow.len(), 2);
        assert_eq!(c.trusted_proxies.len(), 1);
        assert_eq!(c.retry_schedule.seconds(), &[1, 2, 3]);
        assert_eq!(
            (
                c.delivery_lease_seconds,
                c.circuit_threshold,
                c.circuit_cooldown_seconds,
                c.disable_after_seconds
            ),
            (45, 7, 12, 3600)
        );
        assert_eq!(
            (c.max_in_flight, c.endpoint_in_flight, c.dedicated_in_flight, c.send_threads),
            (512, 16, 128, 3)
        );
        assert_eq!((c.search_common_word_matches, c.maintenance_interval_seconds), (500, 60));
        assert_eq!((c.max_payload_bytes, c.claim_check_bytes), (1048576, 65536));
        assert_eq!(c.transform_cpu_ms, 200);
        assert_eq!((c.event_id_window_seconds, c.source_dedup_window_seconds), (3600, 7200));
        assert!(c.sqlite_synchronous_full);
        assert_eq!(c.session_ttl_hours, 24);
        assert_eq!(c.stripe_api_base, "http://127.0.0.1:12111");
        assert_eq!(c.stripe_secret_key.as_ref().map(Secret::expose), Some("sk_test_x"));
        assert_eq!(c.stripe_webhook_secret.as_ref().map(Secret::expose), Some("whsec_x"));
        assert_eq!(c.stripe_pro_price.as_deref(), Some("price_pro"));
        assert_eq!(c.stripe_meter_event, "meter_x");
        assert_eq!(c.billing_grace_seconds, 86400);
        assert_eq!(c.public_url, "https://hooks.example.com");
        assert_eq!(c.dashboard_dir, PathBuf::from("/srv/dashboard"));
        assert_eq!(c.metrics_token.as_ref().map(Secret::expose), Some("scrape"));
        assert_eq!((c.log.as_str(), c.log_json), ("hookline=debug,info", true));
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileLayer>("lisen = \"x\"").is_err());
    }
}
