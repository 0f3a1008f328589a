//! Monthly statements (issue 26): what a month did to an account, from its journal alone.
//!
//! A statement covers the account's journal entries whose effective instant (`effectiveAt`)
//! falls in a UTC month, `from` (its first instant, inclusive) to `to` (the next month's first
//! instant, exclusive), and, for the month in progress, at or before `asOf` (the instant it was
//! made). Effective instants, not recorded ones, because that is when the journal says a thing
//! happened: an expiry is dated at the lot's expiry even when the worker writes it off later, a
//! plan's credits caught up after downtime at their period's start.
//!
//! Every amount comes from journal lines, per lot: a lot's credits at an instant are the sum of
//! its lines effective before it. So, exactly and by construction,
//! `opening + Σ movements = closing` for every lot and for the account (`Builder::finish`
//! checks it anyway: a journal whose entry amount is not the sum of its lines is refused).
//! Held credits are outside the lots (a HOLD's lines take them out, a RELEASE's put them back),
//! so the balances here are the lots' credits, holds not included: a hold open across the
//! month's end shows as a HOLD movement of the month.
//!
//! The digest is SHA-256 over the month's entries in sequence (id) order, each written as one
//! line of canonical JSON (`entry_line`) ending in `\n`: docs/statements.md says the format so
//! that anyone can recompute it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The version of the statement's document and of its digest's lines.
pub const FORMAT: &str = "credits-statement-v1";

/// Entry kinds the statement totals by name, as the journal stores them (`store::journal::EntryKind`).
pub const GRANT: &str = "grant";
pub const SPEND: &str = "spend";
pub const EXPIRE: &str = "expire";
pub const REFUND: &str = "refund";

/// A UTC calendar month, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a month is written YYYY-MM, e.g. \"2026-03\" (years 2000 to 9999)")]
pub struct MonthParseError;

impl FromStr for Month {
    type Err = MonthParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
        if bytes.len() != 7 || bytes[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(MonthParseError);
        }
        let year: i32 = s[0..4].parse().map_err(|_| MonthParseError)?;
        let month: u32 = s[5..7].parse().map_err(|_| MonthParseError)?;
        if !(2000..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(MonthParseError);
        }
        Ok(Month { year, month })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Month {
    /// The month an instant falls in.
    pub fn of(instant: DateTime<Utc>) -> Month {
        Month { year: instant.year(), month: instant.month() }
    }

    /// Its first instant.
    pub fn start(self) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a parsed month exists").and_time(NaiveTime::MIN).and_utc()
    }

    /// The next month's first instant: the end, exclusive.
    pub fn end(self) -> DateTime<Utc> {
        crate::ledger::time::next_month_start(self.start())
    }
}

/// The part of a month a statement covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub month: Month,
    /// When the statement was made, at most the month's end: the month's end once it is over.
    pub as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the month {0} has not started yet")]
pub struct NotStarted(pub Month);

impl Window {
    /// The month as of `now`: refused before the month's first instant.
    pub fn new(month: Month, now: DateTime<Utc>) -> Result<Window, NotStarted> {
        let now = crate::ledger::time::truncate(now);
        if now < month.start() {
            return Err(NotStarted(month));
        }
        Ok(Window { month, as_of: now.min(month.end()) })
    }

    pub fn from(&self) -> DateTime<Utc> {
        self.month.start()
    }

    pub fn to(&self) -> DateTime<Utc> {
        self.month.end()
    }

    /// Whether the whole month is behind `as_of`.
    pub fn month_over(&self) -> bool {
        self.as_of >= self.to()
    }

    /// Entries effective before this instant (and at or after `from`) are the month's: the
    /// month's end, or, for the month in progress, the microsecond after `as_of` (instants are
    /// kept to the microsecond), so that an entry made at `as_of` is in.
    pub fn until(&self) -> DateTime<Utc> {
        if self.month_over() { self.to() } else { self.as_of + Duration::microseconds(1) }
    }
}

/// One line of an entry: a change to one lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub lot_id: i64,
    pub delta_micros: i64,
}

/// One journal entry as the statement reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub kind: String,
    pub operation: String,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub amount_micros: i64,
    pub feature: Option<String>,
    pub model: Option<String>,
    pub reason: Option<String>,
    /// In the order they were written (line id).
    pub lines: Vec<Line>,
}

