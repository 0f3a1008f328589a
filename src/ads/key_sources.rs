//! Where AdMob's verifier keys come from (`admob::KeySource`): the URL Google publishes them at
//! (or another one, such as a mirror or a test server), or a file, for a deployment that cannot
//! reach Google or wants to pin the keys. Both are bounded in time and size.

use super::admob::{KeySource, MAX_KEYS_BYTES};
use futures_util::future::BoxFuture;
use std::path::PathBuf;
use std::time::Duration;

/// How long one fetch of the keys may take: callbacks wait for it.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys at a URL, fetched with a GET.
pub struct UrlKeySource {
    client: reqwest::Client,
    url: url::Url,
}

impl UrlKeySource {
    pub fn new(url: url::Url) -> Result<UrlKeySource, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // Google serves the keys directly; a redirect elsewhere is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the AdMob keys: {e}"))?;
        Ok(UrlKeySource { client, url })
    }

    async fn get(&self) -> Result<String, String> {
        let mut response = self.client.get(self.url.clone()).send().await.map_err(|e| format!("GET failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the keys failed: {e}"))? {
            if body.len() + chunk.len() > MAX_KEYS_BYTES {
                return Err(format!("the key document is larger than {MAX_KEYS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "the key document is not UTF-8".to_string())
    }
}

impl KeySource for UrlKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.get())
    }

    fn describe(&self) -> String {
        self.url.to_string()
    }
}

/// The keys in a file of the same form as Google's document, read again when a callback names a
/// key it lacks (so a rotation needs a new file, not a restart).
pub struct FileKeySource {
    path: PathBuf,
}

impl FileKeySource {
    pub fn new(path: PathBuf) -> FileKeySource {
        FileKeySource { path }
    }

    /// The file's text, read now (at start, before the server runs).
    pub fn read_now(&self) -> Result<String, String> {
        let length = std::fs::metadata(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?.len();
        if length > MAX_KEYS_BYTES as u64 {
            return Err(format!("{}: larger than {MAX_KEYS_BYTES} bytes", self.path.display()));
        }
        std::fs::read_to_string(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

impl KeySource for FileKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let path = self.path.clone();
            let source = FileKeySource { path };
            tokio::task::spawn_blocking(move || source.read_now()).await.map_err(|e| format!("reading the key file failed: {e}"))?
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
