//! `visorsim`: the command-line front end.
//!
//! One module per subcommand; each returns a [`failure::Status`] or a
//! [`failure::Failure`], and `main` maps them to exit codes (decided in
//! `failure.rs`, nowhere else):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (for `inspect`: no problem found) |
//! | 1 | error: the command could not do its job (message on stderr) |
//! | 2 | usage error (from clap) |
//! | 3 | `inspect` read the disk but found problems (listed in the report) |
//! | 4 | `boot`: "No hypervisor found." |
//! | 5 | `boot`: mboot stopped with a fatal error (a module or boot.cfg failed to load) |
//! | 6 | `boot`: the selected bank failed to chainload ("ESX version is unknown.") |
//! | 7 | `run`: a scenario's expectation was not met; `explore`, `report`: an invariant was violated at a crash point |
//! | 8 | `boot --qemu`, `demo --qemu`: the guest received other modules or another command line than mboot loaded |
//! | 9 | `boot`: the firmware could not start the loader (the system partition is missing, unreadable or lacks it) |
//!
//! A closed stdout (`visorsim ... | head -1`) ends any command quietly with
//! exit 0, whether the write failed in a `println!` (see [`quiet_on_broken_pipe`])
//! or came back as an error (see [`failure::Failure::is_broken_pipe`]).

mod args;
mod bench;
mod boot;
mod build;
mod cache;
mod convert;
mod dashboard;
mod demo;
mod explain;
mod explore;
mod failure;
mod handoff;
mod host;
mod image_open;
mod inspect;
mod progress;
mod run;
mod scenario;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An ESXi boot-device emulator for testing upgrade, backup and boot logic under faults.
#[derive(Parser, Debug)]
#[command(name = "visorsim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Play a narrated life of an ESXi host on a realistic disk: backups, upgrades, rollbacks.
    Demo(demo::DemoArgs),
    /// Drive a host on your own image, one step per invocation (state in <image>.host.json).
    Host(host::HostArgs),
    /// Explore every crash point of an operation and check the invariants.
    Explore(explore::ExploreArgs),
    /// Merge the JSON-lines outputs of sharded `explore` runs.
    Report(explore::ReportArgs),
    /// Run scenario files: steps, faults and expectations (see scenarios/README.md).
    Run(run::RunArgs),
    /// Make scenario files: `scenario new --from IMAGE` turns a customer's disk into a test.
    Scenario(scenario::ScenarioArgs),
    /// Build a freshly installed ESXi boot disk image.
    Build(build::BuildArgs),
    /// Boot a disk image as ESXi's bootloader would (changes it in place unless --dry-run).
    Boot(boot::BootArgs),
    /// Show the partition table, banks, boot.cfg and modules of a disk image.
    Inspect(inspect::InspectArgs),
    /// Explain why a disk image (raw, vmdk, qcow2, vhdx) boots what it boots, and what comes next.
    Explain(explain::ExplainArgs),
    /// Convert a raw disk image to vmdk, qcow2, vhdx or raw with qemu-img.
    Export(convert::ExportArgs),
    /// Convert a vmdk, qcow2, vhdx or raw image into a raw disk image.
    Import(convert::ImportArgs),
    /// Show the payload cache's directory and size, or remove visorsim's files from it.
    Cache(cache::CacheArgs),
    /// Measure the boot hot path, explore and build against their peers and the machine's limits.
    Bench(bench::BenchArgs),
    /// Draw a bench history file as a static page (tables, trend charts, a cold boot's breakdown).
    Dashboard(dashboard::DashboardArgs),
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    // SIGINT/SIGTERM/SIGHUP: kill running tools, remove registered
    // temporaries, exit 128 + signal. Without it a signal would still end
    // visorsim (and its children, by PR_SET_PDEATHSIG), leaving temporaries.
    if let Err(e) = visorsim_tools::cleanup::install_signal_handler() {
        eprintln!("visorsim: note: no signal handler ({e}): an interrupted conversion may leave its temporary");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Run(args) => run::run(args),
        Command::Scenario(args) => scenario::run(args),
        Command::Explore(args) => explore::explore(args),
        Command::Report(args) => explore::report(args),
        Command::Demo(args) => demo::run(args),
        Command::Host(args) => host::run(args),
        Command::Boot(args) => boot::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Export(args) => convert::export(args),
        Command::Import(args) => convert::import(args),
        Command::Cache(args) => cache::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Dashboard(args) => dashboard::run(args),
    };
    match result {
        Ok(status) => status.into(),
        Err(failure) if failure.is_broken_pipe() => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("visorsim: {failure}");
            failure.exit_code()
        }
    }
}

/// Makes a write to a closed stdout end the process quietly with exit 0,
/// for every command, whichever module printed: Rust ignores SIGPIPE, so
/// `println!` on a pipe whose reader is gone (`| head -1`) panics with
/// "failed printing to stdout: Broken pipe"; this hook exits instead of
/// reporting that panic (from any thread). Every other panic goes to the
/// default hook unchanged.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(is_stdout_broken_pipe) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether a panic message is std's for a `print!` to a closed pipe.
fn is_stdout_broken_pipe(message: &str) -> bool {
    let broken = std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string();
    message.starts_with("failed printing to stdout")
        && (message.contains("Broken pipe") || message.contains("os error 32") || message.contains(&broken))
}
