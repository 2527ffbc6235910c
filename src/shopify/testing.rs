//! Shared fixtures for the core's unit tests.

use std::sync::Arc;

use super::clock::ManualClock;
use super::http::{BoxFuture, Transport, TransportError, UpstreamRequest};
use super::model::Res;
use super::secret::Secret;
use super::{AppConfig, ShopifyApp};

/// The frozen time of unit tests (2025-06-15T15:06:40Z).
pub(crate) const NOW: i64 = 1_750_000_000;

/// A transport for code that must not reach the network: every request fails to connect.
pub(crate) struct NoNetwork;

impl Transport for NoNetwork {
    fn send(&self, _: UpstreamRequest) -> BoxFuture<'_, Result<Res, TransportError>> {
        Box::pin(std::future::ready(Err(TransportError::Connect)))
    }
}

/// A core with secret `hush`, the given client id and old secret, no network, clock at [`NOW`].
pub(crate) fn app_with(client_id: &str, old_secret: Option<&str>) -> ShopifyApp {
    let config = AppConfig {
        client_id: client_id.to_owned(),
        client_secret: "hush".into(),
        old_client_secret: old_secret.map(Secret::new),
    };
    ShopifyApp::new(config, Arc::new(NoNetwork))
        .unwrap_or_else(|error| panic!("test config refused: {error}"))
        .with_clock(Arc::new(ManualClock::at(NOW)))
}

/// Installs, once per test binary, the crypto provider with which the unit tests sign and check
/// tokens through `jsonwebtoken`: HS256 over the app's own HMAC. The app builds `jsonwebtoken`
/// without a backend (it reads its header type only: see Cargo.toml); call this before
/// `jsonwebtoken::encode` or `decode`.
pub(crate) fn jwt() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Only this function installs one, once.
        let _ = JWT_PROVIDER.install_default();
    });
}

mod hs256 {
    use hmac::{Hmac, Mac};
    use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
    use jsonwebtoken::errors::{ErrorKind, Result};
    use jsonwebtoken::signature::{Error, Signer, Verifier};
    use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
    use sha2::Sha256;

    /// An HS256 key.
    pub(super) struct Hs256(Vec<u8>);

    impl Hs256 {
        fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
            mac.update(message);
            mac
        }
    }

    impl Signer<Vec<u8>> for Hs256 {
        fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, Error> {
            Ok(self.mac(message).finalize().into_bytes().to_vec())
        }
    }

    impl Verifier<Vec<u8>> for Hs256 {
        fn verify(&self, message: &[u8], signature: &Vec<u8>) -> std::result::Result<(), Error> {
            self.mac(message).verify_slice(signature).map_err(|_| Error::new())
        }
    }

    impl JwtSigner for Hs256 {
        fn algorithm(&self) -> Algorithm {
            Algorithm::HS256
        }
    }

    impl JwtVerifier for Hs256 {
        fn algorithm(&self) -> Algorithm {
            Algorithm::HS256
        }
    }

    fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
        match (algorithm, key.family()) {
            (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(key.as_bytes().to_vec()))),
            (Algorithm::HS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
            _ => Err(ErrorKind::InvalidAlgorithm.into()),
        }
    }

    fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
        match (algorithm, key.family()) {
            (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(key.try_get_as_bytes()?.to_vec()))),
            (Algorithm::HS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
            _ => Err(ErrorKind::InvalidAlgorithm.into()),
        }
    }

    pub(super) static PROVIDER: CryptoProvider =
        CryptoProvider { signer_factory: signer, verifier_factory: verifier, key_utils: KeyUtils::new_unimplemented() };
}

use hs256::PROVIDER as JWT_PROVIDER;
