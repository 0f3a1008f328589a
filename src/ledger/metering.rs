//! When metered usage is charged (domain.md §4, arkain), as pure rules: how running time splits
//! into lines per UTC day, what a settlement accrued and prices (`accrue`), and what it takes and
//! stops when it exceeds the balance (`plan`). The service loads the containers and meters,
//! asks these functions, and writes what they return.

use crate::ledger::Credits;
use crate::ledger::amount::{AmountError, split_plain_decimal};
use crate::ledger::pricing::{self, Metering, PricingError, StorageInterval};
use crate::ledger::time::next_day_start;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Decimal places of a measured quantity: storage in GB is exact to the byte (1 GB = 10^9 bytes).
pub const QUANTITY_PLACES: usize = 9;
/// Digits before the point of a measured quantity: enough for 10^15 bytes, and with
/// [`QUANTITY_PLACES`] still within a decimal's 28 exact digits.
pub const QUANTITY_DIGITS: usize = 16;
/// The API's text form of a measured quantity, as a pattern for people.
pub const QUANTITY_PATTERN: &str = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0}")]
    Malformed(&'static str),
    #[error("a quantity has at most {QUANTITY_PLACES} decimal places")]
    TooPrecise,
    #[error("a quantity has at most {QUANTITY_DIGITS} digits before its point")]
    TooLarge,
}

/// Parses the API's text form of a measured quantity (GB, bytes): [`QUANTITY_PATTERN`], the
/// grammar of credit amounts with finer places. Each use checks its own range and unit (bytes
/// are whole).
pub fn parse_quantity(text: &str) -> Result<Decimal, QuantityError> {
    let (whole, fraction) = split_plain_decimal(text, QUANTITY_PLACES).map_err(|e| match e {
        AmountError::Malformed(why) => QuantityError::Malformed(why),
        _ => QuantityError::TooPrecise,
    })?;
    if whole.len() > QUANTITY_DIGITS {
        return Err(QuantityError::TooLarge);
    }
    // At most 25 digits: exact in an i128 and in a decimal's 96-bit mantissa.
    let mantissa = whole.bytes().chain(fraction.bytes()).fold(0i128, |n, b| n * 10 + i128::from(b - b'0'));
    Decimal::try_from_i128_with_scale(mantissa, fraction.len() as u32).map_err(|_| QuantityError::TooLarge)
}

/// What a settlement was triggered by. Stored, and shown, as its snake_case name (`plan_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Trigger {
    /// A container stopped: its time, add-on, and the account's storage and traffic so far.
    Stop,
    /// A container started: the storage used while it was stopped.
    Start,
    /// The 1st of the month: everything accrued by every container.
    Monthly,
    /// A plan change: everything accrued so far, at the old plan's quota.
    PlanChange,
    /// One AI use, charged as it happens.
    Ai,
}

/// `[start, end)` cut at each UTC midnight, so each container line belongs to one day (the usage
/// page shows a container's logs per day).
pub fn day_segments(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut segments = Vec::new();
    let mut from = start;
    while from < end {
        let to = next_day_start(from).min(end);
        segments.push((from, to));
        from = to;
    }
    segments
}

/// The UTC day a line of `[start, end)` belongs to: the day of its last instant.
pub fn line_day(start: DateTime<Utc>, end: DateTime<Utc>) -> NaiveDate {
    if end > start { (end - Duration::microseconds(1)).date_naive() } else { end.date_naive() }
}

/// Whole seconds of `[start, end)`; instants are stored to the microsecond, and time is charged
/// per second, so the fraction is carried, not dropped: callers move `billed_until` by whole
/// seconds only.
pub fn whole_seconds(start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    u64::try_from((end - start).num_seconds()).unwrap_or(0)
}

/// What a settlement of `total` takes from an account that can spend `available`: all of it
/// when it can, otherwise everything there is, and the rest is uncollected usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    pub charged: Credits,
    pub uncollected: Credits,
}

pub fn collect(total: Credits, available: Credits) -> Collection {
    let charged = total.min(available);
    Collection { charged, uncollected: total.checked_sub(charged).expect("charged <= total") }
}

/// The add-on the API calls `codeSupporter`.
pub const CODE_SUPPORTER: &str = "code_supporter";

