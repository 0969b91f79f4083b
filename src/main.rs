//! `cryptosat`: see the library crate for the architecture.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cryptosat::cli::Cli::parse();
    ExitCode::from(cli.execute())
}
