//! The publisher's fan-out: connected subscribers, their subscriptions, and
//! a bounded queue per subscriber.
//!
//! Subscriptions are prefixes of a message's first frame, as in ZeroMQ.
//! They are indexed by prefix, so matching a message costs one lookup per
//! prefix length in use (1 with Salt's default `""`, 41 with
//! `zmq_filtering`'s SHA-1 topics), not one test per subscriber. A
//! subscriber whose queue is full is removed and told to disconnect; the
//! others never wait for it.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::SocketAddr,
    sync::{Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::zmtp::Unit;

/// A subscriber's id in the hub.
pub(crate) type SubscriberId = u64;

/// What a connection task gets when it registers.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) id: SubscriberId,
    /// Messages to write, in order.
    pub(crate) queue: mpsc::Receiver<Unit>,
    /// Fires when the hub drops the subscriber (queue full, or closing).
    pub(crate) kicked: oneshot::Receiver<&'static str>,
}

/// Every connected subscriber.
#[derive(Debug)]
pub(crate) struct Hub {
    queue_depth: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: SubscriberId,
    subscribers: HashMap<SubscriberId, Subscriber>,
    /// Prefix → subscribers with that subscription (once per subscription).
    index: HashMap<Bytes, Vec<SubscriberId>>,
    /// Longest prefix ever subscribed; bounds the lookups per message.
    longest: usize,
    closed: bool,
}

#[derive(Debug)]
struct Subscriber {
    peer: SocketAddr,
    queue: mpsc::Sender<Unit>,
    kick: oneshot::Sender<&'static str>,
    subscriptions: Vec<Bytes>,
}

impl Hub {
    /// A hub queueing at most `queue_depth` messages per subscriber.
    pub(crate) fn new(queue_depth: usize) -> Self {
        Self {
            queue_depth: queue_depth.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscriber with no subscriptions; `None` once closed.
    pub(crate) fn register(&self, peer: SocketAddr) -> Option<Registration> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (queue, queued) = mpsc::channel(self.queue_depth);
        let (kick, kicked) = oneshot::channel();
        let subscriber = Subscriber {
            peer,
            queue,
            kick,
            subscriptions: Vec::new(),
        };
        inner.subscribers.insert(id, subscriber);
        Some(Registration {
            id,
            queue: queued,
            kicked,
        })
    }

    /// Adds a subscription; `false` if the subscriber has `max` already.
    pub(crate) fn subscribe(&self, id: SubscriberId, prefix: Bytes, max: usize) -> bool {
        let mut inner = self.lock();
        let Some(subscriber) = inner.subscribers.get_mut(&id) else {
            return true;
        };
        if subscriber.subscriptions.len() >= max {
            return false;
        }
        subscriber.subscriptions.push(prefix.clone());
        inner.longest = inner.longest.max(prefix.len());
        inner.index.entry(prefix).or_default().push(id);
        true
    }

    /// Removes one subscription equal to `prefix`, if any.
    pub(crate) fn unsubscribe(&self, id: SubscriberId, prefix: &[u8]) {
        let mut inner = self.lock();
        let Some(subscriber) = inner.subscribers.get_mut(&id) else {
            return;
        };
        let Some(at) = subscriber.subscriptions.iter().position(|s| s == prefix) else {
            return;
        };
        subscriber.subscriptions.swap_remove(at);
        unindex(&mut inner.index, prefix, id);
    }

    /// Removes a subscriber (its connection ended).
    pub(crate) fn remove(&self, id: SubscriberId) {
        let mut inner = self.lock();
        inner.remove(id);
    }

    /// Queues each `(topic, unit)` for every subscriber with a matching
    /// subscription, each at most once per unit; drops (and kicks) the
    /// subscribers whose queue is full.
    pub(crate) fn fan_out<'t>(&self, units: impl IntoIterator<Item = (&'t [u8], Unit)>) {
        let mut inner = self.lock();
        let mut matched = Vec::new();
        let mut full = Vec::new();
        for (topic, unit) in units {
            matched.clear();
            let longest = inner.longest.min(topic.len());
            for len in 0..=longest {
                if let Some(ids) = topic.get(..len).and_then(|prefix| inner.index.get(prefix)) {
                    matched.extend_from_slice(ids);
                }
            }
            matched.sort_unstable();
            matched.dedup();
            for id in &matched {
                let Some(subscriber) = inner.subscribers.get(id) else {
                    continue;
                };
                match subscriber.queue.try_send(unit.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => full.push(*id),
                    // Its connection task is ending and will remove it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            for id in full.drain(..) {
                if let Some(subscriber) = inner.remove(id) {
                    tracing::warn!(
                        peer = %subscriber.peer,
                        queue_depth = self.queue_depth,
                        reason = "send queue full",
                        "slow subscriber dropped"
                    );
                    let _ = subscriber.kick.send("send queue full");
                }
            }
        }
    }

    /// Drops every subscriber and refuses new ones.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.index.clear();
        for (_, subscriber) in inner.subscribers.drain() {
            let _ = subscriber.kick.send("publisher closed");
        }
    }

    /// Connected subscribers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().subscribers.len()
    }
}