/// Where a container stands. Stored as its snake_case name (`running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ContainerState {
    /// Running: its time is charged.
    Running,
    /// Stopped by the product, or for overuse while holding no storage.
    Stopped,
    /// Stopped for overuse while holding storage.
    Inactive,
}

/// What a usage line charges for. Stored as its snake_case name (`addon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Resource {
    /// A container's running time at its tier.
    Container,
    /// An add-on's time on a container (Code Supporter).
    Addon,
    /// The account's storage over its plan's quota.
    Storage,
    /// A container's traffic over the month's free allowance.
    Traffic,
    /// One AI use.
    Ai,
}

impl Resource {
    /// In the order the usage page lists them.
    pub const ALL: [Resource; 5] = [Resource::Container, Resource::Addon, Resource::Storage, Resource::Traffic, Resource::Ai];
}

/// The unit of a usage line's quantity. Stored as its snake_case name (`gb_second`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Unit {
    /// Running time of a container or an add-on.
    Second,
    /// Storage over the quota: gigabytes (10^9 bytes) times seconds.
    GbSecond,
    /// Traffic.
    Byte,
    /// Tokens of an AI use (AI Supporter, Chat).
    Token,
    /// One AI use priced per use (Snap).
    Use,
}

/// Which AI was used. Stored as its snake_case name (`ai_supporter`).
///
/// Its serde form stays the variant name (`AiSupporter`): a usage sample's request hash is taken
/// over it, and kept keys must keep matching. The aliases read receipts kept before the kind of a
/// usage line was typed, when it was the stored text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum AiKind {
    /// AI Supporter, priced by model and tokens.
    #[serde(alias = "ai_supporter")]
    AiSupporter,
    /// Side Chat, priced by model and tokens.
    #[serde(alias = "chat")]
    Chat,
    /// Snap, priced per use.
    #[serde(alias = "snap")]
    Snap,
}

/// A container as a settlement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredContainer {
    pub id: i64,
    /// The product's id for it.
    pub external_id: String,
    pub tier: String,
    pub code_supporter: bool,
    pub state: ContainerState,
    pub storage_bytes: u64,
    /// Running time is charged up to this instant.
    pub billed_until: DateTime<Utc>,
    /// Traffic over the month's free allowance, not yet charged.
    pub pending_traffic_bytes: u64,
    pub updated_at: DateTime<Utc>,
}

/// The account's storage over its quota, accrued and not yet charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageMeter {
    /// Storage is accrued up to this instant.
    pub accrued_until: DateTime<Utc>,
    /// GB x seconds over the plan's quota, exact.
    pub excess_gb_seconds: Decimal,
}

/// An account's meters: storage (all containers together), the month's traffic, and the AI
/// free trial uses taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    pub storage: StorageMeter,
    /// "2026-11": the month `traffic_month_bytes` counts.
    pub traffic_month: String,
    pub traffic_month_bytes: u64,
    pub ai_trial_uses: u32,
}

impl Meter {
    /// Counts `bytes` of traffic in `month` (a new month starts from zero) and returns the part
    /// past the month's `free_bytes`, which waits for the container's next settlement.
    pub fn add_traffic(&mut self, month: &str, bytes: u64, free_bytes: u64) -> u64 {
        if self.traffic_month != month {
            self.traffic_month = month.to_string();
            self.traffic_month_bytes = 0;
        }
        let before = self.traffic_month_bytes;
        let after = before.saturating_add(bytes);
        self.traffic_month_bytes = after;
        after.saturating_sub(free_bytes) - before.saturating_sub(free_bytes)
    }
}

/// One priced line of a settlement: a container's seconds in one UTC day, its add-on, the
/// account's storage, a container's traffic, or one AI use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLine {
    pub container_id: Option<i64>,
    /// The product's id for the container.
    pub container: Option<String>,
    pub resource: Resource,
    /// AI uses only.
    pub kind: Option<AiKind>,
    pub model: Option<String>,
    pub quantity: Decimal,
    pub unit: Unit,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub amount: Credits,
}

/// The sum of already-rounded lines.
pub fn total(lines: &[UsageLine]) -> Credits {
    lines.iter().fold(Credits::ZERO, |s, l| s.checked_add(l.amount).expect("a settlement's lines fit"))
}

