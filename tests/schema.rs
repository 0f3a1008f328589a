/// `schema.graphql` is the contract apps are written against: it must be what the code serves.
#[test]
fn schema_file_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).expect("schema.graphql exists");
    let current = format!("{}\n", credits::graphql::sdl().trim_end());
    if committed != current {
        panic!("schema.graphql is stale: run `cargo run -- schema > schema.graphql`");
    }
}
