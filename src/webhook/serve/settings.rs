//! From the command line's [`InjectSettings`] to the core's
//! [`InjectConfig`], validated, with any error naming the flag.

use crate::cli::PullPolicyArg;
use crate::config::{ConfigError, InjectSettings, InjectUpstream};
use crate::webhook::mutate::config::{
    InjectConfig, InjectConfigError, PullPolicy, Resources, Upstream,
};

/// Builds and validates the core's configuration; run before anything is
/// bound, so a bad value exits with status 2 and names its flag.
pub fn inject_config(s: &InjectSettings) -> Result<InjectConfig, ConfigError> {
    let upstream = match &s.upstream {
        InjectUpstream::OrgId(org) => Upstream::OrgId(org.clone()),
        InjectUpstream::ExchangeUrl(url) => Upstream::ExchangeUrl(url.clone()),
    };
    let config = InjectConfig {
        image_pull_policy: match s.image_pull_policy {
            PullPolicyArg::Always => PullPolicy::Always,
            PullPolicyArg::IfNotPresent => PullPolicy::IfNotPresent,
            PullPolicyArg::Never => PullPolicy::Never,
        },
        audience: s.audience.clone(),
        token_expiration: s.token_expiration,
        sidecar_port: s.sidecar_port,
        admin_port: s.sidecar_admin_port,
        resources: Resources {
            cpu_request: s.cpu_request.clone(),
            memory_request: s.memory_request.clone(),
            cpu_limit: s.cpu_limit.clone(),
            memory_limit: s.memory_limit.clone(),
        },
        region: s.region.clone(),
        s3_endpoint: s.s3_endpoint.clone(),
        node_url: s.node_url.clone(),
        coreweave_compat: s.coreweave_compat,
        sidecar_https_proxy: s.sidecar_https_proxy.clone(),
        sidecar_no_proxy: s.sidecar_no_proxy.clone(),
        ..InjectConfig::new(s.image.clone(), upstream)
    };
    config.validate().map_err(to_flag)?;
    Ok(config)
}

/// The flag behind a field of [`InjectConfig`], in the error and in its
/// reason ("exceeds resources.cpu_limit").
fn to_flag(e: InjectConfigError) -> ConfigError {
    let flag = flag_of(e.field);
    let mut reason = e.reason;
    for field in ["resources.cpu_limit", "resources.memory_limit"] {
        reason = reason.replace(field, flag_of(field));
    }
    ConfigError::new(flag, reason)
}

fn flag_of(field: &'static str) -> &'static str {
    match field {
        "image" => "--sidecar-image",
        "upstream.org_id" => "--org-id",
        "upstream.exchange_url" => "--exchange-url",
        "audience" => "--audience",
        "token_expiration" => "--token-expiration",
        "sidecar_port" => "--sidecar-port",
        "region" => "--region",
        "s3_endpoint" => "--s3-endpoint",
        "node_url" => "--node-url",
        "sidecar_https_proxy" => "--sidecar-https-proxy",
        "sidecar_no_proxy" => "--sidecar-no-proxy",
        "resources.cpu_request" => "--sidecar-cpu-request",
        "resources.memory_request" => "--sidecar-memory-request",
        "resources.cpu_limit" => "--sidecar-cpu-limit",
        "resources.memory_limit" => "--sidecar-memory-limit",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(flags: &[&str]) -> Result<InjectConfig, ConfigError> {
        inject_config(&crate::config::webhook_config_from_flags(flags)?.inject)
    }

    #[test]
    fn flags_reach_the_core() {
        let c = build(&[
            "--region",
            "US-EAST-04A",
            "--s3-endpoint",
            "http://cwlota.com",
            "--sidecar-port",
            "8282",
            "--image-pull-policy",
            "Always",
            "--coreweave-compat",
            "--sidecar-memory-limit",
            "",
            "--sidecar-https-proxy",
            "proxy.corp.example:3128",
            "--sidecar-no-proxy",
            ".svc,10.96.0.0/12",
        ])
        .unwrap();
        assert_eq!(
            c.sidecar_https_proxy.as_deref(),
            Some("http://proxy.corp.example:3128")
        );
        assert_eq!(c.sidecar_no_proxy.as_deref(), Some(".svc,10.96.0.0/12"));
        assert_eq!(c.image, "credagent:1");
        assert_eq!(c.upstream, Upstream::OrgId("org".into()));
        assert_eq!(c.region.as_deref(), Some("US-EAST-04A"));
        assert_eq!(c.sidecar_url(), "http://127.0.0.1:8282/v1/credentials");
        assert_eq!(c.image_pull_policy, PullPolicy::Always);
        assert!(c.coreweave_compat);
        assert_eq!(c.resources.memory_limit, None);
        assert_eq!(c.resources.cpu_limit.as_deref(), Some("100m"));
        assert_eq!(build(&[]).unwrap(), {
            let mut d = InjectConfig::new("credagent:1", Upstream::OrgId("org".into()));
            d.token_expiration = 3600;
            d
        });
    }

    #[test]
    fn core_errors_name_the_flag() {
        let flag = |flags: &[&str]| build(flags).unwrap_err().flag;
        assert_eq!(
            flag(&["--sidecar-cpu-request", "lots"]),
            "--sidecar-cpu-request"
        );
        assert_eq!(
            flag(&["--sidecar-memory-request", "1Gi"]),
            "--sidecar-memory-request"
        );
        let e = build(&["--sidecar-cpu-request", "1", "--sidecar-cpu-limit", "500m"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for --sidecar-cpu-request: exceeds --sidecar-cpu-limit"
        );
        assert_eq!(flag(&["--region", "us east"]), "--region");
        assert_eq!(flag(&["--s3-endpoint", "cwlota.com"]), "--s3-endpoint");
        assert_eq!(flag(&["--node-url", "ftp://x"]), "--node-url");
        assert_eq!(flag(&["--audience", "a b"]), "--audience");
    }
}
