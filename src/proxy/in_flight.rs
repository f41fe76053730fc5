//! How many requests the gateway is working on, so that a graceful shutdown can end as soon as
//! the last one is done instead of always waiting out the grace period (see `server`).

use std::sync::atomic::{AtomicUsize, Ordering};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Held by every request's context (client requests and background refreshes alike) from its
/// first hook to the end of its logging hook.
pub(crate) struct InFlight(());

impl InFlight {
    /// Counts one more request in flight.
    pub(crate) fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Requests in flight now.
pub fn count() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}
