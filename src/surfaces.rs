//! More ways to hand out the same credentials, all reading the one store:
//! an EC2 instance-metadata (IMDSv2) emulation for tools that only know
//! IMDS, an AWS shared credentials file for tools that only read files, and
//! a `credential_process` directory for clients whose container provider
//! cannot take CoreWeave's answer.

pub mod file_sink;
pub mod imds;
pub mod process_dir;
