//! Provider tokens in the app's database: linked tokens (table `provider_tokens`), the
//! refresh leases that make refresh single-flight across processes (`provider_refresh_leases`)
//! and tokens waiting for the embedded app's confirmation (`provider_pending_connections`).
//! Tokens are encrypted by a [`TokenCipher`].

use std::sync::Arc;

use time::OffsetDateTime;

use super::{PendingConnection, ProviderToken};
use crate::db::{Db, on_pool};
use crate::shopify::clock::Clock;
use crate::shopify::secret::Secret;
use crate::tokens::StoreError;
use crate::tokens::encryption::{RESEALED_ATTEMPTS, SealedRow, SealedTable, TokenCipher};

/// One token per shop and provider, plus refresh leases and pending connections.
#[derive(Clone)]
pub struct ProviderTokenStore {
    db: Db,
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
           AND lease.provider = provider_tokens.provider AND lease.expires_at > {now})",
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

/// Whether the holder bound as `$n` still holds the refresh lease of the updated row.
fn lease_held(n: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM provider_refresh_leases AS lease WHERE lease.shop = provider_tokens.shop
           AND lease.provider = provider_tokens.provider AND lease.holder = ${n})"
    )
}

fn to_unix(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(OffsetDateTime::unix_timestamp)
}

/// A stored expiry; one out of range reads as none.
fn from_unix(seconds: Option<i64>) -> Option<OffsetDateTime> {
    seconds.and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
}

/// Forgetting a shop's provider data: its tokens, pending connections and refresh leases.
const DELETE_TOKENS: &str = "DELETE FROM provider_tokens WHERE shop = $1";
const DELETE_THE_REST: [&str; 2] =
    ["DELETE FROM provider_pending_connections WHERE shop = $1", "DELETE FROM provider_refresh_leases WHERE shop = $1"];

/// Deletes every provider token of `shop`, with its pending connections and refresh leases,
/// in the SQLite writer's transaction. Returns how many tokens were deleted.
pub fn delete_shop_in(db: &rusqlite::Connection, shop: &str) -> rusqlite::Result<u64> {
    let deleted = db.prepare_cached(DELETE_TOKENS)?.execute([shop])?;
    for sql in DELETE_THE_REST {
        db.prepare_cached(sql)?.execute([shop])?;
    }
    Ok(deleted as u64)
}

/// [`delete_shop_in`] in a PostgreSQL transaction.
pub async fn delete_shop_in_postgres(tx: &mut sqlx::PgConnection, shop: &str) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(DELETE_TOKENS).bind(shop).execute(&mut *tx).await?.rows_affected();
    for sql in DELETE_THE_REST {
        sqlx::query(sql).bind(shop).execute(&mut *tx).await?;
    }
    Ok(deleted)
}

/// A linked token, with its refresh token as stored (for compare-and-swap writes).
struct Stored {
    token: ProviderToken,
    sealed_refresh_token: Option<String>,
}

crate::db::from_row! {
    /// A token's columns as stored, its secrets still sealed.
    struct SealedToken {
        access_token: String,
        refresh_token: Option<String>,
        scope: String,
        key_id: Option<String>,
        token_expires_at: Option<i64>,
    }
}

/// A pending connection's row, as its claim returns it.
struct PendingRow {
    shop: String,
    user_id: Option<String>,
    expires_at: i64,
    /// The same row's token columns.
    token: SealedToken,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for PendingRow
where
    &'r str: sqlx::ColumnIndex<R>,
    SealedToken: sqlx::FromRow<'r, R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            shop: row.try_get("shop")?,
            user_id: row.try_get("user_id")?,
            expires_at: row.try_get("expires_at")?,
            token: SealedToken::from_row(row)?,
        })
    }
}

impl ProviderTokenStore {
    /// A store over a migrated database.
    pub fn new(db: Db, cipher: TokenCipher, clock: Arc<dyn Clock>) -> Self {
        Self { db, cipher, clock }
    }

    /// `token`'s two secret columns as stored in `place`: sealed under the current key, or
    /// plaintext without one.
    fn seal(&self, place: &SealedRow, token: &ProviderToken) -> Result<(String, Option<String>), StoreError> {
        let refresh_token = token.refresh_token.as_ref().map(Secret::expose);
        Ok((
            self.cipher.seal(place, "access_token", token.access_token.expose())?,
            self.cipher.seal_optional(place, "refresh_token", refresh_token)?,
        ))
    }

