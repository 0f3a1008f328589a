//! Keyset paging for the API's connections. Every list the API pages (lots, journal entries,
//! purchases, market jobs, AI usage lines) is one account's rows newest first by id: the id is
//! unique, so it alone is the key (no tie-break needed). A page reads `limit + 1` rows from its
//! cursor instead of skipping an offset or loading the list. The journal, purchases and jobs have
//! an index on (account, id) that a page walks directly; lots and usage lines have one starting
//! with the account, so a page reads one account's rows at most.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select};

/// Which part of a list to read, in the list's order (newest first): the rows strictly after
/// `after` and strictly before `before` (ids taken from cursors), `limit` of them from the start
/// of that range, or from its end when `from_end` (a `last`/`before` page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub from_end: bool,
    pub limit: u64,
}

/// One page of a list, always in the list's order, and whether the list goes on either side of
/// it (Relay's `hasPreviousPage` / `hasNextPage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_previous: bool,
    pub has_next: bool,
}

impl<T> Page<T> {
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            has_previous: self.has_previous,
            has_next: self.has_next,
        })
    }
}

/// The page of `query` (already filtered to one list) that `window` asks for, newest first by
/// `id`. One statement for the page, `ORDER BY id LIMIT limit + 1` (the extra row says whether
/// more follow in the direction read), and, when the window starts from a cursor, one indexed
/// `LIMIT 1` probe for a row on the cursor's other side (the flag for the side not read).
pub async fn newest_first<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    query: Select<E>,
    id: E::Column,
    window: &Window,
) -> Result<Page<E::Model>, DbErr> {
    let mut range = query.clone();
    if let Some(after) = window.after {
        range = range.filter(id.lt(after));
    }
    if let Some(before) = window.before {
        range = range.filter(id.gt(before));
    }
    // From the end, the range is read oldest first and turned back, so a backward page still
    // comes in the list's order (Relay: edges keep the list's order whichever way one pages).
    let ordered = if window.from_end { range.order_by_asc(id) } else { range.order_by_desc(id) };
    let mut items = ordered.limit(window.limit + 1).all(conn).await?;
    let more = items.len() as u64 > window.limit;
    items.truncate(window.limit as usize);
    if window.from_end {
        items.reverse();
    }
    // The side not read: anything at or beyond the cursor the page was read from. The cursor's
    // own row counts (it precedes a page read after it); `>=`/`<=` also holds when that row has
    // gone since (a lot closed, a line pruned).
    let beyond = match (window.from_end, window.after, window.before) {
        (false, Some(after), _) => exists(conn, query.filter(id.gte(after)), id).await?,
        (true, _, Some(before)) => exists(conn, query.filter(id.lte(before)), id).await?,
        _ => false,
    };
    let (has_previous, has_next) = if window.from_end { (more, beyond) } else { (beyond, more) };
    Ok(Page { items, has_previous, has_next })
}

async fn exists<E: EntityTrait>(conn: &impl ConnectionTrait, query: Select<E>, id: E::Column) -> Result<bool, DbErr> {
    Ok(query.select_only().column(id).limit(1).into_tuple::<i64>().one(conn).await?.is_some())
}

/// How many rows the whole list holds: one `COUNT` over the same filters as its pages.
pub async fn count<E: EntityTrait>(conn: &impl ConnectionTrait, query: Select<E>) -> Result<u64, DbErr>
where
    E::Model: Sync,
{
    query.count(conn).await
}
