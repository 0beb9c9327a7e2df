//! The `credagent` binary: parse the command line, set up logging, run the
//! chosen subcommand, map errors to exit codes (2: bad configuration, found
//! before anything is bound; 1: failure at start-up or run time).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use credagent::cli::{Cli, Command, LogFormat, WebhookArgs};
use credagent::config::SidecarConfig;
use credagent::logsafe::redact_userinfo_in;
use credagent::sidecar::{Options, Sidecar};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let default_format = match cli.command {
        Command::Sidecar(_) | Command::Node(_) | Command::Webhook(_) => LogFormat::Json,
        _ => LogFormat::Text,
    };
    if let Err(e) = init_tracing(cli.log_format.unwrap_or(default_format), &cli.log_level) {
        return bad_config(format!("invalid value for --log-level: {e}"));
    }
    match dispatch(cli.command) {
        Ok(code) | Err(code) => code,
    }
}

/// A configuration error: one line on stderr, exit status 2 (before
/// anything is bound or contacted).
fn bad_config(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Runs `command`; `Err` is an early exit (bad configuration).
fn dispatch(command: Command) -> Result<ExitCode, ExitCode> {
    Ok(match command {
        Command::Sidecar(args) => {
            let config = args.config().map_err(bad_config)?;
            if args.serving.check_config {
                println!(
                    "configuration ok: {}",
                    redact_userinfo_in(&format!("{config:?}"))
                );
                return Ok(ExitCode::SUCCESS);
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
                let config = args.config().map_err(bad_config)?;
                if args.serving.check_config {
                    println!(
                        "configuration ok: {}",
                        redact_userinfo_in(&format!("{config:?}"))
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                run(node(config))
            }
        },
        Command::Webhook(args) => {
            args.validate().map_err(bad_config)?;
            if args.check_config {
                println!(
                    "configuration ok: {}",
                    redact_userinfo_in(&format!("{args:?}"))
                );
                return Ok(ExitCode::SUCCESS);
            }
            run(webhook(args))
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => run(credagent::demo::run(args)),
        Command::CredentialProcess(args) => credential_process(args),
        Command::Exchange(args) => {
            let upstream = args
                .tuning
                .upstream_config(&args.upstream)
                .map_err(bad_config)?;
            one_shot(async move {
                let (text, code) =
                    credagent::ops::exchange::run(&args.token_file, &upstream, args.show_secret)
                        .await;
                if code == 0 {
                    print!("{text}");
                } else {
                    eprintln!("{text}");
                }
                ExitCode::from(code)
            })
        }
        Command::Principal(args) => principal(args),
        Command::Doctor(args) => {
            let config = args.sidecar.config().map_err(bad_config)?;
            one_shot(async move {
                let checks = credagent::ops::doctor::run(&config, &args.audience).await;
                print!("{}", credagent::ops::doctor::render(&checks));
                if checks.iter().all(|c| c.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
    })
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

/// How long a runtime, once its work is done, waits for blocking-pool
/// threads (file reads) before the process exits anyway: a read stuck on a
/// hung filesystem must not hold the exit that SIGTERM asked for.
const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs a one-shot command on a small runtime.
fn one_shot<F: std::future::Future<Output = ExitCode>>(fut: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let code = rt.block_on(fut);
            rt.shutdown_timeout(BLOCKING_GRACE);
            code
        }
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn credential_process(args: credagent::cli::CredentialProcessArgs) -> ExitCode {
    let config = credagent::ops::credential_process::CredentialProcessConfig {
        url: args.url,
        auth_token_file: args.auth_token_file,
        timeout: std::time::Duration::from_secs(5),
    };
    one_shot(async move {
        // The whole command, file read included, within its timeout.
        let fetched = tokio::time::timeout(
            config.timeout,
            credagent::ops::credential_process::fetch(&config),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", config.timeout.as_secs())));
        match fetched {
            Ok(json) => {
                println!("{}", json.as_str());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("credagent credential-process: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn principal(args: credagent::cli::PrincipalArgs) -> ExitCode {
    use credagent::ops::principal::{render, Identity};
    let identity = match (&args.issuer, &args.namespace, &args.service_account) {
        (Some(iss), Some(ns), Some(sa)) => Identity::service_account(iss, ns, sa),
        _ => {
            let path = args
                .token_file
                .clone()
                .unwrap_or_else(|| credagent::cli::DEFAULT_TOKEN_FILE.into());
            let token = one_shot_value(credagent::token::read_token(&path));
            match token {
                Ok(t) => match (t.claims.iss, t.claims.sub) {
                    (Some(issuer), Some(subject)) => Identity { issuer, subject },
                    _ => {
                        eprintln!(
                            "error: the token in {} has no iss or sub claim",
                            path.display()
                        );
                        return ExitCode::FAILURE;
                    }
                },
                Err(e) => {
                    eprintln!(
                        "error: {}: {e} (or pass --issuer, --namespace and --service-account)",
                        path.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    print!("{}", render(&identity, args.org_id.as_deref()));
    ExitCode::SUCCESS
}

fn one_shot_value<T>(
    fut: impl std::future::Future<Output = Result<T, credagent::token::ReadError>>,
) -> Result<T, credagent::token::ReadError> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => Err(credagent::token::ReadError::Unreadable(e.to_string())),
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
        // Colour only on a terminal: escape codes in a log file or a
        // collector are noise at best.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

fn run<F>(fut: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    // Every serving mode holds thousands of connections at its caps, more
    // than the 1,024 descriptors container runtimes often start it with.
    credagent::server::descriptors::raise_and_log();
    // Two workers, chosen by measurement (BENCHMARKS.md): on a 2-core
    // machine under wrk, one event loop per core but shared-nothing (an extra
    // current-thread runtime taking every other connection) served no more
    // requests per second and had a worse p99 (a connection waits while its
    // loop's core runs the client), and a single current-thread runtime
    // served ~20 % fewer at 64 connections.
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
    let result = runtime.block_on(fut);
    runtime.shutdown_timeout(BLOCKING_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "credagent stopped");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `start`, unless SIGTERM comes first (`None`): the signal handler is
/// installed before any start-up work, and start-up never outlives it.
async fn unless_stopped<T, E>(
    shutdown: &tokio_util::sync::CancellationToken,
    start: impl std::future::Future<Output = Result<T, E>>,
) -> Result<Option<T>, E> {
    tokio::select! {
        started = start => started.map(Some),
        _ = shutdown.cancelled() => {
            tracing::info!("stopped during start-up");
            Ok(None)
        }
    }
}

async fn sidecar(config: SidecarConfig) -> anyhow::Result<()> {
    let shutdown = credagent::shutdown::on_signal()?;
    let start = Sidecar::start(&config, Options::default(), shutdown.clone());
    let Some(sidecar) = unless_stopped(&shutdown, start).await? else {
        return Ok(());
    };
    shutdown.cancelled().await;
    sidecar.wait().await;
    tracing::info!("credagent stopped");
    Ok(())
}

async fn node(config: credagent::config::NodeConfig) -> anyhow::Result<()> {
    let shutdown = credagent::shutdown::on_signal()?;
    let start = credagent::node::Node::start(&config, Default::default(), shutdown.clone());
    let Some(node) = unless_stopped(&shutdown, start).await? else {
        return Ok(());
    };
    shutdown.cancelled().await;
    node.wait().await;
    tracing::info!("credagent stopped");
    Ok(())
}

async fn webhook(config: WebhookArgs) -> anyhow::Result<()> {
    let signal = credagent::shutdown::on_signal()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let start = credagent::webhook::Webhook::start(&config, Default::default(), stop.clone());
    let Some(webhook) = unless_stopped(&signal, start).await? else {
        stop.cancel();
        return Ok(());
    };
    signal.cancelled().await;
    // The endpoint is leaving the Service; the API server may still pick it
    // for a moment, and a refused connection is a failed admission.
    if !config.shutdown_delay.is_zero() {
        tracing::info!(
            delay_ms = config.shutdown_delay.as_millis() as u64,
            "still serving while the endpoint is removed"
        );
        tokio::time::sleep(config.shutdown_delay).await;
    }
    stop.cancel();
    webhook.wait().await;
    tracing::info!("credagent stopped");
    Ok(())
}