/// What the statement says of a lot besides its amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotInfo {
    pub source: String,
    pub class: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A lot's month: `opening + credited - debited - expired = closing`, in micro-credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotRow {
    pub lot_id: i64,
    pub info: LotInfo,
    pub opening: i64,
    /// What lines put into it: its grant, releases of holds, a rollover into it, adjustments up.
    pub credited: i64,
    /// What lines took out of it other than expiry: spends, holds, transfers, refunds,
    /// revocations, voids, rollovers out of it, adjustments down (positive).
    pub debited: i64,
    /// What EXPIRE entries wrote off (positive).
    pub expired: i64,
    pub closing: i64,
}

/// The month of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub window: Window,
    /// The lots' credits at `from` (held credits not included).
    pub opening: i64,
    /// The lots' credits after the month's entries: at `to`, or at `asOf` for the month in progress.
    pub closing: i64,
    /// GRANT entries by the source of the lot they created, by source name.
    pub grants_by_source: Vec<(String, i64)>,
    /// SPEND entries (positive) by feature, the entries without one under `None` first.
    pub spends_by_feature: Vec<(Option<String>, i64)>,
    /// EXPIRE entries (positive).
    pub expired: i64,
    /// REFUND entries: credits taken back by refunds (positive).
    pub refunded: i64,
    /// Every entry kind of the month with its net change (signed), by kind name; these add up
    /// to `closing - opening`.
    pub movements: Vec<(String, i64)>,
    /// Every lot with credits at `from` or a line in the month, by id.
    pub lots: Vec<LotRow>,
    pub entry_count: u64,
    /// SHA-256 of the month's entry lines, lowercase hex.
    pub digest: String,
}

/// The journal does not add up: an entry whose amount is not the sum of its lines, entries out
/// of sequence, a lot the lots do not know, or a sum out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement: {0}")]
pub struct Unbalanced(pub String);

#[derive(Debug, Default, Clone, Copy)]
struct Moves {
    opening: i128,
    credited: i128,
    debited: i128,
    expired: i128,
}

/// Folds a month's entries, in sequence order, into a statement: the digest as they come, the
/// sums per lot, per kind, per source and per feature. It holds one row per lot and per name,
/// never the entries, so a month of any length streams through it.
pub struct Builder {
    window: Window,
    lots: BTreeMap<i64, Moves>,
    /// GRANT lines per lot: grouped by the lot's source at the end.
    granted: BTreeMap<i64, i128>,
    spends: BTreeMap<Option<String>, i128>,
    kinds: BTreeMap<String, i128>,
    hasher: Sha256,
    entry_count: u64,
    last_id: Option<i64>,
}

impl Builder {
    /// `opening`: each lot's credits at `from` (the sum of its lines effective before it).
    pub fn new(window: Window, opening: impl IntoIterator<Item = (i64, i64)>) -> Builder {
        let mut lots = BTreeMap::new();
        for (lot_id, micros) in opening {
            let moves: &mut Moves = lots.entry(lot_id).or_default();
            moves.opening += i128::from(micros);
        }
        Builder {
            window,
            lots,
            granted: BTreeMap::new(),
            spends: BTreeMap::new(),
            kinds: BTreeMap::new(),
            hasher: Sha256::new(),
            entry_count: 0,
            last_id: None,
        }
    }

    /// The next entry of the month, in sequence order.
    pub fn add(&mut self, entry: &Entry) -> Result<(), Unbalanced> {
        if self.last_id.is_some_and(|last| entry.id <= last) {
            return Err(Unbalanced(format!("entry {} came after entry {}: out of sequence", entry.id, self.last_id.unwrap_or(0))));
        }
        if entry.effective_at < self.window.from() || entry.effective_at >= self.window.until() {
            return Err(Unbalanced(format!("entry {} is not effective in {}", entry.id, self.window.month)));
        }
        let sum: i128 = entry.lines.iter().map(|l| i128::from(l.delta_micros)).sum();
        if sum != i128::from(entry.amount_micros) {
            return Err(Unbalanced(format!("entry {}: amount {} but its lines sum to {sum}", entry.id, entry.amount_micros)));
        }
        self.last_id = Some(entry.id);
        self.entry_count += 1;
        self.hasher.update(entry_line(entry).as_bytes());
        *self.kinds.entry(entry.kind.clone()).or_default() += sum;
        if entry.kind == SPEND {
            *self.spends.entry(entry.feature.clone()).or_default() -= sum;
        }
        for line in &entry.lines {
            let delta = i128::from(line.delta_micros);
            let moves = self.lots.entry(line.lot_id).or_default();
            if entry.kind == EXPIRE && delta < 0 {
                moves.expired -= delta;
            } else if delta >= 0 {
                moves.credited += delta;
            } else {
                moves.debited -= delta;
            }
            if entry.kind == GRANT {
                *self.granted.entry(line.lot_id).or_default() += delta;
            }
        }
        Ok(())
    }

