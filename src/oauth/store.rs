//! Provider tokens in the app's SQLite database: linked tokens (table `provider_tokens`), the
//! refresh leases that make refresh single-flight across processes (`provider_refresh_leases`)
//! and tokens waiting for the embedded app's confirmation (`provider_pending_connections`).
//! Tokens are encrypted by a [`TokenCipher`].

use std::sync::Arc;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::{PendingConnection, ProviderToken};
use crate::shopify::clock::Clock;
use crate::shopify::secret::Secret;
use crate::tokens::StoreError;
use crate::tokens::encryption::{SealedRow, SealedTable, TokenCipher};

/// One token per shop and provider, plus refresh leases and pending connections.
#[derive(Clone)]
pub struct ProviderTokenStore {
    pool: SqlitePool,
    cipher: TokenCipher,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ProviderTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTokenStore").field("cipher", &self.cipher).finish_non_exhaustive()
    }
}

/// The encrypted columns of linked tokens, bound to the shop and the provider.
static TOKENS: SealedTable = SealedTable {
    name: "provider_tokens",
    identity: &["shop", "provider"],
    secrets: &["access_token", "refresh_token"],
    being_refreshed: Some(
        "EXISTS (SELECT 1 FROM provider_refresh_leases AS lease WHERE lease.shop = provider_tokens.shop
           AND lease.provider = provider_tokens.provider AND lease.expires_at > ?)",
    ),
};
/// The encrypted columns of pending connections, bound to the id, the shop, the provider and
/// the staff member.
static PENDING: SealedTable = SealedTable {
    name: "provider_pending_connections",
    identity: &["id", "shop", "provider", "user_id"],
    secrets: &["access_token", "refresh_token"],
    being_refreshed: None,
};

/// Whether `holder` (the one bound last) still holds the refresh lease of the updated row.
const LEASE_HELD: &str = "EXISTS (SELECT 1 FROM provider_refresh_leases AS lease
     WHERE lease.shop = provider_tokens.shop AND lease.provider = provider_tokens.provider AND lease.holder = ?)";

fn to_unix(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(OffsetDateTime::unix_timestamp)
}

/// A stored expiry; one out of range reads as none.
fn from_unix(seconds: Option<i64>) -> Option<OffsetDateTime> {
    seconds.and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
}

/// Deletes every provider token of `shop`, with its pending connections and refresh leases,
/// on the writer's connection. Returns how many tokens were deleted.
pub fn delete_shop_in(db: &rusqlite::Connection, shop: &str) -> rusqlite::Result<u64> {
    let deleted = db.prepare_cached("DELETE FROM provider_tokens WHERE shop = ?")?.execute([shop])?;
    db.prepare_cached("DELETE FROM provider_pending_connections WHERE shop = ?")?.execute([shop])?;
    db.prepare_cached("DELETE FROM provider_refresh_leases WHERE shop = ?")?.execute([shop])?;
    Ok(deleted as u64)
}

/// A linked token, with its refresh token as stored (for compare-and-swap writes).
struct Stored {
    token: ProviderToken,
    sealed_refresh_token: Option<String>,
}

impl ProviderTokenStore {
    /// A store over a migrated pool.
    pub fn new(pool: SqlitePool, cipher: TokenCipher, clock: Arc<dyn Clock>) -> Self {
        Self { pool, cipher, clock }
    }

