//! Translations: the embedded pages' text in `locales/{en,fr}.json`, built into the binary,
//! chosen by the `locale` parameter of the admin's page loads (`fr`, `fr-CA`...), English when
//! the locale is not shipped or a key is missing from it. A text may hold `{name}` placeholders,
//! filled by [`Texts::fill`].

use std::sync::LazyLock;

/// The shipped locales: code and file. A new locale is one line here and its file; English
/// comes first (the fallback).
const FILES: &[(&str, &str)] =
    &[("en", include_str!("../locales/en.json")), ("fr", include_str!("../locales/fr.json"))];

/// One locale's texts, sorted by key (looked up by binary search: a page reads a few dozen).
#[derive(Debug)]
struct Locale {
    code: &'static str,
    texts: Vec<(String, Text)>,
}

/// A text, and the same escaped for HTML once at start (not at every page's render).
#[derive(Debug)]
struct Text {
    raw: String,
    html: String,
}

impl Locale {
    fn get(&self, key: &str) -> Option<&Text> {
        let found = self.texts.binary_search_by(|(candidate, _)| candidate.as_str().cmp(key)).ok()?;
        Some(&self.texts[found].1)
    }
}

/// A text already escaped for HTML: a template writes it as it is.
#[derive(Debug, Clone, Copy)]
pub struct HtmlText(&'static str);

impl std::fmt::Display for HtmlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl askama::filters::HtmlSafe for HtmlText {}

/// Every locale's texts, read once, in the order of [`FILES`].
static LOCALES: LazyLock<Vec<Locale>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(code, json)| {
            let texts: std::collections::BTreeMap<String, String> =
                serde_json::from_str(json).unwrap_or_else(|error| {
                    tracing::error!(locale = code, %error, "locale file does not parse: English is used");
                    Default::default()
                });
            let texts = texts
                .into_iter()
                .map(|(key, raw)| {
                    let html = askama::filters::escape(&raw, askama::filters::Html).map(|html| html.to_string());
                    (key, Text { html: html.unwrap_or_default(), raw })
                })
                .collect();
            Locale { code, texts }
        })
        .collect()
});

/// The texts of one locale, with English behind it.
#[derive(Debug, Clone, Copy)]
pub struct Texts {
    locale: &'static Locale,
}

impl Texts {
    /// The texts for a `locale` parameter (`fr`, `fr-CA`, `en-US`...): its language when
    /// shipped, English otherwise.
    pub fn for_locale(locale: Option<&str>) -> Self {
        let language = locale.and_then(|locale| locale.split(['-', '_']).next()).unwrap_or("en");
        let locales: &'static [Locale] = &LOCALES;
        let locale = locales.iter().find(|locale| locale.code.eq_ignore_ascii_case(language)).unwrap_or(&locales[0]);
        Self { locale }
    }

    /// The texts for a request's query string: its `locale` parameter (the admin adds it to
    /// every embedded page load), English without one. Only that parameter is decoded.
    pub fn from_query(query: Option<&str>) -> Self {
        let locale = query.and_then(|query| {
            query
                .split('&')
                .filter(|pair| pair.starts_with("locale="))
                .find_map(|pair| url::form_urlencoded::parse(pair.as_bytes()).next().map(|(_, value)| value))
        });
        Self::for_locale(locale.as_deref())
    }

    /// The locale's code (`en`, `fr`), for `<html lang>`.
    pub fn code(&self) -> &'static str {
        self.locale.code
    }

    /// The text for `key`: the locale's, else English's, else nothing (and a warning).
    pub fn get(&self, key: &str) -> &'static str {
        self.text(key).map_or("", |text| &text.raw)
    }

    /// The text for `key`, escaped for HTML, for a template: `{{ t.html("home.title") }}` (the
    /// same output as `{{ t.get(..) }}`, escaped once at start rather than at each render).
    pub fn html(&self, key: &str) -> HtmlText {
        HtmlText(self.text(key).map_or("", |text| &text.html))
    }

    fn text(&self, key: &str) -> Option<&'static Text> {
        let english: &'static Locale = &LOCALES[0];
        let text = self.locale.get(key).or_else(|| english.get(key));
        if text.is_none() {
            tracing::warn!(key, "no text for this key");
        }
        text
    }

    /// The text for `key` with each `{name}` of `values` replaced by its value.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        values.iter().fold(self.get(key).to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_locale_parses_and_has_every_english_key() {
        let english = &LOCALES[0];
        assert_eq!(english.code, "en");
        assert!(!english.texts.is_empty());
        for locale in LOCALES.iter() {
            let missing: Vec<&String> =
                english.texts.iter().map(|(key, _)| key).filter(|key| locale.get(key).is_none()).collect();
            assert!(missing.is_empty(), "{} misses {missing:?}", locale.code);
        }
    }

    #[test]
    fn picks_the_language_of_the_locale_and_falls_back_to_english() {
        assert_eq!(Texts::for_locale(Some("fr")).code(), "fr");
        assert_eq!(Texts::for_locale(Some("fr-CA")).code(), "fr");
        assert_eq!(Texts::for_locale(Some("de")).code(), "en");
        assert_eq!(Texts::for_locale(None).code(), "en");
        assert_eq!(Texts::for_locale(Some("fr")).get("app.name"), "Application Rust");
        assert_eq!(Texts::for_locale(Some("de")).get("app.name"), "Rust app");
        assert!(
            Texts::for_locale(Some("fr")).html("billing_error.explained").to_string().starts_with("L&#39;application")
        );
    }

    #[test]
    fn reads_the_locale_parameter_of_a_query() {
        assert_eq!(Texts::from_query(Some("shop=s1.myshopify.com&locale=fr-CA&host=x")).code(), "fr");
        assert_eq!(Texts::from_query(Some("locale=fr%2DCA")).code(), "fr", "decoded");
        assert_eq!(Texts::from_query(Some("shop=s1.myshopify.com&xlocale=fr")).code(), "en");
        assert_eq!(Texts::from_query(Some("locale=")).code(), "en");
        assert_eq!(Texts::from_query(None).code(), "en");
    }

    #[test]
    fn fills_placeholders_and_leaves_unknown_ones() {
        let french = Texts::for_locale(Some("fr"));
        assert_eq!(french.fill("plans.trial", &[("days", "7")]), "essai de 7 jours");
        assert_eq!(french.fill("plans.trial", &[]), "essai de {days} jours");
    }
}
