//! `visorsim scenario`: working with scenario files. One subcommand per
//! module; today `new` (a scenario from a customer's image), with room for
//! more (`scenario check`, `scenario fmt`...) beside it.

mod new;

use clap::{Args, Subcommand};

use crate::failure::{Failure, Status};

/// Arguments of `visorsim scenario`.
#[derive(Args, Debug)]
pub struct ScenarioArgs {
    #[command(subcommand)]
    command: ScenarioCommand,
}

#[derive(Subcommand, Debug)]
enum ScenarioCommand {
    /// Write a scenario that starts from a disk image, with one boot and what `explain` says it does.
    New(new::NewArgs),
}

/// Runs `visorsim scenario ...`.
pub fn run(args: ScenarioArgs) -> Result<Status, Failure> {
    match args.command {
        ScenarioCommand::New(args) => new::run(args),
    }
}
