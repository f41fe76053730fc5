//! The shared tier's life cycle in the gateway: connect in the background (the gateway starts
//! and serves with Redis down), attach to the store, and apply other instances' invalidations to
//! this instance's local tier — clearing it whenever the subscription is lost, because messages
//! may have been missed.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::shared::{SharedTier, SubscriptionEvent};
use super::store::TieredStore;
use crate::runtime::stage::RedisSettings;

/// A background service that owns the shared tier of one gateway.
pub struct SharedTierService {
    store: &'static TieredStore,
    settings: RedisSettings,
    instance_id: u64,
}

impl SharedTierService {
    /// For `store`, connecting with `settings`. `instance_id` tells this instance's own
    /// invalidation messages apart from the others'.
    pub fn new(store: &'static TieredStore, settings: RedisSettings, instance_id: u64) -> Self {
        Self {
            store,
            settings,
            instance_id,
        }
    }
}

#[async_trait]
impl BackgroundService for SharedTierService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let shared = SharedTier::connect(&self.settings, self.instance_id).await;
        let mut events = shared.subscribe();
        self.store.attach_shared(shared);
        tracing::info!(url = %super::shared::redact_url(&self.settings.url), "Shared cache tier attached.");
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = events.recv() => match event {
                    Some(SubscriptionEvent::Message(msg)) => self.store.apply_remote(&msg),
                    Some(SubscriptionEvent::Lost) => {
                        tracing::warn!("Invalidation subscription lost; clearing the local cache tier.");
                        self.store.clear_local();
                    }
                    Some(SubscriptionEvent::Subscribed) => {
                        // Entries stored while unsubscribed may have missed invalidations.
                        self.store.clear_local();
                    }
                    None => return,
                },
            }
        }
    }
}