    /// The token in `row` of `place`; `None` when it cannot be decrypted (logged).
    fn open(&self, row: &SealedToken, place: &SealedRow, shop: &str, provider: &str) -> Option<ProviderToken> {
        let key_id = row.key_id.as_deref();
        let opened = self.cipher.open(place, "access_token", key_id, &row.access_token).and_then(|access| {
            let refresh = self.cipher.open_optional(place, "refresh_token", key_id, row.refresh_token.as_deref())?;
            Ok((access, refresh))
        });
        let (access_token, refresh_token) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(shop, provider, key_id, %error, "a stored provider token cannot be read; treated as absent");
                return None;
            }
        };
        Some(ProviderToken {
            shop: shop.to_owned(),
            provider: provider.to_owned(),
            access_token: access_token.into(),
            refresh_token: refresh_token.map(Secret::new),
            scope: row.scope.clone(),
            expires: from_unix(row.token_expires_at),
        })
    }

    async fn fetch(&self, shop: &str, provider: &str) -> Result<Option<Stored>, StoreError> {
        let row: Option<SealedToken> = on_pool!(&self.db, pool => sqlx::query_as(
            "SELECT access_token, refresh_token, scope, key_id, expires_at AS token_expires_at FROM provider_tokens
             WHERE shop = $1 AND provider = $2",
        )
        .bind(shop)
        .bind(provider)
        .fetch_optional(pool)
        .await)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token = self.open(&row, &TOKENS.row(&[Some(shop), Some(provider)]), shop, provider);
        Ok(token.map(|token| Stored { token, sealed_refresh_token: row.refresh_token }))
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
        let (access_token, refresh_token) = self.seal(&place, token)?;
        on_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO provider_tokens
               (shop, provider, access_token, refresh_token, key_id, scope, expires_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (shop, provider) DO UPDATE SET
               access_token = excluded.access_token, refresh_token = excluded.refresh_token,
               key_id = excluded.key_id, scope = excluded.scope, expires_at = excluded.expires_at,
               updated_at = excluded.updated_at",
        )
        .bind(&token.shop)
        .bind(&token.provider)
        .bind(&access_token)
        .bind(&refresh_token)
        .bind(self.cipher.key_id())
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(self.clock.now().unix_timestamp())
        .execute(pool)
        .await
        .map(|_| ()))?;
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
        let place = TOKENS.row(&[Some(&token.shop), Some(&token.provider)]);
        let (access_token, refresh_token) = self.seal(&place, token)?;
        // One statement: a compare-and-swap on the stored value (unique: random nonces) and
        // the lease check.
        let sql = format!(
            "UPDATE provider_tokens SET access_token = $1, refresh_token = $2, key_id = $3, scope = $4,
               expires_at = $5, updated_at = $6
             WHERE shop = $7 AND provider = $8 AND refresh_token = $9 AND {}",
            lease_held(10)
        );
        for _ in 0..RESEALED_ATTEMPTS {
            let Some(sealed_previous) =
                self.sealed_refresh_token_if(&token.shop, &token.provider, previous_refresh_token).await?
            else {
                return Ok(false);
            };
            let updated = on_pool!(&self.db, pool => sqlx::query(&sql)
                .bind(&access_token)
                .bind(&refresh_token)
                .bind(self.cipher.key_id())
                .bind(&token.scope)
                .bind(to_unix(token.expires))
                .bind(self.clock.now().unix_timestamp())
                .bind(&token.shop)
                .bind(&token.provider)
                .bind(&sealed_previous)
                .bind(holder)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()))?;
            if updated == 1 {
                return Ok(true);
            }
            // Changed since the read, or the lease was lost: a lost lease ends it; otherwise
            // look again, in case only the ciphertext changed.
            if !self.holds_lease(&token.shop, &token.provider, holder).await? {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// Whether `holder` holds the refresh lease of `shop`'s token for `provider`.
    async fn holds_lease(&self, shop: &str, provider: &str, holder: &str) -> Result<bool, StoreError> {
        let held: bool = on_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM provider_refresh_leases WHERE shop = $1 AND provider = $2 AND holder = $3)",
        )
        .bind(shop)
        .bind(provider)
        .bind(holder)
        .fetch_one(pool)
        .await)?;
        Ok(held)
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
        let sql = format!(
            "DELETE FROM provider_tokens WHERE shop = $1 AND provider = $2 AND refresh_token = $3 AND {}",
            lease_held(4)
        );
        let deleted = on_pool!(&self.db, pool => sqlx::query(&sql)
            .bind(shop)
            .bind(provider)
            .bind(&sealed_refused)
            .bind(holder)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(deleted == 1)
    }

    /// Deletes the token `shop` holds for `provider`.
    pub async fn delete(&self, shop: &str, provider: &str) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => sqlx::query("DELETE FROM provider_tokens WHERE shop = $1 AND provider = $2")
            .bind(shop)
            .bind(provider)
            .execute(pool)
            .await
            .map(|_| ()))?;
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
        let taken = on_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO provider_refresh_leases (shop, provider, holder, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (shop, provider) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE provider_refresh_leases.expires_at <= $5 OR provider_refresh_leases.holder = excluded.holder",
        )
        .bind(shop)
        .bind(provider)
        .bind(holder)
        .bind(until.unix_timestamp())
        .bind(now.unix_timestamp())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(taken == 1)
    }

    /// Gives the lease back (if `holder` still holds it).
    pub async fn release_lease(&self, shop: &str, provider: &str, holder: &str) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => sqlx::query(
            "DELETE FROM provider_refresh_leases WHERE shop = $1 AND provider = $2 AND holder = $3",
        )
        .bind(shop)
        .bind(provider)
        .bind(holder)
        .execute(pool)
        .await
        .map(|_| ()))?;
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
        let (access_token, refresh_token) = self.seal(&place, token)?;
        on_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO provider_pending_connections
               (id, shop, provider, user_id, access_token, refresh_token, key_id, scope, token_expires_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(pending.id.expose())
        .bind(&pending.shop)
        .bind(&pending.provider)
        .bind(&pending.user_id)
        .bind(&access_token)
        .bind(&refresh_token)
        .bind(self.cipher.key_id())
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(pending.expires.unix_timestamp())
        .execute(pool)
        .await
        .map(|_| ()))?;
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
        let row: Option<PendingRow> = on_pool!(&self.db, pool => sqlx::query_as(
            "DELETE FROM provider_pending_connections WHERE id = $1 AND provider = $2 AND expires_at > $3
             RETURNING shop, user_id, access_token, refresh_token, key_id, scope, token_expires_at, expires_at",
        )
        .bind(id)
        .bind(provider)
        .bind(now.unix_timestamp())
        .fetch_optional(pool)
        .await)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let place = pending_row(id, &row.shop, provider, row.user_id.as_deref());
        let Some(token) = self.open(&row.token, &place, &row.shop, provider) else {
            return Ok(None);
        };
        let pending = PendingConnection {
            id: id.into(),
            shop: row.shop,
            provider: provider.to_owned(),
            user_id: row.user_id,
            expires: from_unix(Some(row.expires_at)).unwrap_or(now),
        };
        Ok(Some((pending, token)))
    }

    /// Deletes the pending connections that expired by `now`. Returns how many.
    pub async fn delete_expired_pending(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = on_pool!(&self.db, pool => sqlx::query("DELETE FROM provider_pending_connections WHERE expires_at <= $1")
            .bind(now.unix_timestamp())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(deleted)
    }

    /// Rewrites every stored token (linked or pending) that is not under the current
    /// encryption key under it. Returns how many were rewritten.
    pub async fn reencrypt(&self) -> Result<u64, StoreError> {
        let now = self.clock.now().unix_timestamp();
        Ok(self.cipher.reencrypt(&self.db, &TOKENS, now).await?
            + self.cipher.reencrypt(&self.db, &PENDING, now).await?)
    }
}

fn pending_row(id: &str, shop: &str, provider: &str, user_id: Option<&str>) -> SealedRow {
    PENDING.row(&[Some(id), Some(shop), Some(provider), user_id])
}
