//! `credagent-standin`: the test kit's stand-in upstream as a process, for the
//! interoperability suite and the bench (see `credagent_testkit::standin`).
//!
//! Prints `standin listening on <URL>` once listening and serves until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;
use credagent_testkit::standin::{run, StandInArgs};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A local stand-in for the upstream temporary-credentials endpoint (a test tool: bind it to
/// loopback only).
#[derive(Debug, Parser)]
#[command(name = "credagent-standin", version)]
struct Cli {
    #[command(flatten)]
    args: StandInArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            on_signal.cancel();
        });
        run(cli.args, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
