//! The upstream's answer body: `exchange::parse_credentials`, then what the
//! refresher does with accepted credentials (lifetime, schedule, snapshot
//! rendering).
//!
//! Checks, besides "never panics":
//! - an `Err`'s Display never quotes a string value of the input: no 8-byte
//!   window of any string value (at any depth) appears in it, unless that
//!   window is also part of the parser's fixed wording (collected once by
//!   probing every error branch, so a value that happens to spell
//!   "AccessKeyId is missing" is not reported);
//! - accepted credentials: `Debug` does not depend on the secrets, and the
//!   rendered ECS/IMDS bodies carry the same values with an `Expiration` of
//!   the documented form `YYYY-MM-DDTHH:MM:SSZ`.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use credagent::config::RefreshPolicy;
use credagent::exchange::{parse_credentials, ExchangeError};
use credagent::secret::Secret;
use credagent::store::Store;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The upstream's `Date` (and our clock): 2026-03-14T21:00:00Z, shortly
/// before the documented answer's `Expiration`.
fn server_date() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_522_000)
}

const WINDOW: usize = 8;

fn windows(s: &str) -> impl Iterator<Item = &[u8]> {
    s.as_bytes().windows(WINDOW)
}

/// Every 8-byte window of every message the parser (and the refresher's
/// expiry check) can produce on its own.
fn vocabulary() -> &'static HashSet<Vec<u8>> {
    static V: OnceLock<HashSet<Vec<u8>>> = OnceLock::new();
    V.get_or_init(|| {
        let base = json!({
            "AccessKeyId": "A", "SecretAccessKey": "S", "Token": "",
            "Expiration": "2026-03-14T21:44:43Z",
        });
        let mut probes: Vec<Value> = vec![json!([]), json!("x"), json!(1), json!(null)];
        for field in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
            let mut missing = base.clone();
            missing.as_object_mut().unwrap().remove(field);
            probes.push(missing);
            for v in [
                json!(""),
                json!(5),
                json!(null),
                json!([]),
                json!({}),
                json!("x"),
            ] {
                let mut p = base.clone();
                p[field] = v;
                probes.push(p);
            }
        }
        let mut vocab = HashSet::new();
        for p in probes {
            if let Err(e) = parse_credentials(p.to_string().as_bytes(), None) {
                vocab.extend(windows(&e.to_string()).map(<[u8]>::to_vec));
            }
        }
        // And the refresher's own refusal of credentials that have expired,
        // whose only input is the reformatted Expiration (left out of the
        // check by assert_no_leak).
        let expired = ExchangeError::Expired {
            expiration: String::new(),
        };
        vocab.extend(windows(&expired.to_string()).map(<[u8]>::to_vec));
        assert!(!vocab.is_empty(), "the probes produced no errors");
        vocab
    })
}

fn string_values<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| string_values(v, out)),
        Value::Object(o) => o.values().for_each(|v| string_values(v, out)),
        _ => {}
    }
}

fn assert_no_leak(body: &[u8], err: &ExchangeError) {
    // Only JSON inputs have "string values"; serde_json's own recursion
    // limit keeps this from overflowing the stack.
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let shown = err.to_string();
    // An expiry timestamp is not a secret: `Expired` shows the received
    // `Expiration`, reformatted, and any field may hold the same digits.
    // Only the text around it is checked.
    let pieces: Vec<&str> = match err {
        ExchangeError::Expired { expiration } => shown.split(expiration.as_str()).collect(),
        _ => vec![shown.as_str()],
    };
    let shown_windows: HashSet<&[u8]> = pieces.iter().flat_map(|p| windows(p)).collect();
    let mut values = Vec::new();
    string_values(&json, &mut values);
    for value in values {
        for w in windows(value) {
            if shown_windows.contains(w) && !vocabulary().contains(w) {
                panic!(
                    "error message quotes the input: {shown:?} contains {:?} from a string value",
                    String::from_utf8_lossy(w)
                );
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as every SDK parses it.
fn assert_sdk_expiration(s: &str) {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "Expiration {s:?} is not YYYY-MM-DDTHH:MM:SSZ");
}

fn check_body(body: &[u8], access_key_id: &str, secret: &str, token: &str) -> Value {
    let v: Value = serde_json::from_slice(body).expect("rendered body is JSON");
    assert_eq!(v["AccessKeyId"], access_key_id);
    assert_eq!(v["SecretAccessKey"], secret);
    assert_eq!(v["Token"], token);
    assert_sdk_expiration(v["Expiration"].as_str().expect("Expiration is a string"));
    v
}

fuzz_target!(|body: &[u8]| {
    let now = server_date();
    let creds = match parse_credentials(body, Some(now)) {
        Ok(c) => c,
        Err(e) => {
            assert_no_leak(body, &e);
            return;
        }
    };
    assert!(!creds.access_key_id.is_empty() && !creds.secret_access_key.is_empty());

    // Debug must not depend on the secrets.
    let mut other = creds.clone();
    other.secret_access_key = Secret::new("x");
    other.session_token = Secret::new("y");
    assert_eq!(
        format!("{creds:?}"),
        format!("{other:?}"),
        "Debug shows a secret"
    );

    // What the refresher does with an accepted answer.
    let lifetime = match creds.lifetime(now) {
        Ok(l) => l,
        Err(e) => {
            // Expired credentials are only logged, never served.
            let e = ExchangeError::from(e);
            assert!(matches!(e, ExchangeError::Expired { .. }), "{e:?}");
            assert_no_leak(body, &e);
            return;
        }
    };
    let policy = RefreshPolicy::default();
    for sample in [0.0, 0.5, 0.999] {
        let after = policy.refresh_after(lifetime, sample);
        assert!(
            after <= lifetime,
            "refresh after {after:?} > lifetime {lifetime:?}"
        );
    }
    let stale = policy.stale_margin_for(lifetime);
    assert!(stale <= lifetime);
    let snapshot =
        Store::with_imds().publish(creds, tokio::time::Instant::now(), lifetime, stale);
    let c = &snapshot.credentials;
    let (akid, sk, tok) = (
        c.access_key_id.as_str(),
        c.secret_access_key.expose(),
        c.session_token.expose(),
    );
    check_body(&snapshot.body, akid, sk, tok);
    let imds_body = snapshot.imds_body.as_ref().expect("an IMDS store renders IMDS");
    let imds = check_body(imds_body, akid, sk, tok);
    assert_sdk_expiration(
        imds["LastUpdated"]
            .as_str()
            .expect("LastUpdated is a string"),
    );
});
