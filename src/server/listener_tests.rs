use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Notify;

use super::*;
use crate::metrics::Metrics;
use crate::server::routes::Answer;

/// An answer far larger than what the kernel buffers between the two ends.
const BIG: usize = 1024 * 1024;

/// Answers every request with [`BIG`] bytes, and tells when it has.
struct Big(Arc<Notify>);

impl Routes for Big {
    type Future = std::future::Ready<Answer>;

    fn route(&self, _req: &Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        self.0.notify_one();
        let body = Full::new(Bytes::from(vec![b'x'; BIG]));
        std::future::ready(("big", Response::new(body)))
    }
}

/// Reads one answer to its end (the connection closes after it), and
/// returns its body's length.
async fn body_len(stream: &mut tokio::net::TcpStream) -> usize {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let head = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer head");
    answer.len() - head - 4
}

#[tokio::test]
async fn an_answer_still_being_written_is_not_shed_for_a_newcomer() {
    let registry = Metrics::new().unwrap();
    let metrics = Arc::new(ServerMetrics::register(&registry).unwrap());
    // One connection at most, answers written from their own buffer
    // through a small send buffer: the webhook's listener, shrunk.
    let gate = Gate::new(Limits::webhook(1, Duration::from_secs(120)));
    let listener = bind("127.0.0.1:0".parse().unwrap(), "--test")
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(Big(answered.clone())),
        metrics,
        shutdown.clone(),
        gate.clone(),
    ));

    // A client slow to read: a small receive buffer, not read yet.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    answered.notified().await;

    // A newcomer finds the listener full: its admission waits (or, were
    // the slow client's connection taken for idle, sheds it).
    let mut newcomer = tokio::net::TcpStream::connect(addr).await.unwrap();
    newcomer
        .write_all(b"GET / HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let shed = || {
        let text = String::from_utf8(registry.encode()).unwrap();
        !text.contains(r#"credagent_connections_shed_total{listener="webhook",reason="full"} 0"#)
    };
    while gate.waiting() == 0 && !shed() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // The slow client gets its whole answer, then the newcomer its own.
    assert_eq!(body_len(&mut slow).await, BIG);
    assert_eq!(body_len(&mut newcomer).await, BIG);
    assert!(!shed());
    shutdown.cancel();
    server.await.unwrap();
}
