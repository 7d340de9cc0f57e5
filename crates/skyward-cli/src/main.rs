//! `skyward`: plan AI compute across clouds. A thin edge over the library
//! crates: parse arguments, read files, call the core, render.

/// Writes to stdout. A closed pipe (`skyward … | head`) ends the output
/// quietly instead of panicking, like other Unix tools; other write errors
/// are reported once on stderr.
macro_rules! out {
    ($($arg:tt)*) => {{
        $crate::write_stdout(&format!($($arg)*))
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        $crate::write_stdout(&format!("{}\n", format!($($arg)*)))
    }};
}

mod cmd;
mod error;
mod svg;
mod table;

use clap::{Parser, Subcommand, ValueEnum};
use error::CliError;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: about 10 % of the gateway's CPU per request was glibc's
/// malloc and free (BENCHMARKS.md, issue 14).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "skyward",
    version,
    about = "Skyward: one control plane for AI compute across clouds",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args, Clone)]
pub struct Common {
    /// Use this catalog file (from `skyward catalog import`) instead of the built-in one.
    #[arg(long, global = true, value_name = "PATH")]
    catalog: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand)]
enum Command {
    /// Place every workload of a fleet (or a SkyPilot task) at least cost.
    Plan(cmd::plan::PlanArgs),
    /// Show how the placement of one workload was decided.
    Explain(cmd::plan::ExplainArgs),
    /// Browse and import price catalogs.
    #[command(subcommand)]
    Catalog(cmd::catalog::CatalogCommand),
    /// Commitment ledger: import billing data (FOCUS), follow commitments.
    #[command(subcommand)]
    Ledger(cmd::ledger::LedgerCommand),
    /// Commitments as stored, versioned objects (`apply FILE`, `list`, `history`).
    #[command(subcommand)]
    Contracts(cmd::contracts::ContractsCommand),
    /// Simulate years of demand, prices, new chips, spot and outages
    /// through the real control-plane core; compare policies.
    Simulate(cmd::simulate::SimulateArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Start a control-plane server with local sites named after real
    /// cloud regions (embedded database; nothing to set up).
    Up(cmd::server::UpArgs),
    /// Start a control-plane server from a configuration file.
    Server(cmd::server::ServerArgs),
    /// Submit workloads to run (a workload file, or a `workloads:` list).
    Submit(cmd::client::SubmitArgs),
    /// Workloads and their state; one workload's history and why it waits.
    Status(cmd::client::StatusArgs),
    /// A workload's output (`--follow` to keep reading).
    Logs(cmd::client::LogsArgs),
    /// Cancel a workload (stops it where it runs).
    Cancel(cmd::client::IdArgs),
    /// Sites: capacity, use, price, region attributes.
    Sites(cmd::client::SitesArgs),
    /// Pending workloads in scheduling order, with the reasons they wait.
    Queue(cmd::client::ListArgs),
    /// Usage records (accelerator-hours × price per run); `--format focus`
    /// for `skyward ledger import`.
    Usage(cmd::client::UsageArgs),
    /// The commitments' live state the scheduler prices placements with:
    /// burned, forecast, and what is free at the margin.
    Commitments(cmd::client::Conn),
    /// Speeds learned from runs' throughput reports, per workload class
    /// (team/name) and accelerator alternative.
    Profiles(cmd::client::ProfilesArgs),
    /// In a run: report its throughput (`skyward metric 1234.5 --unit
    /// tokens/s`); the server learns the class's speed when the run
    /// succeeds. Prints one line to the run's output; no server needed.
    Metric(cmd::client::MetricArgs),
    /// API tokens.
    #[command(subcommand)]
    Token(cmd::server::TokenCommand),
    /// Inference gateway: one OpenAI-compatible endpoint over deployments
    /// in several clouds.
    #[command(subcommand)]
    Gateway(cmd::gateway::GatewayCommand),
    /// Run a site's work next to its cluster (local processes or Slurm),
    /// connecting outbound to the server with the site's agent token.
    Agent(cmd::agent::AgentArgs),
    /// Rehearse an outage: take a site or a provider out, report where its
    /// work moved and how long it took to resume.
    Drill(cmd::drill::DrillArgs),
    /// Inside a run: write and read numbered checkpoints in the object
    /// store the server handed it (S3, Azure Blob, GCS or a directory).
    #[command(subcommand)]
    Checkpoint(cmd::checkpoint::CheckpointCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(a) => cmd::plan::run_plan(&a),
        Command::Explain(a) => cmd::plan::run_explain(&a),
        Command::Catalog(c) => cmd::catalog::run(&c),
        Command::Ledger(l) => cmd::ledger::run(&l),
        Command::Contracts(c) => cmd::contracts::run(&c),
        Command::Simulate(a) => cmd::simulate::run(&a),
        Command::Bench(b) => cmd::bench::run(&b),
        Command::Up(a) => cmd::server::run_up(&a),
        Command::Server(a) => cmd::server::run_server(&a),
        Command::Submit(a) => cmd::client::submit(&a),
        Command::Status(a) => cmd::client::status(&a),
        Command::Logs(a) => cmd::client::logs(&a),
        Command::Cancel(a) => cmd::client::cancel(&a),
        Command::Sites(a) => cmd::client::sites(&a),
        Command::Queue(a) => cmd::client::queue(&a),
        Command::Usage(a) => cmd::client::usage(&a),
        Command::Commitments(a) => cmd::client::commitments(&a),
        Command::Profiles(a) => cmd::client::profiles(&a),
        Command::Metric(a) => cmd::client::metric(&a),
        Command::Token(t) => cmd::server::run_token(&t),
        Command::Gateway(g) => cmd::gateway::run(&g),
        Command::Agent(a) => cmd::agent::run(&a),
        Command::Drill(a) => cmd::drill::run(&a),
        Command::Checkpoint(c) => match cmd::checkpoint::run(&c) {
            Ok(Some(code)) => return ExitCode::from(code),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

pub fn write_stdout(text: &str) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write output: {e}");
        }
    }
}

pub fn load_catalog(common: &Common) -> Result<skyward_catalog::Catalog, CliError> {
    Ok(skyward_catalog::Catalog::load(common.catalog.as_deref())?)
}

#[cfg(test)]
mod tests {
    /// Every command's arguments are well formed (clap checks names, ids and
    /// conflicts only when a command is built, so a broken one would panic at
    /// its first use).
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
