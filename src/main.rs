//! The `credagent` binary: parse the command line, set up logging, run the
//! chosen subcommand, map errors to exit codes (2: bad configuration, found
//! before anything is bound; 1: failure at start-up or run time).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use credagent::cli::{Cli, Command, LogFormat};
use credagent::config::SidecarConfig;
use credagent::sidecar::{Options, Sidecar};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let default_format = match cli.command {
        Command::Demo(_) => LogFormat::Text,
        _ => LogFormat::Json,
    };
    if let Err(e) = init_tracing(cli.log_format.unwrap_or(default_format), &cli.log_level) {
        eprintln!("error: invalid value for --log-level: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Sidecar(args) => {
            let config = match SidecarConfig::from_args(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if args.check_config {
                println!("configuration ok: {config:?}");
                return ExitCode::SUCCESS;
            }
            run(sidecar(config))
        }
        Command::Node(args) => match &args.command {
            Some(credagent::cli::NodeCommand::SetupLink(link)) => {
                let config = credagent::node::link::LinkConfig {
                    name: link.link_name.clone(),
                    ..Default::default()
                };
                run(async move {
                    let report = credagent::node::link::setup_link(&config).await?;
                    credagent::node::link::log_report(&report);
                    Ok(())
                })
            }
            None => {
                let config = match credagent::config::NodeConfig::from_args(&args) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                if args.check_config {
                    println!("configuration ok: {config:?}");
                    return ExitCode::SUCCESS;
                }
                run(node(config))
            }
        },
        Command::Demo(args) => {
            let config = match credagent::demo::DemoConfig::from_args(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            run(credagent::demo::run(config))
        }
        Command::StandIn(args) => run(async move {
            let shutdown = credagent::shutdown::on_signal()?;
            credagent::standin::run(args, shutdown).await
        }),
    }
}

/// Prints clap's verdict. Help and version go to stdout with status 0;
/// errors become one line on stderr with status 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

fn run<F>(fut: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "credagent stopped");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn sidecar(config: SidecarConfig) -> anyhow::Result<()> {
    let shutdown = credagent::shutdown::on_signal()?;
    let sidecar = Sidecar::start(&config, Options::default(), shutdown.clone()).await?;
    shutdown.cancelled().await;
    sidecar.wait().await;
    tracing::info!("credagent stopped");
    Ok(())
}

async fn node(config: credagent::config::NodeConfig) -> anyhow::Result<()> {
    let shutdown = credagent::shutdown::on_signal()?;
    let node = credagent::node::Node::start(&config, Default::default(), shutdown.clone()).await?;
    shutdown.cancelled().await;
    node.wait().await;
    tracing::info!("credagent stopped");
    Ok(())
}
