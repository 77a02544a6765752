//! The checks, one `pub async fn` each, in suite order ([`ALL`]), grouped
//! by area: the request channel, frame sizes, the publish channel, servers
//! restarting and shutting down, hostile input, and the event bus.

mod events;
mod frames;
mod garbage;
mod lifecycle;
mod publish;
mod request;
mod support;

pub use events::{event_bus_ipc_from_another_process_side, event_bus_prefix_subscriptions};
pub use frames::{
    frames_of_every_size_arrive_intact, oversized_frame_refused_and_server_keeps_serving,
};
pub use garbage::garbage_does_not_crash_or_wedge_server;
pub use lifecycle::{
    clean_shutdown_releases_ports_and_tasks, clients_reconnect_after_server_restart,
    request_to_dead_server_fails_in_time,
};
pub use publish::{
    late_subscriber_misses_earlier_publish, publish_reaches_every_subscriber_in_order,
    slow_subscriber_is_dropped_others_unaffected, targeted_publish_reaches_only_listed_minions,
};
pub use request::{concurrent_requests_from_many_clients, request_reply_roundtrip};

use crate::CheckFn;

/// Every check by name, in suite order.
pub const ALL: &[(&str, CheckFn)] = &[
    ("request_reply_roundtrip", |h| {
        Box::pin(request_reply_roundtrip(h))
    }),
    ("concurrent_requests_from_many_clients", |h| {
        Box::pin(concurrent_requests_from_many_clients(h))
    }),
    ("frames_of_every_size_arrive_intact", |h| {
        Box::pin(frames_of_every_size_arrive_intact(h))
    }),
    ("oversized_frame_refused_and_server_keeps_serving", |h| {
        Box::pin(oversized_frame_refused_and_server_keeps_serving(h))
    }),
    ("publish_reaches_every_subscriber_in_order", |h| {
        Box::pin(publish_reaches_every_subscriber_in_order(h))
    }),
    ("targeted_publish_reaches_only_listed_minions", |h| {
        Box::pin(targeted_publish_reaches_only_listed_minions(h))
    }),
    ("late_subscriber_misses_earlier_publish", |h| {
        Box::pin(late_subscriber_misses_earlier_publish(h))
    }),
    ("request_to_dead_server_fails_in_time", |h| {
        Box::pin(request_to_dead_server_fails_in_time(h))
    }),
    ("clients_reconnect_after_server_restart", |h| {
        Box::pin(clients_reconnect_after_server_restart(h))
    }),
    ("garbage_does_not_crash_or_wedge_server", |h| {
        Box::pin(garbage_does_not_crash_or_wedge_server(h))
    }),
    ("slow_subscriber_is_dropped_others_unaffected", |h| {
        Box::pin(slow_subscriber_is_dropped_others_unaffected(h))
    }),
    ("event_bus_prefix_subscriptions", |h| {
        Box::pin(event_bus_prefix_subscriptions(h))
    }),
    ("event_bus_ipc_from_another_process_side", |h| {
        Box::pin(event_bus_ipc_from_another_process_side(h))
    }),
    ("clean_shutdown_releases_ports_and_tasks", |h| {
        Box::pin(clean_shutdown_releases_ports_and_tasks(h))
    }),
];
