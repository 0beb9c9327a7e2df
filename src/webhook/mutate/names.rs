//! The fixed names, paths and keys the injector uses.
//!
//! Names are never derived from the Pod (its name may not exist yet, and a
//! derived name would differ on reinvocation): every item is found again by
//! these names, which is what makes a second pass a no-op.

/// The annotation (or label) that opts a Pod in (`"true"`) or out (`"false"`).
pub const INJECT: &str = "credagent.io/inject";
/// The ServiceAccount annotation of CoreWeave's own webhook, honoured when
/// `coreweave_compat` is on.
pub const COREWEAVE_SA_INJECT: &str = "caios.coreweave.com/inject";
/// Containers (app or init) to leave untouched, comma-separated.
pub const SKIP_CONTAINERS: &str = "credagent.io/skip-containers";
/// The projected token's `expirationSeconds`.
pub const TOKEN_EXPIRATION: &str = "credagent.io/token-expiration";
/// The projected token's audience.
pub const AUDIENCE: &str = "credagent.io/audience";
/// The sidecar's CPU request.
pub const CPU_REQUEST: &str = "credagent.io/sidecar-cpu-request";
/// The sidecar's memory request.
pub const MEMORY_REQUEST: &str = "credagent.io/sidecar-memory-request";
/// The sidecar's CPU limit.
pub const CPU_LIMIT: &str = "credagent.io/sidecar-cpu-limit";
/// The sidecar's memory limit.
pub const MEMORY_LIMIT: &str = "credagent.io/sidecar-memory-limit";
/// `"true"`: also set up the `credential_process` fallback.
pub const CREDENTIAL_PROCESS: &str = "credagent.io/credential-process";
/// The sidecar's `--key-lifetime` (a duration, 15m to 12h: the POST
/// exchange), or [`KEY_LIFETIME_OFF`].
pub const KEY_LIFETIME: &str = "credagent.io/key-lifetime";
/// The value of [`KEY_LIFETIME`] that keeps the GET exchange (the upstream
/// chooses the lifetime) where the webhook's `--key-lifetime` would use the
/// POST.
pub const KEY_LIFETIME_OFF: &str = "off";
/// `"sidecar"` (default) or `"node"`.
pub const MODE: &str = "credagent.io/mode";
/// Marker written on injection: `injected`.
pub const STATUS: &str = "credagent.io/status";
/// Marker written on injection: the mode used.
pub const INJECTED_MODE: &str = "credagent.io/injected-mode";
/// Pod label the sidecar PodMonitor (manifests/monitoring) selects on.
pub const MODE_LABEL: &str = "credagent/mode";

/// The injected native sidecar.
pub const SIDECAR: &str = "credagent";
/// The projected service-account token volume.
pub const TOKEN_VOLUME: &str = "credagent-token";
/// The in-memory volume shared by the sidecar and the apps.
pub const AUTH_VOLUME: &str = "credagent-auth";
/// The sidecar's admin port name (what the sidecar PodMonitor scrapes).
pub const ADMIN_PORT_NAME: &str = "credagent-admin";

/// Where the token volume is mounted.
pub const TOKEN_DIR: &str = "/var/run/secrets/credagent";
/// The token's file name inside the token volume.
pub const TOKEN_FILE_NAME: &str = "oidc-token";
/// The token's full path.
pub const TOKEN_PATH: &str = "/var/run/secrets/credagent/oidc-token";
/// Where the shared in-memory volume is mounted.
pub const AUTH_DIR: &str = "/var/run/credagent";
/// The authorization token the sidecar writes and the apps send.
pub const AUTH_TOKEN_PATH: &str = "/var/run/credagent/auth-token";
/// The AWS config file the sidecar writes in credential-process mode.
pub const AWS_CONFIG_PATH: &str = "/var/run/credagent/aws-config";

/// The UID (and GID) the sidecar runs as: the image's `USER 65532:65532`.
pub const SIDECAR_UID: i64 = 65532;
/// The startupProbe's failureThreshold at one probe a second: how long an
/// app may wait for its first credentials before kubelet restarts the
/// sidecar. 300 s, as in `manifests/sidecar`: a restart fixes neither an
/// upstream outage nor a rejected token, so it should be rare.
pub const STARTUP_FAILURE_THRESHOLD: u32 = 300;
