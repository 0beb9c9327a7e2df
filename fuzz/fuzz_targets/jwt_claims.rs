//! `token::jwt::decode`: the shape check and claim decoding applied to every
//! projected token (sidecar) and every `Authorization` value (node mode).
//!
//! Each input is decoded twice: as the raw token, and as
//! `HEADER-JSON \n PAYLOAD-JSON \n SIGNATURE` which the harness base64url-
//! encodes and joins with dots, so that the fuzzer reaches the JSON claims
//! (through base64 it practically cannot).
//!
//! Checks, besides "never panics": a success implies at most 16 KiB and
//! exactly three non-empty base64url parts; `Claims::ttl` (used for the poll
//! interval) never panics and equals `exp - iat` when it answers.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use credagent::jwt::{decode, MAX_TOKEN_BYTES};
use libfuzzer_sys::fuzz_target;

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fuzz_target!(|data: &[u8]| {
    // Tokens reach `decode` as `&str` (file contents and header values).
    if let Ok(token) = std::str::from_utf8(data) {
        check(token);
    }
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (header, payload) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let signature = parts.next().unwrap_or(b"sig");
    check(&format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    ));
});

fn check(token: &str) {
    let claims = match decode(token) {
        Ok(c) => c,
        Err(e) => {
            let _ = (e.to_string(), e.class());
            return;
        }
    };
    assert!(
        token.len() <= MAX_TOKEN_BYTES,
        "accepted {} bytes",
        token.len()
    );
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {} parts", parts.len());
    for p in parts {
        assert!(
            !p.is_empty() && p.bytes().all(is_base64url),
            "accepted a part that is not non-empty base64url"
        );
    }
    if let Some(ttl) = claims.ttl() {
        let (exp, iat) = (claims.exp.unwrap(), claims.iat.unwrap());
        assert!(exp > iat);
        assert_eq!(
            i128::from(ttl.as_secs()),
            i128::from(exp) - i128::from(iat),
            "ttl {ttl:?} for exp {exp}, iat {iat}"
        );
    }
}