/// What a settlement covers besides the account's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every container: the month's end, a plan change.
    All,
    /// One container's session: a stop.
    Container(String),
    /// Storage only: a start.
    StorageOnly,
    /// Lines priced by the caller (an AI use); storage is not touched.
    Lines(Vec<UsageLine>),
}

/// What accrued up to a settlement's instant: its lines, every container of the account (those
/// in scope moved past what the lines charge) and the storage meter, emptied into the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accrual {
    pub lines: Vec<UsageLine>,
    pub containers: Vec<MeteredContainer>,
    /// Ids of the containers the settlement changed.
    pub touched: Vec<i64>,
    pub storage: StorageMeter,
    /// The container a stop stops anyway: not one overuse stops.
    pub own: Option<String>,
}

impl Accrual {
    pub fn total(&self) -> Credits {
        total(&self.lines)
    }
}

/// What a settlement writes: its lines and amounts, the containers it changed, the storage meter,
/// and the running containers it stopped for overuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementPlan {
    pub lines: Vec<UsageLine>,
    pub total: Credits,
    pub charged: Credits,
    pub uncollected: Credits,
    /// The product's ids of the running containers stopped for overuse.
    pub stopped: Vec<String>,
    /// The containers to save, in id order.
    pub containers: Vec<MeteredContainer>,
    pub storage: StorageMeter,
}

/// The account's storage over `quota_gb` accrued up to `until` at the containers' current level.
pub fn accrue_storage(
    quota_gb: Decimal,
    containers: &[MeteredContainer],
    storage: StorageMeter,
    until: DateTime<Utc>,
) -> Result<StorageMeter, PricingError> {
    let seconds = whole_seconds(storage.accrued_until, until);
    if seconds == 0 {
        return Ok(storage);
    }
    let bytes: u64 = containers.iter().map(|c| c.storage_bytes).sum();
    let over = pricing::gb_seconds_over_quota(quota_gb, &[StorageInterval { bytes, seconds }])?;
    Ok(StorageMeter {
        accrued_until: storage.accrued_until + Duration::seconds(seconds as i64),
        excess_gb_seconds: (storage.excess_gb_seconds + over).normalize(),
    })
}

/// Running time of a running `container` up to `until`, one line per UTC day (and one per day
/// for its add-on), and how far it is then charged: by whole seconds.
fn time_lines(
    rates: &Metering,
    container: &MeteredContainer,
    until: DateTime<Utc>,
) -> Result<(Vec<UsageLine>, DateTime<Utc>), PricingError> {
    if container.state != ContainerState::Running {
        return Ok((Vec::new(), container.billed_until));
    }
    let end = container.billed_until + Duration::seconds(whole_seconds(container.billed_until, until) as i64);
    let mut lines = Vec::new();
    for (from, to) in day_segments(container.billed_until, end) {
        let seconds = whole_seconds(from, to);
        let line = |resource, amount| UsageLine {
            container_id: Some(container.id),
            container: Some(container.external_id.clone()),
            resource,
            kind: None,
            model: None,
            quantity: Decimal::from(seconds),
            unit: Unit::Second,
            started_at: from,
            ended_at: to,
            amount,
        };
        lines.push(line(Resource::Container, pricing::container_charge(rates, &container.tier, seconds)?));
        if container.code_supporter {
            lines.push(line(Resource::Addon, pricing::add_on_charge(rates, CODE_SUPPORTER, &container.tier, seconds)?));
        }
    }
    Ok((lines, end))
}

/// A container's traffic past the month's free allowance, not yet charged, as one line.
fn traffic_line(rates: &Metering, container: &MeteredContainer, until: DateTime<Utc>) -> Result<Option<UsageLine>, PricingError> {
    let bytes = container.pending_traffic_bytes;
    if bytes == 0 {
        return Ok(None);
    }
    // The pending bytes are all past the free allowance: price them as such.
    let amount = pricing::traffic_charge(rates, rates.traffic().free_bytes_per_month, bytes)?;
    Ok(Some(UsageLine {
        container_id: Some(container.id),
        container: Some(container.external_id.clone()),
        resource: Resource::Traffic,
        kind: None,
        model: None,
        quantity: Decimal::from(bytes),
        unit: Unit::Byte,
        started_at: until,
        ended_at: until,
        amount,
    }))
}

