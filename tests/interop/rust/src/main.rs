//! aws-sdk-rust client for credagent's interoperability suite.
//!
//! Resolves credentials the way an unmodified application does (the default chain, or
//! `aws_config::ecs::EcsCredentialsProvider` explicitly, both reading
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`), then talks
//! to S3 with `aws-sdk-s3`. Prints exactly one JSON line on stdout; the driver asserts on it.
//!
//! ```text
//! interop-rust --mode basic|creds|loop --endpoint URL --bucket NAME
//!              [--provider default|ecs] [--duration SECS] [--interval SECS] [--size BYTES]
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{error::CredentialsError, ProvideCredentials as _};
use aws_sdk_s3::{
    error::{DisplayErrorContext, ProvideErrorMetadata},
    presigning::PresigningConfig,
    primitives::ByteStream,
    Client,
};
use serde_json::{json, Map, Value};

struct Args {
    mode: String,
    endpoint: String,
    bucket: String,
    provider: String,
    duration: f64,
    interval: f64,
    size: usize,
    stop_file: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        mode: "basic".into(),
        endpoint: String::new(),
        bucket: String::new(),
        provider: "default".into(),
        duration: 60.0,
        interval: 0.25,
        size: 70_001,
        stop_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => args.mode = value,
            "--endpoint" => args.endpoint = value,
            "--bucket" => args.bucket = value,
            "--provider" => args.provider = value,
            "--duration" => args.duration = value.parse().expect("--duration"),
            "--interval" => args.interval = value.parse().expect("--interval"),
            "--size" => args.size = value.parse().expect("--size"),
            "--stop-file" => args.stop_file = Some(value),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn now() -> f64 {
    epoch(SystemTime::now())
}

/// Deterministic but not compressible-looking bytes (all 256 values occur).
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Formats a `SystemTime` as `YYYY-MM-DDTHH:MM:SSZ` (UTC) without extra dependencies.
fn iso(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Describes any error: its SDK error code (if it has one), whether a `CredentialsError` is in
/// its source chain (and which variant), and the full context chain as text.
fn describe<E>(err: &E) -> Value
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let mut credentials_error = Value::Null;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(ce) = e.downcast_ref::<CredentialsError>() {
            credentials_error = json!(variant(ce));
            break;
        }
        source = e.source();
    }
    json!({
        "code": err.code(),
        "credentials_error": credentials_error,
        "message": DisplayErrorContext(err).to_string(),
    })
}

fn variant(ce: &CredentialsError) -> &'static str {
    match ce {
        CredentialsError::CredentialsNotLoaded(_) => "CredentialsError::CredentialsNotLoaded",
        CredentialsError::ProviderTimedOut(_) => "CredentialsError::ProviderTimedOut",
        CredentialsError::InvalidConfiguration(_) => "CredentialsError::InvalidConfiguration",
        CredentialsError::ProviderError(_) => "CredentialsError::ProviderError",
        CredentialsError::Unhandled(_) => "CredentialsError::Unhandled",
        _ => "CredentialsError::(other)",
    }
}

fn describe_credentials_error(ce: &CredentialsError) -> Value {
    json!({
        "code": Value::Null,
        "credentials_error": variant(ce),
        "message": DisplayErrorContext(ce).to_string(),
    })
}

async fn build(
    args: &Args,
) -> (
    Client,
    aws_credential_types::provider::SharedCredentialsProvider,
) {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region("us-east-1");
    if args.provider == "ecs" {
        loader =
            loader.credentials_provider(aws_config::ecs::EcsCredentialsProvider::builder().build());
    } else {
        assert_eq!(args.provider, "default", "--provider default|ecs");
    }
    let sdk_config = loader.load().await;
    let provider = sdk_config
        .credentials_provider()
        .expect("a credentials provider is configured");
    let s3_config = aws_sdk_s3::config::Builder::from(&sdk_config)
        .endpoint_url(&args.endpoint)
        .force_path_style(true)
        // No S3-level retries: every failed request must be visible to the rig. (Credential
        // fetches keep the ECS provider's own retry policy.)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    (Client::from_conf(s3_config), provider)
}

/// What the SDK parsed from the container endpoint, as the application would see it.
async fn credentials_view(
    provider: &aws_credential_types::provider::SharedCredentialsProvider,
) -> Result<Value, CredentialsError> {
    let creds = provider.provide_credentials().await?;
    let token = creds.session_token();
    Ok(json!({
        "access_key_id": creds.access_key_id(),
        "token": match token { None => "none", Some("") => "empty-string", Some(_) => "non-empty" },
        "token_len": token.map(str::len),
        "expiration": creds.expiry().map(iso),
        "expiration_epoch": creds.expiry().map(epoch),
    }))
}

