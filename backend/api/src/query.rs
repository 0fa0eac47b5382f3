//! Query-string parsing with 422s that name the parameter. Repeated keys are kept
//! (`?event_type=a&event_type=b`), and unknown keys are refused so a typo is not silently ignored.

use chrono::{DateTime, Utc};
use hookline_core::store::pagination::{DEFAULT_LIMIT, MAX_LIMIT, PageRequest};
use hookline_types::has_id_shape;

use crate::error::ApiError;

pub struct QueryParams(Vec<(String, String)>);

/// `(after, before)`, either open.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl QueryParams {
    /// Parses the query string and refuses keys outside `allowed`.
    pub fn parse(query: &str, allowed: &[&str]) -> Result<QueryParams, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        crate::text::check_query(&pairs)?;
        if let Some((unknown, _)) = pairs.iter().find(|(key, _)| !allowed.contains(&key.as_str())) {
            return Err(ApiError::invalid(
                &["query", unknown],
                format!("unknown parameter; expected one of: {}", allowed.join(", ")),
            ));
        }
        Ok(QueryParams(pairs))
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    pub fn one(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.all(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(ApiError::invalid(&["query", name], "give this parameter once")),
        }
    }

    /// `limit` (1 to 250, default 50) and `iterator` (an id of the listed kind).
    pub fn page(&self, id_prefix: &str) -> Result<PageRequest, ApiError> {
        let limit = match self.one("limit")? {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        &["query", "limit"],
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let iterator = self.one("iterator")?;
        if let Some(iterator) = &iterator
            && !has_id_shape(iterator, id_prefix)
        {
            return Err(ApiError::invalid(
                &["query", "iterator"],
                "not a valid iterator: pass back the `iterator` of the previous page",
            ));
        }
        Ok(PageRequest { limit, iterator })
    }

    /// `after` and `before` (RFC 3339). A window that is empty (`before` not later than `after`)
    /// is not an error: it matches nothing, as a search should.
    pub fn time_range(&self) -> Result<TimeRange, ApiError> {
        Ok((self.time("after")?, self.time("before")?))
    }

    /// An RFC 3339 time such as `2026-11-29T10:00:00Z`.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.one(name)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                    ApiError::invalid(&["query", name], "must be an RFC 3339 time, e.g. 2026-11-29T10:00:00Z")
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_loc(result: Result<impl Sized, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Core(hookline_core::CoreError::Validation(errors))) => errors[0].loc.clone(),
            _ => panic!("expected a validation error"),
        }
    }

    #[test]
    fn pages_are_validated() {
        let q = QueryParams::parse("limit=10", &["limit", "iterator"]).unwrap();
        assert_eq!(q.page("msg").unwrap().limit, 10);
        let q = QueryParams::parse("", &["limit"]).unwrap();
        assert_eq!(q.page("msg").unwrap().limit, DEFAULT_LIMIT);
        for bad in ["limit=0", "limit=251", "limit=x", "limit=-1"] {
            let q = QueryParams::parse(bad, &["limit"]).unwrap();
            assert_eq!(err_loc(q.page("msg")), ["query", "limit"], "{bad}");
        }
        let q = QueryParams::parse("iterator=app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2", &["iterator"]).unwrap();
        assert_eq!(err_loc(q.page("msg")), ["query", "iterator"]);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert_eq!(err_loc(QueryParams::parse("limt=3", &["limit"])), ["query", "limt"]);
        let q = QueryParams::parse("limit=1&limit=2", &["limit"]).unwrap();
        assert_eq!(err_loc(q.one("limit")), ["query", "limit"]);
        let q = QueryParams::parse("event_type=a&event_type=b", &["event_type"]).unwrap();
        assert_eq!(q.all("event_type"), ["a", "b"]);
    }

    #[test]
    fn times_must_be_rfc3339() {
        let q = QueryParams::parse("after=2026-11-29T10:00:00Z", &["after"]).unwrap();
        assert!(q.time("after").unwrap().is_some());
        let q = QueryParams::parse("after=yesterday", &["after"]).unwrap();
        assert_eq!(err_loc(q.time("after")), ["query", "after"]);
    }
}