impl Inner {
    fn remove(&mut self, id: SubscriberId) -> Option<Subscriber> {
        let subscriber = self.subscribers.remove(&id)?;
        for prefix in &subscriber.subscriptions {
            unindex(&mut self.index, prefix, id);
        }
        Some(subscriber)
    }
}

fn unindex(index: &mut HashMap<Bytes, Vec<SubscriberId>>, prefix: &[u8], id: SubscriberId) {
    if let Entry::Occupied(mut entry) = index.entry(Bytes::copy_from_slice(prefix)) {
        let ids = entry.get_mut();
        if let Some(at) = ids.iter().position(|&other| other == id) {
            ids.swap_remove(at);
        }
        if ids.is_empty() {
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn unit(body: &'static [u8]) -> Unit {
        Unit::message(None, Bytes::from_static(body))
    }

    fn drain(registration: &mut Registration) -> Vec<Bytes> {
        std::iter::from_fn(|| registration.queue.try_recv().ok())
            .map(|unit| unit.body)
            .collect()
    }

    #[test]
    fn messages_reach_matching_prefixes_once() {
        let hub = Hub::new(10);
        let mut all = hub.register(peer()).unwrap();
        let mut one = hub.register(peer()).unwrap();
        let mut none = hub.register(peer()).unwrap();
        hub.subscribe(all.id, Bytes::new(), 8);
        hub.subscribe(one.id, Bytes::from_static(b"topic-1"), 8);
        hub.subscribe(one.id, Bytes::from_static(b"topic"), 8); // both match: once
        hub.fan_out([(&b"topic-1"[..], unit(b"a")), (&b"topic-2"[..], unit(b"b"))]);
        assert_eq!(
            drain(&mut all),
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert_eq!(
            drain(&mut one),
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert!(drain(&mut none).is_empty());
        hub.unsubscribe(one.id, b"topic");
        hub.fan_out([(&b"topic-2"[..], unit(b"c"))]);
        assert!(drain(&mut one).is_empty());
        assert_eq!(drain(&mut all), vec![Bytes::from_static(b"c")]);
        hub.remove(all.id);
        hub.fan_out([(&b"x"[..], unit(b"d"))]);
        assert!(drain(&mut all).is_empty());
        assert_eq!(hub.len(), 2);
    }

    #[test]
    fn a_full_queue_drops_only_that_subscriber() {
        let hub = Hub::new(2);
        let mut slow = hub.register(peer()).unwrap();
        let mut fast = hub.register(peer()).unwrap();
        hub.subscribe(slow.id, Bytes::new(), 8);
        hub.subscribe(fast.id, Bytes::new(), 8);
        for body in [&b"1"[..], b"2", b"3"] {
            hub.fan_out([(body, unit(b"m"))]);
            drain(&mut fast);
        }
        assert_eq!(slow.kicked.try_recv(), Ok("send queue full"));
        assert!(fast.kicked.try_recv().is_err());
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn subscriptions_are_capped_and_close_kicks_everyone() {
        let hub = Hub::new(2);
        let mut sub = hub.register(peer()).unwrap();
        assert!(hub.subscribe(sub.id, Bytes::from_static(b"a"), 1));
        assert!(!hub.subscribe(sub.id, Bytes::from_static(b"b"), 1));
        hub.close();
        assert_eq!(sub.kicked.try_recv(), Ok("publisher closed"));
        assert!(hub.register(peer()).is_none());
    }
}
