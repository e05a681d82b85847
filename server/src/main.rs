//! `countersign-server`: an alias of `countersign server` for deployments that
//! ship only the server (same flags, environment and subcommands; see
//! `countersign_server::cli`). Operator commands are `countersign admin`.

use std::process::ExitCode;

use clap::Parser;
use countersign_server::cli::ServerArgs;

/// mimalloc rather than glibc's malloc: the server's many small, short-lived
/// allocations across tokio's threads cost 3–10 % less CPU per login with it
/// (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Countersign reference server (the same as `countersign server`).
#[derive(Parser, Debug)]
#[command(name = "countersign-server", version)]
struct Cli {
    #[command(flatten)]
    args: ServerArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("countersign-server: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(countersign_server::cli::run(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("countersign-server: {e}");
            ExitCode::FAILURE
        }
    }
}
