//! What a new connection on a listener is: the one service there, or on a
//! shared listener what its first frame says (see `shared.rs`).

use std::{net::SocketAddr, sync::Arc};

use brine_transport_api::{TransportError, framing::HEADER_LEN};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tracing::{debug, warn};

use super::{Handle, Snapshot, serve_shared};
use crate::{
    net::{BoxedIo, HANDSHAKE_TIMEOUT, Prefixed},
    publish::{
        KIND_HELLO,
        server::{Hub, serve_subscriber},
    },
    request::server::{Service as RequestService, serve_connection},
    shared::{KIND_SHARED_HELLO, MAX_HELLO},
};

/// Serves one accepted (and TLS-handshaken) connection with what the
/// listener had attached when it came in.
pub(super) async fn serve(io: BoxedIo, addr: SocketAddr, snapshot: Snapshot) {
    match (snapshot.shared, snapshot.publisher, snapshot.requests) {
        (false, Some(publisher), None) => {
            let work = serve_subscriber(io, addr, Arc::clone(&publisher.service));
            until_detached(work, Some(&publisher), None).await;
        }
        (false, None, Some(requests)) => {
            let work = serve_connection(io, addr, Arc::clone(&requests.service));
            until_detached(work, None, Some(&requests)).await;
        }
        (_, publisher, requests) => {
            classify(io, addr, publisher, requests, snapshot.reshaped).await;
        }
    }
}

/// Runs `work` until it ends or a service it uses detaches.
async fn until_detached(
    work: impl Future<Output = ()>,
    publisher: Option<&Handle<Hub>>,
    requests: Option<&Handle<RequestService>>,
) {
    tokio::select! {
        () = work => {}
        () = detached(publisher) => debug!("publish server detached; connection closed"),
        () = detached(requests) => debug!("request server detached; connection closed"),
    }
}

async fn detached<S>(handle: Option<&Handle<S>>) {
    match handle {
        Some(handle) => handle.detached().await,
        None => std::future::pending().await,
    }
}

/// What the first frame on a shared listener says.
enum First {
    /// A publish hello: the bytes read so far, for the subscriber to read again.
    Subscriber(Bytes),
    /// A shared hello from this identity.
    Shared(String),
    /// Anything else: a request; the bytes read so far.
    Request(Bytes),
    /// A shared hello that cannot be one.
    Bad(&'static str),
}

async fn classify(
    mut io: BoxedIo,
    addr: SocketAddr,
    publisher: Option<Handle<Hub>>,
    requests: Option<Handle<RequestService>>,
    mut reshaped: tokio::sync::watch::Receiver<u64>,
) {
    let peer = addr.to_string();
    let first = tokio::select! {
        first = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_first(&mut io, &peer)) => first,
        () = detached(publisher.as_ref()) => return,
        () = detached(requests.as_ref()) => return,
    };
    let first = match first {
        Ok(Ok(Some(first))) => first,
        Ok(Ok(None)) => return debug!("client left before its first frame"),
        Ok(Err(err)) => return debug!(error = %err, "connection failed before its first frame"),
        Err(_) => return debug!("no first frame within {HANDSHAKE_TIMEOUT:?}; connection closed"),
    };
    match first {
        First::Subscriber(prefix) => {
            drop(requests);
            let Some(publisher) = publisher else {
                return debug!("subscriber but no publish server here; connection closed");
            };
            let work = serve_subscriber(
                Prefixed::boxed(prefix, io),
                addr,
                Arc::clone(&publisher.service),
            );
            until_detached(work, Some(&publisher), None).await;
        }
        First::Request(prefix) => {
            drop(publisher);
            let Some(requests) = requests else {
                return debug!("request but no request server here; connection closed");
            };
            let work = serve_connection(
                Prefixed::boxed(prefix, io),
                addr,
                Arc::clone(&requests.service),
            );
            until_detached(work, None, Some(&requests)).await;
        }
        First::Shared(identity) => {
            let work = serve_shared::serve(
                io,
                addr,
                identity,
                publisher.as_ref().map(|h| Arc::clone(&h.service)),
                requests.as_ref().map(|h| Arc::clone(&h.service)),
            );
            // A change since this connection came in counts too: the
            // client then reconnects to what is there now.
            tokio::select! {
                () = until_detached(work, publisher.as_ref(), requests.as_ref()) => {}
                _ = reshaped.changed() => {
                    debug!("services changed; shared connection closed so its client reconnects");
                }
            }
        }
        First::Bad(reason) => warn!(reason, "bad shared hello; connection closed"),
    }
}

/// Reads the length prefix and the first byte of the first frame, and the
/// rest of it for a shared hello.
async fn read_first(io: &mut BoxedIo, peer: &str) -> Result<Option<First>, TransportError> {
    let mut header = [0u8; HEADER_LEN];
    match io.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(TransportError::from_io(peer, err)),
    }
    let mut prefix = BytesMut::with_capacity(HEADER_LEN + 1);
    prefix.extend_from_slice(&header);
    let Some(rest) = usize::try_from(u32::from_be_bytes(header))
        .unwrap_or(usize::MAX)
        .checked_sub(1)
    else {
        // An empty frame: the request server refuses it as it always has.
        return Ok(Some(First::Request(prefix.freeze())));
    };
    let mut kind = [0u8; 1];
    io.read_exact(&mut kind)
        .await
        .map_err(|err| TransportError::from_io(peer, err))?;
    prefix.extend_from_slice(&kind);
    let first = match kind[0] {
        KIND_HELLO => First::Subscriber(prefix.freeze()),
        KIND_SHARED_HELLO if rest >= MAX_HELLO => First::Bad("hello over the size limit"),
        KIND_SHARED_HELLO => {
            let identity = brine_transport_api::framing::read_payload(io, rest, peer).await?;
            match std::str::from_utf8(&identity) {
                Ok(identity) => First::Shared(identity.to_owned()),
                Err(_) => First::Bad("identity is not UTF-8"),
            }
        }
        _ => First::Request(prefix.freeze()),
    };
    Ok(Some(first))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn first_of(bytes: &[u8]) -> Option<First> {
        let (mut peer, ours) = tokio::io::duplex(4096);
        peer.write_all(bytes).await.unwrap();
        drop(peer);
        let mut io: BoxedIo = Box::new(ours);
        read_first(&mut io, "p").await.unwrap()
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn the_first_frame_is_classified() {
        assert!(matches!(
            first_of(&framed(b"\x04minion-1")).await,
            Some(First::Shared(id)) if id == "minion-1"
        ));
        // A publish hello or a request is given back whole, length first.
        let hello = framed(b"\x01minion-1");
        assert!(matches!(
            first_of(&hello).await,
            Some(First::Subscriber(prefix)) if prefix[..] == hello[..5]
        ));
        let request = framed(&[0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert!(matches!(
            first_of(&request).await,
            Some(First::Request(prefix)) if prefix[..] == request[..5]
        ));
        assert!(matches!(
            first_of(&framed(b"")).await,
            Some(First::Request(prefix)) if prefix.len() == HEADER_LEN
        ));
        assert!(matches!(
            first_of(&framed(b"\x04\xff\xfe")).await,
            Some(First::Bad(_))
        ));
        let mut long = vec![KIND_SHARED_HELLO];
        long.resize(MAX_HELLO + 1, b'x');
        assert!(matches!(
            first_of(&framed(&long)).await,
            Some(First::Bad(_))
        ));
        assert!(first_of(b"").await.is_none());
    }
}
