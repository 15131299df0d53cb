//! `benchkit`: the measuring tools behind `make bench` (see BENCHMARKS.md).
//!
//! - `lambda`: a local Lambda Runtime API; init time, invocation durations, peak RSS, log bytes.
//! - `worker`: the worker's batch concurrency against a slow fake SparkLoop, and the DynamoDB
//!   and SQS requests per event (counted at the SDK, on moto).
//! - `e2e`: N distinct signed webhooks through `sparkbridge dev` to a fake SparkLoop.

mod aws;
mod e2e;
mod emu;
mod events;
mod fake;
mod util;
mod worker_bench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "benchkit",
    about = "sparkbridge benchmark harness (make bench)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a bootstrap against a local Lambda Runtime API
    Lambda(emu::LambdaArgs),
    /// Worker batch concurrency and DynamoDB/SQS round trips per event
    Worker(worker_bench::WorkerArgs),
    /// End to end through `sparkbridge dev` to a fake SparkLoop
    E2e(e2e::E2eArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Lambda(a) => emu::run(a).await,
        Command::Worker(a) => worker_bench::run(a).await,
        Command::E2e(a) => e2e::run(a).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchkit: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
