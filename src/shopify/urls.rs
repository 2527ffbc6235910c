//! URL and query-string handling with the semantics Shopify's reference package relies on
//! (Python's `urlparse`, `parse_qs`, `quote` and `urlencode`), so that signatures and
//! redirects come out byte for byte the same.

use std::borrow::Cow;
use std::collections::HashMap;

/// The parts of a URL, split the way Python's `urlparse` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlParts {
    /// Lowercased scheme (`https`), empty when absent.
    pub scheme: String,
    /// Everything between `//` and the next `/`, `?` or `#`.
    pub netloc: String,
    /// The path, without `;params` on its last segment.
    pub path: String,
    /// The raw query, without `?`.
    pub query: String,
    /// The raw fragment, without `#`.
    pub fragment: String,
}

impl UrlParts {
    /// Splits a URL.
    pub fn parse(url: &str) -> Self {
        let trimmed = url.trim_start_matches(|c: char| c <= ' ');
        let url: Cow<'_, str> = if any_byte(trimmed, |byte| matches!(byte, b'\t' | b'\r' | b'\n')) {
            Cow::Owned(trimmed.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect())
        } else {
            Cow::Borrowed(trimmed)
        };
        let mut rest = url.as_ref();
        let mut parts = UrlParts::default();
        if let Some(colon) = rest.find(':') {
            let candidate = &rest[..colon];
            let valid = candidate.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && candidate.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if valid {
                parts.scheme = candidate.to_ascii_lowercase();
                rest = &rest[colon + 1..];
            }
        }
        if let Some(after) = rest.strip_prefix("//") {
            let end = after.bytes().position(|byte| matches!(byte, b'/' | b'?' | b'#')).unwrap_or(after.len());
            parts.netloc = after[..end].to_owned();
            rest = &after[end..];
        }
        if let Some(hash) = rest.find('#') {
            parts.fragment = rest[hash + 1..].to_owned();
            rest = &rest[..hash];
        }
        if let Some(question) = rest.find('?') {
            parts.query = rest[question + 1..].to_owned();
            rest = &rest[..question];
        }
        let last_segment = rest.rfind('/').map_or(0, |slash| slash + 1);
        parts.path = match rest[last_segment..].find(';') {
            Some(semicolon) => rest[..last_segment + semicolon].to_owned(),
            None => rest.to_owned(),
        };
        parts
    }

    /// The lowercased host name, without user info, port or IPv6 brackets.
    pub fn hostname(&self) -> Option<String> {
        let host_port = self.netloc.rsplit('@').next().unwrap_or_default();
        let host = if let Some(bracketed) = host_port.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or_default()
        } else {
            host_port.split(':').next().unwrap_or_default()
        };
        (!host.is_empty()).then(|| host.to_ascii_lowercase())
    }
}

/// Decodes a query string into ordered pairs, like Python's `parse_qsl`.
///
/// Splits on `&`, turns `+` into a space, percent-decodes as UTF-8 (invalid sequences become
/// U+FFFD). With `keep_blank` false, pairs whose value is empty are dropped.
pub fn parse_query(query: &str, keep_blank: bool) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .filter_map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            (keep_blank || !value.is_empty())
                .then(|| (unquote_plus(key).into_owned(), unquote_plus(value).into_owned()))
        })
        .collect()
}

/// The first value of `key` in decoded pairs.
pub fn first_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The first value of `key` in a query string, decoded: `first_value(&parse_query(query, true),
/// key)` without decoding every other pair.
pub fn query_value<'a>(query: &'a str, key: &str) -> Option<Cow<'a, str>> {
    query.split('&').filter(|piece| !piece.is_empty()).find_map(|piece| {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        (unquote_plus(name) == key).then(|| unquote_plus(value))
    })
}

/// Percent-decodes text after turning `+` into a space (borrowed when there is nothing to decode).
pub fn unquote_plus(text: &str) -> Cow<'_, str> {
    if !text.contains('%') && !text.contains('+') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() && hex_pair(bytes[index + 1], bytes[index + 2]).is_some() => {
                out.extend(hex_pair(bytes[index + 1], bytes[index + 2]));
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()))
}

/// Whether any byte of `text` is `wanted`. Without an early exit the loop compiles to vector
/// instructions: URLs carry session tokens of several hundred bytes.
fn any_byte(text: &str, wanted: impl Fn(u8) -> bool) -> bool {
    text.bytes().fold(false, |found, byte| found | wanted(byte))
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'~')
}

