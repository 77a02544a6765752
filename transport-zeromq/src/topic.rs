//! Publish topics under Salt's `zmq_filtering`.

use bytes::Bytes;

/// The topic of a publish for every minion.
pub(crate) const BROADCAST: &[u8] = b"broadcast";

/// The topic of a publish for `minion_id`: the lowercase hex SHA-1 of the
/// id, as Salt's `hashlib.sha1(id).hexdigest()`.
pub(crate) fn of(minion_id: &str) -> Bytes {
    Bytes::from(sha1_smol::Sha1::from(minion_id).digest().to_string())
}

/// What a subscriber for `minion_id` subscribes to: both topics when
/// filtering, everything (`""`) otherwise.
pub(crate) fn subscriptions(minion_id: &str, filtering: bool) -> Vec<String> {
    if filtering {
        vec![
            "broadcast".to_owned(),
            sha1_smol::Sha1::from(minion_id).digest().to_string(),
        ]
    } else {
        vec![String::new()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_is_salts_sha1_hexdigest() {
        assert_eq!(BROADCAST, b"broadcast");
        assert_eq!(
            &of("minion-1")[..],
            b"bd9c8586c4757de56d9841917572d40aaf3e90d0"
        );
        assert_eq!(subscriptions("m", false), vec![String::new()]);
        let filtered = subscriptions("minion-1", true);
        assert_eq!(filtered[0], "broadcast");
        assert_eq!(filtered[1].as_bytes(), &of("minion-1")[..]);
    }
}
