//! AdMob's rewarded-ad server-side verification (SSV). AdMob calls our endpoint with a GET whose
//! query is `ad_network=..&ad_unit=..[&custom_data=..]&reward_amount=..&reward_item=..
//! &timestamp=..&transaction_id=..[&user_id=..]&signature=..&key_id=..`: the parameters in
//! alphabetical order, then always `signature` and `key_id`, last and in that order.
//!
//! - The signed content is the query up to, not including, `&signature=`, *percent-decoded*
//!   (Tink's `RewardedAdsVerifier`, the reference implementation, reads it through Java's
//!   `URI.getQuery()`, which decodes `%XX` but leaves `+` alone; verifiers that hash the raw
//!   text fail on a `reward_item` with a space or a `custom_data` with JSON in it).
//! - `signature` is web-safe base64 (padding optional) of a DER-encoded ECDSA signature over
//!   that content with P-256 and SHA-256; `key_id` picks the public key.
//! - The keys are published as `{"keys":[{"keyId":N,"pem":"-----BEGIN PUBLIC KEY-----..",
//!   "base64":"<SubjectPublicKeyInfo, DER, base64>"}]}` at `DEFAULT_KEYS_URL`; Google rotates
//!   them and asks that they be cached no longer than 24 hours.
//!
//! The fields we keep (`user_id`, `transaction_id`, `timestamp`, in milliseconds) are read from
//! the raw, still encoded content, where `&` and `=` separate parameters unambiguously: a
//! `custom_data` of `x&user_id=victim` arrives as `x%26user_id%3Dvictim` and stays inside
//! `custom_data`. `reward_amount` and `reward_item` are the ad unit's settings and are not used:
//! the program decides the reward.
//!
//! The keys are kept by `KeyCache`: fetched on first use, again once they are 24 hours old, and
//! when a callback names a key id the cache does not hold, but never more than once per
//! `refresh_interval`, so callbacks with forged key ids cannot make us fetch repeatedly. Where
//! the keys come from (the URL, a file) is a `KeySource` (`super::key_sources`); everything
//! here is decided without I/O of its own and takes `now`.

use super::{ADMOB_NETWORK, AdError, AdVerifier, VerifiedReward};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use futures_util::future::BoxFuture;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Google publishes the production verifier keys.
pub const DEFAULT_KEYS_URL: &str = "https://www.gstatic.com/admob/reward/verifier-keys.json";
/// How long a fetched key set is used before it is fetched again (Google: at most 24 hours).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The least time between two fetches of the keys, whatever asks for them (`admob_keys_refresh_seconds`).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// The largest key document read (the real one is under 2 KB).
pub const MAX_KEYS_BYTES: usize = 64 * 1024;
/// The most keys kept from one document.
pub const MAX_KEYS: usize = 64;
/// The longest `signature` parameter read (a DER P-256 signature is at most 72 bytes: 96
/// characters of base64).
const MAX_SIGNATURE_CHARS: usize = 128;

/// Web-safe base64, with or without padding (AdMob sends none; a proxy might add it).
const WEB_SAFE: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// A callback taken apart: what AdMob signed, and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCallback<'q> {
    /// The query before `&signature=`, as received (still percent-encoded): the fields are read
    /// from it.
    pub raw_content: &'q str,
    /// `raw_content` percent-decoded: the bytes the signature covers.
    pub content: Vec<u8>,
    pub signature: Signature,
    pub key_id: u64,
}

