//! Test support, compiled only for tests and the `testkit` feature (the
//! release binary carries none of it): an in-process OTLP receiver and
//! the crash-injection point of the fault tests.
//!
//! Used by the integration tests, the end-to-end harness and the benches;
//! not part of the sidecar's data path.

pub mod receiver;

/// A fault-injection point for the crash tests (TEST-PLAN C1): with
/// `FORGE_SIDECAR_FAULT_ABORT_BEFORE_COMMIT=N` the process aborts, as a
/// SIGKILL would, right after the N-th delivered page and before its
/// checkpoint is written. Unset in normal use.
pub mod crash_point {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static COMMITS: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn before_commit() {
        let at = AT
            .get_or_init(|| std::env::var("FORGE_SIDECAR_FAULT_ABORT_BEFORE_COMMIT").ok().and_then(|v| v.parse().ok()));
        if let Some(n) = at
            && COMMITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
        {
            eprintln!("fault injection: aborting before checkpoint write {n}");
            std::process::abort();
        }
    }
}

pub mod tls;
