//! The `hookline` binary: `serve` (default: API, workers and dashboard in one process), `api`,
//! `worker`, `migrate`, `tenant create`. Composition only: configuration, logging, wiring and
//! signals live here; behaviour lives in the library crates.

use std::net::TcpListener;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookline_core::{Config, Context, Db, config::SETTINGS, crypto::Keys, tenancy};
use tokio::sync::watch;

/// jemalloc instead of glibc's malloc: the delivery path allocates and frees short-lived buffers
/// per request (hyper's read buffers, header maps, batch rows) across the runtimes' threads, and
/// glibc's malloc took about a tenth of the server's CPU (perf, bench (a) and (c)); jemalloc cut
/// the server's CPU per message by ≈ 10 %. mimalloc measured the same speed but doubled the peak
/// RSS during (a) (≈ 90 MiB against 45; the target is 100), jemalloc adds ≈ 13 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "hookline", version, about = "Hookline: a multi-tenant webhook platform", after_help = settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// API, workers and dashboard in one process (the default). Migrates the database first.
    Serve,
    /// Only the HTTP API and dashboard (run `hookline migrate` first).
    Api,
    /// Only the background workers (run `hookline migrate` first).
    Worker,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Exit 0 when the server on this machine answers `GET /readyz` (a container's HEALTHCHECK):
    /// the API's listener (HOOKLINE_LISTEN), or with --worker a worker's (HOOKLINE_WORKER_LISTEN).
    Healthcheck {
        #[arg(long)]
        worker: bool,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Plans: put a tenant on one (with overrides), name the Stripe price of one.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Internal: a sandbox process the server starts to run transforms in.
    #[command(name = "transform-sandbox", hide = true)]
    TransformSandbox,
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Put a tenant on a plan (free, pro, enterprise), optionally overriding its limits.
    Set {
        /// The tenant's id or name.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        plan: String,
        /// Messages a month included (the free plan stops there).
        #[arg(long)]
        monthly_messages: Option<i64>,
        /// Whether the tenant goes into (billed) overage past its monthly messages.
        #[arg(long)]
        overage: Option<bool>,
        #[arg(long)]
        max_applications: Option<i64>,
        /// Endpoints across all the tenant's applications.
        #[arg(long)]
        max_endpoints: Option<i64>,
        /// Deliveries per second per endpoint (0: no plan limit).
        #[arg(long)]
        endpoint_rate_limit: Option<i64>,
        /// API requests per second per credential, and the burst above it.
        #[arg(long)]
        api_rate: Option<i64>,
        #[arg(long)]
        api_burst: Option<i64>,
        /// Keep payloads and attempt bodies this many days instead of the plan's retention.
        #[arg(long)]
        retention_days: Option<i64>,
        #[arg(long)]
        max_payload_bytes: Option<i64>,
    },
    /// Name the Stripe price whose subscription puts a tenant on a plan: billing webhooks follow
    /// the subscription's or invoice's price (HOOKLINE_STRIPE_PRO_PRICE stands for pro unless a
    /// plan names it).
    Price {
        /// The plan (free, pro, enterprise).
        #[arg(long)]
        plan: String,
        /// The Stripe price id (price_…); taken from any plan that named it before.
        #[arg(long)]
        stripe_price: String,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first API key, alone on the last line.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// free, pro or enterprise.
        #[arg(long, default_value = "free")]
        plan: String,
    },
}

fn settings_help() -> String {
    let mut help =
        String::from("Configuration (environment, or the same keys lower-case in the config file):\n");
    for (name, default, meaning) in SETTINGS {
        help.push_str(&format!("  {name}\n      {meaning} [default: {default}]\n"));
    }
    help
}

/// Logging as configured (`HOOKLINE_LOG`, `HOOKLINE_LOG_FORMAT`, or their file keys).
fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_new(&config.log).map_err(|err| anyhow::anyhow!("HOOKLINE_LOG: {err}"))?;
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::TransformSandbox) = cli.command {
        // A child of the server that runs transforms (no runtime, no configuration, no logs).
        return Ok(hookline_core::transform::sandbox::serve()?);
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(cli))
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load()?;
    init_logging(&config)?;
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Healthcheck { worker } = command {
        return healthcheck(&config, worker).await;
    }
    let mut config = config;
    // The API's listener is bound before anything else, so that the default public URL (ingest
    // URLs, thin deliveries' data_url) names the port actually bound when HOOKLINE_LISTEN says :0.
    let api_listener = match command {
        Command::Serve | Command::Api => {
            let listener = bind(config.listen)?;
            if config.public_url == format!("http://{}", config.listen) {
                config.public_url = format!("http://{}", listener.local_addr()?);
            }
            Some(listener)
        }
        _ => None,
    };
    let ctx = context(config).await?;
    match command {
        Command::Serve => {
            ctx.db.migrate(&ctx.config).await?;
            run(ctx, api_listener, true).await
        }
        Command::Api => run(ctx, api_listener, false).await,
        Command::Worker => run(ctx, None, true).await,
        Command::Healthcheck { .. } => unreachable!("answered before the context is built"),
        Command::TransformSandbox => unreachable!("served before the runtime starts"),
        Command::Migrate => {
            ctx.db.migrate(&ctx.config).await?;
            tracing::info!("database is up to date");
            Ok(())
        }
        Command::Plan {
            command:
                PlanCommand::Set {
                    tenant,
                    plan,
                    monthly_messages,
                    overage,
                    max_applications,
                    max_endpoints,
                    endpoint_rate_limit,
                    api_rate,
                    api_burst,
                    retention_days,
                    max_payload_bytes,
                },
        } => {
            ctx.db.migrate(&ctx.config).await?;
            let overrides = tenancy::tenants::PlanOverrides {
                monthly_messages,
                overage_allowed: overage,
                max_applications,
                max_endpoints,
                endpoint_rate_limit,
                api_rate_per_second: api_rate,
                api_burst,
                retention_days,
                max_payload_bytes,
            };
            let out = tenancy::tenants::set_plan(&ctx, &tenant, &plan, &overrides)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            #[allow(clippy::print_stdout)]
            {
                println!("tenant {} ({}) is on the {} plan", out.id, out.name, out.plan);
            }
            Ok(())
        }
        Command::Plan { command: PlanCommand::Price { plan, stripe_price } } => {
            ctx.db.migrate(&ctx.config).await?;
            tenancy::plans::set_stripe_price(&ctx, &plan, &stripe_price)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            #[allow(clippy::print_stdout)]
            {
                println!("a subscription to {stripe_price} puts a tenant on the {plan} plan");
            }
            Ok(())
        }
        Command::Tenant { command: TenantCommand::Create { name, email, plan } } => {
            ctx.db.migrate(&ctx.config).await?;
            let (tenant, key) = tenancy::tenants::create_with_key(&ctx, &name, &email, &plan)
                .await
                .map_err(|err| anyhow::anyhow!("{err}: {err:?}"))?;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "tenant {} ({}) created on the {} plan; its API key:",
                    tenant.id, tenant.name, tenant.plan
                );
                println!("{}", key.key);
            }
            Ok(())
        }
    }
}

