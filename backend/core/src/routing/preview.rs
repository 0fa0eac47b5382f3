//! `POST /api/v1/filter/test`: a content filter tried on a sample message, with the path where
//! it stopped matching. Pure: reads and writes nothing.

use hookline_types::{FilterTestIn, FilterTestOut};

use super::filter::{Document, Filter};
use crate::error::{CoreError, CoreResult, Errors};

/// Compiles `input.filter` (422 at `body.filter.<path>` when it does not) and matches it.
pub fn test(input: &FilterTestIn) -> CoreResult<FilterTestOut> {
    let filter =
        Filter::compile(&input.filter).map_err(|err| CoreError::invalid(&err.loc(), err.message.as_str()))?;
    let mut errors = Errors::default();
    errors.check(&["body", "event_type"], crate::domain::EventTypeName::parse(&input.event_type));
    errors.into_result()?;
    let channels = input.channels.clone().unwrap_or_default();
    let headers = sample_headers(input.headers.as_ref());
    let document = Document {
        event_type: &input.event_type,
        channels: &channels,
        payload: input.payload.as_ref(),
        headers: &headers,
    };
    Ok(match filter.explain(&document) {
        Ok(()) => FilterTestOut { matches: true, failed_at: None },
        Err(path) => FilterTestOut { matches: false, failed_at: Some(path) },
    })
}

/// A sample message's headers as a received webhook's message carries them: names lower-case.
pub(crate) fn sample_headers(
    headers: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    headers.into_iter().flatten().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect()
}
