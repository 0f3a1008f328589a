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
//! - Fields once fragments are expanded, counted over the fragment graph with each fragment's
//!   size memoised, before the library's validation sees the document. The library's own
//!   validation and complexity check expand every spread, so a ~1 KB document whose fragments
//!   each spread the next one twice (`{ ...F0 } fragment F0 on QueryRoot { ...F1 ...F1 } ...`)
//!   doubled its cost per level and held the server for seconds to minutes, with no token, over
//!   HTTP and the WebSocket alike (issue 17), in the library's parse step already (its
//!   recursion-depth check follows spreads). Counting here is linear in the document's size;
//!   one that expands past `max_complexity` fields is refused, which the complexity limit would
//!   refuse anyway (every field costs at least 1) once it had done the exponential work.
//!
//! The document parsed for these checks is the one the library runs (a request is parsed once),
//! and a text that passed is kept parsed for the next request that sends it ([`ParsedDocuments`]).

use crate::graphql::error::code;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The default `max_aliases`.
pub const MAX_ALIASES: usize = 30;

/// Brackets (`{`, `[`, `(`) open at once in a document's text: far above what the depth limit
/// lets a selection use, far below what overflows the parser's stack.
pub const MAX_NESTING: usize = 64;

pub struct DocumentLimits {
    max_aliases: usize,
    /// Fields in the document once every fragment spread is expanded: `max_complexity`.
    max_fields: usize,
    parsed: Arc<ParsedDocuments>,
}

impl DocumentLimits {
    pub fn new(max_aliases: usize, max_fields: usize) -> Self {
        DocumentLimits { max_aliases, max_fields, parsed: Arc::new(ParsedDocuments::default()) }
    }
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension { max_aliases: self.max_aliases, max_fields: self.max_fields, parsed: self.parsed.clone() })
    }
}

struct DocumentLimitsExtension {
    max_aliases: usize,
    max_fields: usize,
    parsed: Arc<ParsedDocuments>,
}

fn refusal(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code::BAD_USER_INPUT);
    error
}

impl DocumentLimitsExtension {
    /// The document parsed and within the limits, from the cache when this text passed before;
    /// `None` when the parser refuses it (the library then refuses it with its own message).
    fn checked(&self, query: &str) -> ServerResult<Option<ExecutableDocument>> {
        if let Some(document) = self.parsed.get(query) {
            return Ok(Some(document));
        }
        let nesting = bracket_nesting(query);
        if nesting > MAX_NESTING {
            return Err(refusal(format!("the request nests brackets {nesting} deep; at most {MAX_NESTING} are allowed")));
        }
        let Ok(document) = async_graphql::parser::parse_query(query) else {
            return Ok(None);
        };
        // Measured before the library sees it: the library's parse step walks the fragment
        // graph without memoising (its recursion-depth check), exponentially on a fan-out.
        let fields = expanded_fields(&document);
        if fields > self.max_fields as u64 {
            return Err(refusal(format!(
                "the request selects {fields} fields once its fragments are expanded; at most {} are allowed",
                self.max_fields
            )));
        }
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(refusal(format!("the request has {aliases} aliases; at most {} are allowed", self.max_aliases)));
        }
        self.parsed.keep(query, &document);
        Ok(Some(document))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    /// Checks the document and hands it to the library parsed (`set_parsed_query`), so a request
    /// is parsed once, not here and again in the library's parse step, and a document seen
    /// before not at all. The library's own checks of the parsed document (recursion depth,
    /// directives) still run on it.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(document) = self.checked(&request.query)? {
            request.set_parsed_query(document);
        }
        next.run(ctx, request).await
    }
}

/// Documents that parsed and passed the limits, by their text. Clients send a handful of
/// documents over and over with different variables: parsing the bench's spend document costs
/// ~10 µs of CPU (pest), cloning it ~0.3 µs, and each request of the portal's and console's
/// pages runs a document of ~8 KB. Bounded in entries, in the text held and in the size of a
/// document kept: two generations, the older dropped whole when the newer fills, and a hit in
/// the older moves to the newer, so documents in use stay while a stream of one-off documents
/// only costs their own parse.
#[derive(Default)]
pub struct ParsedDocuments {
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    newer: HashMap<Box<str>, ExecutableDocument>,
    /// The length of the newer generation's texts.
    newer_bytes: usize,
    older: HashMap<Box<str>, ExecutableDocument>,
}

impl ParsedDocuments {
    /// Documents per generation at most.
    pub const GENERATION: usize = 128;
    /// Text per generation at most: the parsed documents' memory grows with it.
    pub const GENERATION_BYTES: usize = 256 * 1024;
    /// Longer documents are parsed each time: a client sending many of them would turn the
    /// generations over at once anyway.
    pub const LONGEST: usize = 16 * 1024;

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(document) = generations.newer.get(query) {
            return Some(document.clone());
        }
        let (text, document) = generations.older.remove_entry(query)?;
        let copy = document.clone();
        generations.insert(text, document);
        Some(copy)
    }

    fn keep(&self, query: &str, document: &ExecutableDocument) {
        if query.len() > Self::LONGEST {
            return;
        }
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        generations.insert(query.into(), document.clone());
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let generations = self.generations.lock().unwrap();
        let older_bytes: usize = generations.older.keys().map(|text| text.len()).sum();
        (generations.newer.len() + generations.older.len(), generations.newer_bytes + older_bytes)
    }
}