    /// The statement, given what the lots are (every lot `add` or the opening named).
    pub fn finish(self, lots: &BTreeMap<i64, LotInfo>) -> Result<Statement, Unbalanced> {
        let fit = |what: &str, value: i128| i64::try_from(value).map_err(|_| Unbalanced(format!("{what} is out of range: {value}")));
        let mut rows = Vec::with_capacity(self.lots.len());
        let (mut opening, mut closing) = (0i128, 0i128);
        for (lot_id, moves) in &self.lots {
            let lot_closing = moves.opening + moves.credited - moves.debited - moves.expired;
            opening += moves.opening;
            closing += lot_closing;
            if moves.opening == 0 && moves.credited == 0 && moves.debited == 0 && moves.expired == 0 {
                continue;
            }
            let info = lots.get(lot_id).ok_or_else(|| Unbalanced(format!("lot {lot_id} is not among the account's lots")))?;
            rows.push(LotRow {
                lot_id: *lot_id,
                info: info.clone(),
                opening: fit("a lot's opening", moves.opening)?,
                credited: fit("a lot's credits in", moves.credited)?,
                debited: fit("a lot's credits out", moves.debited)?,
                expired: fit("a lot's expired credits", moves.expired)?,
                closing: fit("a lot's closing", lot_closing)?,
            });
        }
        let net: i128 = self.kinds.values().sum();
        // The check the whole statement rests on: the kinds' movements are the lots' movements.
        if opening + net != closing {
            return Err(Unbalanced(format!("opening {opening} + movements {net} is not closing {closing}")));
        }
        let mut by_source: BTreeMap<String, i128> = BTreeMap::new();
        for (lot_id, micros) in &self.granted {
            let info = lots.get(lot_id).ok_or_else(|| Unbalanced(format!("lot {lot_id} is not among the account's lots")))?;
            *by_source.entry(info.source.clone()).or_default() += micros;
        }
        let expired = -self.kinds.get(EXPIRE).copied().unwrap_or(0);
        let refunded = -self.kinds.get(REFUND).copied().unwrap_or(0);
        Ok(Statement {
            window: self.window,
            opening: fit("the opening balance", opening)?,
            closing: fit("the closing balance", closing)?,
            grants_by_source: by_source.into_iter().map(|(s, m)| Ok((s, fit("a source's grants", m)?))).collect::<Result<_, _>>()?,
            spends_by_feature: self.spends.into_iter().map(|(f, m)| Ok((f, fit("a feature's spends", m)?))).collect::<Result<_, _>>()?,
            expired: fit("the expired credits", expired)?,
            refunded: fit("the refunded credits", refunded)?,
            movements: self.kinds.into_iter().map(|(k, m)| Ok((k, fit("a kind's movements", m)?))).collect::<Result<_, _>>()?,
            lots: rows,
            entry_count: self.entry_count,
            digest: hex(&self.hasher.finalize()),
        })
    }
}

