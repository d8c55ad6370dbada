use std::sync::Arc;

use super::*;

#[tokio::test(start_paused = true)]
async fn paces_evenly_and_never_exceeds_the_window() {
    let b = Budget::new("app", 30, Duration::from_secs(60));
    let cancel = CancellationToken::new();
    let t0 = Instant::now();
    let mut times = Vec::new();
    for _ in 0..95 {
        assert!(b.acquire(0, &cancel, &|| {}).await.is_some());
        times.push(Instant::now() - t0);
    }
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(2), "evenly paced: {pair:?}");
    }
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u - *t < Duration::from_secs(60)).count();
        assert!(in_window <= 30, "{in_window} calls within 60 s from call {i}");
    }
    // Within 2 % of the minimum possible time for 95 calls at 30/min.
    let total = *times.last().unwrap_or(&Duration::ZERO);
    let minimum = Duration::from_secs(2 * 94);
    assert!(total <= minimum.mul_f64(1.02), "{total:?} vs {minimum:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_blocks_every_caller_until_retry_after() {
    let b = Budget::new("app", 30, Duration::from_secs(60));
    let cancel = CancellationToken::new();
    b.acquire(0, &cancel, &|| {}).await;
    let t0 = Instant::now();
    assert!(b.throttle(Duration::from_secs(7)), "one call, then a 429: someone else shares the limit");
    b.acquire(0, &cancel, &|| {}).await;
    assert!(Instant::now() - t0 >= Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn the_earliest_deadline_goes_first() {
    let b = Arc::new(Budget::new("app", 30, Duration::from_secs(60)));
    let cancel = CancellationToken::new();
    b.acquire(0, &cancel, &|| {}).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // Arrive in the order 300, 100, 200; served in deadline order.
    for deadline in [300, 100, 200] {
        let (b, o, c) = (b.clone(), order.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            b.acquire(deadline, &c, &|| {}).await;
            lock(&o).push(deadline);
        }));
        tokio::task::yield_now().await;
    }
    for t in tasks {
        let _ = t.await;
    }
    assert_eq!(*lock(&order), vec![100, 200, 300]);
}

#[tokio::test(start_paused = true)]
async fn a_shared_limit_halves_the_rate_then_it_recovers() {
    let period = Duration::from_secs(60);
    let b = Budget::new("app", 30, period);
    let cancel = CancellationToken::new();
    b.acquire(0, &cancel, &|| {}).await;
    assert!(b.throttle(Duration::from_secs(1)));
    assert_eq!(b.effective_rate(), 15.0);
    assert!(b.throttle(Duration::from_secs(1)));
    assert_eq!(b.effective_rate(), 7.5);
    // Paced at the lower rate: 60 s / 7.5 = 8 s apart.
    b.acquire(0, &cancel, &|| {}).await;
    let t0 = Instant::now();
    b.acquire(0, &cancel, &|| {}).await;
    assert!(Instant::now() - t0 >= Duration::from_secs(8));
    // One more call per period without a 429.
    tokio::time::sleep(period * 3).await;
    b.acquire(0, &cancel, &|| {}).await;
    assert!(b.effective_rate() > 7.5 && b.effective_rate() <= 30.0);
    for _ in 0..60 {
        tokio::time::sleep(period).await;
        b.acquire(0, &cancel, &|| {}).await;
    }
    assert_eq!(b.effective_rate(), 30.0, "recovers to the full limit");
}

#[tokio::test(start_paused = true)]
async fn a_429_at_our_own_limit_keeps_the_rate() {
    let b = Budget::new("app", 3, Duration::from_secs(60));
    let cancel = CancellationToken::new();
    for _ in 0..3 {
        b.acquire(0, &cancel, &|| {}).await;
    }
    assert!(!b.throttle(Duration::from_secs(1)), "all three calls were ours");
    assert_eq!(b.effective_rate(), 3.0);
}

#[tokio::test(start_paused = true)]
async fn cancellation_ends_the_wait() {
    let b = Budget::new("app", 1, Duration::from_secs(3600));
    let cancel = CancellationToken::new();
    b.acquire(0, &cancel, &|| {}).await;
    cancel.cancel();
    assert!(b.acquire(0, &cancel, &|| {}).await.is_none());
}

#[tokio::test]
async fn a_restart_remembers_the_calls_of_the_last_period() {
    let dir = tempfile::tempdir().unwrap();
    let period = Duration::from_secs(60);
    let cancel = CancellationToken::new();
    {
        let b = Budget::with_memory("app", 3, period, memory::Memory::open(dir.path(), "app", 3));
        b.acquire(0, &cancel, &|| {}).await;
    }
    // The write happens on a blocking thread: give it a moment.
    for _ in 0..50 {
        if std::fs::metadata(memory::path(dir.path(), "app")).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = Budget::with_memory("app", 3, period, memory::Memory::open(dir.path(), "app", 3));
    let wait = {
        let inner = lock(&b.inner);
        inner.next_slot.map(|s| s.saturating_duration_since(Instant::now()))
    };
    assert!(wait.is_some_and(|w| w > Duration::from_secs(15)), "paced from the predecessor's call: {wait:?}");
}
