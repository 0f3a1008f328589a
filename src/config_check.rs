//! `credits config check`: the configuration as the process resolves it (defaults, file,
//! environment), with secrets masked, and every problem found in it at once, rather than the
//! first one a start would stop at. It reads; it writes nothing (no secret file is generated).

use crate::config::{Config, ConfigError, sqlite_file};

/// What a masked secret is printed as.
const MASK: &str = "********";

/// `config` as TOML, with every secret (and a database URL's password) masked.
pub fn masked(config: &Config) -> String {
    let mut shown = config.clone();
    for secret in [
        &mut shown.auth_secret,
        &mut shown.auth_secret_previous,
        &mut shown.webhook_secret,
        &mut shown.ad_secret,
        &mut shown.metrics_token,
        &mut shown.stripe_webhook_secret,
        &mut shown.stripe_webhook_secret_previous,
        &mut shown.stripe_secret_key,
    ] {
        if secret.as_deref().is_some_and(|s| !s.is_empty()) {
            *secret = Some(MASK.to_string());
        }
    }
    shown.database_url = Some(mask_password(&config.database_url()));
    shown.otlp_endpoint = config.otlp_endpoint.as_deref().map(mask_password);
    toml::to_string(&shown).unwrap_or_else(|e| format!("# the configuration could not be printed: {e}\n"))
}

fn mask_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(MASK));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Every problem a start would meet, one line each; empty when none.
pub fn problems(config: &Config) -> Vec<String> {
    let text = |e: ConfigError| e.to_string();
    let mut problems: Vec<String> = config.problems().into_iter().map(text).collect();
    let mut check = |what: &str, result: Result<(), String>| {
        if let Err(e) = result {
            problems.push(format!("{what}: {e}"));
        }
    };
    check("program", crate::program::Program::load(&config.program).map(|_| ()).map_err(|e| format!("{e:#}")));
    check("auth_secret", auth_secret(config));
    check("webhook", config.webhook().map(|_| ()).map_err(text));
    check("ad_verifier", config.ad_verification().map(|_| ()).map_err(text));
    check("database_url", {
        let url = config.database_url();
        if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(())
        } else {
            Err("a sqlite: or postgres:// URL".to_string())
        }
    });
    problems
}

/// The secret's checks without generating one: configured (long enough), or kept beside a
/// SQLite file (generated on the first start if it is not there yet).
fn auth_secret(config: &Config) -> Result<(), String> {
    if config.auth_secret.as_deref().is_some_and(|s| !s.is_empty()) {
        return config.auth_secret().map(|_| ()).map_err(|e| e.to_string());
    }
    let Some(file) = sqlite_file(&config.database_url()) else {
        return Err(ConfigError::NoSecret.to_string());
    };
    let path = file.with_extension("secret");
    match std::fs::read_to_string(&path) {
        Ok(_) => config.auth_secret().map(|_| ()).map_err(|e| e.to_string()),
        // Generated on the first start, beside the database.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