/// The statement as one JSON document: what `account.statement { json }` answers, what
/// `credits statement show` prints and what `credits statement verify` reads back. Written
/// compact, keys in this order, amounts as `decimal` strings, instants as `instant` strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    pub format: String,
    pub account: String,
    pub month: String,
    pub from: String,
    pub to: String,
    pub as_of: String,
    pub complete: bool,
    pub opening: String,
    pub closing: String,
    pub grants_by_source: Vec<SourceTotal>,
    pub spends_by_feature: Vec<FeatureTotal>,
    pub expired: String,
    pub refunded: String,
    pub movements: Vec<KindTotal>,
    pub lots: Vec<LotTotals>,
    pub entry_count: u64,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTotal {
    pub source: String,
    pub credits: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureTotal {
    pub feature: Option<String>,
    pub credits: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindTotal {
    pub kind: String,
    pub credits: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LotTotals {
    pub id: i64,
    pub source: String,
    pub class: String,
    pub granted_at: String,
    pub expires_at: Option<String>,
    pub opening: String,
    pub credits_in: String,
    pub credits_out: String,
    pub expired: String,
    pub closing: String,
}

impl Statement {
    /// The statement of `account` as its document; `complete` as the service decided it.
    pub fn document(&self, account: &str, complete: bool) -> Document {
        let d = |micros: i64| decimal(i128::from(micros));
        Document {
            format: FORMAT.to_string(),
            account: account.to_string(),
            month: self.window.month.to_string(),
            from: instant(self.window.from()),
            to: instant(self.window.to()),
            as_of: instant(self.window.as_of),
            complete,
            opening: d(self.opening),
            closing: d(self.closing),
            grants_by_source: self
                .grants_by_source
                .iter()
                .map(|(source, m)| SourceTotal { source: source.clone(), credits: d(*m) })
                .collect(),
            spends_by_feature: self
                .spends_by_feature
                .iter()
                .map(|(feature, m)| FeatureTotal { feature: feature.clone(), credits: d(*m) })
                .collect(),
            expired: d(self.expired),
            refunded: d(self.refunded),
            movements: self.movements.iter().map(|(kind, m)| KindTotal { kind: kind.clone(), credits: d(*m) }).collect(),
            lots: self
                .lots
                .iter()
                .map(|row| LotTotals {
                    id: row.lot_id,
                    source: row.info.source.clone(),
                    class: row.info.class.clone(),
                    granted_at: instant(row.info.granted_at),
                    expires_at: row.info.expires_at.map(instant),
                    opening: d(row.opening),
                    credits_in: d(row.credited),
                    credits_out: d(row.debited),
                    expired: d(row.expired),
                    closing: d(row.closing),
                })
                .collect(),
            entry_count: self.entry_count,
            digest: self.digest.clone(),
        }
    }
}

impl Document {
    /// Compact JSON, keys in the struct's order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a statement serializes")
    }

    /// The top-level fields whose values differ between `self` (a statement as claimed) and
    /// `recomputed`, by name, each as `name: claimed ≠ recomputed` (lists and
    /// long values by name only).
    pub fn differences(&self, recomputed: &Document) -> Vec<String> {
        let (serde_json::Value::Object(claimed), serde_json::Value::Object(actual)) =
            (serde_json::to_value(self).expect("serializes"), serde_json::to_value(recomputed).expect("serializes"))
        else {
            unreachable!("a document is an object")
        };
        claimed
            .iter()
            .filter_map(|(key, value)| {
                let other = actual.get(key).unwrap_or(&serde_json::Value::Null);
                (value != other).then(|| match (value, other) {
                    (serde_json::Value::Array(_), _) | (_, serde_json::Value::Array(_)) => format!("{key} differ"),
                    _ => format!("{key}: {value} in the file, {other} in the database"),
                })
            })
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An amount of micro-credits as an exact decimal: an optional `-`, the whole credits, and,
/// if there is a fraction, `.` and its digits without trailing zeros (`-1.5`, `0`, `0.000001`).
pub fn decimal(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let (whole, fraction) = (abs / 1_000_000, abs % 1_000_000);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:06}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// An instant as RFC 3339 in UTC with exactly six fractional digits: `2026-03-01T00:00:00.000000Z`.
pub fn instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A JSON string (RFC 8259) as serde_json writes it: `"` and `\` escaped, control characters as
/// `\b \t \n \f \r` or `\u00XX` (lowercase hex), everything else as UTF-8.
fn string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn optional(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "null".to_string(), string)
}

/// An entry's line of the digest, `\n` included: keys in this order, no spaces.
/// `{"id":12,"kind":"spend","operation":"spend_credits","effectiveAt":"...","recordedAt":"...",
/// "amount":"-1.5","feature":"chat","model":null,"reason":null,"lines":[{"lot":3,"delta":"-1.5"}]}`
pub fn entry_line(entry: &Entry) -> String {
    let lines: Vec<String> =
        entry.lines.iter().map(|l| format!("{{\"lot\":{},\"delta\":\"{}\"}}", l.lot_id, decimal(i128::from(l.delta_micros)))).collect();
    format!(
        "{{\"id\":{},\"kind\":{},\"operation\":{},\"effectiveAt\":\"{}\",\"recordedAt\":\"{}\",\"amount\":\"{}\",\"feature\":{},\"model\":{},\"reason\":{},\"lines\":[{}]}}\n",
        entry.id,
        string(&entry.kind),
        string(&entry.operation),
        instant(entry.effective_at),
        instant(entry.recorded_at),
        decimal(i128::from(entry.amount_micros)),
        optional(&entry.feature),
        optional(&entry.model),
        optional(&entry.reason),
        lines.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn entry(id: i64, kind: &str, when: DateTime<Utc>, feature: Option<&str>, lines: &[(i64, i64)]) -> Entry {
        Entry {
            id,
            kind: kind.into(),
            operation: format!("{kind}_op"),
            effective_at: when,
            recorded_at: when,
            amount_micros: lines.iter().map(|(_, d)| d).sum(),
            feature: feature.map(Into::into),
            model: None,
            reason: None,
            lines: lines.iter().map(|&(lot_id, delta_micros)| Line { lot_id, delta_micros }).collect(),
        }
    }

    fn info(source: &str) -> LotInfo {
        LotInfo { source: source.into(), class: "paid".into(), granted_at: at(1, 0), expires_at: None }
    }

    #[test]
    fn months_parse_strictly() {
        assert_eq!("2026-03".parse::<Month>().unwrap().to_string(), "2026-03");
        for bad in ["2026-3", "2026-13", "2026-00", "26-03", "2026/03", "2026-03-01", " 2026-03", "1999-12", "+026-03", "2026-0a"] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
        let december: Month = "2026-12".parse().unwrap();
        assert_eq!(december.end(), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        let february: Month = "2028-02".parse().unwrap();
        assert_eq!(february.end() - february.start(), Duration::days(29));
    }

    #[test]
    fn a_window_is_refused_before_its_month_and_ends_at_now_while_in_progress() {
        let march: Month = "2026-03".parse().unwrap();
        assert!(Window::new(march, march.start() - Duration::microseconds(1)).is_err());
        let in_progress = Window::new(march, at(10, 12)).unwrap();
        assert!(!in_progress.month_over());
        assert_eq!(in_progress.until(), at(10, 12) + Duration::microseconds(1));
        let over = Window::new(march, at(10, 12) + Duration::days(60)).unwrap();
        assert!(over.month_over());
        assert_eq!((over.as_of, over.until()), (march.end(), march.end()));
    }

    #[test]
    fn amounts_and_instants_are_written_exactly() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(1), "0.000001");
        assert_eq!(decimal(-1_500_000), "-1.5");
        assert_eq!(decimal(12_000_000), "12");
        assert_eq!(decimal(-10_000_000_000_000_000_000), "-10000000000000");
        assert_eq!(instant(at(1, 0) + Duration::microseconds(7)), "2026-03-01T00:00:00.000007Z");
        let line = entry_line(&Entry {
            reason: Some("a \"quoted\"\nreason é".into()),
            ..entry(5, SPEND, at(2, 3), Some("chat"), &[(1, -1_000_000), (2, -500_000)])
        });
        assert_eq!(
            line,
            "{\"id\":5,\"kind\":\"spend\",\"operation\":\"spend_op\",\"effectiveAt\":\"2026-03-02T03:00:00.000000Z\",\
             \"recordedAt\":\"2026-03-02T03:00:00.000000Z\",\"amount\":\"-1.5\",\"feature\":\"chat\",\"model\":null,\
             \"reason\":\"a \\\"quoted\\\"\\nreason é\",\"lines\":[{\"lot\":1,\"delta\":\"-1\"},{\"lot\":2,\"delta\":\"-0.5\"}]}\n"
        );
    }

    #[test]
    fn a_month_adds_up_per_lot_and_per_kind() {
        let window = Window::new("2026-03".parse().unwrap(), at(1, 0) + Duration::days(40)).unwrap();
        // Lot 1 (purchase) had 100 at the month's start; lot 2 (coupon) and 3 (check_in) came in it.
        let mut builder = Builder::new(window, [(1, 100_000_000), (9, 0)]);
        let entries = [
            entry(10, GRANT, at(2, 0), None, &[(2, 30_000_000)]),
            entry(11, GRANT, at(3, 0), None, &[(3, 5_000_000)]),
            entry(12, SPEND, at(4, 0), Some("chat"), &[(2, -30_000_000), (1, -10_000_000)]),
            entry(13, SPEND, at(5, 0), Some("image"), &[(1, -2_500_000)]),
            entry(14, SPEND, at(5, 1), None, &[(1, -1)]),
            entry(15, "hold", at(6, 0), Some("video"), &[(1, -20_000_000)]),
            entry(16, "release", at(6, 1), Some("video"), &[(1, 20_000_000)]),
            entry(17, SPEND, at(6, 1), Some("video"), &[(1, -4_000_000)]),
            entry(18, EXPIRE, at(20, 0), None, &[(3, -5_000_000)]),
            entry(19, REFUND, at(21, 0), None, &[(1, -60_000_000)]),
        ];
        for e in &entries {
            builder.add(e).unwrap();
        }
        let lots: BTreeMap<i64, LotInfo> = [(1, info("purchase")), (2, info("coupon")), (3, info("check_in"))].into();
        let s = builder.finish(&lots).unwrap();
        assert_eq!((s.opening, s.closing), (100_000_000, 100_000_000 + 35_000_000 - 46_500_001 - 5_000_000 - 60_000_000));
        assert_eq!(s.grants_by_source, vec![("check_in".to_string(), 5_000_000), ("coupon".to_string(), 30_000_000)]);
        assert_eq!(
            s.spends_by_feature,
            vec![(None, 1), (Some("chat".into()), 40_000_000), (Some("image".into()), 2_500_000), (Some("video".into()), 4_000_000)]
        );
        assert_eq!((s.expired, s.refunded, s.entry_count), (5_000_000, 60_000_000, 10));
        let net: i64 = s.movements.iter().map(|(_, m)| m).sum();
        assert_eq!(s.opening + net, s.closing);
        assert_eq!(s.movements.iter().find(|(k, _)| k == "hold").unwrap().1, -20_000_000);
        // Lot 9 had nothing and did nothing: no row.
        assert_eq!(s.lots.iter().map(|r| r.lot_id).collect::<Vec<_>>(), vec![1, 2, 3]);
        for row in &s.lots {
            assert_eq!(row.opening + row.credited - row.debited - row.expired, row.closing, "{row:?}");
        }
        let lot1 = &s.lots[0];
        assert_eq!((lot1.opening, lot1.credited, lot1.debited, lot1.expired), (100_000_000, 20_000_000, 96_500_001, 0));
        assert_eq!((s.lots[2].expired, s.lots[2].closing), (5_000_000, 0));

        // The digest is SHA-256 over the lines, and any change to an entry changes it.
        let mut text = String::new();
        entries.iter().for_each(|e| text.push_str(&entry_line(e)));
        assert_eq!(s.digest, hex(&Sha256::digest(text.as_bytes())));
        let mut changed = Builder::new(window, [(1, 100_000_000)]);
        for e in &entries {
            let e = if e.id == 13 { Entry { reason: Some("x".into()), ..e.clone() } } else { e.clone() };
            changed.add(&e).unwrap();
        }
        assert_ne!(changed.finish(&lots).unwrap().digest, s.digest);
    }

    #[test]
    fn an_empty_month_and_a_broken_journal() {
        let window = Window::new("2026-03".parse().unwrap(), at(15, 0)).unwrap();
        let empty = Builder::new(window, []).finish(&BTreeMap::new()).unwrap();
        assert_eq!((empty.opening, empty.closing, empty.entry_count), (0, 0, 0));
        assert_eq!(empty.digest, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "SHA-256 of nothing");

        let mut builder = Builder::new(window, []);
        let mut bad = entry(3, SPEND, at(2, 0), None, &[(1, -5)]);
        bad.amount_micros = -4;
        assert!(builder.add(&bad).is_err(), "an amount that is not its lines' sum");
        builder.add(&entry(4, GRANT, at(2, 0), None, &[(1, 5)])).unwrap();
        assert!(builder.add(&entry(4, SPEND, at(2, 0), None, &[(1, -1)])).is_err(), "out of sequence");
        assert!(builder.add(&entry(5, SPEND, at(16, 0), None, &[(1, -1)])).is_err(), "after asOf");
        assert!(builder.finish(&BTreeMap::new()).is_err(), "a lot nobody knows");
    }
}
