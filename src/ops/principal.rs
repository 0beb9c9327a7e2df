//! `credagent principal`: the policy principal a workload's token maps to,
//! in the three forms of the CoreWeave guide, and an organization access
//! policy granting it S3 access, ready to paste.

use serde_json::json;

/// The identity a token maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The cluster's OIDC issuer URL (`iss`).
    pub issuer: String,
    /// The subject (`sub`), e.g. `system:serviceaccount:NS:SA`.
    pub subject: String,
}

impl Identity {
    /// The identity of service account `sa` in namespace `ns`.
    pub fn service_account(issuer: &str, ns: &str, sa: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            subject: format!("system:serviceaccount:{ns}:{sa}"),
        }
    }

    /// `ISSUER:SUB`.
    pub fn principal(&self) -> String {
        format!("{}:{}", self.issuer, self.subject)
    }
}

/// Renders the three forms and the example policy. Without `org_id` the
/// bucket-policy form carries an `[ORG-ID]` placeholder.
pub fn render(identity: &Identity, org_id: Option<&str>) -> String {
    let principal = identity.principal();
    let role = format!("role/{principal}");
    let org = org_id.unwrap_or("[ORG-ID]");
    let bucket = json!({ "AWS": format!("arn:aws:iam::{org}:{role}") });
    let label: String = identity
        .subject
        .rsplit(':')
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let policy = json!({
        "policy": {
            "version": "v1alpha1",
            "name": format!("credagent-{label}"),
            "statements": [{
                "name": format!("allow-s3-for-{label}"),
                "effect": "Allow",
                "actions": ["s3:*", "cwobject:CreateAccessKeyOIDC"],
                "resources": ["*"],
                "principals": [role],
            }]
        }
    });
    let policy = serde_json::to_string_pretty(&policy).unwrap_or_default();
    let mut out = format!(
        "Principal:                          {principal}\nOrganization policy \"principals\":   {}\nBucket policy \"Principal\":          {bucket}\n",
        json!([role]),
    );
    if org_id.is_none() {
        out.push_str("                                    (pass --org-id to fill in [ORG-ID])\n");
    }
    out.push_str("\nExample organization access policy (grants this workload all of S3; narrow actions and resources as needed):\n");
    out.push_str(&policy);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_output() {
        let id = Identity::service_account(
            "https://oidc.example.coreweave.com/abc123/",
            "default",
            "test-service-account",
        );
        let want = r#"Principal:                          https://oidc.example.coreweave.com/abc123:system:serviceaccount:default:test-service-account
Organization policy "principals":   ["role/https://oidc.example.coreweave.com/abc123:system:serviceaccount:default:test-service-account"]
Bucket policy "Principal":          {"AWS":"arn:aws:iam::my-org:role/https://oidc.example.coreweave.com/abc123:system:serviceaccount:default:test-service-account"}

Example organization access policy (grants this workload all of S3; narrow actions and resources as needed):
{
  "policy": {
    "version": "v1alpha1",
    "name": "credagent-default-test-service-account",
    "statements": [
      {
        "name": "allow-s3-for-default-test-service-account",
        "effect": "Allow",
        "actions": [
          "s3:*",
          "cwobject:CreateAccessKeyOIDC"
        ],
        "resources": [
          "*"
        ],
        "principals": [
          "role/https://oidc.example.coreweave.com/abc123:system:serviceaccount:default:test-service-account"
        ]
      }
    ]
  }
}
"#;
        assert_eq!(render(&id, Some("my-org")), want);
        let without = render(&id, None);
        assert!(without.contains("arn:aws:iam::[ORG-ID]:role/"));
        assert!(without.contains("pass --org-id"));
    }
}
