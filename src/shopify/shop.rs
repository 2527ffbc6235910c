//! Shop-domain validation: the one gate every shop passes before it reaches a URL or a header.

/// The suffix of every shop's domain.
pub const SHOP_SUFFIX: &str = ".myshopify.com";

/// Whether `name` is a valid shop name (`s1` in `s1.myshopify.com`): `^[a-zA-Z0-9][a-zA-Z0-9-]*$`.
pub fn is_valid_shop_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The lowercase shop domain (`s1.myshopify.com`) for a shop name (`s1`) or a shop domain,
/// or `None` when the input is not a valid shop.
pub fn shop_domain(shop: &str) -> Option<String> {
    let lower = shop.to_ascii_lowercase();
    let name = lower.strip_suffix(SHOP_SUFFIX).unwrap_or(&lower);
    is_valid_shop_name(name).then(|| format!("{name}{SHOP_SUFFIX}"))
}

/// The shop name (`s1`) for a valid shop name or domain, lowercased.
pub fn shop_name(shop: &str) -> Option<String> {
    shop_domain(shop).map(|domain| name_of(&domain))
}

/// The name part (`s1`) of a shop domain that [`shop_domain`] returned.
pub fn name_of(domain: &str) -> String {
    domain.strip_suffix(SHOP_SUFFIX).unwrap_or(domain).to_owned()
}

/// The validated shop domain named by a session token's `dest` claim
/// (`https://s1.myshopify.com`, or the bare domain): only a `myshopify.com` host over https counts.
pub fn shop_domain_from_dest(dest: &str) -> Option<String> {
    let parts = super::urls::UrlParts::parse(dest);
    let host = if parts.netloc.is_empty() && parts.scheme.is_empty() {
        dest.to_ascii_lowercase()
    } else if parts.scheme == "https" {
        parts.hostname()?
    } else {
        return None;
    };
    if host.ends_with(SHOP_SUFFIX) { shop_domain(&host) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_myshopify_shops() {
        assert_eq!(shop_domain("s1").as_deref(), Some("s1.myshopify.com"));
        assert_eq!(shop_domain("S1.MyShopify.com").as_deref(), Some("s1.myshopify.com"));
        assert_eq!(shop_name("my-shop.myshopify.com").as_deref(), Some("my-shop"));
        for bad in [
            "",
            "-s1",
            "s_1",
            "a.b.myshopify.com",
            "s1.myshopify.com/",
            "s1.myshopify.com.evil.com",
            "evil.com/x?",
            "s1\n",
            "s1.myshopify.com\r\nX: y",
            "s1;script-src *",
            ".myshopify.com",
        ] {
            assert_eq!(shop_domain(bad), None, "{bad:?}");
        }
        assert_eq!(shop_domain_from_dest("https://S1.myshopify.com").as_deref(), Some("s1.myshopify.com"));
        assert_eq!(shop_domain_from_dest("s1.myshopify.com").as_deref(), Some("s1.myshopify.com"));
        for bad in [
            "",
            "s1",
            "http://evil.com/s1.myshopify.com",
            "https://s1.myshopify.com.evil.com",
            "xhttps://s1.myshopify.com",
        ] {
            assert_eq!(shop_domain_from_dest(bad), None, "{bad:?}");
        }
    }
}
