//! PostgreSQL: a large batch's columns as arrays, one bound parameter each.
//!
//! A batched write names its rows either as a `VALUES` list (one parameter per cell: the
//! statement's text depends on the number of rows) or as one array per column taken apart with
//! `UNNEST(CAST($1 AS bigint[]), CAST($2 AS text[]), ...)` (the same text whatever the number
//! of rows). Measured side by side (docs/benchmarks.md, "The month's end"), the arrays made the
//! month's parts of 1,000 accounts much faster (no statement of thousands of parameters to build,
//! send, parse and plan for each part) and the spends' batches of a few rows slower (12-18%), so
//! the store takes the arrays for a batch of `FROM_ROWS` rows or more and `VALUES` below it.
//! SQLite always takes `VALUES`.

use sea_orm::DbBackend;

/// Rows from which a batched write on PostgreSQL takes the array form. Above a spend batch's
/// `service::batch::MAX_BATCH` (64), so that the spends keep their measured statements; the
/// month's parts (`Engine::job_part`, 1,000) are far above it.
pub const FROM_ROWS: usize = 128;

/// Whether a batch of `rows` rows is written in the array form on this backend.
pub(crate) fn for_rows(backend: DbBackend, rows: usize) -> bool {
    backend == DbBackend::Postgres && rows >= FROM_ROWS
}

/// One value of a PostgreSQL array in the array's text form (`of`).
pub(crate) trait Element {
    fn write_to(&self, out: &mut String);
}

impl Element for i64 {
    fn write_to(&self, out: &mut String) {
        use std::fmt::Write;
        write!(out, "{self}").expect("a String takes any write");
    }
}

impl Element for i32 {
    fn write_to(&self, out: &mut String) {
        i64::from(*self).write_to(out)
    }
}

impl Element for bool {
    fn write_to(&self, out: &mut String) {
        out.push_str(if *self { "t" } else { "f" });
    }
}

impl Element for &str {
    /// Always quoted, with `"` and `\` escaped: any text, a comma, a brace, a space or the word
    /// NULL included, comes back as it went in.
    fn write_to(&self, out: &mut String) {
        out.push('"');
        for c in self.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
}

impl Element for String {
    fn write_to(&self, out: &mut String) {
        self.as_str().write_to(out)
    }
}

impl Element for chrono::DateTime<chrono::Utc> {
    /// To the microsecond, truncated, as sqlx binds an instant and PostgreSQL keeps it.
    fn write_to(&self, out: &mut String) {
        use std::fmt::Write;
        write!(out, "\"{}\"", self.format("%Y-%m-%d %H:%M:%S%.6f+00")).expect("a String takes any write");
    }
}

impl<T: Element> Element for Option<T> {
    fn write_to(&self, out: &mut String) {
        match self {
            Some(value) => value.write_to(out),
            None => out.push_str("NULL"),
        }
    }
}

/// One column of a batch as ONE bound parameter: an array in its text form, which PostgreSQL's
/// own input function turns into the array type the statement casts it to.
pub(crate) fn of<T: Element>(items: impl IntoIterator<Item = T>) -> sea_orm::Value {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item.write_to(&mut out);
    }
    out.push('}');
    sea_orm::Value::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_quote_text_and_spell_nulls() {
        let text = |v: sea_orm::Value| match v {
            sea_orm::Value::String(Some(s)) => s,
            other => panic!("a text parameter, not {other:?}"),
        };
        assert_eq!(text(of([1i64, -2, 3])), "{1,-2,3}");
        assert_eq!(text(of(Vec::<i64>::new())), "{}");
        assert_eq!(text(of([Some("a \"b\" \\ c,{}"), None, Some("NULL")])), r#"{"a \"b\" \\ c,{}",NULL,"NULL"}"#);
        let at = chrono::DateTime::from_timestamp_micros(1_764_547_201_123_456).expect("an instant");
        assert_eq!(text(of([Some(at), None])), r#"{"2025-12-01 00:00:01.123456+00",NULL}"#);
        assert_eq!(text(of([true, false])), "{t,f}");
    }

    #[test]
    fn only_large_batches_on_postgres_take_arrays() {
        assert!(!for_rows(DbBackend::Postgres, FROM_ROWS - 1));
        assert!(for_rows(DbBackend::Postgres, FROM_ROWS));
        assert!(!for_rows(DbBackend::Sqlite, 10_000));
    }
}
