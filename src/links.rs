//! The links this server hands out: the portal's URL (from `public_url`) and a purchase's checkout
//! URL (from the `checkout_url` template). Both are settings, never built from a request's `Host`
//! header, so a client cannot make the server hand a user a link to another host.

use std::sync::{Arc, OnceLock};
use url::Url;

/// How the portal's user pays for a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// The program's checkout page: this template with the purchase's placeholders filled in.
    External(CheckoutTemplate),
    /// Stripe Checkout (`stripe_secret_key`): each pending purchase has a Checkout Session of
    /// its own, made when it is (`Engine::purchase`), whose page is its `checkoutUrl`.
    Stripe,
    /// Development mode with no checkout page: the portal offers a labelled fake payment
    /// (`simulatePayment`), so the whole flow can be tried without a payment provider.
    Simulated,
    /// Production mode with no checkout page: the product's own app takes the payment and its
    /// backend confirms it; the portal only says so.
    None,
}

/// A checkout URL with placeholders: `{purchase_id}` (required), `{credits}`, `{amount_minor}`,
/// `{currency}`. Each value is percent-encoded where it is put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutTemplate(String);

/// The placeholders a template may use.
const PLACEHOLDERS: [&str; 4] = ["{purchase_id}", "{credits}", "{amount_minor}", "{currency}"];

impl CheckoutTemplate {
    pub fn parse(template: &str) -> Result<CheckoutTemplate, String> {
        if !template.contains("{purchase_id}") {
            return Err("checkout_url must contain {purchase_id}, so the payment can be matched to its purchase".into());
        }
        // Checked with every placeholder filled, as it will be used.
        let sample = PLACEHOLDERS.iter().fold(template.to_string(), |text, p| text.replace(p, "1"));
        if sample.contains('{') || sample.contains('}') {
            return Err(format!("checkout_url has an unknown placeholder; the known ones are {}", PLACEHOLDERS.join(", ")));
        }
        match Url::parse(&sample) {
            Ok(url) if url.scheme() == "https" || url.scheme() == "http" => Ok(CheckoutTemplate(template.to_string())),
            _ => Err("checkout_url must be an absolute http(s) URL".into()),
        }
    }

    /// The URL for one purchase.
    pub fn fill(&self, purchase_id: i64, credits: &str, amount_minor: i64, currency: &str) -> String {
        let encode = |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
        self.0
            .replace("{purchase_id}", &purchase_id.to_string())
            .replace("{credits}", &encode(credits))
            .replace("{amount_minor}", &amount_minor.to_string())
            .replace("{currency}", &encode(currency))
    }
}

/// The configured links, shared by the schema's resolvers.
#[derive(Debug, Clone)]
pub struct Links {
    /// Where users reach this server (`public_url`); set once at start. In development mode
    /// without the setting it is the bound address, so a fresh `credits serve` works.
    public_url: Arc<OnceLock<Url>>,
    pub checkout: Checkout,
}

impl Links {
    pub fn new(public_url: Option<Url>, checkout: Checkout) -> Links {
        let cell = OnceLock::new();
        if let Some(url) = public_url {
            let _ = cell.set(url);
        }
        Links { public_url: Arc::new(cell), checkout }
    }

    /// The public URL if none was configured: the address the server bound (development only;
    /// in production an address seen from inside may not be one users can reach).
    pub fn default_to_bound_address(&self, address: std::net::SocketAddr) {
        if let Ok(url) = Url::parse(&format!("http://{address}")) {
            let _ = self.public_url.set(url);
        }
    }

    /// The portal's URL with `token` in its fragment, or none when no public URL is known. A
    /// fragment never leaves the browser: it reaches no server log, proxy or `Referer`.
    pub fn portal(&self, token: &str) -> Option<String> {
        Some(page(self.public_url.get()?, "portal", &format!("token={token}")))
    }
}

/// The URL of the console with a one-time link's `code` in its fragment, under `public_url`.
pub fn console(public_url: &Url, code: &str) -> String {
    page(public_url, "console", &format!("code={code}"))
}

/// `page` under `public_url` (which may have a path prefix), with `fragment`.
fn page(public_url: &Url, page: &str, fragment: &str) -> String {
    let mut url = public_url.clone();
    let path = format!("{}/{page}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(Some(fragment));
    url.to_string()
}

impl Links {
    /// The configured public URL, if one is known yet.
    pub fn public_url(&self) -> Option<&Url> {
        self.public_url.get()
    }
}

impl Default for Links {
    fn default() -> Links {
        Links::new(None, Checkout::Simulated)
    }
}

/// Parses `public_url`: an absolute http(s) URL, perhaps with a path prefix (a reverse proxy's
/// mount point), with no query or fragment.
pub fn parse_public_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("public_url {text:?}: {e}"))?;
    if !(url.scheme() == "https" || url.scheme() == "http") || url.host().is_none() {
        return Err(format!("public_url {text:?} must be an absolute http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("public_url {text:?} must have no query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_needs_the_purchase_and_only_known_placeholders() {
        assert!(CheckoutTemplate::parse("https://pay.example.com/c").is_err());
        assert!(CheckoutTemplate::parse("https://pay.example.com/c/{purchase_id}?u={user}").is_err());
        assert!(CheckoutTemplate::parse("ftp://pay.example.com/{purchase_id}").is_err());
        assert!(CheckoutTemplate::parse("/relative/{purchase_id}").is_err());
        let template =
            CheckoutTemplate::parse("https://pay.example.com/c/{purchase_id}?n={credits}&p={amount_minor}&c={currency}").unwrap();
        assert_eq!(template.fill(42, "12.5", 1250, "USD"), "https://pay.example.com/c/42?n=12.5&p=1250&c=USD");
    }

    #[test]
    fn the_token_goes_in_the_fragment_under_the_public_path() {
        let links = Links::new(Some(parse_public_url("https://credits.example.com/billing/").unwrap()), Checkout::Simulated);
        assert_eq!(links.portal("abc.def").unwrap(), "https://credits.example.com/billing/portal#token=abc.def");
        let links = Links::new(Some(parse_public_url("https://credits.example.com").unwrap()), Checkout::Simulated);
        assert_eq!(links.portal("t").unwrap(), "https://credits.example.com/portal#token=t");
        assert!(parse_public_url("https://credits.example.com/?a=1").is_err());
        assert!(parse_public_url("credits.example.com").is_err());
    }

    #[test]
    fn without_a_public_url_there_is_no_link_until_the_bound_address_is_known() {
        let links = Links::default();
        assert_eq!(links.portal("t"), None);
        links.default_to_bound_address("127.0.0.1:8080".parse().unwrap());
        assert_eq!(links.portal("t").unwrap(), "http://127.0.0.1:8080/portal#token=t");
    }
}
