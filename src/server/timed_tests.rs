use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::metrics::{Metrics, ServerMetrics};
use crate::server::gate::{Gate, Slot};
use crate::server::limits::Limits;

const WEBHOOK_IDLE: Duration = Duration::from_secs(120);

/// A connection in `phase` on a webhook-like listener (idle 120 s, head
/// 5 s), its server side timed, and the client's side.
async fn rig(phase: Phase) -> (Timed<DuplexStream>, DuplexStream, Slot, Metrics) {
    let registry = Metrics::new().unwrap();
    let metrics = ServerMetrics::register(&registry).unwrap().listener("test");
    let limits = Limits::webhook(8, WEBHOOK_IDLE);
    let gate = Gate::new(limits);
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let slot = gate.admit(ip, phase, &metrics).await.unwrap();
    let (server, client) = tokio::io::duplex(64);
    let timed = Timed::new(server, slot.conn().clone(), limits.timeouts, metrics);
    (timed, client, slot, registry)
}

fn counted(registry: &Metrics, phase: &str) -> bool {
    let text = String::from_utf8(registry.encode()).unwrap();
    text.contains(&format!(
        "credagent_connection_timeouts_total{{listener=\"test\",phase=\"{phase}\"}} 1"
    ))
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_kept_for_the_idle_timeout() {
    let (mut server, _client, _slot, registry) = rig(Phase::Idle).await;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let err = server.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), WEBHOOK_IDLE);
    assert!(counted(&registry, "idle"));
}

#[tokio::test(start_paused = true)]
async fn a_head_must_arrive_within_the_head_timeout_of_its_first_byte() {
    let (mut server, mut client, slot, registry) = rig(Phase::Idle).await;
    tokio::time::advance(Duration::from_secs(100)).await;
    client
        .write_all(b"POST /mutate HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(server.read(&mut buf).await.unwrap() > 0);
    assert_eq!(slot.conn().phase().0, Phase::Head);
    let first_byte = Instant::now();
    // The rest of the head never comes.
    let err = server.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(first_byte.elapsed(), crate::server::limits::HEAD_TIMEOUT);
    assert!(counted(&registry, "head"));
}

#[tokio::test(start_paused = true)]
async fn a_request_being_answered_has_no_read_deadline() {
    let (mut server, mut client, slot, _registry) = rig(Phase::Head).await;
    slot.conn().enter(Phase::Busy);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3600), server.read(&mut buf)).await;
    assert!(read.is_err(), "a busy connection's read ended: {read:?}");
    // Answered: now idle, under the idle timeout.
    slot.conn().enter(Phase::Idle);
    client.write_all(b"x").await.unwrap();
    assert_eq!(server.read(&mut buf).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_write_the_client_does_not_read_fails_after_the_send_timeout() {
    let (mut server, _client, _slot, registry) = rig(Phase::Busy).await;
    let started = Instant::now();
    // The pipe holds 64 bytes; the client never reads.
    let err = server.write_all(&[b'x'; 1024]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), crate::server::limits::SEND_TIMEOUT);
    assert!(counted(&registry, "send"));
}

#[tokio::test(start_paused = true)]
async fn an_answered_connection_turns_idle_once_its_answer_is_flushed() {
    let (mut server, mut client, slot, _registry) = rig(Phase::Busy).await;
    slot.conn().answered();
    assert_eq!(slot.conn().phase().0, Phase::Busy);
    server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    assert_eq!(slot.conn().phase().0, Phase::Busy);
    server.flush().await.unwrap();
    assert_eq!(slot.conn().phase().0, Phase::Idle);
    // A later flush (nothing answered since) leaves the phase alone.
    slot.conn().enter(Phase::Head);
    server.flush().await.unwrap();
    assert_eq!(slot.conn().phase().0, Phase::Head);
    let mut buf = [0u8; 32];
    assert!(client.read(&mut buf).await.unwrap() > 0);
}

#[tokio::test(start_paused = true)]
async fn a_pipelined_request_stays_busy_when_the_previous_answer_is_flushed() {
    let (mut server, _client, slot, _registry) = rig(Phase::Busy).await;
    slot.conn().answered();
    server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    // The next request is read and answered before that flush completes.
    slot.conn().answering();
    server.flush().await.unwrap();
    assert_eq!(slot.conn().phase().0, Phase::Busy);
}
