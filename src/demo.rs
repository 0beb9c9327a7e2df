//! `credagent demo`: the whole pipeline on one machine, no cluster.
//!
//! It starts a local stand-in for the upstream exchange (its own ES256
//! signing key, short-lived credentials so refreshes are visible), and
//! uses its POST exchange as `--key-lifetime 1h` would: every key asked
//! for an hour, tagged with the Pod, granted for the demo's short lifetime
//! (a real upstream may grant less than asked, too). It writes a
//! service-account-shaped token into a kubelet-style volume in a temporary
//! directory and rotates it the way kubelet does, runs the sidecar against
//! them, and prints what to paste into another terminal.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::DemoArgs;
use crate::config::RefreshPolicy;
use crate::config::{ProxySettings, SidecarConfig, UpstreamConfig};
use crate::sidecar::{Options, Sidecar};
use credagent_testkit::{kubelet, Issuer, StandIn, StandInConfig, TokenSpec};

/// What the demo's agent asks the POST exchange for (`--key-lifetime 1h`).
const DEMO_KEY_LIFETIME: Duration = Duration::from_secs(3600);

/// The audience kubelet is asked for, as in the CoreWeave guide.
const AUDIENCE: &str = crate::cli::DEFAULT_AUDIENCE;

/// Runs the demo until Ctrl-C (or `duration`).
pub async fn run(config: DemoArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    if let Some(d) = config.duration {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.cancel();
        });
    }
    let (dir, remove_dir) = match &config.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("credagent-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = run_in(&config, &dir, shutdown).await;
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(
    config: &DemoArgs,
    dir: &std::path::Path,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tokens_dir = dir.join("tokens");
    let token_file = tokens_dir.join("oidc-token");
    let auth_token_file = dir.join("auth-token");

    let issuer =
        Issuer::generate_es256("credagent-demo").context("cannot generate the demo signing key")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the stand-in upstream")?;
    let standin = StandIn::start(
        listener,
        StandInConfig {
            org_id: "demo-org".into(),
            verifiers: Vec::new(),
            audience: Some(AUDIENCE.into()),
            lifetime: config.credential_lifetime,
            access_key_id: "CWDEMOAKID0000000001".into(),
            secret_access_key: format!("demo-secret-{:032x}", rand::random::<u128>()),
            session_token: String::new(),
            issuer: Some(issuer.clone()),
        },
        None,
        shutdown.child_token(),
    )
    .context("cannot start the stand-in upstream")?;
    standin.set_post_max_lifetime(Some(config.credential_lifetime));

    let spec = TokenSpec {
        audience: AUDIENCE.into(),
        service_account: "demo-app".into(),
        lifetime: Duration::from_secs(600),
        ..TokenSpec::default()
    };
    write_token(&issuer, &spec, &tokens_dir)?;

    let (post_url, org_id) = crate::config::post_target(&standin.url().parse()?)
        .map_err(|e| anyhow::anyhow!("stand-in URL: {e}"))?;
    let sidecar_config = SidecarConfig {
        token_file: token_file.clone(),
        upstream: UpstreamConfig {
            url: post_url,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            extra_roots: Vec::new(),
            // The stand-in is on loopback: always reached directly.
            proxy: ProxySettings::none(),
            method: crate::config::ExchangeMethod::Post {
                org_id,
                key: crate::config::KeyRequest {
                    lifetime: DEMO_KEY_LIFETIME,
                    attributes: vec![crate::config::KeyAttribute {
                        name: "cluster".into(),
                        value: "demo".into(),
                    }],
                },
            },
        },
        listen: config.listen,
        admin_listen: config.admin_listen,
        auth_token_file: auth_token_file.clone(),
        refresh: RefreshPolicy::default(),
        imds: None,
        credentials_file: None,
        credential_process_dir: None,
        max_connections: 4096,
    };
    let sidecar = Sidecar::start(&sidecar_config, Options::default(), shutdown.clone()).await?;

    let rotator = {
        let (issuer, spec, tokens_dir, every, shutdown) = (
            issuer.clone(),
            spec.clone(),
            tokens_dir.clone(),
            config.rotate_every,
            shutdown.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match write_token(&issuer, &spec, &tokens_dir) {
                    Ok(()) => {
                        info!("demo kubelet rotated the projected token (atomic ..data swap)")
                    }
                    Err(e) => warn!(error = %e, "demo kubelet could not rotate the token"),
                }
            }
        })
    };

    tokio::select! {
        _ = shutdown.cancelled() => {}
        first = sidecar.store.wait_servable() => {
            print_instructions(config, &sidecar, &standin, &token_file, &auth_token_file, &first.credentials);
        }
    }
    shutdown.cancelled().await;
    let _ = rotator.await;
    sidecar.wait().await;
    standin.stopped().await;
    println!(
        "credagent demo stopped; {} upstream exchanges were made.",
        standin.calls()
    );
    Ok(())
}

fn write_token(issuer: &Issuer, spec: &TokenSpec, dir: &std::path::Path) -> anyhow::Result<()> {
    let token = issuer
        .service_account_token(spec, SystemTime::now())
        .context("cannot mint a demo token")?;
    kubelet::atomic_write(dir, "oidc-token", token.as_bytes(), 0o644)
        .with_context(|| format!("cannot write the token volume in {}", dir.display()))?;
    Ok(())
}

fn print_instructions(
    config: &DemoArgs,
    sidecar: &Sidecar,
    standin: &StandIn,
    token_file: &std::path::Path,
    auth_token_file: &std::path::Path,
    first: &crate::credentials::Credentials,
) {
    let url = format!("http://{}/v1/credentials", sidecar.credentials_addr);
    let auth = auth_token_file.display();
    let attributes = standin
        .last_post()
        .map(|p| {
            p.attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        r#"
credagent demo is running. The upstream is a LOCAL STAND-IN for CoreWeave's
temporary-credentials endpoint (its own signing key; nothing leaves this machine).

  stand-in upstream   {upstream}
  projected token     {token} (rotated kubelet-style every {rotate}s)
  credentials         {url}   (credentials live {life}s, refreshed ahead of expiry)
  exchange            POST, asking for {asked} keys (--key-lifetime); the stand-in grants {life}s
  key attributes      {attributes}
  admin               http://{admin}/metrics  /healthz  /readyz
  first credentials   AccessKeyId={akid}, Expiration={exp}

In another terminal (the last two need `pip install boto3 awscli`):

  export AWS_CONTAINER_CREDENTIALS_FULL_URI={url}
  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={auth}
  curl -s -H "Authorization: $(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")" "$AWS_CONTAINER_CREDENTIALS_FULL_URI"; echo
  python3 -c 'import boto3; c = boto3.Session().get_credentials(); print(c.method, c.get_frozen_credentials().access_key)'
  aws configure list

Each SDK finds them the same way: boto3 prints `container-role {akid}`; the
AWS CLI's `access_key` row says `container-role`. Every key issued is logged
once on stderr ("access key issued", target credagent::audit): its id, its
principal, its expiry and the Pod it was issued for.

Press Ctrl-C to stop.
"#,
        upstream = standin.url(),
        token = token_file.display(),
        rotate = config.rotate_every.as_secs(),
        life = config.credential_lifetime.as_secs(),
        asked = crate::ops::human(DEMO_KEY_LIFETIME),
        admin = sidecar.admin_addr,
        akid = first.access_key_id,
        exp = crate::wire::format_expiration(first.expiration),
    );
}
