//! Minting ids: a ULID (48-bit millisecond time + 80 random bits) behind the type's prefix, so new
//! ids sort after old ones. One monotonic generator per process: ids minted in the same
//! millisecond still sort in minting order, which FIFO endpoints rely on.

use hookline_types::*;

pub trait NewId: Sized {
    fn new_id() -> Self;
}

macro_rules! new_id {
    ($($name:ident),*) => {$(
        impl NewId for $name {
            fn new_id() -> Self {
                $name::from_ulid(&next_ulid().to_string())
                    .expect("a ULID always has the shape of an id")
            }
        }
    )*};
}

new_id!(
    TenantId,
    UserId,
    ApiKeyId,
    EventTypeId,
    AppId,
    EndpointId,
    MessageId,
    DeliveryId,
    AttemptId,
    JobId,
    SourceId,
    BroadcastId,
    SourceRequestId,
    PayloadFetchId
);

fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random ULID.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::generate())
}

/// A new id with this prefix that is no resource's (`req_…` for request ids).
pub fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", next_ulid())
}

/// The smallest id of this kind minted at or after `time`: `id < boundary` means "created before".
pub fn time_boundary(prefix: &str, time: chrono::DateTime<chrono::Utc>) -> String {
    let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
    format!("{prefix}_{}", ulid::Ulid::from_parts(millis, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_sort_by_creation_time() {
        let first = AppId::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = AppId::new_id();
        assert!(first < second, "{first} < {second}");
        assert!(AppId::parse(first.as_str()).is_ok());
    }

    #[test]
    fn ids_minted_in_the_same_millisecond_keep_their_order() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::new_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn time_boundaries_bracket_ids_minted_at_that_time() {
        let before = chrono::Utc::now();
        let id = MessageId::new_id();
        let after = chrono::Utc::now() + chrono::Duration::milliseconds(1);
        assert!(time_boundary("msg", before).as_str() <= id.as_str());
        assert!(id.as_str() < time_boundary("msg", after).as_str());
    }
}
