//! Translations: the embedded pages' text in `locales/{en,fr}.json`, built into the binary,
//! chosen by the `locale` parameter of the admin's page loads (`fr`, `fr-CA`...), English when
//! the locale is not shipped or a key is missing from it. A text may hold `{name}` placeholders,
//! filled by [`Texts::fill`].

use std::collections::HashMap;
use std::sync::LazyLock;

/// The shipped locales: code and file. A new locale is one line here and its file.
const FILES: &[(&str, &str)] =
    &[("en", include_str!("../locales/en.json")), ("fr", include_str!("../locales/fr.json"))];

/// Every locale's texts, read once.
static LOCALES: LazyLock<HashMap<&'static str, HashMap<String, String>>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(code, json)| {
            let texts = serde_json::from_str(json).unwrap_or_else(|error| {
                tracing::error!(locale = code, %error, "locale file does not parse: English is used");
                HashMap::new()
            });
            (*code, texts)
        })
        .collect()
});

/// The texts of one locale, with English behind it.
#[derive(Debug, Clone, Copy)]
pub struct Texts {
    locale: &'static str,
}

impl Texts {
    /// The texts for a `locale` parameter (`fr`, `fr-CA`, `en-US`...): its language when
    /// shipped, English otherwise.
    pub fn for_locale(locale: Option<&str>) -> Self {
        let language = locale.and_then(|locale| locale.split(['-', '_']).next()).unwrap_or("en").to_ascii_lowercase();
        let locale = FILES.iter().map(|(code, _)| *code).find(|code| *code == language).unwrap_or("en");
        Self { locale }
    }

    /// The texts for a request's query string: its `locale` parameter (the admin adds it to
    /// every embedded page load), English without one.
    pub fn from_query(query: Option<&str>) -> Self {
        let locale = query.and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes()).find_map(|(name, value)| (name == "locale").then_some(value))
        });
        Self::for_locale(locale.as_deref())
    }

    /// The locale's code (`en`, `fr`), for `<html lang>`.
    pub fn code(&self) -> &'static str {
        self.locale
    }

    /// The text for `key`: the locale's, else English's, else nothing (and a warning).
    pub fn get(&self, key: &str) -> &'static str {
        [self.locale, "en"]
            .iter()
            .find_map(|code| LOCALES.get(code).and_then(|texts| texts.get(key)))
            .map(String::as_str)
            .unwrap_or_else(|| {
                tracing::warn!(key, "no text for this key");
                ""
            })
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
        let english = &LOCALES["en"];
        assert!(!english.is_empty());
        for (code, _) in FILES {
            let texts = &LOCALES[code];
            let missing: Vec<&String> = english.keys().filter(|key| !texts.contains_key(*key)).collect();
            assert!(missing.is_empty(), "{code} misses {missing:?}");
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
