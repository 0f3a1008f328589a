//! The per-use catalog: a feature's credits per use at default options, scaled by its options.

use super::rounding::round_once;
use super::{
    MAX_COUNT, MAX_LENGTH_SECONDS, MAX_MULTIPLIER, MAX_PRICE_ENTRIES, MAX_RATE_SCALE, PricingError, check_code, check_name, check_rate,
};
use crate::ledger::Credits;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One priced feature, or one model of a feature: credits per use at default options, and the
/// options that scale that price.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub feature: String,
    /// None for a feature priced without a choice of model.
    #[serde(default)]
    pub model: Option<String>,
    /// What users see: "Carat Video (LTX)".
    pub name: String,
    /// Credits per use at default options.
    pub credits: Decimal,
    /// The feature's model when a request names none (required when a feature has several).
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub count: Option<CountOption>,
    #[serde(default)]
    pub length: Option<LengthOption>,
    #[serde(default)]
    pub resolution: Option<ResolutionOption>,
}

/// How many results one request makes (default 1); the price is multiplied by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountOption {
    pub max: u32,
}

/// A generated length; the price scales linearly with `length / default_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthOption {
    pub default_seconds: u32,
    pub max_seconds: u32,
}

/// Named resolutions, each multiplying the price exactly; `default` is what the base price is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionOption {
    pub default: String,
    pub levels: Vec<ResolutionLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionLevel {
    pub name: String,
    pub multiplier: Decimal,
}

/// A validated catalog: features are unique or split into uniquely named models with exactly one
/// default, and every price and option is in range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

impl Catalog {
    pub fn new(entries: Vec<CatalogEntry>) -> Result<Catalog, String> {
        if entries.len() > MAX_PRICE_ENTRIES {
            return Err(format!("at most {MAX_PRICE_ENTRIES} catalog entries"));
        }
        for entry in &entries {
            let what = entry.label();
            check_code("feature", &entry.feature)?;
            if let Some(model) = &entry.model {
                check_code("model", model)?;
            }
            check_name(&what, &entry.name)?;
            check_rate(&what, entry.credits)?;
            if let Some(count) = entry.count
                && !(1..=MAX_COUNT).contains(&count.max)
            {
                return Err(format!("{what}: count.max must be 1 to {MAX_COUNT}"));
            }
            if let Some(length) = entry.length
                && !(1 <= length.default_seconds
                    && length.default_seconds <= length.max_seconds
                    && length.max_seconds <= MAX_LENGTH_SECONDS)
            {
                return Err(format!("{what}: length needs 1 <= default_seconds <= max_seconds <= {MAX_LENGTH_SECONDS}"));
            }
            if let Some(resolution) = &entry.resolution {
                check_resolution(&what, resolution)?;
            }
            let siblings: Vec<&CatalogEntry> = entries.iter().filter(|e| e.feature == entry.feature).collect();
            if siblings.iter().filter(|e| e.model == entry.model).count() > 1 {
                return Err(format!("{what} is listed twice"));
            }
            if siblings.len() > 1 && entry.model.is_none() {
                return Err(format!("{what}: a feature with several entries needs a model on each"));
            }
            let defaults = siblings.iter().filter(|e| e.default).count();
            if defaults > 1 || (siblings.len() > 1 && defaults == 0) {
                return Err(format!("feature {} needs exactly one default model", entry.feature));
            }
        }
        Ok(Catalog { entries })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn has_feature(&self, feature: &str) -> bool {
        self.entries.iter().any(|e| e.feature == feature)
    }

    /// The entry a request prices: the named model, or the feature's default.
    pub fn entry(&self, feature: &str, model: Option<&str>) -> Result<&CatalogEntry, PricingError> {
        let siblings: Vec<&CatalogEntry> = self.entries.iter().filter(|e| e.feature == feature).collect();
        if siblings.is_empty() {
            return Err(PricingError::UnknownFeature(feature.to_string()));
        }
        let found = match model {
            Some(model) => siblings.iter().find(|e| e.model.as_deref() == Some(model)),
            None => siblings.iter().find(|e| e.default || siblings.len() == 1),
        };
        found
            .copied()
            .ok_or_else(|| PricingError::UnknownModel { feature: feature.to_string(), model: model.unwrap_or_default().to_string() })
    }
}

impl CatalogEntry {
    fn label(&self) -> String {
        match &self.model {
            Some(model) => format!("{}/{model}", self.feature),
            None => self.feature.clone(),
        }
    }
}

fn check_resolution(what: &str, resolution: &ResolutionOption) -> Result<(), String> {
    if resolution.levels.is_empty() || resolution.levels.len() > MAX_PRICE_ENTRIES {
        return Err(format!("{what}: resolution needs 1 to {MAX_PRICE_ENTRIES} levels"));
    }
    for level in &resolution.levels {
        check_code("resolution", &level.name)?;
        if resolution.levels.iter().filter(|l| l.name == level.name).count() > 1 {
            return Err(format!("{what}: resolution {} is listed twice", level.name));
        }
        let multiplier = level.multiplier;
        if multiplier <= Decimal::ZERO || multiplier > Decimal::from(MAX_MULTIPLIER) || multiplier.normalize().scale() > MAX_RATE_SCALE {
            return Err(format!("{what}: resolution {} needs a multiplier in (0, {MAX_MULTIPLIER}]", level.name));
        }
    }
    // The base price is the price at the default resolution.
    if !resolution.levels.iter().any(|l| l.name == resolution.default && l.multiplier == Decimal::ONE) {
        return Err(format!("{what}: default resolution {:?} must be one of the levels, with multiplier 1", resolution.default));
    }
    Ok(())
}

/// The options of a catalog request; None means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuoteOptions {
    pub count: Option<u32>,
    pub length_seconds: Option<u32>,
    pub resolution: Option<String>,
}