impl Generations {
    fn insert(&mut self, text: Box<str>, document: ExecutableDocument) {
        if self.newer.len() >= ParsedDocuments::GENERATION || self.newer_bytes + text.len() > ParsedDocuments::GENERATION_BYTES {
            self.older = std::mem::take(&mut self.newer);
            self.newer_bytes = 0;
        }
        self.newer_bytes += text.len();
        self.newer.insert(text, document);
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

/// The most fields any operation or fragment of the document selects once fragment spreads are
/// expanded, saturating instead of overflowing. Each fragment is sized once (memoised), so this
/// is linear in the document however its fragments spread one another; a spread of an unknown
/// fragment, or one caught in a cycle, counts 0 (validation refuses both afterwards).
pub fn expanded_fields(document: &ExecutableDocument) -> u64 {
    let mut sizes: HashMap<&str, Option<u64>> = HashMap::new();
    let mut most = 0;
    for (name, fragment) in &document.fragments {
        most = most.max(fragment_size(document, name.as_str(), &fragment.node.selection_set.node, &mut sizes));
    }
    for (_, operation) in document.operations.iter() {
        most = most.max(set_size(document, &operation.node.selection_set.node, &mut sizes));
    }
    most
}

/// `None` in `sizes` marks a fragment being sized: a spread of it from within is a cycle.
fn fragment_size<'a>(
    document: &'a ExecutableDocument,
    name: &'a str,
    set: &'a SelectionSet,
    sizes: &mut HashMap<&'a str, Option<u64>>,
) -> u64 {
    match sizes.get(name) {
        Some(Some(size)) => return *size,
        Some(None) => return 0,
        None => {}
    }
    sizes.insert(name, None);
    let size = set_size(document, set, sizes);
    sizes.insert(name, Some(size));
    size
}

fn set_size<'a>(document: &'a ExecutableDocument, set: &'a SelectionSet, sizes: &mut HashMap<&'a str, Option<u64>>) -> u64 {
    set.items.iter().fold(0u64, |sum, item| {
        let size = match &item.node {
            Selection::Field(field) => set_size(document, &field.node.selection_set.node, sizes).saturating_add(1),
            Selection::InlineFragment(fragment) => set_size(document, &fragment.node.selection_set.node, sizes),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) => fragment_size(document, name, &fragment.node.selection_set.node, sizes),
                    None => 0,
                }
            }
        };
        sum.saturating_add(size)
    })
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
    fn fields_are_counted_with_fragments_expanded_once_each() {
        let fields = |query: &str| expanded_fields(&async_graphql::parser::parse_query(query).unwrap());
        assert_eq!(fields("{ me { id balance { total } } }"), 4);
        assert_eq!(fields("{ ...F ...F } fragment F on QueryRoot { me { id } }"), 4);
        // Each level spreads the next twice: 2^40 fields from a document of a few KB, counted
        // at once and saturating rather than overflowing at deeper levels.
        let fan_out = |levels: usize| {
            let mut query = String::from("{ ...F0 }");
            for level in 0..levels {
                query.push_str(&format!(" fragment F{level} on QueryRoot {{ ...F{next} ...F{next} }}", next = level + 1));
            }
            query.push_str(&format!(" fragment F{levels} on QueryRoot {{ __typename }}"));
            query
        };
        assert_eq!(fields(&fan_out(40)), 1 << 40);
        assert_eq!(fields(&fan_out(100)), u64::MAX);
        // A cycle (refused by validation later) does not loop here.
        assert_eq!(fields("{ ...A } fragment A on QueryRoot { id ...B } fragment B on QueryRoot { ...A }"), 1);
    }

    #[test]
    fn a_document_that_passed_is_kept_parsed_and_the_cache_stays_bounded() {
        let cache = ParsedDocuments::default();
        let spend = "mutation S($i: SpendCreditsInput!) { spendCredits(input: $i) { sequence } }";
        let document = async_graphql::parser::parse_query(spend).unwrap();
        assert!(cache.get(spend).is_none());
        cache.keep(spend, &document);
        let kept = cache.get(spend).expect("kept");
        assert_eq!(format!("{kept:?}"), format!("{document:?}"), "the same document, not a re-parse of another text");
        // The server's own pages send one document each for every request: kept.
        for page in crate::app::SERVER_DOCUMENTS {
            cache.keep(page, &async_graphql::parser::parse_query(page).unwrap());
            assert!(cache.get(page).is_some(), "a page's document of {} bytes", page.len());
        }
        // A stream of one-off documents, short then long: at most two generations are held,
        // and a document in use (asked for between them) survives the turnover.
        for i in 0..ParsedDocuments::GENERATION * 5 {
            // Kept with any parsed document: the cache goes by the text's length.
            let text = if i % 2 == 0 { format!("{{ a{i} }}") } else { format!("{{ a{i} {} }}", "b ".repeat(4000)) };
            cache.keep(&text, &document);
            if i % 50 == 0 {
                assert!(cache.get(spend).is_some(), "dropped after {i} one-off documents");
            }
            let (documents, bytes) = cache.held();
            assert!(documents <= 2 * ParsedDocuments::GENERATION && bytes <= 2 * ParsedDocuments::GENERATION_BYTES, "{documents} {bytes}");
        }
        let long = format!("{{ {} }}", "a ".repeat(ParsedDocuments::LONGEST));
        cache.keep(&long, &document);
        assert!(cache.get(&long).is_none(), "a document longer than LONGEST is not kept");
    }

    #[test]
    fn aliases_are_counted_in_operations_inline_fragments_and_fragments() {
        assert_eq!(aliases("{ me { id } }"), 0);
        assert_eq!(aliases("{ a: me { b: id } c: me { id } }"), 3);
        assert_eq!(aliases("query { ... on QueryRoot { x: me { id } } ...F } fragment F on QueryRoot { y: me { z: id } }"), 3);
        assert_eq!(aliases("query A { a: me { id } } query B { b: me { id } }"), 2);
    }
}
