//! Limits the GraphQL library does not have.
//!
//! - Aliases per document. Complexity already bounds how much work a document asks for; aliases
//!   are bounded on their own because they are how one request repeats one mutation
//!   (`a: spendCredits(..) b: spendCredits(..) ...`) or one guess (`a: redeemCoupon(code: "A")
//!   b: redeemCoupon(code: "B")`), and a legitimate client needs few.
//! - Nesting of brackets in the document's text, checked before it is parsed. The parser limits
//!   the nesting of selections but not of argument values, and recurses once per level: an
//!   argument nested a few hundred deep (`{a: {a: ...}}`, under 2 KB) overflowed the stack of a
//!   debug build and aborted the process (found by tests/fuzz.rs).

use crate::graphql::error::code;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};
use std::sync::Arc;

/// The default `max_aliases`.
pub const MAX_ALIASES: usize = 30;

/// Brackets (`{`, `[`, `(`) open at once in a document's text: far above what the depth limit
/// lets a selection use, far below what overflows the parser's stack.
pub const MAX_NESTING: usize = 64;

pub struct DocumentLimits {
    pub max_aliases: usize,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension { max_aliases: self.max_aliases })
    }
}

struct DocumentLimitsExtension {
    max_aliases: usize,
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let nesting = bracket_nesting(query);
        if nesting > MAX_NESTING {
            let mut error = ServerError::new(format!("the request nests brackets {nesting} deep; at most {MAX_NESTING} are allowed"), None);
            error.extensions.get_or_insert_with(Default::default).set("code", code::BAD_USER_INPUT);
            return Err(error);
        }
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            let mut error = ServerError::new(format!("the request has {aliases} aliases; at most {} are allowed", self.max_aliases), None);
            error.extensions.get_or_insert_with(Default::default).set("code", code::BAD_USER_INPUT);
            return Err(error);
        }
        Ok(document)
    }
}

/// The deepest nesting of brackets in a GraphQL document's text, outside strings and comments;
/// one pass, no recursion, whatever the input.
pub fn bracket_nesting(query: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '"' => {
                // A string, or a block string ("""...""") in which only \""" escapes.
                let block = chars.peek() == Some(&'"') && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.peek() == Some(&'"')
                };
                if block {
                    chars.next();
                    chars.next();
                    let mut quotes = 0;
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                quotes = 0;
                                chars.next();
                            }
                            '"' => {
                                quotes += 1;
                                if quotes == 3 {
                                    break;
                                }
                            }
                            _ => quotes = 0,
                        }
                    }
                } else {
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' | '\n' => break,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

/// Every alias written in the document, fragments counted once where they are defined (a
/// fragment spread many times is bounded by complexity, not here).
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: usize = document.operations.iter().map(|(_, op)| in_set(&op.node.selection_set.node)).sum();
    let fragments: usize = document.fragments.values().map(|f| in_set(&f.node.selection_set.node)).sum();
    operations + fragments
}

fn in_set(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(query: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        assert_eq!(bracket_nesting("{ me { id } }"), 2);
        assert_eq!(bracket_nesting(r#"{ q(o: {a: [1]}) { t } }"#), 4);
        assert_eq!(bracket_nesting(r#"{ q(s: "{{{{[[[[", t: """ {{{ \""" {{{ """) }"#), 2);
        assert_eq!(bracket_nesting("{ # {{{{{{\n me }"), 1);
        let deep = format!("{{ q(o: {}1{}) {{ t }} }}", "{a: ".repeat(500), "}".repeat(500));
        assert_eq!(bracket_nesting(&deep), 502);
        assert_eq!(bracket_nesting("}}}} {"), 1, "stray closers do not go below zero");
    }

    #[test]
    fn aliases_are_counted_in_operations_inline_fragments_and_fragments() {
        assert_eq!(aliases("{ me { id } }"), 0);
        assert_eq!(aliases("{ a: me { b: id } c: me { id } }"), 3);
        assert_eq!(aliases("query { ... on QueryRoot { x: me { id } } ...F } fragment F on QueryRoot { y: me { z: id } }"), 3);
        assert_eq!(aliases("query A { a: me { id } } query B { b: me { id } }"), 2);
    }
}
