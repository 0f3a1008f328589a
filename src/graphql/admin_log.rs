//! Writes the operators' log (`service::admin_log`): after each root mutation field an admin
//! token resolved without error, one row with the token's subject, the field's name, the
//! account it names (an `accountId` argument, or one inside `input`) and its arguments with
//! variables filled in. As an extension it sees every mutation, so one added later is logged
//! without anyone remembering to.
//!
//! The row is written after the mutation's own transaction: a crash between the two loses the
//! row, never the action. Credits an operator moves carry the subject on their journal entries
//! too (`EntryMeta::actor`), inside the same transaction as the move.

use crate::graphql::context::{AppData, Authentication};
use crate::store::admin_actions::NewAction;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{Name, Request, ServerResult, Value, Variables};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Arguments never written to the log, whatever mutation carries them.
const WITHHELD: [&str; 4] = ["code", "token", "secret", "password"];

pub struct AdminLog;

impl ExtensionFactory for AdminLog {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AdminLogExtension::default())
    }
}

#[derive(Default)]
struct AdminLogExtension {
    operation_name: Mutex<Option<String>>,
    /// The operation's variables, defaults filled in: what the arguments are resolved with.
    variables: Mutex<BTreeMap<Name, Value>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_graphql::async_trait::async_trait]
impl Extension for AdminLogExtension {
    async fn prepare_request(&self, ctx: &ExtensionContext<'_>, request: Request, next: NextPrepareRequest<'_>) -> ServerResult<Request> {
        *lock(&self.operation_name) = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        // Only an operator's requests are logged: nobody else's variables are copied.
        if !matches!(ctx.data_opt::<Authentication>(), Some(Ok(caller)) if caller.actor().is_some()) {
            return Ok(document);
        }
        let name = lock(&self.operation_name).clone();
        let operation = match (&document.operations, name.as_deref()) {
            (DocumentOperations::Single(operation), _) => Some(operation),
            (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
            (DocumentOperations::Multiple(operations), None) => operations.values().next(),
        };
        let mut resolved: BTreeMap<Name, Value> = variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for definition in operation.into_iter().flat_map(|op| op.node.variable_definitions.iter()) {
            if let Some(default) = definition.node.default_value() {
                resolved.entry(definition.node.name.node.clone()).or_insert_with(|| default.clone());
            }
        }
        *lock(&self.variables) = resolved;
        Ok(document)
    }

    async fn resolve(&self, ctx: &ExtensionContext<'_>, info: ResolveInfo<'_>, next: NextResolve<'_>) -> ServerResult<Option<Value>> {
        // Every field of every request passes here: anything but a root mutation field goes on
        // at the cost of two comparisons.
        if info.path_node.parent.is_some() || info.parent_type != "MutationRoot" {
            return next.run(ctx, info).await;
        }
        let subject = match ctx.data_opt::<Authentication>() {
            Some(Ok(caller)) => caller.actor().map(str::to_string),
            _ => None,
        };
        let Some(subject) = subject else { return next.run(ctx, info).await };
        let action = info.name.to_string();
        let arguments = self.arguments_of(info.field);
        let resolved = next.run(ctx, info).await;
        if resolved.is_ok()
            && let Some(app) = ctx.data_opt::<AppData>()
        {
            let account = account_named(&arguments);
            let text = serde_json::Value::Object(arguments).to_string();
            let now = app.clock.now();
            let row = NewAction { at: now, subject: &subject, action: &action, account_id: account.as_deref(), arguments: &text };
            if let Err(error) = app.ledger.log_admin_action(row).await {
                tracing::warn!(action, error = %error, "an operator's action could not be written to the admin log");
            }
        }
        resolved
    }
}

impl AdminLogExtension {
    /// The field's arguments as JSON, variables filled in, withheld names left out.
    fn arguments_of(&self, field: &async_graphql::parser::types::Field) -> serde_json::Map<String, serde_json::Value> {
        let variables = lock(&self.variables);
        field
            .arguments
            .iter()
            .filter(|(name, _)| !WITHHELD.contains(&name.node.as_str()))
            .map(|(name, value)| {
                let constant = value.node.clone().into_const_with(|var| Ok::<_, ()>(variables.get(&var).cloned().unwrap_or(Value::Null)));
                let json = constant.ok().and_then(|v| v.into_json().ok()).unwrap_or(serde_json::Value::Null);
                (name.node.to_string(), json)
            })
            .collect()
    }
}

/// The account an action names: its `accountId` argument, or `input.accountId`.
fn account_named(arguments: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let direct = arguments.get("accountId");
    let nested = arguments.get("input").and_then(|input| input.get("accountId"));
    direct.or(nested).and_then(|v| v.as_str()).map(str::to_string)
}
