//! Checking the token of an exchange, the same for both: the GET's `Authorization` value and the
//! POST's `oidcToken`. A failure's message is a fixed string per kind (`StandInError`'s
//! `Display`), so the 401 bodies built from it never contain the token.

use std::time::SystemTime;

use super::state::Shared;
use crate::error::StandInError;
use crate::jwt;

/// Accepts `token` if one verifier verifies it and its claims are valid now. A failure against
/// one verifier is not final. If every verifier fails, the error is `Signature` when at least one
/// verifier had the token's algorithm, and `Algorithm` otherwise.
pub(super) fn authenticate(
    shared: &Shared,
    token: &str,
    now: SystemTime,
) -> Result<jwt::Identity, StandInError> {
    // Verifiers are cheap to clone (an `Arc` of key bytes); no lock is held while verifying.
    let verifiers = shared.state().verifiers.clone();
    let mut failure = StandInError::Algorithm;
    for verifier in &verifiers {
        match verifier.verify(token) {
            Ok(claims) => return jwt::check_claims(&claims, now, shared.audience.as_deref()),
            Err(e @ StandInError::Malformed(_)) => return Err(e),
            Err(StandInError::Algorithm) => {}
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// The principal CoreWeave derives from a token: `<iss>:<sub>`. The GET sends it as
/// `attributes.cw-role`, the POST as `principalName`.
pub(super) fn principal(identity: &jwt::Identity) -> String {
    format!("{}:{}", identity.iss, identity.sub)
}
