//! One integration-test binary (one link), with a module per area.

mod binary;
mod botocore;
mod refresh;
mod rotation;
mod server;
mod support;
mod upstream;
