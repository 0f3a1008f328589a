//! Paging arguments of the API's connections: page sizes, opaque cursors, and the window a
//! request's `first`/`after`/`last`/`before` ask for.
//!
//! A cursor is base64url (no padding) of `v1:<list>:<id>`: versioned, so the format can change
//! again and refuse the old one clearly; typed by list, so a cursor of one list is refused by
//! another (an id of `purchases` means nothing in `history`) instead of silently paging from a
//! random place. It is opaque by contract, not secret: it holds nothing the caller may not see
//! (the ids are those of rows of the caller's own lists). Every list is newest first by a
//! unique id (`store::keyset`), so the id alone places a cursor.

use crate::service::ServiceError;
pub use crate::store::keyset::{Page, Window};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The hard maximum of any page; a larger `first` or `last` is refused, not silently cut.
pub const MAX_PAGE_SIZE: u64 = 100;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// Longer than any cursor this module writes (`v1:purchases:` and 19 digits, in base64): a
/// longer argument is refused before it is decoded.
const MAX_CURSOR_CHARS: usize = 64;

const VERSION: &str = "v1";

/// The lists the API pages, each with its own cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Lots,
    History,
    Purchases,
    Jobs,
    AiLogs,
    /// The operator's account search.
    Accounts,
    /// The operator's coupon list.
    Coupons,
    /// The webhook outbox (admin).
    Outbox,
    /// The operators' log (admin).
    AdminActions,
}

impl List {
    const ALL: [List; 9] = [
        List::Lots,
        List::History,
        List::Purchases,
        List::Jobs,
        List::AiLogs,
        List::Accounts,
        List::Coupons,
        List::Outbox,
        List::AdminActions,
    ];

    /// The name written into its cursors, and the field's name in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            List::Lots => "lots",
            List::History => "history",
            List::Purchases => "purchases",
            List::Jobs => "jobs",
            List::AiLogs => "aiLogs",
            List::Accounts => "accounts",
            List::Coupons => "coupons",
            List::Outbox => "outbox",
            List::AdminActions => "adminActions",
        }
    }
}

/// The cursor of the row `id` in `list`.
pub fn cursor(list: List, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}:{}:{id}", list.as_str()))
}

/// The row id a cursor of `list` points at; `argument` names it in the error (`after`, `before`).
pub fn decode(list: List, argument: &str, text: &str) -> Result<i64, ServiceError> {
    let refuse = |why: String| ServiceError::bad_input(format!("`{argument}` {why}"));
    // Before opaque cursors, a cursor was the row's id in decimal. No cursor written now is all
    // digits (they start with `djE6`, "v1:"), so such an argument is one of those: say so, since
    // a client holding one only needs to start again from the first page.
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse(format!(
            "is a cursor in the old format (a plain number), which is no longer accepted: cursors are opaque now; \
             start again from the first page of `{}` and pass back the cursors it returns",
            list.as_str()
        )));
    }
    let not_a_cursor = || refuse(format!("is not a cursor of `{}`: pass back an edge's `cursor` or a `pageInfo` cursor", list.as_str()));
    if text.len() > MAX_CURSOR_CHARS {
        return Err(not_a_cursor());
    }
    let decoded = URL_SAFE_NO_PAD.decode(text).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(not_a_cursor)?;
    let mut parts = decoded.splitn(3, ':');
    let (Some(VERSION), Some(name), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(not_a_cursor());
    };
    if name != list.as_str() {
        return Err(match List::ALL.into_iter().find(|l| l.as_str() == name) {
            Some(other) => refuse(format!("is a cursor of `{}`, not of `{}`", other.as_str(), list.as_str())),
            None => not_a_cursor(),
        });
    }
    // Canonical digits only, so one row has exactly one cursor (no sign, no leading zeros).
    match id.parse::<i64>() {
        Ok(n) if n > 0 && n.to_string() == id => Ok(n),
        _ => Err(not_a_cursor()),
    }
}