    /// The token in a row of `place` with `access_token`, `refresh_token`, `scope`, `key_id`
    /// and `expires_column`; `None` when it cannot be decrypted (logged).
    fn open_row(
        &self,
        row: &SqliteRow,
        place: &SealedRow,
        shop: &str,
        provider: &str,
        expires_column: &str,
    ) -> Result<Option<ProviderToken>, sqlx::Error> {
        let key_id: Option<String> = row.try_get("key_id")?;
        let access_token: String = row.try_get("access_token")?;
        let refresh_token: Option<String> = row.try_get("refresh_token")?;
        let opened = self.cipher.open(place, "access_token", key_id.as_deref(), &access_token).and_then(|access| {
            let refresh =
                self.cipher.open_optional(place, "refresh_token", key_id.as_deref(), refresh_token.as_deref())?;
            Ok((access, refresh))
        });
        let (access_token, refresh_token) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(shop, provider, key_id, %error, "a stored provider token cannot be read; treated as absent");
                return Ok(None);
            }
        };
        Ok(Some(ProviderToken {
            shop: shop.to_owned(),
            provider: provider.to_owned(),
            access_token: access_token.into(),
            refresh_token: refresh_token.map(Secret::new),
            scope: row.try_get("scope")?,
            expires: from_unix(row.try_get(expires_column)?),
        }))
    }

    async fn fetch(&self, shop: &str, provider: &str) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(
            "SELECT access_token, refresh_token, scope, expires_at, key_id FROM provider_tokens
             WHERE shop = ? AND provider = ?",
        )
        .bind(shop)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed_refresh_token = row.try_get("refresh_token")?;
        let token = self.open_row(&row, &TOKENS.row(&[Some(shop), Some(provider)]), shop, provider, "expires_at")?;
        Ok(token.map(|token| Stored { token, sealed_refresh_token }))
    }

    /// The refresh token of `shop` and `provider` as stored, if it is still `expected`
    /// (compared in constant time after decryption).
    async fn sealed_refresh_token_if(
        &self,
        shop: &str,
        provider: &str,
        expected: &str,
    ) -> Result<Option<String>, StoreError> {
        let stored = self.fetch(shop, provider).await?;
        Ok(stored
            .filter(|stored| stored.token.refresh_token.as_ref().is_some_and(|current| current == expected))
            .and_then(|stored| stored.sealed_refresh_token))
    }

    /// The token `shop` holds for `provider` (none when it cannot be decrypted).
    pub async fn load(&self, shop: &str, provider: &str) -> Result<Option<ProviderToken>, StoreError> {
        Ok(self.fetch(shop, provider).await?.map(|stored| stored.token))
    }

    /// Stores `token`, replacing the shop's previous token for the provider.
    pub async fn save(&self, token: &ProviderToken) -> Result<(), StoreError> {
        let place = TOKENS.row(&[Some(&token.shop), Some(&token.provider)]);
        sqlx::query(
            "INSERT INTO provider_tokens
               (shop, provider, access_token, refresh_token, key_id, scope, expires_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (shop, provider) DO UPDATE SET
               access_token = excluded.access_token, refresh_token = excluded.refresh_token,
               key_id = excluded.key_id, scope = excluded.scope, expires_at = excluded.expires_at,
               updated_at = excluded.updated_at",
        )
        .bind(&token.shop)
        .bind(&token.provider)
        .bind(self.cipher.seal(&place, "access_token", token.access_token.expose())?)
        .bind(self.cipher.seal_optional(&place, "refresh_token", token.refresh_token.as_ref().map(Secret::expose))?)
        .bind(self.cipher.key_id())
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(self.clock.now().unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the token only if its refresh token is still `previous_refresh_token` (nobody
    /// refreshed in between) and `holder` still holds the refresh lease (nobody took it over
    /// meanwhile). Returns whether it was replaced.
    pub async fn save_refreshed(
        &self,
        previous_refresh_token: &str,
        token: &ProviderToken,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let Some(sealed_previous) =
            self.sealed_refresh_token_if(&token.shop, &token.provider, previous_refresh_token).await?
        else {
            return Ok(false);
        };
        let place = TOKENS.row(&[Some(&token.shop), Some(&token.provider)]);
        // One statement: a compare-and-swap on the stored value (unique: random nonces) and
        // the lease check.
        let result = sqlx::query(&format!(
            "UPDATE provider_tokens SET access_token = ?, refresh_token = ?, key_id = ?, scope = ?, expires_at = ?,
               updated_at = ?
             WHERE shop = ? AND provider = ? AND refresh_token IS ? AND {LEASE_HELD}"
        ))
        .bind(self.cipher.seal(&place, "access_token", token.access_token.expose())?)
        .bind(self.cipher.seal_optional(&place, "refresh_token", token.refresh_token.as_ref().map(Secret::expose))?)
        .bind(self.cipher.key_id())
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(self.clock.now().unix_timestamp())
        .bind(&token.shop)
        .bind(&token.provider)
        .bind(sealed_previous)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the token `shop` holds for `provider` only if its refresh token is still
    /// `refused` (the one the provider just refused) and `holder` still holds the refresh
    /// lease. Returns whether it was deleted: `false` when someone replaced the token in
    /// between (a refresh elsewhere, a new connection) or took the lease over.
    pub async fn delete_refused(
        &self,
        shop: &str,
        provider: &str,
        refused: &str,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let Some(sealed_refused) = self.sealed_refresh_token_if(shop, provider, refused).await? else {
            return Ok(false);
        };
        let result = sqlx::query(&format!(
            "DELETE FROM provider_tokens WHERE shop = ? AND provider = ? AND refresh_token IS ? AND {LEASE_HELD}"
        ))
        .bind(shop)
        .bind(provider)
        .bind(sealed_refused)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the token `shop` holds for `provider`.
    pub async fn delete(&self, shop: &str, provider: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM provider_tokens WHERE shop = ? AND provider = ?")
            .bind(shop)
            .bind(provider)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes the refresh lease of `shop`'s token for `provider` for `holder` until `until`, if
    /// nobody else holds a live one (one atomic statement). Returns whether it was taken.
    pub async fn try_lease(
        &self,
        shop: &str,
        provider: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO provider_refresh_leases (shop, provider, holder, expires_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (shop, provider) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE provider_refresh_leases.expires_at <= ? OR provider_refresh_leases.holder = excluded.holder",
        )
        .bind(shop)
        .bind(provider)
        .bind(holder)
        .bind(until.unix_timestamp())
        .bind(now.unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives the lease back (if `holder` still holds it).
    pub async fn release_lease(&self, shop: &str, provider: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM provider_refresh_leases WHERE shop = ? AND provider = ? AND holder = ?")
            .bind(shop)
            .bind(provider)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps `token` as a pending connection until `pending.expires`, and deletes the pending
    /// connections that expired by `now`.
    pub async fn save_pending(
        &self,
        pending: &PendingConnection,
        token: &ProviderToken,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.delete_expired_pending(now).await?;
        let place = pending_row(pending.id.expose(), &pending.shop, &pending.provider, pending.user_id.as_deref());
        sqlx::query(
            "INSERT INTO provider_pending_connections
               (id, shop, provider, user_id, access_token, refresh_token, key_id, scope, token_expires_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(pending.id.expose())
        .bind(&pending.shop)
        .bind(&pending.provider)
        .bind(&pending.user_id)
        .bind(self.cipher.seal(&place, "access_token", token.access_token.expose())?)
        .bind(self.cipher.seal_optional(&place, "refresh_token", token.refresh_token.as_ref().map(Secret::expose))?)
        .bind(self.cipher.key_id())
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(pending.expires.unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the pending connection `id` of `provider` and returns it with its token (once:
    /// a second call finds nothing), after deleting the pending connections that expired by
    /// `now`. An expired one is therefore never returned, nor one whose token cannot be
    /// decrypted.
    pub async fn take_pending(
        &self,
        provider: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(PendingConnection, ProviderToken)>, StoreError> {
        self.delete_expired_pending(now).await?;
        let row = sqlx::query(
            "DELETE FROM provider_pending_connections WHERE id = ? AND provider = ? AND expires_at > ?
             RETURNING shop, user_id, access_token, refresh_token, key_id, scope, token_expires_at, expires_at",
        )
        .bind(id)
        .bind(provider)
        .bind(now.unix_timestamp())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let shop: String = row.try_get("shop")?;
        let user_id: Option<String> = row.try_get("user_id")?;
        let place = pending_row(id, &shop, provider, user_id.as_deref());
        let Some(token) = self.open_row(&row, &place, &shop, provider, "token_expires_at")? else {
            return Ok(None);
        };
        let pending = PendingConnection {
            id: id.into(),
            shop,
            provider: provider.to_owned(),
            user_id,
            expires: from_unix(row.try_get("expires_at")?).unwrap_or(now),
        };
        Ok(Some((pending, token)))
    }

    /// Deletes the pending connections that expired by `now`. Returns how many.
    pub async fn delete_expired_pending(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM provider_pending_connections WHERE expires_at <= ?")
            .bind(now.unix_timestamp())
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// Rewrites every stored token (linked or pending) that is not under the current
    /// encryption key under it. Returns how many were rewritten.
    pub async fn reencrypt(&self) -> Result<u64, StoreError> {
        let now = self.clock.now().unix_timestamp();
        Ok(self.cipher.reencrypt(&self.pool, &TOKENS, now).await?
            + self.cipher.reencrypt(&self.pool, &PENDING, now).await?)
    }
}

fn pending_row(id: &str, shop: &str, provider: &str, user_id: Option<&str>) -> SealedRow {
    PENDING.row(&[Some(id), Some(shop), Some(provider), user_id])
}
