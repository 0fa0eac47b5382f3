//! Minting ids: a ULID (48-bit millisecond time + 80 random bits) behind the type's prefix, so new
//! ids sort after old ones.

use hookline_types::*;

pub trait NewId: Sized {
    fn new_id() -> Self;
}

macro_rules! new_id {
    ($($name:ident),*) => {$(
        impl NewId for $name {
            fn new_id() -> Self {
                $name::from_ulid(&ulid::Ulid::new().to_string())
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
    SourceId
);

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
    fn time_boundaries_bracket_ids_minted_at_that_time() {
        let before = chrono::Utc::now();
        let id = MessageId::new_id();
        let after = chrono::Utc::now() + chrono::Duration::milliseconds(1);
        assert!(time_boundary("msg", before).as_str() <= id.as_str());
        assert!(id.as_str() < time_boundary("msg", after).as_str());
    }
}
