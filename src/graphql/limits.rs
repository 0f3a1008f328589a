//! A limit the GraphQL library does not have: aliases per document. Complexity already bounds
//! how much work a document asks for; aliases are bounded on their own because they are how one
//! request repeats one mutation (`a: spendCredits(..) b: spendCredits(..) ...`) or one guess
//! (`a: redeemCoupon(code: "A") b: redeemCoupon(code: "B")`), and a legitimate client needs few.

use crate::graphql::error::code;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};
use std::sync::Arc;

/// The default `max_aliases`.
pub const MAX_ALIASES: usize = 30;

pub struct AliasLimit {
    pub max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max {
            let mut error = ServerError::new(format!("the request has {aliases} aliases; at most {} are allowed", self.max), None);
            error.extensions.get_or_insert_with(Default::default).set("code", code::BAD_USER_INPUT);
            return Err(error);
        }
        Ok(document)
    }
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
    fn aliases_are_counted_in_operations_inline_fragments_and_fragments() {
        assert_eq!(aliases("{ me { id } }"), 0);
        assert_eq!(aliases("{ a: me { b: id } c: me { id } }"), 3);
        assert_eq!(aliases("query { ... on QueryRoot { x: me { id } } ...F } fragment F on QueryRoot { y: me { z: id } }"), 3);
        assert_eq!(aliases("query A { a: me { id } } query B { b: me { id } }"), 2);
    }
}