/// The window `first`/`after`/`last`/`before` ask for in `list`. `first` and `last` together are
/// refused (Relay allows it but discourages it, and the slice it gives is rarely what a client
/// means). With neither, the page is `DEFAULT_PAGE_SIZE` from the start, or back from `before`
/// when `before` alone is given (what a client going back means). `after` and `before` together
/// bound the range both ways.
pub fn window(
    list: List,
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
    before: Option<&str>,
) -> Result<Window, ServiceError> {
    let (from_end, size) = match (first, last) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::bad_input(
                "`first` and `last` cannot be used together: page forward with `first`/`after`, back with `last`/`before`",
            ));
        }
        (Some(first), None) => (false, page_size("first", first)?),
        (None, Some(last)) => (true, page_size("last", last)?),
        (None, None) => (before.is_some() && after.is_none(), DEFAULT_PAGE_SIZE),
    };
    let after = after.map(|c| decode(list, "after", c)).transpose()?;
    let before = before.map(|c| decode(list, "before", c)).transpose()?;
    Ok(Window { after, before, from_end, limit: size })
}

fn page_size(argument: &str, n: i32) -> Result<u64, ServiceError> {
    match u64::try_from(n) {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(ServiceError::bad_input(format!("`{argument}` must be between 1 and {MAX_PAGE_SIZE}, not {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_in_its_own_list_only() {
        let c = cursor(List::Lots, 42);
        assert_eq!(decode(List::Lots, "after", &c).unwrap(), 42);
        assert!(!c.bytes().all(|b| b.is_ascii_digit()), "never mistaken for an old cursor");
        let other = decode(List::Purchases, "after", &c).unwrap_err().to_string();
        assert!(other.contains("cursor of `lots`, not of `purchases`"), "{other}");
        assert!(cursor(List::Purchases, i64::MAX).len() <= MAX_CURSOR_CHARS);
    }

    #[test]
    fn old_and_malformed_cursors_are_refused() {
        let old = decode(List::History, "after", "42").unwrap_err().to_string();
        assert!(old.contains("old format"), "{old}");
        for bad in [
            "",
            "abc",
            "////",
            &URL_SAFE_NO_PAD.encode("v2:lots:1"),
            &URL_SAFE_NO_PAD.encode("v1:lots:0"),
            &URL_SAFE_NO_PAD.encode("v1:lots:-3"),
            &URL_SAFE_NO_PAD.encode("v1:lots:007"),
            &URL_SAFE_NO_PAD.encode("v1:lots:+7"),
            &URL_SAFE_NO_PAD.encode("v1:nope:7"),
            &URL_SAFE_NO_PAD.encode("v1:lots"),
            &"A".repeat(1000),
        ] {
            assert!(matches!(decode(List::Lots, "after", bad), Err(ServiceError::BadInput(_))), "{bad:?}");
        }
    }

    #[test]
    fn windows_follow_the_arguments() {
        let c = cursor(List::Jobs, 9);
        assert_eq!(window(List::Jobs, None, None, None, None).unwrap(), Window { after: None, before: None, from_end: false, limit: 20 });
        assert_eq!(
            window(List::Jobs, Some(5), Some(&c), None, None).unwrap(),
            Window { after: Some(9), before: None, from_end: false, limit: 5 }
        );
        assert_eq!(
            window(List::Jobs, None, None, Some(3), Some(&c)).unwrap(),
            Window { after: None, before: Some(9), from_end: true, limit: 3 }
        );
        assert!(window(List::Jobs, None, None, None, Some(&c)).unwrap().from_end, "`before` alone goes back");
        assert!(window(List::Jobs, Some(1), None, Some(1), None).is_err());
        for n in [0, -1, 101, i32::MAX, i32::MIN] {
            assert!(window(List::Jobs, Some(n), None, None, None).is_err());
            assert!(window(List::Jobs, None, None, Some(n), None).is_err());
        }
        assert_eq!(window(List::Jobs, Some(100), None, None, None).unwrap().limit, MAX_PAGE_SIZE);
    }
}
