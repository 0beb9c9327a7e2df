use std::time::Duration;

use super::*;
use crate::metrics::{Metrics, ServerMetrics};
use crate::server::limits::Limits;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn gate(max: usize, per_source: Option<usize>) -> (Gate, ListenerMetrics, Metrics) {
    let registry = Metrics::new().unwrap();
    let metrics = ServerMetrics::register(&registry).unwrap().listener("test");
    let gate = Gate::new(Limits {
        max_per_source: per_source,
        shed_after: Duration::ZERO,
        ..Limits::credentials(max, None)
    });
    (gate, metrics, registry)
}

fn scrape(registry: &Metrics) -> String {
    String::from_utf8(registry.encode()).unwrap()
}

/// A connection from `from` in `phase`, its task having waited on it.
async fn open(gate: &Gate, metrics: &ListenerMetrics, from: &str, phase: Phase) -> Slot {
    let slot = gate.admit(ip(from), phase, metrics).await.unwrap();
    slot.conn().waited();
    slot
}

/// `admit` should not finish while `victim` is open; it finishes once the
/// victim, told to go, is dropped.
async fn shed_for(gate: &Gate, metrics: &ListenerMetrics, from: &str, victim: Slot) -> Slot {
    let admit = {
        let (gate, metrics, from) = (gate.clone(), metrics.clone(), ip(from));
        tokio::spawn(async move { gate.admit(from, Phase::Head, &metrics).await })
    };
    tokio::time::timeout(Duration::from_secs(1), victim.conn().shed())
        .await
        .expect("the victim is told to go");
    tokio::task::yield_now().await;
    assert!(!admit.is_finished(), "admitted before the victim closed");
    drop(victim);
    admit.await.unwrap().expect("admitted")
}

#[tokio::test(start_paused = true)]
async fn a_full_listener_sheds_its_longest_idle_connection() {
    let (gate, metrics, registry) = gate(3, None);
    let a = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let b = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    let c = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    // a answers a request: b has waited longest of the others.
    a.conn().enter(Phase::Busy);
    let d = shed_for(&gate, &metrics, "10.0.0.1", b).await;
    assert!(scrape(&registry)
        .contains(r#"credagent_connections_shed_total{listener="test",reason="full"} 1"#));
    drop((a, c, d));
    assert_eq!(gate.inner.table.lock().open, 0);
    assert!(gate.inner.table.lock().sources.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_listener_full_of_busy_connections_holds_the_newcomer() {
    let (gate, metrics, _registry) = gate(2, None);
    let a = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    let b = open(&gate, &metrics, "10.0.0.2", Phase::Head).await;
    a.conn().enter(Phase::Busy);
    b.conn().enter(Phase::Busy);
    let admit = {
        let (gate, metrics) = (gate.clone(), metrics.clone());
        tokio::spawn(async move { gate.admit(ip("10.0.0.3"), Phase::Head, &metrics).await })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!admit.is_finished(), "admitted over the cap");
    // b's answer is out: it is idle, so it goes for the newcomer.
    b.conn().enter(Phase::Idle);
    tokio::time::timeout(Duration::from_secs(1), b.conn().shed())
        .await
        .expect("the idle connection is told to go");
    drop(b);
    let c = admit.await.unwrap().expect("admitted");
    drop((a, c));
}

#[tokio::test(start_paused = true)]
async fn an_address_at_its_share_gives_up_its_own_connection_or_is_refused() {
    let (gate, metrics, registry) = gate(100, Some(2));
    let a = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let b = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    // Older than both, from another address: untouched.
    let other = open(&gate, &metrics, "10.0.0.9", Phase::Idle).await;
    let c = shed_for(&gate, &metrics, "10.0.0.1", a).await;
    b.conn().enter(Phase::Busy);
    c.conn().enter(Phase::Busy);
    assert!(
        gate.admit(ip("10.0.0.1"), Phase::Head, &metrics)
            .await
            .is_none(),
        "every one busy: refused"
    );
    let text = scrape(&registry);
    assert!(
        text.contains(r#"credagent_connections_shed_total{listener="test",reason="per_source"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"credagent_connections_refused_total{reason="per_source"} 1"#),
        "{text}"
    );
    drop((b, c, other));
}

#[tokio::test(start_paused = true)]
async fn a_full_listener_takes_from_the_address_holding_the_most() {
    let (gate, metrics, _registry) = gate(4, None);
    // The lighter address's connection is the oldest idle one.
    let light = open(&gate, &metrics, "10.0.0.1", Phase::Idle).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut heavy = Vec::new();
    for _ in 0..3 {
        heavy.push(open(&gate, &metrics, "10.0.0.2", Phase::Head).await);
    }
    let victim = heavy.remove(0);
    let fresh = shed_for(&gate, &metrics, "10.0.0.3", victim).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), light.conn().shed())
            .await
            .is_err(),
        "the lighter address kept its connection"
    );
    drop((light, heavy, fresh));
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_task_has_not_waited_on_it_is_kept() {
    let (gate, metrics, _registry) = gate(1, None);
    // Accepted, its complete request unread: the accept loop ran ahead.
    let unread = gate
        .admit(ip("10.0.0.1"), Phase::Head, &metrics)
        .await
        .unwrap();
    let admit = {
        let (gate, metrics) = (gate.clone(), metrics.clone());
        tokio::spawn(async move { gate.admit(ip("10.0.0.2"), Phase::Head, &metrics).await })
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(30), unread.conn().shed())
            .await
            .is_err(),
        "shed before its task read it"
    );
    assert!(!admit.is_finished());
    drop(unread);
    drop(admit.await.unwrap().expect("admitted once it closed"));
}

#[tokio::test(start_paused = true)]
async fn on_a_herd_listener_a_head_is_shed_only_once_it_has_taken_long() {
    let registry = Metrics::new().unwrap();
    let metrics = ServerMetrics::register(&registry).unwrap().listener("test");
    let gate = Gate::new(Limits::credentials(1, None));
    let shed_after = gate.limits().shed_after;
    assert!(shed_after > Duration::ZERO);
    let head = open(&gate, &metrics, "10.0.0.1", Phase::Head).await;
    let admit = {
        let (gate, metrics) = (gate.clone(), metrics.clone());
        tokio::spawn(async move { gate.admit(ip("10.0.0.2"), Phase::Head, &metrics).await })
    };
    let started = Instant::now();
    head.conn().shed().await;
    let waited = started.elapsed();
    assert!(
        waited >= shed_after && waited <= shed_after + RECHECK,
        "shed after {waited:?}"
    );
    assert!(!admit.is_finished());
    drop(head);
    drop(admit.await.unwrap().expect("admitted"));
}

#[tokio::test(start_paused = true)]
async fn phases_and_their_start() {
    let (gate, metrics, _registry) = gate(1, None);
    let slot = open(&gate, &metrics, "10.0.0.1", Phase::Handshake).await;
    let conn = slot.conn();
    let (phase, t0) = conn.phase();
    assert_eq!(phase, Phase::Handshake);
    tokio::time::advance(Duration::from_millis(1500)).await;
    conn.bytes_arrived();
    assert_eq!(
        conn.phase(),
        (Phase::Handshake, t0),
        "bytes change only an idle phase"
    );
    conn.enter(Phase::Idle);
    tokio::time::advance(Duration::from_secs(2)).await;
    conn.bytes_arrived();
    let (phase, since) = conn.phase();
    assert_eq!(phase, Phase::Head);
    assert_eq!(since.duration_since(t0), Duration::from_millis(3500));
}