/// The storage accrued so far as one line, if any.
fn storage_line(rates: &Metering, storage: StorageMeter, until: DateTime<Utc>) -> Result<Option<UsageLine>, PricingError> {
    let accrued = storage.excess_gb_seconds;
    if accrued.is_zero() {
        return Ok(None);
    }
    Ok(Some(UsageLine {
        container_id: None,
        container: None,
        resource: Resource::Storage,
        kind: None,
        model: None,
        quantity: accrued,
        unit: Unit::GbSecond,
        started_at: until,
        ended_at: until,
        amount: pricing::storage_charge(rates, accrued)?,
    }))
}

/// What `scope` accrued up to `until`: the time and traffic of the containers in it, and the
/// account's storage over `quota_gb` (except for lines priced by the caller, which are all).
pub fn accrue(
    rates: &Metering,
    quota_gb: Decimal,
    scope: Scope,
    mut containers: Vec<MeteredContainer>,
    storage: StorageMeter,
    until: DateTime<Utc>,
) -> Result<Accrual, PricingError> {
    let own = if let Scope::Container(id) = &scope { Some(id.clone()) } else { None };
    if let Scope::Lines(lines) = scope {
        return Ok(Accrual { lines, containers, touched: Vec::new(), storage, own });
    }
    let in_scope = |container: &MeteredContainer| match &scope {
        Scope::All => true,
        Scope::Container(id) => container.external_id == *id,
        Scope::StorageOnly | Scope::Lines(_) => false,
    };
    let mut storage = accrue_storage(quota_gb, &containers, storage, until)?;
    let (mut lines, mut touched) = (Vec::new(), Vec::new());
    for container in containers.iter_mut().filter(|c| in_scope(c)) {
        let (time, billed_until) = time_lines(rates, container, until)?;
        lines.extend(time);
        container.billed_until = billed_until;
        lines.extend(traffic_line(rates, container, until)?);
        container.pending_traffic_bytes = 0;
        touched.push(container.id);
    }
    if let Some(line) = storage_line(rates, storage, until)? {
        lines.push(line);
        storage.excess_gb_seconds = Decimal::ZERO;
    }
    Ok(Accrual { lines, containers, touched, storage, own })
}

