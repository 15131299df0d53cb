//! `sparkbridge`: run the whole bridge locally, send signed test webhooks, operate the DLQ.

mod config_check;
mod defaults;
mod dev;
mod dlq;
mod error;
mod reconcile;
mod samples;
mod send;
mod smoke;
mod state;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sparkbridge::core::envelope::Provider;

#[derive(Parser)]
#[command(
    name = "sparkbridge",
    version,
    about = "Connects Loops or eSputnik to SparkLoop: run it locally, test it, operate it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingest handlers and the worker in one process (in-memory queue and store by
    /// default; real SQS/DynamoDB with --aws or AWS_ENDPOINT_URL)
    Dev {
        /// Address to serve the webhook routes on
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Use SQS and DynamoDB (QUEUE_URL, DLQ_URL, TABLE_NAME) instead of memory
        #[arg(long)]
        aws: bool,
        /// With --aws: create the queue, DLQ and table if missing
        #[arg(long)]
        create: bool,
        /// With --create: name of the queue (its DLQ gets `-dlq`) and of the table
        #[arg(long, default_value = "sparkbridge-dev")]
        name: String,
        /// Concurrent worker invocations (the event source mapping's concurrency)
        #[arg(long, default_value_t = 2)]
        pollers: usize,
        /// Receive only: no worker consumes the queue (with --aws, leave it to another
        /// consumer; in memory, deliveries accumulate until the process ends)
        #[arg(long)]
        no_worker: bool,
    },
    /// Send a sample event (or a file), authenticated as the provider would
    Send {
        /// loops, esputnik or sparkloop
        provider: Provider,
        /// A sample name from events/<provider>/ (e.g. email.unsubscribed) or a file path
        event: String,
        /// The bridge's base URL or the full webhook URL
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// Use a fresh webhook id instead of the sample's (Loops), so it is not a duplicate
        #[arg(long)]
        new_id: bool,
        #[arg(long)]
        json: bool,
    },
    /// Inspect and replay the dead-letter queue (DLQ_URL, QUEUE_URL)
    Dlq {
        #[arg(long, env = "DLQ_URL")]
        dlq_url: String,
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Show a subscriber's state and history
    Subscriber {
        #[command(subcommand)]
        action: SubscriberAction,
    },
    /// Run the engagement screener now; --dry-run lists who would be rejected and why
    Screen {
        #[arg(long)]
        dry_run: bool,
        /// A running `sparkbridge dev` (default: the table and queue in TABLE_NAME, QUEUE_URL)
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Compare SparkLoop, the ESP and the state table; queue what the webhooks missed
    Reconcile {
        /// Print each repair it would queue; change nothing (always the whole window, never
        /// resumed from a checkpoint)
        #[arg(long)]
        dry_run: bool,
        /// How many days back to check (default RECONCILE_SINCE_DAYS, 37); starts from the
        /// newest referral instead of resuming a cut-off run
        #[arg(long)]
        since: Option<i64>,
        /// Queue SparkLoop unsubscribes even when they are more than
        /// RECONCILE_MAX_UNSUBSCRIBE_SHARE (default 0.05) of the referrals compared
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Prove a deployed stack works end to end: one authenticated test event per provider,
    /// watched in the state table until the worker has processed it
    Smoke(smoke::SmokeArgs),
    /// Configuration tools
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List parked messages (they stay on the DLQ)
    List {
        #[arg(long, default_value_t = 100)]
        max: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one message with its attributes and body
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send messages back to the main queue (attributes preserved) and remove them from the DLQ
    Replay {
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "QUEUE_URL")]
        queue_url: String,
    },
}

#[derive(Subcommand)]
enum SubscriberAction {
    /// Referral status, screening, engagement and history of one subscriber
    Show {
        email: String,
        /// A running `sparkbridge dev` (default: the table in TABLE_NAME)
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the configuration from the environment; non-zero exit if anything is wrong
    Check {
        /// Also make one cheap authenticated read against each configured API (SparkLoop, the
        /// ESP) and fail on 401/403/404 or a redirect; without it nothing is called
        #[arg(long)]
        online: bool,
        #[arg(long)]
        json: bool,
    },
}

/// `sparkbridge dev` allocates per request and per record on every core it has; glibc's
/// allocator took about a third of its CPU under load (BENCHMARKS.md, figure 2). The Lambda
/// functions keep the system allocator: one request at a time, and every byte counts there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // dev logs a line per request and per record: written from a thread of its own, so the
    // handlers never wait on stdout (kept until exit, which flushes what is left).
    let _log_guard = matches!(cli.command, Command::Dev { .. })
        .then(|| sparkbridge::telemetry::init_buffered(&sparkbridge::config::Env::process()));
    let result = match cli.command {
        Command::Dev {
            listen,
            aws,
            create,
            name,
            pollers,
            no_worker,
        } => {
            dev::run(dev::DevOptions {
                listen,
                aws,
                create,
                name,
                pollers,
                worker: !no_worker,
            })
            .await
        }
        Command::Send {
            provider,
            event,
            url,
            new_id,
            json,
        } => send::run(provider, &event, &url, new_id, json).await,
        Command::Dlq { dlq_url, action } => {
            let sqs = aws_sdk_sqs::Client::new(&sparkbridge::adapters::aws::sdk_config().await);
            match action {
                DlqAction::List { max, json } => dlq::list(&sqs, &dlq_url, max, json).await,
                DlqAction::Show { id, json } => dlq::show(&sqs, &dlq_url, &id, json).await,
                DlqAction::Replay {
                    ids,
                    all,
                    dry_run,
                    queue_url,
                } => dlq::replay(&sqs, &dlq_url, &queue_url, &ids, all, dry_run).await,
            }
        }
        Command::Subscriber {
            action: SubscriberAction::Show { email, url, json },
        } => state::show(&email, url.as_deref(), json).await,
        Command::Reconcile {
            dry_run,
            since,
            force,
            json,
        } => reconcile::run(dry_run, since, force, json).await,
        Command::Screen { dry_run, url, json } => {
            state::screen(dry_run, url.as_deref(), json).await
        }
        Command::Smoke(args) => smoke::run(args).await,
        Command::Config {
            action: ConfigAction::Check { online, json },
        } => config_check::run(json, online).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