async fn basic(args: &Args, out: &mut Map<String, Value>) -> Result<(), Value> {
    let (client, provider) = build(args).await;
    let creds = credentials_view(&provider)
        .await
        .map_err(|e| describe_credentials_error(&e))?;
    out.insert("credentials".into(), creds);

    let mut steps = Map::new();
    client
        .create_bucket()
        .bucket(&args.bucket)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    steps.insert("create_bucket".into(), json!(true));

    let key = "interop/object.bin";
    let body = payload(args.size, 1);
    client
        .put_object()
        .bucket(&args.bucket)
        .key(key)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .map_err(|e| describe(&e))?;
    steps.insert("put".into(), json!(true));

    let got = client
        .get_object()
        .bucket(&args.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let got = got
        .body
        .collect()
        .await
        .map_err(|e| json!({"code": Value::Null, "message": e.to_string()}))?
        .into_bytes();
    steps.insert(
        "get_identical".into(),
        json!(got.as_ref() == body.as_slice()),
    );

    let listed = client
        .list_objects_v2()
        .bucket(&args.bucket)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    steps.insert("list_contains".into(), json!(keys.contains(&key)));

    let presigned = client
        .get_object()
        .bucket(&args.bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign config"))
        .await
        .map_err(|e| describe(&e))?;
    out.insert("presigned_url".into(), json!(presigned.uri()));
    out.insert("key".into(), json!(key));
    out.insert("size".into(), json!(args.size));
    out.insert("steps".into(), Value::Object(steps));
    Ok(())
}

/// PUT + GET small objects until the deadline (or the stop file appears); one event per request.
async fn run_loop(args: &Args, out: &mut Map<String, Value>) {
    let (client, _provider) = build(args).await;
    if let Err(e) = client.create_bucket().bucket(&args.bucket).send().await {
        out.insert("setup_error".into(), describe(&e));
        return;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut events = Vec::new();
    let (mut requests, mut failures) = (0u64, 0u64);
    let mut i = 0u64;
    while Instant::now() < deadline {
        if let Some(stop) = &args.stop_file {
            if std::path::Path::new(stop).exists() {
                break;
            }
        }
        i += 1;
        let key = format!("loop/{i}");
        let body = payload(1024 + (i as usize % 7), i);
        let t = now();
        let put = client
            .put_object()
            .bucket(&args.bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        requests += 1;
        match put {
            Ok(_) => events.push(json!([t, "put", true, Value::Null, now()])),
            Err(e) => {
                failures += 1;
                events.push(json!([t, "put", false, describe(&e), now()]));
                // No GET of an object whose PUT failed.
                tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
                continue;
            }
        }
        let t = now();
        let get = client
            .get_object()
            .bucket(&args.bucket)
            .key(&key)
            .send()
            .await;
        requests += 1;
        match get {
            Ok(o) => match o.body.collect().await.map(|b| b.into_bytes()) {
                Ok(b) if b.as_ref() == body.as_slice() => {
                    events.push(json!([t, "get", true, Value::Null, now()]));
                }
                Ok(_) => {
                    failures += 1;
                    events.push(json!([t, "get", false, {"code": "BodyMismatch"}, now()]));
                }
                Err(e) => {
                    failures += 1;
                    events.push(json!([t, "get", false, {"code": "BodyRead", "message": e.to_string()}, now()]));
                }
            },
            Err(e) => {
                failures += 1;
                events.push(json!([t, "get", false, describe(&e), now()]));
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
    }
    out.insert("requests".into(), json!(requests));
    out.insert("failures".into(), json!(failures));
    out.insert("events".into(), Value::Array(events));
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let started = Instant::now();
    let mut out = Map::new();
    out.insert("client".into(), json!(format!("rust-{}", args.provider)));
    out.insert("mode".into(), json!(args.mode));
    let result = match args.mode.as_str() {
        "basic" => basic(&args, &mut out).await,
        "creds" => {
            let (_client, provider) = build(&args).await;
            match credentials_view(&provider).await {
                Ok(v) => {
                    out.insert("credentials".into(), v);
                    Ok(())
                }
                Err(e) => Err(describe_credentials_error(&e)),
            }
        }
        "loop" => {
            run_loop(&args, &mut out).await;
            Ok(())
        }
        other => panic!("unknown mode {other}"),
    };
    match result {
        Ok(()) => {
            out.insert("ok".into(), json!(true));
        }
        Err(e) => {
            out.insert("ok".into(), json!(false));
            out.insert("error".into(), e);
        }
    }
    out.insert("elapsed".into(), json!(started.elapsed().as_secs_f64()));
    println!("{}", Value::Object(out));
}