/// The settlement of `accrual` when `collection` is what the account can pay: on overuse every
/// other running container stops at `now`; its time is usage too, and nothing is left to pay for
/// it, so it is uncollected.
pub fn plan(rates: &Metering, accrual: Accrual, collection: Collection, now: DateTime<Utc>) -> Result<SettlementPlan, PricingError> {
    let Accrual { mut lines, mut containers, mut touched, storage, own } = accrual;
    let mut uncollected = collection.uncollected;
    let mut stopped = Vec::new();
    if !uncollected.is_zero() {
        let mut extra = Vec::new();
        for container in containers.iter_mut() {
            if container.state == ContainerState::Running && own.as_deref() != Some(container.external_id.as_str()) {
                let (time, billed_until) = time_lines(rates, container, now)?;
                extra.extend(time);
                container.billed_until = billed_until;
                stopped.push(container.external_id.clone());
                touched.push(container.id);
            }
        }
        uncollected = uncollected.checked_add(total(&extra)).expect("sums fit");
        lines.extend(extra);
    }
    let containers = containers.into_iter().filter(|c| touched.contains(&c.id)).collect();
    Ok(SettlementPlan { total: total(&lines), charged: collection.charged, uncollected, lines, stopped, containers, storage })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_text_follows_the_grammar() {
        let parsed = |s: &str| parse_quantity(s).map(|d| d.to_string());
        for (text, shown) in
            [("0", "0"), ("1", "1"), ("6.5", "6.5"), ("0.000000001", "0.000000001"), ("1000000000000000", "1000000000000000")]
        {
            assert_eq!(parsed(text), Ok(shown.to_string()), "{text:?}");
        }
        assert_eq!(parsed("9999999999999999.999999999"), Ok("9999999999999999.999999999".to_string()), "the widest is exact");
        for text in ["", "01", "1.", ".5", "1_000", "+5", "-1", "1e3", " 1", "1,5", "NaN"] {
            assert!(matches!(parse_quantity(text), Err(QuantityError::Malformed(_))), "{text:?}");
        }
        assert_eq!(parse_quantity("0.0000000001"), Err(QuantityError::TooPrecise));
        assert_eq!(parse_quantity("10000000000000000"), Err(QuantityError::TooLarge));
    }
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn running_time_splits_at_each_utc_midnight() {
        assert_eq!(
            day_segments(at(1, 22, 0), at(3, 1, 30)),
            vec![(at(1, 22, 0), at(2, 0, 0)), (at(2, 0, 0), at(3, 0, 0)), (at(3, 0, 0), at(3, 1, 30))]
        );
        assert_eq!(day_segments(at(1, 10, 0), at(1, 11, 0)), vec![(at(1, 10, 0), at(1, 11, 0))]);
        assert!(day_segments(at(1, 10, 0), at(1, 10, 0)).is_empty());
        assert_eq!(line_day(at(1, 22, 0), at(2, 0, 0)).to_string(), "2026-11-01", "a segment ending at midnight belongs to the day before");
    }

    #[test]
    fn overuse_takes_what_there_is() {
        let c = Credits::from_whole;
        assert_eq!(collect(c(10), c(25)), Collection { charged: c(10), uncollected: Credits::ZERO });
        assert_eq!(collect(c(30), c(25)), Collection { charged: c(25), uncollected: c(5) });
        assert_eq!(collect(c(30), Credits::ZERO), Collection { charged: Credits::ZERO, uncollected: c(30) });
    }

    fn credits(s: &str) -> Credits {
        Credits::parse_positive(s.parse().unwrap()).unwrap()
    }

    fn rates() -> Metering {
        use crate::ledger::pricing::{AddOn, ContainerTier, StorageRate, TrafficRate};
        let dec = |s: &str| s.parse::<Decimal>().unwrap();
        let tier =
            |code: &str, rate: &str| ContainerTier { code: code.into(), name: code.into(), credits_per_hour: dec(rate), plans: None };
        let add_on =
            AddOn { code: CODE_SUPPORTER.into(), name: "Code Supporter".into(), credits_per_hour: dec("1.96"), free_on_tiers: vec![] };
        let storage = StorageRate { credits_per_gb_hour: dec("0.018") };
        let traffic = TrafficRate { credits_per_gb: dec("8"), free_bytes_per_month: 10 * pricing::BYTES_PER_GB };
        Metering::new(vec![tier("micro", "1.96"), tier("small", "6.80")], vec![add_on], storage, traffic).unwrap()
    }

    fn running(id: i64, name: &str, tier: &str, since: DateTime<Utc>) -> MeteredContainer {
        MeteredContainer {
            id,
            external_id: name.into(),
            tier: tier.into(),
            code_supporter: false,
            state: ContainerState::Running,
            storage_bytes: 0,
            billed_until: since,
            pending_traffic_bytes: 0,
            updated_at: since,
        }
    }

    #[test]
    fn a_stop_accrues_its_container_and_the_storage_and_moves_their_marks() {
        let mut web = running(1, "web", "micro", at(1, 10, 0));
        web.code_supporter = true;
        web.storage_bytes = 6 * pricing::BYTES_PER_GB;
        web.pending_traffic_bytes = pricing::BYTES_PER_GB / 2;
        let other = running(2, "other", "small", at(1, 10, 0));
        let storage = StorageMeter { accrued_until: at(1, 10, 0), excess_gb_seconds: Decimal::ZERO };
        let quota = Decimal::from(5);
        let accrual = accrue(&rates(), quota, Scope::Container("web".into()), vec![web, other.clone()], storage, at(1, 11, 30)).unwrap();
        let what: Vec<(Resource, Credits)> = accrual.lines.iter().map(|l| (l.resource, l.amount)).collect();
        let expected = [(Resource::Container, "2.94"), (Resource::Addon, "2.94"), (Resource::Traffic, "4"), (Resource::Storage, "0.027")];
        assert_eq!(what, expected.map(|(r, a)| (r, credits(a))));
        assert_eq!(accrual.touched, [1], "only the stopped container");
        assert_eq!(accrual.containers[0].billed_until, at(1, 11, 30));
        assert_eq!(accrual.containers[0].pending_traffic_bytes, 0);
        assert_eq!(accrual.containers[1], other, "the other one is not in scope");
        assert_eq!(
            accrual.storage,
            StorageMeter { accrued_until: at(1, 11, 30), excess_gb_seconds: Decimal::ZERO },
            "emptied into its line"
        );
        assert_eq!(accrual.own.as_deref(), Some("web"));
    }

    #[test]
    fn overuse_stops_every_other_running_container_and_leaves_its_time_uncollected() {
        let c = Credits::from_whole;
        let containers = vec![running(1, "web", "micro", at(1, 10, 0)), running(2, "other", "small", at(1, 10, 0))];
        let storage = StorageMeter { accrued_until: at(1, 10, 0), excess_gb_seconds: Decimal::ZERO };
        let accrual = accrue(&rates(), Decimal::ZERO, Scope::Container("web".into()), containers, storage, at(1, 11, 0)).unwrap();
        assert_eq!(accrual.total(), credits("1.96"));
        let paid = plan(&rates(), accrual.clone(), collect(accrual.total(), c(10)), at(1, 11, 0)).unwrap();
        assert!(paid.stopped.is_empty() && paid.uncollected.is_zero() && paid.containers.len() == 1);
        let short = plan(&rates(), accrual.clone(), collect(accrual.total(), c(1)), at(1, 11, 0)).unwrap();
        assert_eq!(short.stopped, ["other"], "not the container the stop stops anyway");
        assert_eq!(short.total, c(1).checked_add(credits("7.76")).unwrap(), "1.96 + 6.80");
        assert_eq!((short.charged, short.uncollected), (c(1), credits("7.76")));
        assert_eq!(short.containers.iter().map(|c| (c.id, c.billed_until)).collect::<Vec<_>>(), [(1, at(1, 11, 0)), (2, at(1, 11, 0))]);
    }

    #[test]
    fn traffic_past_the_free_allowance_waits_and_a_new_month_starts_from_zero() {
        let gb = pricing::BYTES_PER_GB;
        let storage = StorageMeter { accrued_until: at(1, 0, 0), excess_gb_seconds: Decimal::ZERO };
        let mut meter = Meter { storage, traffic_month: "2026-11".into(), traffic_month_bytes: 9 * gb, ai_trial_uses: 0 };
        assert_eq!(meter.add_traffic("2026-11", 2 * gb, 10 * gb), gb, "the part over the line");
        assert_eq!(meter.add_traffic("2026-11", gb, 10 * gb), gb, "wholly over");
        assert_eq!(meter.add_traffic("2026-12", gb, 10 * gb), 0, "a new month");
        assert_eq!((meter.traffic_month.as_str(), meter.traffic_month_bytes), ("2026-12", gb));
    }

    #[test]
    fn states_resources_and_units_keep_their_stored_text() {
        assert_eq!(ContainerState::Running.to_string(), "running");
        assert_eq!("inactive".parse(), Ok(ContainerState::Inactive));
        assert_eq!(Resource::ALL.map(|r| r.to_string()), ["container", "addon", "storage", "traffic", "ai"]);
        assert_eq!(
            [Unit::Second, Unit::GbSecond, Unit::Byte, Unit::Token, Unit::Use].map(|u| u.to_string()),
            ["second", "gb_second", "byte", "token", "use"]
        );
        let triggers = [Trigger::Stop, Trigger::Start, Trigger::Monthly, Trigger::PlanChange, Trigger::Ai];
        assert_eq!(triggers.map(<&str>::from), ["stop", "start", "monthly", "plan_change", "ai"]);
        assert_eq!([AiKind::AiSupporter, AiKind::Chat, AiKind::Snap].map(|k| k.to_string()), ["ai_supporter", "chat", "snap"]);
        // Receipts kept before the kind was typed hold its text; request hashes use the name.
        assert_eq!(serde_json::from_str::<AiKind>("\"ai_supporter\"").unwrap(), AiKind::AiSupporter);
        assert_eq!(serde_json::to_string(&AiKind::AiSupporter).unwrap(), "\"AiSupporter\"");
    }
}