/// `hookline healthcheck`: asks the local listener for `/readyz` (an unspecified address such as
/// `0.0.0.0` means this machine's loopback). Needs neither the database nor the master key.
async fn healthcheck(config: &Config, worker: bool) -> anyhow::Result<()> {
    let mut addr = if worker {
        config
            .worker_listen
            .context("HOOKLINE_WORKER_LISTEN is not set: this worker serves no health route")?
    } else {
        config.listen
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}/readyz");
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(4))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(response.status().is_success(), "GET {url} answered {}", response.status());
    Ok(())
}

async fn context(config: Config) -> anyhow::Result<Context> {
    let keys = Keys::load_or_create(&config)?;
    let db = Db::connect(&config).await?;
    Context::new(db, keys, config)
}

/// Runs the API and/or the workers until SIGTERM or Ctrl-C, then stops both gracefully: the HTTP
/// server finishes in-flight requests (up to 30 s) and the workers finish their current jobs.
async fn run(ctx: Context, api: Option<TcpListener>, worker: bool) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let serves_api = api.is_some();

    if let Some(listener) = api {
        let dashboard = ctx.config.dashboard_dir.clone();
        let server_ctx = ctx.clone();
        let address = listen(listener, "hookline listening on", &stop_rx, &mut tasks, |listener| {
            hookline_api::serve(server_ctx, listener, dashboard)
        })?;
        tracing::info!(%address, dashboard = %ctx.config.dashboard_dir.display(), "API listening");
    }
    if worker
        && !serves_api
        && let Some(worker_listen) = ctx.config.worker_listen
    {
        let server_ctx = ctx.clone();
        let address =
            listen(bind(worker_listen)?, "hookline worker listening on", &stop_rx, &mut tasks, |listener| {
                hookline_api::serve_ops(server_ctx, listener)
            })?;
        tracing::info!(%address, "worker health and metrics listening");
    }
    if worker {
        let mut stop = stop_rx.clone();
        let worker_ctx = ctx.clone();
        tasks.spawn(async move {
            let engine_config = hookline_worker::EngineConfig::from_config(&worker_ctx.config);
            hookline_worker::run(worker_ctx, engine_config, async move { stopped(&mut stop).await }).await
        });
        tracing::info!("workers running");
    }

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        result = shutdown => {
            result?;
            tracing::info!("shutting down");
        }
        Some(result) = tasks.join_next() => {
            // A component stopped on its own: that is an error; stop the rest too.
            let _ = stop_tx.send(true);
            return result.context("component panicked")?.and(Err(anyhow::anyhow!("a component stopped unexpectedly")));
        }
    }
    let _ = stop_tx.send(true);
    while let Some(result) = tasks.join_next().await {
        result.context("component panicked")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A non-blocking listener on `address`.
fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Starts the HTTP server `serve` builds on `listener` (stopped gracefully with the rest) and
/// prints `<announce> http://<address>` on stdout: tests and scripts read that line to find the
/// port (the setting may say :0). Returns the bound address.
fn listen(
    listener: TcpListener,
    announce: &str,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    serve: impl FnOnce(TcpListener) -> std::io::Result<hookline_api::Server>,
) -> anyhow::Result<std::net::SocketAddr> {
    let address = listener.local_addr()?;
    let server = serve(listener)?;
    let handle = server.handle();
    let mut stop = stop_rx.clone();
    tokio::spawn(async move {
        stopped(&mut stop).await;
        handle.stop(true).await;
    });
    tasks.spawn(async move { server.await.with_context(|| format!("HTTP server on {address}")) });
    #[allow(clippy::print_stdout)]
    {
        println!("{announce} http://{address}");
    }
    Ok(address)
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        let is_set = *stop.borrow_and_update();
        if is_set || stop.changed().await.is_err() {
            return;
        }
    }
}
