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

/// A session token's `dest` claim, parsed by the one strict rule every verifier and the token
/// exchange share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// The lowercase shop domain (`s1.myshopify.com`).
    pub domain: String,
    /// Whether `dest` was the shop's origin (`https://s1.myshopify.com`, what admin-issued
    /// tokens carry) rather than the bare domain (what buyer-facing extensions' tokens carry).
    pub is_origin: bool,
}

impl Dest {
    /// Parses `dest`: exactly `https://{shop}.myshopify.com` or `{shop}.myshopify.com` (any
    /// case). Anything more (userinfo, a port, a path, even `/`, a query, a fragment) or any
    /// other scheme is refused.
    pub fn parse(dest: &str) -> Option<Self> {
        let lower = dest.to_ascii_lowercase();
        let (host, is_origin) = match lower.strip_prefix("https://") {
            Some(host) => (host, true),
            None => (lower.as_str(), false),
        };
        // `shop_domain` accepts a bare name too; a dest must name the whole domain.
        let domain = host.ends_with(SHOP_SUFFIX).then(|| shop_domain(host)).flatten()?;
        Some(Self { domain, is_origin })
    }

    /// The shop's name (`s1`).
    pub fn shop(&self) -> String {
        name_of(&self.domain)
    }
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
        let origin = Dest::parse("HTTPS://S1.myshopify.com");
        assert_eq!(origin, Some(Dest { domain: "s1.myshopify.com".to_owned(), is_origin: true }));
        let bare = Dest::parse("s1.myshopify.com");
        assert_eq!(bare.map(|dest| (dest.shop(), dest.is_origin)), Some(("s1".to_owned(), false)));
        for bad in [
            "",
            "s1",
            "https://s1",
            "http://s1.myshopify.com",
            "http://evil.com/s1.myshopify.com",
            "https://s1.myshopify.com.evil.com",
            "xhttps://s1.myshopify.com",
            "https://s1.myshopify.com/",
            "https://s1.myshopify.com:443",
            "https://s1.myshopify.com/../../x",
            "https://user@s1.myshopify.com",
            "https://s1.myshopify.com?x=1",
            "https://s1.myshopify.com#x",
            "https://https://s1.myshopify.com",
            " https://s1.myshopify.com",
            "s1.myshopify.com\n",
        ] {
            assert_eq!(Dest::parse(bad), None, "{bad:?}");
        }
    }
}
