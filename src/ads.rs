//! Server-side verification of ad rewards. Ad networks call our endpoint when a user finished a
//! rewarded ad; each signs differently, so verification sits behind a small trait. Shipped:
//! HMAC-SHA256 over the query string, the layout several networks use (here), and AdMob's ECDSA
//! P-256 signatures checked with the verifier keys Google publishes (`admob`, with the sources
//! of those keys in `key_sources`).

pub mod admob;
pub mod key_sources;

use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The network a verified reward is stored under (`ad_rewards.network`): a transaction id is
/// unique within its network.
pub const HMAC_NETWORK: &str = "hmac";
pub const ADMOB_NETWORK: &str = "admob";
/// Every network a stored reward may name, for the claim that redeems it by transaction id.
pub const NETWORKS: [&str; 2] = [HMAC_NETWORK, ADMOB_NETWORK];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReward {
    /// Which network's signature vouched for it (`HMAC_NETWORK`, `ADMOB_NETWORK`).
    pub network: &'static str,
    pub transaction_id: String,
    /// The product's user id the network was given when the ad was shown.
    pub account: String,
    /// Unix seconds at which the network says the ad was completed.
    pub timestamp: i64,
    /// What the app gave the ad as `custom_data`, when it is usable as a claim's id (1 to 128
    /// printable ASCII characters, once): the app chooses it before showing the ad and claims
    /// with it, since AdMob tells only the server the transaction id.
    pub custom_data: Option<String>,
}

/// A callback's `custom_data`, if it can serve as a claim id; anything else an app puts there
/// (JSON, long text) is not an error, only not a claim id.
pub(crate) fn claim_id(signed: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(signed.as_bytes()).filter(|(key, _)| key == "custom_data").map(|(_, value)| value);
    let value = values.next()?;
    let usable = values.next().is_none() && (1..=128).contains(&value.len()) && value.chars().all(|c| c.is_ascii_graphic());
    usable.then(|| value.into_owned())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdError {
    #[error("the callback is not signed, or the signature is malformed")]
    Unsigned,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the callback lacks {0}")]
    Missing(&'static str),
    #[error("the callback's {0} is malformed")]
    Malformed(&'static str),
    /// Signed with a key the network has not published (or not yet, and we fetched its keys
    /// too recently to look again).
    #[error("the callback names verifier key {0}, which is not among the network's published keys")]
    UnknownKey(u64),
    /// The network's verifier keys could not be had (never fetched successfully): nothing can be
    /// verified until they are.
    #[error("the network's verifier keys are unavailable")]
    KeysUnavailable,
}

pub trait AdVerifier: Send + Sync {
    /// Checks a callback's raw query string (as received, still percent-encoded). Async because
    /// a verifier may have to fetch the network's keys first; it is called before any database
    /// work, never inside a transaction.
    fn verify<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<VerifiedReward, AdError>>;
}

/// `...&signature=<hex HMAC-SHA256 of everything before "&signature=">`, with `user_id`,
/// `transaction_id` and `timestamp` among the parameters. The signature must be last, as with
/// AdMob's layout, so that the signed content is exactly what was sent.
pub struct HmacSha256Verifier {
    secret: Vec<u8>,
}

impl HmacSha256Verifier {
    pub fn new(secret: &[u8]) -> HmacSha256Verifier {
        HmacSha256Verifier { secret: secret.to_vec() }
    }

    /// What a network with this secret would send: for tests and for the operator's tooling.
    pub fn sign(&self, unsigned_query: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(unsigned_query.as_bytes());
        format!("{unsigned_query}&signature={}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl HmacSha256Verifier {
    /// `AdVerifier::verify`, which needs nothing but the secret.
    pub fn check(&self, query: &str) -> Result<VerifiedReward, AdError> {
        let (signed, signature) = query.rsplit_once("&signature=").ok_or(AdError::Unsigned)?;
        let signature = hex::decode(signature).map_err(|_| AdError::Unsigned)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(signed.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature).map_err(|_| AdError::BadSignature)?;
        parse_reward(signed)
    }
}

impl AdVerifier for HmacSha256Verifier {
    fn verify<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<VerifiedReward, AdError>> {
        Box::pin(std::future::ready(self.check(query)))
    }
}

/// For local development and integration tests against an ad network's test mode: accepts
/// unsigned callbacks. Anyone who can reach the endpoint can mint rewards with it, so it is
/// chosen only by naming it in the configuration (`ad_verifier = "unsigned-test"`), and the
/// server logs a warning at start.
pub struct UnsignedTestVerifier;

impl UnsignedTestVerifier {
    pub fn check(&self, query: &str) -> Result<VerifiedReward, AdError> {
        let signed = query.rsplit_once("&signature=").map_or(query, |(signed, _)| signed);
        parse_reward(signed)
    }
}

impl AdVerifier for UnsignedTestVerifier {
    fn verify<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<VerifiedReward, AdError>> {
        Box::pin(std::future::ready(self.check(query)))
    }
}

fn parse_reward(signed: &str) -> Result<VerifiedReward, AdError> {
    let param = |name: &'static str| {
        url_param(signed, name)
            .ok_or(AdError::Missing(name))
            .and_then(|v| (!v.is_empty() && v.len() <= 128).then_some(v).ok_or(AdError::Malformed(name)))
    };
    Ok(VerifiedReward {
        network: HMAC_NETWORK,
        transaction_id: param("transaction_id")?,
        account: param("user_id")?,
        timestamp: param("timestamp")?.parse().map_err(|_| AdError::Malformed("timestamp"))?,
        custom_data: claim_id(signed),
    })
}

/// The decoded value of a query parameter.
fn url_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_callbacks_verify_and_tampered_ones_do_not() {
        let network = HmacSha256Verifier::new(b"network-secret");
        let query = network.sign("ad_unit=1&user_id=user%40example.com&transaction_id=tx-1&timestamp=1790000000");
        let reward = network.check(&query).unwrap();
        assert_eq!(
            reward,
            VerifiedReward {
                network: HMAC_NETWORK,
                transaction_id: "tx-1".into(),
                account: "user@example.com".into(),
                timestamp: 1_790_000_000,
                custom_data: None,
            }
        );
        assert_eq!(network.check(&query.replace("tx-1", "tx-2")), Err(AdError::BadSignature));
        assert_eq!(HmacSha256Verifier::new(b"another").check(&query), Err(AdError::BadSignature));
        assert_eq!(network.check("user_id=a&transaction_id=t&timestamp=1"), Err(AdError::Unsigned));
        let missing = network.sign("user_id=a&timestamp=1");
        assert_eq!(network.check(&missing), Err(AdError::Missing("transaction_id")));
    }

    #[test]
    fn the_test_verifier_takes_unsigned_callbacks_but_still_needs_the_fields() {
        let reward = UnsignedTestVerifier.check("user_id=a&transaction_id=t&timestamp=5").unwrap();
        assert_eq!(reward.transaction_id, "t");
        assert_eq!(UnsignedTestVerifier.check("user_id=a&timestamp=5"), Err(AdError::Missing("transaction_id")));
    }
}