/// Splits a callback's raw query into its signed content, signature and key id. `signature`
/// and `key_id` must be the last two parameters, in that order, as AdMob sends them; anything
/// else (missing, reordered, a parameter after `key_id`, a signature that is not web-safe
/// base64 of a DER signature) is `AdError::Unsigned`.
pub fn split(query: &str) -> Result<SignedCallback<'_>, AdError> {
    let (raw_content, rest) = query.rsplit_once("&signature=").ok_or(AdError::Unsigned)?;
    let (signature, key_id) = rest.split_once("&key_id=").ok_or(AdError::Unsigned)?;
    if raw_content.is_empty() || signature.len() > MAX_SIGNATURE_CHARS {
        return Err(AdError::Unsigned);
    }
    // Digits only: `u64::from_str` would take a leading `+`, and nothing may follow the id.
    if key_id.is_empty() || key_id.len() > 20 || !key_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AdError::Unsigned);
    }
    let key_id = key_id.parse().map_err(|_| AdError::Unsigned)?;
    let der = WEB_SAFE.decode(signature).map_err(|_| AdError::Unsigned)?;
    let signature = Signature::from_der(&der).map_err(|_| AdError::Unsigned)?;
    let content = percent_encoding::percent_decode_str(raw_content).collect();
    Ok(SignedCallback { raw_content, content, signature, key_id })
}

/// Checks `callback`'s signature with `key` and reads the reward from its content.
pub fn check(key: &VerifyingKey, callback: &SignedCallback<'_>) -> Result<VerifiedReward, AdError> {
    key.verify(&callback.content, &callback.signature).map_err(|_| AdError::BadSignature)?;
    parse_reward(callback.raw_content)
}

/// The reward in a verified content. Each field we keep must appear exactly once: a repeated
/// `user_id` would leave it to the reader which one counts.
fn parse_reward(raw_content: &str) -> Result<VerifiedReward, AdError> {
    let param = |name: &'static str| -> Result<String, AdError> {
        let mut values = form_urlencoded::parse(raw_content.as_bytes()).filter(|(key, _)| key == name).map(|(_, value)| value);
        let value = values.next().ok_or(AdError::Missing(name))?;
        if values.next().is_some() || value.is_empty() || value.chars().count() > 128 {
            return Err(AdError::Malformed(name));
        }
        Ok(value.into_owned())
    };
    let millis: i64 = param("timestamp")?.parse().map_err(|_| AdError::Malformed("timestamp"))?;
    Ok(VerifiedReward {
        network: ADMOB_NETWORK,
        transaction_id: param("transaction_id")?,
        account: param("user_id")?,
        timestamp: millis.div_euclid(1000),
        custom_data: super::claim_id(raw_content),
    })
}

/// The verifier keys of one published document, by key id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifierKeys {
    keys: HashMap<u64, VerifyingKey>,
}

#[derive(serde::Deserialize)]
struct KeysDocument {
    keys: Vec<KeyEntry>,
}

#[derive(serde::Deserialize)]
struct KeyEntry {
    #[serde(rename = "keyId")]
    key_id: u64,
    #[serde(default)]
    pem: Option<String>,
    #[serde(default)]
    base64: Option<String>,
}

impl VerifierKeys {
    /// Reads a key document. A key that is not P-256 (Google has published others beside them)
    /// or does not parse is skipped; a document with no usable key at all is an error, as is one
    /// larger than `MAX_KEYS_BYTES` or with more than `MAX_KEYS` keys.
    pub fn parse(json: &str) -> Result<VerifierKeys, String> {
        if json.len() > MAX_KEYS_BYTES {
            return Err(format!("the key document is larger than {MAX_KEYS_BYTES} bytes"));
        }
        let document: KeysDocument = serde_json::from_str(json).map_err(|e| format!("not a key document: {e}"))?;
        if document.keys.len() > MAX_KEYS {
            return Err(format!("the key document lists {} keys, more than {MAX_KEYS}", document.keys.len()));
        }
        let mut keys = HashMap::new();
        for entry in document.keys {
            let key = match (&entry.base64, &entry.pem) {
                (Some(der), _) => STANDARD.decode(der.trim()).ok().and_then(|der| VerifyingKey::from_public_key_der(&der).ok()),
                (None, Some(pem)) => VerifyingKey::from_public_key_pem(pem).ok(),
                (None, None) => None,
            };
            match key {
                Some(key) => {
                    keys.insert(entry.key_id, key);
                }
                None => tracing::debug!(admob.key_id = entry.key_id, "skipped a verifier key that is not a P-256 public key"),
            }
        }
        if keys.is_empty() {
            return Err("the key document holds no P-256 public key".into());
        }
        Ok(VerifierKeys { keys })
    }

