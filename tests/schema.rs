/// `schema.graphql` is the contract apps are written against: it must be what the code serves.
#[test]
fn schema_file_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).expect("schema.graphql exists");
    let current = format!("{}\n", credits::graphql::sdl().trim_end());
    if committed != current {
        panic!("schema.graphql is stale: run `cargo run -- schema > schema.graphql`");
    }
}

/// Built-in names the check skips: the GraphQL scalars and async-graphql's own directives.
const BUILT_IN_TYPES: &[&str] = &["Boolean", "String", "Int", "Float", "ID"];
const BUILT_IN_DIRECTIVES: &[&str] = &["include", "skip", "deprecated", "specifiedBy", "oneOf"];

/// Items async-graphql describes for us or not at all, that cannot get a description without
/// changing the API: (schema coordinate, why).
const UNDESCRIBABLE: &[(&str, &str)] = &[];

/// Every type, field, argument, input field and enum value of the schema apps code against has a
/// description, read the way a client reads it: through introspection of the served schema.
#[tokio::test]
async fn every_schema_item_has_a_description() {
    const QUERY: &str = r#"{ __schema {
        types { name kind description
            fields(includeDeprecated: true) { name description args { name description } }
            inputFields { name description }
            enumValues(includeDeprecated: true) { name description } }
        directives { name description args { name description } } } }"#;
    // Introspection of the whole schema passes the per-request complexity limit on purpose.
    let schema = credits::graphql::schema_builder().limit_complexity(usize::MAX).finish();
    let response = schema.execute(QUERY).await;
    assert!(response.errors.is_empty(), "introspection failed: {:?}", response.errors);
    let data = response.data.into_json().expect("introspection returns JSON");

    fn described(item: &serde_json::Value) -> bool {
        item["description"].as_str().is_some_and(|text| !text.trim().is_empty())
    }
    fn items<'a>(value: &'a serde_json::Value, key: &str) -> impl Iterator<Item = &'a serde_json::Value> {
        value[key].as_array().into_iter().flatten()
    }
    fn name(item: &serde_json::Value) -> &str {
        item["name"].as_str().unwrap_or("?")
    }

    // A check that read nothing would pass: the schema has well over a hundred types.
    assert!(items(&data["__schema"], "types").count() > 100, "introspection listed the schema's types");

    let mut missing = Vec::new();
    for ty in items(&data["__schema"], "types") {
        let type_name = name(ty);
        if type_name.starts_with("__") || BUILT_IN_TYPES.contains(&type_name) {
            continue;
        }
        if !described(ty) {
            missing.push(type_name.to_string());
        }
        for field in items(ty, "fields") {
            if !described(field) {
                missing.push(format!("{type_name}.{}", name(field)));
            }
            for arg in items(field, "args") {
                if !described(arg) {
                    missing.push(format!("{type_name}.{}({}:)", name(field), name(arg)));
                }
            }
        }
        for field in items(ty, "inputFields").chain(items(ty, "enumValues")) {
            if !described(field) {
                missing.push(format!("{type_name}.{}", name(field)));
            }
        }
    }
    for directive in items(&data["__schema"], "directives") {
        let directive_name = name(directive);
        if BUILT_IN_DIRECTIVES.contains(&directive_name) {
            continue;
        }
        if !described(directive) {
            missing.push(format!("@{directive_name}"));
        }
        for arg in items(directive, "args") {
            if !described(arg) {
                missing.push(format!("@{directive_name}({}:)", name(arg)));
            }
        }
    }

    let exceptions: Vec<&str> = UNDESCRIBABLE.iter().map(|(coordinate, _)| *coordinate).collect();
    let stale: Vec<&&str> = exceptions.iter().filter(|coordinate| !missing.iter().any(|item| item == **coordinate)).collect();
    missing.retain(|item| !exceptions.contains(&item.as_str()));
    assert!(stale.is_empty(), "listed as undescribable but described now: {stale:?}");
    assert!(missing.is_empty(), "{} schema items have no description:\n{}", missing.len(), missing.join("\n"));
}
