//! Paging helpers: offset cursors and de-duplication by id, for sources
//! whose pages can overlap or repeat.

use std::collections::HashSet;

use crate::types::{ConnectorError, RawRecord};

/// The offset a cursor stands for (no cursor: the start).
pub fn offset(cursor: Option<&str>) -> Result<u64, ConnectorError> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            ConnectorError::BadResponse(format!(
                "cursor `{c}` is not an offset this connector hands out; the host passes cursors back unchanged, so this is a bug — report it to the connector's author"
            ))
        }),
    }
}

/// The cursor after a page of `got` records from `offset` when pages hold
/// `limit`: none after a short or empty page, so paging always ends.
pub fn next(offset: u64, got: usize, limit: usize) -> Option<String> {
    (got > 0 && got >= limit).then(|| (offset + got as u64).to_string())
}

/// Drops records whose id was already seen in this run.
#[derive(Default)]
pub struct Dedup {
    seen: HashSet<String>,
}

impl Dedup {
    pub fn keep_new(&mut self, records: Vec<RawRecord>) -> Vec<RawRecord> {
        records.into_iter().filter(|r| self.seen.insert(r.source_id.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_advance_and_end_on_a_short_page() {
        assert_eq!(offset(None).unwrap(), 0);
        assert_eq!(next(0, 100, 100).as_deref(), Some("100"));
        assert_eq!(offset(Some("100")).unwrap(), 100);
        assert_eq!(next(100, 7, 100), None);
        assert_eq!(next(100, 0, 100), None);
        assert!(offset(Some("x")).is_err());
    }

    #[test]
    fn repeated_records_are_dropped() {
        let r = |id: &str| RawRecord { source_id: id.into(), payload: "{}".into() };
        let mut d = Dedup::default();
        assert_eq!(d.keep_new(vec![r("1"), r("2")]).len(), 2);
        let again = d.keep_new(vec![r("2"), r("3")]);
        assert_eq!(again.iter().map(|r| r.source_id.as_str()).collect::<Vec<_>>(), ["3"]);
    }
}