    pub fn get(&self, key_id: u64) -> Option<&VerifyingKey> {
        self.keys.get(&key_id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where the key document comes from (`super::key_sources`: the URL, a file; a fake in tests).
pub trait KeySource: Send + Sync {
    /// The key document's text.
    fn fetch(&self) -> BoxFuture<'_, Result<String, String>>;
    /// What to name in logs: the URL or the path.
    fn describe(&self) -> String;
}

#[derive(Default)]
struct CacheState {
    keys: Option<Arc<VerifierKeys>>,
    /// When `keys` were fetched.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not: the refresh interval counts from it.
    attempted_at: Option<Instant>,
}

/// The verifier keys, fetched from their source as described in the module's documentation.
pub struct KeyCache {
    source: Box<dyn KeySource>,
    refresh_interval: Duration,
    state: tokio::sync::Mutex<CacheState>,
}

impl KeyCache {
    pub fn new(source: Box<dyn KeySource>, refresh_interval: Duration) -> KeyCache {
        KeyCache { source, refresh_interval, state: tokio::sync::Mutex::new(CacheState::default()) }
    }

    /// A cache that starts with `keys`, fetched at `now` (a key file read at start).
    pub fn preloaded(source: Box<dyn KeySource>, refresh_interval: Duration, keys: VerifierKeys, now: Instant) -> KeyCache {
        let state = CacheState { keys: Some(Arc::new(keys)), fetched_at: Some(now), attempted_at: Some(now) };
        KeyCache { source, refresh_interval, state: tokio::sync::Mutex::new(state) }
    }

    /// The key `key_id`, fetching the document first if the cache has none, if it is older than
    /// `KEYS_MAX_AGE`, or if it lacks `key_id`, and the last fetch was tried at least
    /// `refresh_interval` before `now`. Concurrent callers wait for one fetch rather than each
    /// making their own. A failed fetch keeps the keys there were (they stay Google's keys;
    /// refusing every callback while the key server is unreachable would lose rewards).
    pub async fn key(&self, key_id: u64, now: Instant) -> Result<VerifyingKey, AdError> {
        let mut state = self.state.lock().await;
        let fresh = state.fetched_at.is_some_and(|at| now.saturating_duration_since(at) < KEYS_MAX_AGE);
        if fresh && let Some(key) = state.keys.as_ref().and_then(|keys| keys.get(key_id)) {
            return Ok(*key);
        }
        let may_fetch = state.attempted_at.is_none_or(|at| now.saturating_duration_since(at) >= self.refresh_interval);
        if may_fetch {
            state.attempted_at = Some(now);
            let source = self.source.describe();
            match self.source.fetch().await.and_then(|json| VerifierKeys::parse(&json)) {
                Ok(keys) => {
                    tracing::info!(admob.keys = keys.len(), admob.source = %source, "fetched the AdMob verifier keys");
                    state.keys = Some(Arc::new(keys));
                    state.fetched_at = Some(now);
                }
                Err(e) => tracing::warn!(error = %e, admob.source = %source, "could not fetch the AdMob verifier keys"),
            }
        }
        match &state.keys {
            None => Err(AdError::KeysUnavailable),
            Some(keys) => keys.get(key_id).copied().ok_or(AdError::UnknownKey(key_id)),
        }
    }
}

/// Verifies AdMob's callbacks with the keys of a `KeyCache`.
pub struct AdMobVerifier {
    keys: KeyCache,
    /// The monotonic clock the refresh interval is measured on (a fake one in tests).
    now: Arc<dyn Fn() -> Instant + Send + Sync>,
}

impl AdMobVerifier {
    pub fn new(keys: KeyCache) -> AdMobVerifier {
        AdMobVerifier { keys, now: Arc::new(Instant::now) }
    }

    /// With a clock of the caller's, so a test can move past the refresh interval.
    pub fn with_clock(keys: KeyCache, now: Arc<dyn Fn() -> Instant + Send + Sync>) -> AdMobVerifier {
        AdMobVerifier { keys, now }
    }

    pub async fn check(&self, query: &str) -> Result<VerifiedReward, AdError> {
        // A callback that is not even shaped like a signed one never reaches the keys.
        let callback = split(query)?;
        let key = self.keys.key(callback.key_id, (self.now)()).await?;
        check(&key, &callback)
    }
}

impl AdVerifier for AdMobVerifier {
    fn verify<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<VerifiedReward, AdError>> {
        Box::pin(self.check(query))
    }
}

/// Signs callbacks as AdMob would, with a key made on the spot: for tests and for trying an
/// integration locally (`keys_document` gives the document to serve or to put in a key file).
pub struct TestSigner {
    pub key_id: u64,
    key: p256::ecdsa::SigningKey,
}

impl TestSigner {
    pub fn random(key_id: u64) -> TestSigner {
        TestSigner { key_id, key: p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng) }
    }

    /// `unsigned_query` followed by `&signature=..&key_id=..`, the signature over its
    /// percent-decoded form.
    pub fn sign(&self, unsigned_query: &str) -> String {
        use p256::ecdsa::signature::Signer as _;
        let content: Vec<u8> = percent_encoding::percent_decode_str(unsigned_query).collect();
        let signature: Signature = self.key.sign(&content);
        let signature = general_purpose::URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes());
        format!("{unsigned_query}&signature={signature}&key_id={}", self.key_id)
    }

    /// This key as an entry of the published document.
    pub fn key_entry(&self) -> serde_json::Value {
        use p256::pkcs8::EncodePublicKey;
        let public = self.key.verifying_key();
        let der = public.to_public_key_der().expect("a P-256 key encodes");
        let pem = public.to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("a P-256 key encodes");
        serde_json::json!({ "keyId": self.key_id, "pem": pem, "base64": STANDARD.encode(der.as_bytes()) })
    }

    /// The document Google would publish with these keys.
    pub fn keys_document(signers: &[&TestSigner]) -> String {
        serde_json::json!({ "keys": signers.iter().map(|s| s.key_entry()).collect::<Vec<_>>() }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW_MS: i64 = 1_790_000_000_123;

    fn unsigned(user: &str, transaction: &str) -> String {
        format!(
            "ad_network=5450213213286189855&ad_unit=1234567890&custom_data=%7B%22level%22%3A3%7D&reward_amount=10\
             &reward_item=Gold%20coins&timestamp={NOW_MS}&transaction_id={transaction}&user_id={user}"
        )
    }

    fn keys_of(signers: &[&TestSigner]) -> VerifierKeys {
        VerifierKeys::parse(&TestSigner::keys_document(signers)).unwrap()
    }

    fn verify(keys: &VerifierKeys, query: &str) -> Result<VerifiedReward, AdError> {
        let callback = split(query)?;
        let key = keys.get(callback.key_id).ok_or(AdError::UnknownKey(callback.key_id))?;
        check(key, &callback)
    }

    #[test]
    fn a_signed_callback_verifies_and_gives_the_reward() {
        let google = TestSigner::random(3_335_741_209);
        let keys = keys_of(&[&google]);
        let query = google.sign(&unsigned("user%40example.com", "18fa792de1bca816048293fc71035638"));
        let reward = verify(&keys, &query).unwrap();
        assert_eq!(
            reward,
            VerifiedReward {
                network: ADMOB_NETWORK,
                transaction_id: "18fa792de1bca816048293fc71035638".into(),
                account: "user@example.com".into(),
                timestamp: NOW_MS / 1000,
                // Short printable custom data may serve as the app's claim id.
                custom_data: Some(r#"{"level":3}"#.into()),
            }
        );
    }

    #[test]
    fn the_signature_covers_the_decoded_query() {
        // What Tink verifies: `%20` and `%7B` decoded, so the raw text is not what was signed.
        let google = TestSigner::random(7);
        let query = google.sign(&unsigned("alice", "tx-1"));
        let callback = split(&query).unwrap();
        let text = String::from_utf8(callback.content.clone()).unwrap();
        assert!(text.contains("custom_data={\"level\":3}&") && text.contains("reward_item=Gold coins&"), "{text}");
        assert!(!text.contains("signature"), "the signature and key id are not signed");
        // The same content encoded differently (`%41` for `A`) still verifies: it is the decoded
        // bytes that are signed.
        let reencoded = query.replace("reward_item=Gold", "reward_item=G%6Fld");
        assert!(verify(&keys_of(&[&google]), &reencoded).is_ok());
    }

    #[test]
    fn a_tampered_callback_does_not_verify() {
        let google = TestSigner::random(1);
        let keys = keys_of(&[&google]);
        let query = google.sign(&unsigned("alice", "tx-1"));
        for (what, tampered) in [
            ("user", query.replace("user_id=alice", "user_id=mallory")),
            ("transaction", query.replace("tx-1", "tx-2")),
            ("timestamp", query.replace(&NOW_MS.to_string(), &(NOW_MS + 1).to_string())),
            ("a parameter dropped", query.replace("reward_amount=10&", "")),
            ("a parameter added", query.replacen("ad_network=", "user_id=mallory&ad_network=", 1)),
            ("custom data", query.replace("%22level%22%3A3", "%22level%22%3A4")),
        ] {
            assert_eq!(verify(&keys, &tampered), Err(AdError::BadSignature), "{what}");
        }
        let impostor = TestSigner::random(1);
        assert_eq!(verify(&keys, &impostor.sign(&unsigned("alice", "tx-1"))), Err(AdError::BadSignature), "another key, same id");
    }

    #[test]
    fn reordered_parameters_do_not_verify() {
        let google = TestSigner::random(1);
        let keys = keys_of(&[&google]);
        let query = google.sign("ad_network=1&timestamp=1790000000000&transaction_id=t&user_id=alice");
        // The same parameters in another order are other bytes: not what AdMob signed.
        let (signed, tail) = query.split_once("&signature=").unwrap();
        let mut parameters: Vec<&str> = signed.split('&').collect();
        parameters.reverse();
        let reordered = format!("{}&signature={tail}", parameters.join("&"));
        assert_eq!(verify(&keys, &reordered), Err(AdError::BadSignature));
        // `key_id` before `signature`, or anything after `key_id`: not AdMob's layout.
        let (signature, key_id) = tail.split_once("&key_id=").unwrap();
        assert_eq!(verify(&keys, &format!("{signed}&key_id={key_id}&signature={signature}")), Err(AdError::Unsigned));
        assert_eq!(verify(&keys, &format!("{query}&user_id=mallory")), Err(AdError::Unsigned));
        assert_eq!(verify(&keys, &format!("signature={signature}&key_id={key_id}")), Err(AdError::Unsigned), "nothing signed");
    }

    #[test]
    fn malformed_signatures_and_key_ids_are_unsigned() {
        let google = TestSigner::random(1);
        let keys = keys_of(&[&google]);
        let content = unsigned("alice", "tx-1");
        for bad in [
            format!("{content}&signature=not-base64!&key_id=1"),
            format!("{content}&signature=MEUCIQ&key_id=1"),
            format!("{content}&signature=&key_id=1"),
            format!("{content}&signature={}&key_id=1", "A".repeat(200)),
        ] {
            assert_eq!(verify(&keys, &bad), Err(AdError::Unsigned), "{bad}");
        }
        let signed = google.sign(&content);
        for key_id in ["", "+1", "-1", "1x", "18446744073709551616", "1&x=2"] {
            let bad = signed.replace("&key_id=1", &format!("&key_id={key_id}"));
            assert_eq!(verify(&keys, &bad), Err(AdError::Unsigned), "key_id={key_id}");
        }
        assert_eq!(verify(&keys, &content), Err(AdError::Unsigned), "no signature at all");
        // Padding is accepted: the signature is the same bytes.
        let (head, key) = signed.rsplit_once("&key_id=").unwrap();
        let (_, signature) = head.rsplit_once("&signature=").unwrap();
        let padded = format!("{head}{}&key_id={key}", "=".repeat((4 - signature.len() % 4) % 4));
        assert!(verify(&keys, &padded).is_ok(), "{padded}");
    }

    #[test]
    fn a_wrong_or_unknown_key_id_does_not_verify() {
        let first = TestSigner::random(1);
        let second = TestSigner::random(2);
        let keys = keys_of(&[&first, &second]);
        let query = first.sign(&unsigned("alice", "tx-1"));
        assert!(verify(&keys, &query).is_ok());
        assert_eq!(verify(&keys, &query.replace("&key_id=1", "&key_id=2")), Err(AdError::BadSignature), "the other published key");
        assert_eq!(verify(&keys, &query.replace("&key_id=1", "&key_id=99")), Err(AdError::UnknownKey(99)));
    }

    #[test]
    fn high_s_signatures_verify() {
        // Java's signer does not normalize `s`; both forms of one signature must verify.
        let google = TestSigner::random(1);
        let keys = keys_of(&[&google]);
        let query = google.sign(&unsigned("alice", "tx-1"));
        let callback = split(&query).unwrap();
        let (r, s) = callback.signature.split_scalars();
        let flipped = Signature::from_scalars(r, -s).unwrap();
        assert_ne!(flipped, callback.signature);
        let der = general_purpose::URL_SAFE_NO_PAD.encode(flipped.to_der().as_bytes());
        let (content, _) = query.split_once("&signature=").unwrap();
        assert!(verify(&keys, &format!("{content}&signature={der}&key_id=1")).is_ok());
    }

    #[test]
    fn the_fields_come_from_the_encoded_content() {
        let google = TestSigner::random(1);
        let keys = keys_of(&[&google]);
        // An app that puts `&user_id=victim` into its custom data cannot redirect the reward.
        let query =
            google.sign(&format!("ad_network=1&custom_data=x%26user_id%3Dvictim&timestamp={NOW_MS}&transaction_id=t&user_id=alice"));
        assert_eq!(verify(&keys, &query).unwrap().account, "alice");
        let twice = google.sign(&format!("ad_network=1&timestamp={NOW_MS}&transaction_id=t&user_id=alice&user_id=bob"));
        assert_eq!(verify(&keys, &twice), Err(AdError::Malformed("user_id")));
        let anonymous = google.sign(&format!("ad_network=1&timestamp={NOW_MS}&transaction_id=t"));
        assert_eq!(verify(&keys, &anonymous), Err(AdError::Missing("user_id")), "the app must set a user id");
        let no_time = google.sign("ad_network=1&transaction_id=t&user_id=alice");
        assert_eq!(verify(&keys, &no_time), Err(AdError::Missing("timestamp")));
        let bad_time = google.sign("ad_network=1&timestamp=soon&transaction_id=t&user_id=alice");
        assert_eq!(verify(&keys, &bad_time), Err(AdError::Malformed("timestamp")));
    }

    #[test]
    fn a_callback_signed_by_openssl_verifies() {
        // Made outside this code (README, "testing locally"): `openssl ecparam -name prime256v1
        // -genkey`, the public key as SPKI DER in base64, and `openssl dgst -sha256 -sign` over
        // the percent-decoded query, web-safe base64 without padding.
        let document = r#"{"keys":[{"keyId":1,"base64":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErxZ2fajCEX51BusFZiZQJsJjTACn7ivCgaHKrjTy61rQ07SGPl+1D7mVRhW37oBM6LWE84FlggkdVtwhJ/VGMA=="}]}"#;
        let query = "ad_network=5450213213286189855&ad_unit=2747237135&custom_data=%7B%22a%22%3A1%7D&reward_amount=1\
                     &reward_item=Bonus%20credits&timestamp=1790000000123&transaction_id=openssl-1&user_id=watcher\
                     &signature=MEQCIFRR4-EUciCOQlfeBATUg3wrI_Nen-CWW3xPr2XpLa2bAiAz4-c_JYmAYTuFiU-di9UN8xRqfTt_KNGiR4YL4dlmuw&key_id=1";
        let keys = VerifierKeys::parse(document).unwrap();
        let reward = verify(&keys, query).unwrap();
        assert_eq!((reward.account.as_str(), reward.transaction_id.as_str(), reward.timestamp), ("watcher", "openssl-1", 1_790_000_000));
        assert_eq!(verify(&keys, &query.replace("openssl-1", "openssl-2")), Err(AdError::BadSignature));
    }

    #[test]
    fn key_documents_are_read_like_googles() {
        // Google's document has carried a key on another curve beside the P-256 ones (Tink's
        // example): it is skipped, not fatal.
        let google = TestSigner::random(1_916_455_855);
        let other_curve = serde_json::json!({
            "keyId": 3_901_585_526_u64,
            "pem": "-----BEGIN PUBLIC KEY-----\nMFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEtxg2BsK/fllIeADtLspezS6YfHFWXZ8tiJncm8LDBa/NxEC84akdWbWDCUrMMGIV27/3/e7UuKSEonjGvaDUsw==\n-----END PUBLIC KEY-----",
            "base64": "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEtxg2BsK/fllIeADtLspezS6YfHFWXZ8tiJncm8LDBa/NxEC84akdWbWDCUrMMGIV27/3/e7UuKSEonjGvaDUsw=="
        });
        let pem_only = {
            let mut entry = TestSigner::random(5).key_entry();
            entry.as_object_mut().unwrap().remove("base64");
            entry
        };
        let document = serde_json::json!({ "keys": [google.key_entry(), other_curve, pem_only] }).to_string();
        let keys = VerifierKeys::parse(&document).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.get(1_916_455_855).is_some() && keys.get(5).is_some() && keys.get(3_901_585_526).is_none());
        assert!(VerifierKeys::parse(r#"{"keys":[]}"#).is_err(), "no key");
        assert!(VerifierKeys::parse("<html>").is_err());
        assert!(VerifierKeys::parse(&format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(MAX_KEYS_BYTES))).is_err(), "too large");
    }

    /// What the fake key server answers now.
    type Document = Arc<Mutex<Result<String, String>>>;

    /// A key source that counts its fetches and serves whatever document it holds now.
    struct Counting {
        document: Document,
        fetches: Arc<AtomicUsize>,
    }

    impl KeySource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<String, String>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let document = self.document.lock().unwrap().clone();
            Box::pin(async move { document })
        }

        fn describe(&self) -> String {
            "counting".into()
        }
    }

    fn counting(document: String) -> (KeyCache, Document, Arc<AtomicUsize>) {
        let document = Arc::new(Mutex::new(Ok(document)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let source = Counting { document: document.clone(), fetches: fetches.clone() };
        (KeyCache::new(Box::new(source), DEFAULT_REFRESH_INTERVAL), document, fetches)
    }

    #[tokio::test]
    async fn an_unknown_key_id_refreshes_the_keys_once_per_interval() {
        let first = TestSigner::random(1);
        let second = TestSigner::random(2);
        let (cache, document, fetches) = counting(TestSigner::keys_document(&[&first]));
        let start = Instant::now();
        let fetched = || fetches.load(Ordering::SeqCst);

        // The first use fetches; known keys then cost nothing.
        assert!(cache.key(1, start).await.is_ok());
        assert!(cache.key(1, start + Duration::from_secs(10)).await.is_ok());
        assert_eq!(fetched(), 1);

        // Google rotates in key 2. Within the interval of the last fetch, an unknown id fetches
        // nothing, whoever sends it.
        *document.lock().unwrap() = Ok(TestSigner::keys_document(&[&first, &second]));
        assert_eq!(cache.key(2, start + Duration::from_secs(60)).await, Err(AdError::UnknownKey(2)));
        assert_eq!(fetched(), 1);

        // Past the interval: the first unknown id fetches once, and the new key is there.
        let later = start + DEFAULT_REFRESH_INTERVAL + Duration::from_secs(1);
        assert!(cache.key(2, later).await.is_ok());
        assert_eq!(fetched(), 2);

        // Forged ids, however many and however different, fetch once per interval.
        for forged in 100..200 {
            assert_eq!(cache.key(forged, later + Duration::from_secs(1)).await, Err(AdError::UnknownKey(forged)));
        }
        assert_eq!(fetched(), 2, "the refresh just made counts");
        let next = later + DEFAULT_REFRESH_INTERVAL;
        for forged in 200..300 {
            assert_eq!(cache.key(forged, next).await, Err(AdError::UnknownKey(forged)));
        }
        assert_eq!(fetched(), 3, "exactly one refresh in the next interval");
        assert!(cache.key(1, next).await.is_ok() && cache.key(2, next).await.is_ok(), "known keys still verify");
        assert_eq!(fetched(), 3);
    }

    #[tokio::test]
    async fn concurrent_unknown_ids_share_one_fetch() {
        let first = TestSigner::random(1);
        let (cache, _, fetches) = counting(TestSigner::keys_document(&[&first]));
        let now = Instant::now();
        let lookups = (0..50).map(|id| cache.key(id, now));
        let results = futures_util::future::join_all(lookups).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keys_are_fetched_again_after_a_day_and_kept_when_that_fails() {
        let first = TestSigner::random(1);
        let (cache, document, fetches) = counting(TestSigner::keys_document(&[&first]));
        let start = Instant::now();
        assert!(cache.key(1, start).await.is_ok());
        assert!(cache.key(1, start + KEYS_MAX_AGE - Duration::from_secs(1)).await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A day old: fetched again before use; the key server is down, the old keys still serve.
        *document.lock().unwrap() = Err("connection refused".into());
        assert!(cache.key(1, start + KEYS_MAX_AGE).await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert!(cache.key(1, start + KEYS_MAX_AGE + Duration::from_secs(1)).await.is_ok(), "no new try within the interval");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn without_any_keys_nothing_verifies_and_fetches_stay_bounded() {
        let (cache, document, fetches) = counting(String::new());
        *document.lock().unwrap() = Err("timed out".into());
        let start = Instant::now();
        assert_eq!(cache.key(1, start).await, Err(AdError::KeysUnavailable));
        assert_eq!(cache.key(1, start + Duration::from_secs(1)).await, Err(AdError::KeysUnavailable));
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "a failed fetch counts toward the interval too");
        let google = TestSigner::random(1);
        *document.lock().unwrap() = Ok(TestSigner::keys_document(&[&google]));
        assert!(cache.key(1, start + DEFAULT_REFRESH_INTERVAL).await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_verifier_checks_before_it_fetches() {
        let google = TestSigner::random(1);
        let (cache, _, fetches) = counting(TestSigner::keys_document(&[&google]));
        let verifier = AdMobVerifier::new(cache);
        assert_eq!(verifier.check("user_id=a&transaction_id=t&timestamp=1").await, Err(AdError::Unsigned));
        assert_eq!(fetches.load(Ordering::SeqCst), 0, "an unsigned callback costs no fetch");
        let reward = verifier.verify(&google.sign(&unsigned("alice", "tx-1"))).await.unwrap();
        assert_eq!((reward.account.as_str(), reward.network), ("alice", ADMOB_NETWORK));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
