//! One integration-test binary (one link), with a module per area.

mod abuse;
mod binary;
mod botocore;
mod faults;
mod layering;
mod link;
mod node;
mod node_cache;
mod node_verify;
mod ops;
mod post;
mod process;
mod proxy;
mod proxy_process;
mod refresh;
mod rotation;
mod server;
mod support;
mod surfaces;
mod tinyproxy;
mod upstream;
mod webhook;
mod webhook_compat;
mod webhook_keys;
mod webhook_namespace;
mod webhook_proxy;
