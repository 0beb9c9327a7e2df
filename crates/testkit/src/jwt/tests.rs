//! The issuer and the verifier against each other, and the claims checks.

use super::verify::decode_json;
use super::*;

const RSA_PK8: &[u8] = include_bytes!("../../fixtures/rs256-test-key.pk8");

fn spec() -> TokenSpec {
    TokenSpec::default()
}

fn rsa() -> Issuer {
    Issuer::from_rsa_pkcs8_der("rsa-test", RSA_PK8).expect("fixture key parses")
}

fn ec() -> Issuer {
    Issuer::generate_es256("ec-test").expect("P-256 key generation works")
}

/// Replaces the payload part with `claims`, keeping the header and the old signature.
fn with_payload(jwt: &str, claims: &Value) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{}.{}", parts[0], p, parts[2])
}

fn round_trip(issuer: &Issuer, alg: &str) {
    let now = SystemTime::now();
    let jwt = issuer.service_account_token(&spec(), now).unwrap();
    let header = decode_json(jwt.split('.').next().unwrap()).unwrap();
    assert_eq!(
        header,
        json!({"alg": alg, "kid": issuer.kid(), "typ": "JWT"})
    );
    let claims = issuer.verifier().verify(&jwt).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:app");
    assert_eq!(claims["aud"], json!(["https://coreweave.com/iam"]));
    assert_eq!(claims["iat"], claims["nbf"]);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "app");
    assert!(claims["kubernetes.io"]["pod"]["uid"].is_string());
    let id = check_claims(&claims, now, Some("https://coreweave.com/iam")).unwrap();
    assert_eq!(id.iss, "https://oidc.standin.invalid/cluster");
    // A fresh jti every time: two mints in the same second differ.
    let again = issuer.service_account_token(&spec(), now).unwrap();
    assert_ne!(jwt, again);
}

#[test]
fn rs256_round_trip() {
    round_trip(&rsa(), "RS256");
}

#[test]
fn es256_round_trip() {
    round_trip(&ec(), "ES256");
}

#[test]
fn tampered_payload_fails() {
    for issuer in [rsa(), ec()] {
        let jwt = issuer
            .service_account_token(&spec(), SystemTime::now())
            .unwrap();
        let mut claims = issuer.verifier().verify(&jwt).unwrap();
        claims["sub"] = json!("system:serviceaccount:kube-system:admin");
        let forged = with_payload(&jwt, &claims);
        assert!(matches!(
            issuer.verifier().verify(&forged),
            Err(StandInError::Signature)
        ));
    }
}

#[test]
fn wrong_key_fails() {
    let jwt = ec()
        .service_account_token(&spec(), SystemTime::now())
        .unwrap();
    assert!(matches!(
        ec().verifier().verify(&jwt),
        Err(StandInError::Signature)
    ));
    // An RS256 verifier refuses an ES256 token on the header alone.
    assert!(matches!(
        rsa().verifier().verify(&jwt),
        Err(StandInError::Algorithm)
    ));
}

#[test]
fn alg_none_fails() {
    let issuer = rsa();
    let jwt = issuer
        .service_account_token(&spec(), SystemTime::now())
        .unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for forged in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert!(issuer.verifier().verify(&forged).is_err());
    }
}

#[test]
fn malformed_tokens_fail_without_echo() {
    let v = ec().verifier();
    for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", "Bearer x.y.z"] {
        let err = v.verify(bad).unwrap_err();
        assert!(
            matches!(err, StandInError::Malformed(_)),
            "{bad:?}: {err:?}"
        );
    }
    let err = v
        .verify("eyJzZWNyZXQiOiJ4In0.eyJ9.c2lnbmF0dXJl")
        .unwrap_err();
    assert!(!err.to_string().contains("eyJ"));
}

#[test]
fn check_claims_times_and_audience() {
    let issuer = ec();
    let now = SystemTime::now();
    let claims = issuer
        .verifier()
        .verify(&issuer.service_account_token(&spec(), now).unwrap())
        .unwrap();
    assert!(check_claims(&claims, now, None).is_ok());
    let later = now + Duration::from_secs(3601);
    assert!(matches!(
        check_claims(&claims, later, None),
        Err(StandInError::Expired)
    ));
    let earlier = now - Duration::from_secs(5);
    assert!(matches!(
        check_claims(&claims, earlier, None),
        Err(StandInError::NotYetValid)
    ));
    assert!(matches!(
        check_claims(&claims, now, Some("sts.amazonaws.com")),
        Err(StandInError::Audience)
    ));
    let mut single = claims.clone();
    single["aud"] = json!("sts.amazonaws.com");
    assert!(check_claims(&single, now, Some("sts.amazonaws.com")).is_ok());
    let mut no_exp = claims;
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        check_claims(&no_exp, now, None),
        Err(StandInError::MissingClaim("exp"))
    ));
}

#[test]
fn mint_rejects_non_object_claims() {
    assert!(matches!(
        ec().mint(&json!([1])),
        Err(StandInError::ClaimsNotObject)
    ));
}

#[test]
fn issuer_debug_has_no_key_material() {
    for issuer in [rsa(), ec()] {
        let dbg = format!("{issuer:?} {:?}", issuer.verifier());
        assert!(dbg.contains(issuer.kid()), "{dbg}");
        assert!(!dbg.contains("Arc") && !dbg.contains("["), "{dbg}");
    }
}

#[test]
fn uuid_shape() {
    let u = format_uuid([0xff; 16]);
    assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_eq!(stable_uuid(&["a", "b"]), stable_uuid(&["a", "b"]));
    assert_ne!(stable_uuid(&["a", "b"]), stable_uuid(&["ab"]));
}
