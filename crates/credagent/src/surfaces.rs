//! More ways to hand out the same credentials, all reading the one store:
//! an EC2 instance-metadata (IMDSv2) emulation for tools that only know
//! IMDS, and an AWS shared credentials file for tools that only read files.

pub mod file_sink;
pub mod imds;