/// Percent-encodes everything but `A–Z a–z 0–9 _ . - ~` (Python's `quote(s, safe="")`).
pub fn quote_all(text: &str) -> String {
    const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Encodes pairs as a query string, spaces as `+` (Python's `urlencode`).
pub fn encode_query(pairs: &[(String, String)]) -> String {
    let plus = |text: &str| quote_all(text).replace("%20", "+");
    pairs.iter().map(|(key, value)| format!("{}={}", plus(key), plus(value))).collect::<Vec<_>>().join("&")
}

/// Groups pairs by key, in order of each key's first appearance (Python's `parse_qs`).
pub fn group_by_key(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<(String, Vec<String>)> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (key, value) in pairs {
        match index.get(&key) {
            Some(&position) => grouped[position].1.push(value),
            None => {
                index.insert(key.clone(), grouped.len());
                grouped.push((key, vec![value]));
            }
        }
    }
    grouped
}

/// Pairs back from groups, a repeated key's values side by side (`urlencode(.., doseq=True)`).
pub fn flatten_groups(groups: Vec<(String, Vec<String>)>) -> Vec<(String, String)> {
    groups.into_iter().flat_map(|(key, values)| values.into_iter().map(move |value| (key.clone(), value))).collect()
}

/// `base`, then `?` and the encoded pairs when there are any, then `#fragment` when non-empty.
pub fn with_query_and_fragment(mut base: String, pairs: &[(String, String)], fragment: &str) -> String {
    if !pairs.is_empty() {
        base.push('?');
        base.push_str(&encode_query(pairs));
    }
    if !fragment.is_empty() {
        base.push('#');
        base.push_str(fragment);
    }
    base
}

/// Encodes a string as a JSON literal that is safe inside an HTML `<script>` element.
///
/// Non-ASCII becomes `\uXXXX`, and `<`/`>` become `\u003C`/`\u003E`, so no `</script>` or
/// line separator can break out of the script.
pub fn json_for_script(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_urlparse() {
        let parts = UrlParts::parse("HTTPS://user:pw@S1.MyShopify.com:8443/a/b;p?x=1&y#frag");
        assert_eq!(parts.scheme, "https");
        assert_eq!(parts.netloc, "user:pw@S1.MyShopify.com:8443");
        assert_eq!(parts.path, "/a/b");
        assert_eq!(parts.query, "x=1&y");
        assert_eq!(parts.fragment, "frag");
        assert_eq!(parts.hostname().as_deref(), Some("s1.myshopify.com"));
        assert_eq!(UrlParts::parse("/dashboard?a=9#s").hostname(), None);
    }

    #[test]
    fn parses_queries_like_parse_qs() {
        let pairs = parse_query("a=1&&b=x+y%2Fz&c&=v&d=%zz&e=%C3%A9", true);
        let expected = [("a", "1"), ("b", "x y/z"), ("c", ""), ("", "v"), ("d", "%zz"), ("e", "é")];
        assert_eq!(pairs.len(), expected.len());
        for ((key, value), (want_key, want_value)) in pairs.iter().zip(expected) {
            assert_eq!((key.as_str(), value.as_str()), (want_key, want_value));
        }
        assert_eq!(parse_query("a=&b=2", false), vec![("b".to_owned(), "2".to_owned())]);
        let repeated = "a=1&&b=x+y%2Fz&c&=v&d=%zz&a=2&%62=no&e=%C3%A9";
        let pairs = parse_query(repeated, true);
        for key in ["a", "b", "c", "", "d", "e", "f"] {
            assert_eq!(query_value(repeated, key).as_deref(), first_value(&pairs, key), "{key}");
        }
        assert_eq!(unquote_plus("%ff"), "\u{fffd}");
    }

    #[test]
    fn quotes_and_encodes() {
        assert_eq!(quote_all("/home?a=1&b=%2F +"), "%2Fhome%3Fa%3D1%26b%3D%252F%20%2B");
        let pairs = [("keep".to_owned(), "a b".to_owned()), ("k".to_owned(), "é".to_owned())];
        assert_eq!(encode_query(&pairs), "keep=a+b&k=%C3%A9");
    }

    #[test]
    fn json_for_script_cannot_break_out() {
        assert_eq!(
            json_for_script("a\"</script>é\u{2028}😀"),
            "\"a\\\"\\u003C/script\\u003E\\u00e9\\u2028\\ud83d\\ude00\""
        );
    }
}
