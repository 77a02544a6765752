//! Maintenance (Salt's `Maintenance` process): every `loop_interval`,
//! prune old jobs, pick up key changes made by `brine-key`, and rotate the
//! AES key when a key was deleted or rejected or `.dfn` asks for it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use brine_protocol::keys::KeyState;
use brine_protocol::tags;
use tracing::{info, warn};

use crate::keys::{KeyAct, KeyChange, KeyEvent, KeyWatch, take_aes_rotation_request};
use crate::state::Shared;

/// Runs Maintenance until cancelled; an error ends the run (the supervisor
/// restarts it).
pub(crate) async fn run(shared: Arc<Shared>) -> Result<(), String> {
    let mut watch = {
        let pki = shared.pki.clone();
        tokio::task::spawn_blocking(move || KeyWatch::new(pki))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let mut ticker = tokio::time::interval(shared.config.loop_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        prune(&shared).await;
        let (shared_for_keys, moved_watch) = (Arc::clone(&shared), watch);
        let (back, result) = tokio::task::spawn_blocking(move || {
            let mut watch = moved_watch;
            let result = handle_keys(&shared_for_keys, &mut watch);
            (watch, result)
        })
        .await
        .map_err(|e| e.to_string())?;
        watch = back;
        if let Err(reason) = result {
            warn!(%reason, "maintenance: key check failed");
        }
    }
}

async fn prune(shared: &Shared) {
    let Some(keep) = shared.config.keep_jobs_duration() else {
        return;
    };
    let Some(cutoff) = SystemTime::now().checked_sub(keep) else {
        return;
    };
    match shared.job_cache.prune(cutoff).await {
        Ok(0) => {}
        Ok(n) => info!(jobs = n, "pruned old jobs"),
        Err(err) => warn!(error = %err, "could not prune old jobs"),
    }
}

/// Polls key changes; fires `salt/key`; drops sessions; rotates the AES key.
fn handle_keys(shared: &Shared, watch: &mut KeyWatch) -> Result<(), String> {
    let changes = watch.poll().map_err(|e| e.to_string())?;
    let mut added: BTreeSet<(u8, String)> = BTreeSet::new();
    for change in &changes {
        if let KeyChange::Added { state, id } = change {
            added.insert((state_code(*state), id.clone()));
        }
    }
    let mut rotate = false;
    for change in &changes {
        match change {
            KeyChange::Added {
                state: KeyState::Accepted,
                id,
            } => {
                fire_key(shared, KeyAct::Accept, id);
            }
            KeyChange::Added {
                state: KeyState::Rejected,
                id,
            } => {
                fire_key(shared, KeyAct::Reject, id);
            }
            KeyChange::Removed { state, id } => {
                if *state == KeyState::Accepted {
                    shared.drop_session(id);
                    rotate = true;
                }
                let elsewhere = KeyState::ALL
                    .iter()
                    .any(|s| added.contains(&(state_code(*s), id.clone())));
                if !elsewhere {
                    fire_key(shared, KeyAct::Delete, id);
                }
            }
            KeyChange::Modified {
                state: KeyState::Accepted,
                id,
            } => {
                shared.drop_session(id);
            }
            _ => {}
        }
    }
    // A key accepted and deleted between two polls never shows up as a
    // change; a session whose accepted key is gone is the same deletion.
    for id in shared.session_ids() {
        let accepted = shared
            .pki
            .minion_key_path(KeyState::Accepted, &id)
            .is_ok_and(|path| path.exists());
        if !accepted {
            shared.drop_session(&id);
            rotate = true;
            if !changes
                .iter()
                .any(|c| matches!(c, KeyChange::Removed { id: gone, .. } if *gone == id))
            {
                fire_key(shared, KeyAct::Delete, &id);
            }
        }
    }
    let requested = take_aes_rotation_request(&shared.config.cachedir, &shared.config.id)
        .unwrap_or_else(|err| {
            warn!(error = %err, "could not read the AES rotation request");
            false
        });
    if (rotate && shared.config.rotate_aes_key) || requested {
        rotate_aes(shared);
    }
    Ok(())
}

/// Rotates the AES key, resets the serial, fires `key`.
pub(crate) fn rotate_aes(shared: &Shared) {
    rotate(shared, None);
}

/// [`rotate_aes`] unless the key moved past `generation` already; whether
/// this call rotated it.
pub(crate) fn rotate_aes_from(shared: &Shared, generation: u64) -> bool {
    rotate(shared, Some(generation))
}

fn rotate(shared: &Shared, generation: Option<u64>) -> bool {
    match shared.rotate_aes_from(generation) {
        Ok(true) => {
            info!("rotated the AES key");
            shared
                .events
                .fire(tags::AES_ROTATE, tags::aes_rotate_data());
            true
        }
        Ok(false) => false,
        Err(err) => {
            warn!(error = %err, "could not rotate the AES key");
            false
        }
    }
}

fn fire_key(shared: &Shared, act: KeyAct, id: &str) {
    let event = KeyEvent::new(act, id);
    shared.events.fire(event.tag(), event.data());
}

fn state_code(state: KeyState) -> u8 {
    match state {
        KeyState::Accepted => 0,
        KeyState::Pending => 1,
        KeyState::Rejected => 2,
        KeyState::Denied => 3,
    }
}