/// A price before the request is made, with its breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub feature: String,
    pub model: Option<String>,
    /// The base price first (`factor` = credits per use at default options), then one line per
    /// option the entry has, each multiplying by its `factor`.
    pub lines: Vec<QuoteLine>,
    /// The exact product of every line, rounded once, half up, to the micro-credit.
    pub total: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// "Carat Video (LTX)", "count 2", "length 10 s (default 5 s)", "resolution 1080p".
    pub label: String,
    /// Credits for the base line, a multiplier for an option. A length factor whose default does
    /// not divide a power of ten (10 s / 3 s) is shown to 28 digits; the total uses the exact ratio.
    pub factor: Decimal,
}

/// The price of one request to a catalog feature (`model` None: the feature's default).
pub fn quote(catalog: &Catalog, feature: &str, model: Option<&str>, options: &QuoteOptions) -> Result<Quote, PricingError> {
    let entry = catalog.entry(feature, model)?;
    let unknown = |option: &'static str| PricingError::UnknownOption { feature: feature.to_string(), option };
    let mut lines = vec![QuoteLine { label: entry.name.clone(), factor: entry.credits }];
    // The exact price is one fraction: base x count x multiplier x length / default length.
    let mut factors = vec![entry.credits];
    let mut divisor = 1;
    match (entry.count, options.count) {
        (None, Some(_)) => return Err(unknown("count")),
        (None, None) => {}
        (Some(allowed), count) => {
            let count = count.unwrap_or(1);
            if !(1..=allowed.max).contains(&count) {
                return Err(PricingError::OutOfRange { option: "count", value: count.into(), min: 1, max: allowed.max.into() });
            }
            factors.push(count.into());
            lines.push(QuoteLine { label: format!("count {count}"), factor: count.into() });
        }
    }
    match (entry.length, options.length_seconds) {
        (None, Some(_)) => return Err(unknown("length_seconds")),
        (None, None) => {}
        (Some(allowed), seconds) => {
            let seconds = seconds.unwrap_or(allowed.default_seconds);
            if !(1..=allowed.max_seconds).contains(&seconds) {
                let max = allowed.max_seconds.into();
                return Err(PricingError::OutOfRange { option: "length_seconds", value: seconds.into(), min: 1, max });
            }
            factors.push(seconds.into());
            divisor = u64::from(allowed.default_seconds);
            let factor = (Decimal::from(seconds) / Decimal::from(allowed.default_seconds)).normalize();
            lines.push(QuoteLine { label: format!("length {seconds} s (default {} s)", allowed.default_seconds), factor });
        }
    }
    match (&entry.resolution, &options.resolution) {
        (None, Some(_)) => return Err(unknown("resolution")),
        (None, None) => {}
        (Some(allowed), level) => {
            let name = level.as_deref().unwrap_or(&allowed.default);
            let level = allowed.levels.iter().find(|l| l.name == name).ok_or_else(|| PricingError::UnknownResolution {
                level: name.to_string(),
                levels: allowed.levels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            factors.push(level.multiplier);
            lines.push(QuoteLine { label: format!("resolution {}", level.name), factor: level.multiplier });
        }
    }
    let total = round_once([factors], divisor)?;
    Ok(Quote { feature: entry.feature.clone(), model: entry.model.clone(), lines, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::pricing::test_support::{credits, dec};

    fn entry(feature: &str, model: Option<&str>, price: &str) -> CatalogEntry {
        CatalogEntry {
            feature: feature.into(),
            model: model.map(Into::into),
            name: format!("{feature} {}", model.unwrap_or("")),
            credits: dec(price),
            default: false,
            count: None,
            length: None,
            resolution: None,
        }
    }

    /// Carat's video and image, with option scalings like the preset's.
    fn carat_like() -> Catalog {
        let video = |model: &str, price: &str, default: bool| CatalogEntry {
            name: format!("Carat Video ({model})"),
            default,
            count: Some(CountOption { max: 4 }),
            length: Some(LengthOption { default_seconds: 5, max_seconds: 15 }),
            resolution: Some(ResolutionOption {
                default: "720p".into(),
                levels: vec![
                    ResolutionLevel { name: "480p".into(), multiplier: dec("0.75") },
                    ResolutionLevel { name: "720p".into(), multiplier: dec("1") },
                    ResolutionLevel { name: "1080p".into(), multiplier: dec("1.5") },
                ],
            }),
            ..entry("video", Some(model), price)
        };
        let image = CatalogEntry { count: Some(CountOption { max: 4 }), ..entry("image", Some("carat-image"), "10") };
        Catalog::new(vec![video("ltx", "33", true), video("sora2", "150", false), image, entry("chat", None, "2")]).unwrap()
    }

    fn options(count: Option<u32>, length_seconds: Option<u32>, resolution: Option<&str>) -> QuoteOptions {
        QuoteOptions { count, length_seconds, resolution: resolution.map(Into::into) }
    }

    #[test]
    fn carat_video_at_default_options_is_33() {
        let quote = quote(&carat_like(), "video", Some("ltx"), &QuoteOptions::default()).unwrap();
        assert_eq!(quote.total, Credits::from_whole(33));
        assert_eq!(quote.model.as_deref(), Some("ltx"));
        let labels: Vec<&str> = quote.lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["Carat Video (ltx)", "count 1", "length 5 s (default 5 s)", "resolution 720p"]);
        assert_eq!(quote.lines.iter().map(|l| l.factor).collect::<Vec<_>>(), [dec("33"), dec("1"), dec("1"), dec("1")]);
    }

    #[test]
    fn options_scale_the_price_exactly() {
        let catalog = carat_like();
        let video = |o: QuoteOptions| quote(&catalog, "video", None, &o).unwrap().total;
        // The feature's default model is LTX when none is named.
        assert_eq!(video(options(None, Some(10), None)), Credits::from_whole(66), "twice the length");
        assert_eq!(video(options(Some(2), None, None)), Credits::from_whole(66), "two videos");
        assert_eq!(video(options(Some(2), Some(10), None)), Credits::from_whole(132));
        assert_eq!(video(options(Some(2), Some(10), Some("1080p"))), Credits::from_whole(198));
        assert_eq!(video(options(None, Some(15), None)), Credits::from_whole(99), "the longest video");
        // 33 x 3/5 x 0.75 = 14.85; 33 x 7/5 x 0.75 = 34.65; 33 x 1/5 = 6.6.
        assert_eq!(video(options(None, Some(3), Some("480p"))), credits("14.85"));
        assert_eq!(video(options(None, Some(7), Some("480p"))), credits("34.65"));
        assert_eq!(video(options(None, Some(1), None)), credits("6.6"));
        let sora = quote(&catalog, "video", Some("sora2"), &QuoteOptions::default()).unwrap().total;
        let image = quote(&catalog, "image", None, &QuoteOptions::default()).unwrap().total;
        assert!(sora > Credits::from_whole(33) && image < Credits::from_whole(33), "a video model costs more than an image model");
        assert_eq!(quote(&catalog, "image", None, &options(Some(4), None, None)).unwrap().total, Credits::from_whole(40));
        assert_eq!(quote(&catalog, "chat", None, &QuoteOptions::default()).unwrap().lines.len(), 1, "no options, no option lines");
    }

    #[test]
    fn a_length_ratio_that_is_no_finite_decimal_is_rounded_once() {
        // 10 credits for 3 s; 10 s costs 10 x 10 / 3 = 33.333333.. -> 33.333333; 2 s: 6.666666.. -> 6.666667.
        let talk = CatalogEntry { length: Some(LengthOption { default_seconds: 3, max_seconds: 60 }), ..entry("audio", None, "10") };
        let catalog = Catalog::new(vec![talk]).unwrap();
        let total = |seconds| quote(&catalog, "audio", None, &options(None, Some(seconds), None)).unwrap().total;
        assert_eq!(total(10), credits("33.333333"));
        assert_eq!(total(2), credits("6.666667"));
        assert_eq!(total(3), Credits::from_whole(10));
    }

    #[test]
    fn quote_errors() {
        let catalog = carat_like();
        let q = |feature: &str, model: Option<&str>, o: QuoteOptions| quote(&catalog, feature, model, &o).unwrap_err();
        assert_eq!(q("music", None, QuoteOptions::default()), PricingError::UnknownFeature("music".into()));
        assert_eq!(
            q("video", Some("veo9"), QuoteOptions::default()),
            PricingError::UnknownModel { feature: "video".into(), model: "veo9".into() }
        );
        assert_eq!(
            q("chat", Some("gpt"), QuoteOptions::default()),
            PricingError::UnknownModel { feature: "chat".into(), model: "gpt".into() }
        );
        let out_of_range = |option, value, max| PricingError::OutOfRange { option, value, min: 1, max };
        assert_eq!(q("video", None, options(Some(0), None, None)), out_of_range("count", 0, 4));
        assert_eq!(q("video", None, options(Some(5), None, None)), out_of_range("count", 5, 4));
        assert_eq!(q("video", None, options(None, Some(0), None)), out_of_range("length_seconds", 0, 15));
        assert_eq!(q("video", None, options(None, Some(16), None)), out_of_range("length_seconds", 16, 15), "at most 15 s a video");
        assert_eq!(
            q("image", None, options(None, Some(5), None)),
            PricingError::UnknownOption { feature: "image".into(), option: "length_seconds" }
        );
        assert_eq!(q("chat", None, options(Some(1), None, None)), PricingError::UnknownOption { feature: "chat".into(), option: "count" });
        assert_eq!(
            q("video", None, options(None, None, Some("4k"))),
            PricingError::UnknownResolution { level: "4k".into(), levels: "480p, 720p, 1080p".into() }
        );
    }

    #[test]
    fn catalog_validation() {
        let with_default = |mut e: CatalogEntry| {
            e.default = true;
            e
        };
        let resolutions = |default: &str, levels: &[(&str, &str)]| {
            let levels = levels.iter().map(|(name, multiplier)| ResolutionLevel { name: name.to_string(), multiplier: dec(multiplier) });
            let resolution = ResolutionOption { default: default.into(), levels: levels.collect() };
            vec![CatalogEntry { resolution: Some(resolution), ..entry("video", None, "1") }]
        };
        assert!(Catalog::new(vec![with_default(entry("video", Some("a"), "1")), entry("video", Some("b"), "2")]).is_ok());
        assert!(Catalog::new(resolutions("720p", &[("480p", "0.5"), ("720p", "1")])).is_ok());
        let bad = [
            vec![entry("video", Some("a"), "1"), entry("video", Some("b"), "2")],
            vec![with_default(entry("video", Some("a"), "1")), with_default(entry("video", Some("b"), "2"))],
            vec![with_default(entry("video", Some("a"), "1")), entry("video", Some("a"), "2")],
            vec![with_default(entry("video", None, "1")), entry("video", Some("b"), "2")],
            vec![entry("video", None, "0")],
            vec![entry("video", None, "0.0000000000001")],
            vec![entry("Video", None, "1")],
            vec![CatalogEntry { count: Some(CountOption { max: 0 }), ..entry("image", None, "1") }],
            vec![CatalogEntry { length: Some(LengthOption { default_seconds: 20, max_seconds: 15 }), ..entry("video", None, "1") }],
            resolutions("4k", &[("720p", "1")]),
            resolutions("720p", &[("720p", "2")]),
            resolutions("720p", &[("720p", "1"), ("4k", "0")]),
            resolutions("720p", &[("720p", "1"), ("720p", "1")]),
        ];
        for (i, entries) in bad.into_iter().enumerate() {
            assert!(Catalog::new(entries).is_err(), "case {i} should be refused");
        }
    }
}
