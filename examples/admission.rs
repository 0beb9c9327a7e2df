//! Runs the admission webhook's core on one AdmissionReview, for the fixture
//! harness (`tests/webhook/run.sh`). A test tool, not part of the product.
//!
//! ```text
//! admission [--sa-annotations JSON] [--entry pod|namespace] REVIEW.json|- [-- WEBHOOK-FLAGS...]
//! ```
//!
//! Prints the AdmissionReview response on stdout and `decision=LABEL` on
//! stderr. After `--` come `credagent webhook`'s injection flags, parsed as
//! the webhook parses them (default: `--sidecar-image credagent:test
//! --org-id test-org`); `--sa-annotations` the annotations of the Pod's
//! ServiceAccount as a JSON object; `--entry` the webhook entry that sent
//! the request (`pod`, `/mutate`, the default; `namespace`,
//! `/mutate/namespace`). Exits 0 with a response, 1 on an unusable input
//! (the server's HTTP 400), 2 on bad arguments.

use std::io::Read as _;
use std::process::ExitCode;

use credagent::cli::InjectArgs;
use credagent::webhook::{self, Entry};
use serde_json::{Map, Value};

const USAGE: &str = "usage: admission [--sa-annotations JSON] [--entry pod|namespace] REVIEW.json|- [-- WEBHOOK-FLAGS...]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("admission: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut flags: Vec<String> = ["--sidecar-image", "credagent:test", "--org-id", "test-org"]
        .map(String::from)
        .to_vec();
    let mut sa: Option<Map<String, Value>> = None;
    let mut entry = Entry::Pod;
    let mut input = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--" => {
                flags = args.by_ref().collect();
            }
            "--sa-annotations" => {
                let raw = args.next().ok_or("--sa-annotations needs a value")?;
                sa =
                    Some(serde_json::from_str(&raw).map_err(|e| format!("--sa-annotations: {e}"))?);
            }
            "--entry" => {
                entry = match args.next().as_deref() {
                    Some("pod") => Entry::Pod,
                    Some("namespace") => Entry::Namespace,
                    _ => return Err("--entry needs pod or namespace".into()),
                };
            }
            _ if input.is_none() => input = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let config = InjectArgs::from_flags(&flags)?;
    let path = input.ok_or(USAGE)?;
    let body = if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("stdin: {e}"))?;
        buf
    } else {
        std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?
    };
    let req = match webhook::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("decision=bad_request: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    // The server would look the ServiceAccount up only when asked to.
    let sa = webhook::service_account_to_look_up(&req, entry, &config).and(sa);
    let decision = webhook::admit(&req, entry, sa.as_ref(), &config);
    eprintln!("decision={}", decision.label());
    println!(
        "{}",
        String::from_utf8_lossy(&webhook::respond(&req, &decision).to_bytes())
    );
    Ok(ExitCode::SUCCESS)
}
