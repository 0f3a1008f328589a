//! The `Stripe-Signature` header, as Stripe documents it ("Verify webhook signatures"):
//! `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...][,v0=...]`, each `v1` an HMAC of
//! `"{t}.{raw body}"` under the endpoint's signing secret. During a secret rotation Stripe signs
//! with both secrets, so several `v1` may come and one matching any configured secret is
//! enough. `v0` (test-mode legacy) is ignored. The timestamp must be within the tolerance of
//! now, both ways, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks `header` over `body` with any of `secrets`, at `now` (unix seconds).
pub fn verify(header: Option<&str>, body: &[u8], secrets: &[String], tolerance_seconds: i64, now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            // A v1 that is not hex cannot match; it does not spoil the others.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_seconds {
        return Err(SignatureError::Stale);
    }
    let signed = |secret: &String| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    };
    // `Mac::verify_slice` compares in constant time.
    if secrets.iter().any(|secret| signatures.iter().any(|signature| signed(secret).verify_slice(signature).is_ok())) {
        return Ok(());
    }
    Err(SignatureError::Mismatch)
}

/// The header Stripe would send for `body` at `timestamp` under `secret`: for tests, and for
/// trying the endpoint by hand (`stripe trigger` does it for real).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const NOW: i64 = 1_790_000_000;

    #[test]
    fn a_signed_body_verifies_within_the_tolerance_and_nothing_else_does() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let header = sign(body, SECRET, NOW);
        let secrets = vec![SECRET.to_string()];
        assert_eq!(verify(Some(&header), body, &secrets, 300, NOW + 299), Ok(()));
        assert_eq!(verify(Some(&header), body, &secrets, 300, NOW + 301), Err(SignatureError::Stale));
        assert_eq!(verify(Some(&header), body, &secrets, 300, NOW - 301), Err(SignatureError::Stale));
        // One byte of the body changed, or another secret.
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2","type":"payment_intent.succeeded"}"#, &secrets, 300, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(Some(&header), body, &["whsec_other".to_string()], 300, NOW), Err(SignatureError::Mismatch));
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(verify(Some(&moved), body, &secrets, 300, NOW), Err(SignatureError::Mismatch));
        assert_eq!(verify(None, body, &secrets, 300, NOW), Err(SignatureError::Missing));
        assert_eq!(verify(Some("garbage"), body, &secrets, 300, NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(Some(&format!("t={NOW}")), body, &secrets, 300, NOW), Err(SignatureError::Malformed));
    }

    #[test]
    fn during_a_rotation_any_v1_under_any_configured_secret_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let old = sign(body, "whsec_old", NOW);
        let new = sign(body, "whsec_new", NOW);
        let old_v1 = old.split_once(",v1=").unwrap().1;
        // Stripe sends both signatures, plus a legacy v0 that is ignored.
        let both = format!("{new},v1={old_v1},v0=deadbeef");
        assert_eq!(verify(Some(&both), body, &["whsec_old".to_string()], 300, NOW), Ok(()));
        assert_eq!(verify(Some(&both), body, &["whsec_new".to_string()], 300, NOW), Ok(()));
        assert_eq!(verify(Some(&old), body, &["whsec_new".to_string(), "whsec_old".to_string()], 300, NOW), Ok(()));
        assert_eq!(verify(Some(&both), body, &["whsec_third".to_string()], 300, NOW), Err(SignatureError::Mismatch));
        // A v0 alone is not a signature we accept.
        assert_eq!(verify(Some(&format!("t={NOW},v0=00")), body, &["whsec_old".to_string()], 300, NOW), Err(SignatureError::Malformed));
    }
}
