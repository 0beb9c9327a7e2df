//! `credagent stand-in`: the stand-in as a process, for the interoperability rig.
//!
//! It serves both exchanges (the GET on `…/oidc/ORG`, the POST on `…/oidc`) unless
//! `--post-exchange` refuses the POST. It prints one line, `standin listening on <URL>` (the GET's
//! URL), to stdout. With `--addr-file` it also writes
//! `127.0.0.1:PORT` to that file atomically (write and rename) once listening, so that a script
//! can wait for the file. It then serves until shutdown. Its own ES256 issuer (kid `standin`)
//! mints tokens through `POST /_standin/token`.

use std::{io::Write as _, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::handle::StandIn;
use super::state::PostSettings;
use super::tls::load_tls_pem;
use super::types::{PostExchange, StandInConfig};
use crate::jwt::Issuer;
use crate::secret::Secret;

/// The stand-in's command-line arguments. `Debug` redacts the secret key and the session token.
#[derive(clap::Args, Debug, Clone)]
pub struct StandInArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The org id: the end of the GET's path, and the orgId the POST must send.
    #[arg(long, default_value = "standin-org")]
    pub org_id: String,

    /// The `AccessKeyId` handed out.
    #[arg(long)]
    pub access_key: String,

    /// The `SecretAccessKey` handed out.
    #[arg(long, env = "STANDIN_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Secret,

    /// The `Token` (session token) handed out. CoreWeave sends an empty one.
    #[arg(
        long,
        env = "STANDIN_SESSION_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub session_token: Secret,

    /// The lifetime of the credentials the GET hands out, in seconds; also what the POST grants
    /// when it asks for durationSeconds 0 (900 for CoreWeave's documented 15-minute OIDC keys).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub lifetime: u64,

    /// Whether the POST exchange (POST /v1/cwobject/temporary-credentials/oidc) is served, or
    /// refused with 404 or 405 as by a server that does not offer it.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = PostExchange::Offered)]
    pub post_exchange: PostExchange,

    /// The longest lifetime the POST grants, in seconds, whatever durationSeconds asks (a server
    /// that grants less than asked). Without it the POST grants what is asked.
    #[arg(long, value_name = "SECS")]
    pub post_max_lifetime: Option<u64>,

    /// If set, tokens must carry this audience.
    #[arg(long)]
    pub audience: Option<String>,

    /// A PEM certificate chain; serve HTTPS (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Once listening, write `127.0.0.1:PORT` to this file (atomically).
    #[arg(long, value_name = "PATH")]
    pub addr_file: Option<PathBuf>,
}

/// Binds, starts the stand-in, prints the `standin listening on <URL>` line and writes the
/// address file. It returns the running stand-in, which serves until `shutdown` is cancelled.
pub async fn start_from_args(
    args: &StandInArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<StandIn> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls_pem(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key must be given together"),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the stand-in to {}", args.listen))?;
    let config = StandInConfig {
        org_id: args.org_id.clone(),
        verifiers: Vec::new(),
        audience: args.audience.clone(),
        lifetime: Duration::from_secs(args.lifetime),
        access_key_id: args.access_key.clone(),
        secret_access_key: args.secret_key.expose().to_owned(),
        session_token: args.session_token.expose().to_owned(),
        issuer: Some(Issuer::generate_es256("standin")?),
    };
    let post = PostSettings {
        exchange: args.post_exchange,
        max_lifetime: args.post_max_lifetime.map(Duration::from_secs),
    };
    let standin = StandIn::start_with(listener, config, post, tls, shutdown)?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "standin listening on {}", standin.url())?;
        stdout.flush()?;
    }
    if let Some(path) = &args.addr_file {
        write_atomically(path, standin.connect_addr().to_string().as_bytes())
            .with_context(|| format!("writing the address file {}", path.display()))?;
    }
    Ok(standin)
}

/// Runs the stand-in process: [`start_from_args`], then serve until `shutdown` is cancelled and
/// the listener is closed.
pub async fn run(args: StandInArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let standin = start_from_args(&args, shutdown.clone()).await?;
    shutdown.cancelled().await;
    standin.stopped().await;
    Ok(())
}

/// Writes `data` to `path` through a temporary file and a rename, so a script polling for the
/// file never reads it half-written.
fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
