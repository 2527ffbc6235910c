//! The token repository on the app's database (SQLite or PostgreSQL).

use std::sync::Arc;

use rusqlite::params;
use time::OffsetDateTime;

use super::encryption::{RESEALED_ATTEMPTS, SealedRow, SealedTable, TokenCipher};
use super::{StoreError, TokenKey, TokenRepository};
use crate::db::{Db, on_pool};
use crate::shopify::clock::Clock;
use crate::shopify::http::BoxFuture;
use crate::shopify::model::{AccessMode, AccessToken, User};
use crate::shopify::secret::Secret;

/// Tokens in the app's database (table `access_tokens`), encrypted by a [`TokenCipher`] and
/// dated by the app's clock.
#[derive(Clone)]
pub struct SqlTokenRepository {
    db: Db,
    cipher: TokenCipher,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqlTokenRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTokenRepository").field("cipher", &self.cipher).finish_non_exhaustive()
    }
}

impl SqlTokenRepository {
    /// A repository over a migrated database.
    pub fn new(db: Db, cipher: TokenCipher, clock: Arc<dyn Clock>) -> Self {
        Self { db, cipher, clock }
    }

    /// `token`'s two secret columns as they are stored under `key`: sealed under the current
    /// key, or plaintext without one.
    fn seal(&self, key: &TokenKey, token: &AccessToken) -> Result<(String, Option<String>), StoreError> {
        let place = sealed_row(key);
        let refresh_token = token.refresh_token.as_ref().map(Secret::expose);
        Ok((
            self.cipher.seal(&place, "token", token.token.expose())?,
            self.cipher.seal_optional(&place, "refresh_token", refresh_token)?,
        ))
    }

    /// The token under `key` with its secret columns as stored; `None` when there is none or
    /// it cannot be decrypted (logged: the caller then obtains a new one).
    async fn fetch(&self, key: &TokenKey) -> Result<Option<Stored>, StoreError> {
        let row: Option<TokenRow> = on_pool!(&self.db, pool => sqlx::query_as(
            "SELECT shop, access_mode, user_id, token, scope, expires_at, refresh_token,
               refresh_token_expires_at, user_json, key_id
             FROM access_tokens WHERE shop = $1 AND access_mode = $2 AND user_id = $3",
        )
        .bind(&key.shop)
        .bind(key.access_mode.as_str())
        .bind(key.user_id)
        .fetch_optional(pool)
        .await)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let place = sealed_row(key);
        let key_id = row.key_id.as_deref();
        let opened = self.cipher.open(&place, "token", key_id, &row.token).and_then(|token| {
            let refresh_token =
                self.cipher.open_optional(&place, "refresh_token", key_id, row.refresh_token.as_deref())?;
            Ok((token, refresh_token))
        });
        match opened {
            Ok((token, refresh_token)) => {
                let token = row.to_token(token, refresh_token)?;
                Ok(Some(Stored { token, sealed_token: row.token, sealed_refresh_token: row.refresh_token }))
            }
            Err(error) => {
                tracing::warn!(shop = %key.shop, mode = key.access_mode.as_str(), key_id, %error, "a stored access token cannot be read; treated as absent");
                Ok(None)
            }
        }
    }
}

/// Forgetting a shop's tokens: whether one was obtained at or after `$2` (unix milliseconds; NULL:
/// never), then the tokens and the refresh leases.
const NEWER_TOKEN: &str = "SELECT EXISTS (SELECT 1 FROM access_tokens WHERE shop = $1 AND obtained_at >= $2)";
const DELETE_TOKENS: &str = "DELETE FROM access_tokens WHERE shop = $1";
const DELETE_LEASES: &str = "DELETE FROM refresh_leases WHERE shop = $1";

/// Deletes `shop`'s tokens and refresh leases in the SQLite writer's transaction, unless a
/// token was obtained at or after `installed_since` (`None`: delete in any case): the shop
/// installed the app again since, and nothing is deleted (`None`). Returns how many tokens
/// were deleted.
pub fn delete_shop_in(
    db: &rusqlite::Connection,
    shop: &str,
    installed_since: Option<OffsetDateTime>,
) -> rusqlite::Result<Option<u64>> {
    let newer: bool =
        db.prepare_cached(NEWER_TOKEN)?.query_row(params![shop, obtained_since(installed_since)], |row| row.get(0))?;
    if newer {
        return Ok(None);
    }
    let deleted = db.prepare_cached(DELETE_TOKENS)?.execute([shop])?;
    db.prepare_cached(DELETE_LEASES)?.execute([shop])?;
    Ok(Some(deleted as u64))
}

/// [`delete_shop_in`] in a PostgreSQL transaction.
pub async fn delete_shop_in_postgres(
    tx: &mut sqlx::PgConnection,
    shop: &str,
    installed_since: Option<OffsetDateTime>,
) -> Result<Option<u64>, sqlx::Error> {
    let newer: bool =
        sqlx::query_scalar(NEWER_TOKEN).bind(shop).bind(obtained_since(installed_since)).fetch_one(&mut *tx).await?;
    if newer {
        return Ok(None);
    }
    let deleted = sqlx::query(DELETE_TOKENS).bind(shop).execute(&mut *tx).await?.rows_affected();
    sqlx::query(DELETE_LEASES).bind(shop).execute(&mut *tx).await?;
    Ok(Some(deleted))
}

/// An uninstall's time as `obtained_at` compares it: in milliseconds, rounded down, so that a
/// token obtained in the same millisecond is kept.
fn obtained_since(installed_since: Option<OffsetDateTime>) -> Option<i64> {
    installed_since.map(unix_millis)
}

/// The encrypted columns of `access_tokens`, bound to the shop, the mode and the staff member.
static TABLE: SealedTable = SealedTable {
    name: "access_tokens",
    identity: &["shop", "access_mode", "user_id"],
    secrets: &["token", "refresh_token"],
    being_refreshed: Some(
        "EXISTS (SELECT 1 FROM refresh_leases AS lease WHERE lease.shop = access_tokens.shop
           AND lease.access_mode = access_tokens.access_mode AND lease.user_id = access_tokens.user_id
           AND lease.expires_at > {now})",
    ),
};

fn sealed_row(key: &TokenKey) -> SealedRow {
    TABLE.row(&[Some(&key.shop), Some(key.access_mode.as_str()), Some(&key.user_id.to_string())])
}

/// A stored token, with its secret columns as stored (for compare-and-swap writes).
struct Stored {
    token: AccessToken,
    sealed_token: String,
    sealed_refresh_token: Option<String>,
}

fn to_unix(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(OffsetDateTime::unix_timestamp)
}

fn from_unix(seconds: Option<i64>) -> Option<OffsetDateTime> {
    seconds.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

/// Unix milliseconds, the unit of `obtained_at`.
fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

crate::db::from_row! {
    /// A row of `access_tokens` as stored, its secret columns still sealed.
    struct TokenRow {
        shop: String,
        access_mode: String,
        token: String,
        scope: String,
        expires_at: Option<i64>,
        refresh_token: Option<String>,
        refresh_token_expires_at: Option<i64>,
        user_json: Option<String>,
        key_id: Option<String>,
    }
}

impl TokenRow {
    /// The token of this row, with its decrypted secrets.
    fn to_token(&self, token: String, refresh_token: Option<String>) -> Result<AccessToken, StoreError> {
        let access_mode = match self.access_mode.as_str() {
            "online" => AccessMode::Online,
            _ => AccessMode::Offline,
        };
        let user = self
            .user_json
            .as_deref()
            .map(serde_json::from_str::<User>)
            .transpose()
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        Ok(AccessToken {
            shop: self.shop.clone(),
            token: token.into(),
            expires: from_unix(self.expires_at),
            scope: self.scope.clone(),
            access_mode,
            refresh_token: refresh_token.map(Secret::new),
            refresh_token_expires: from_unix(self.refresh_token_expires_at),
            user,
        })
    }
}

fn user_json(token: &AccessToken) -> Option<String> {
    token.user.as_ref().and_then(|user| serde_json::to_string(user).ok())
}

impl TokenRepository for SqlTokenRepository {
    fn load(&self, key: &TokenKey) -> BoxFuture<'_, Result<Option<AccessToken>, StoreError>> {
        let key = key.clone();
        Box::pin(async move { Ok(self.fetch(&key).await?.map(|stored| stored.token)) })
    }

    fn save(&self, token: &AccessToken) -> BoxFuture<'_, Result<(), StoreError>> {
        let token = token.clone();
        Box::pin(async move {
            let key = TokenKey::of(&token);
            let (sealed_token, sealed_refresh_token) = self.seal(&key, &token)?;
            let now = self.clock.now();
            on_pool!(&self.db, pool => sqlx::query(
                "INSERT INTO access_tokens (shop, access_mode, user_id, token, scope, expires_at, refresh_token,
                   refresh_token_expires_at, user_json, key_id, updated_at, obtained_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (shop, access_mode, user_id) DO UPDATE SET
                   token = excluded.token, scope = excluded.scope, expires_at = excluded.expires_at,
                   refresh_token = excluded.refresh_token,
                   refresh_token_expires_at = excluded.refresh_token_expires_at,
                   user_json = excluded.user_json, key_id = excluded.key_id,
                   updated_at = excluded.updated_at, obtained_at = excluded.obtained_at",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&sealed_token)
            .bind(&token.scope)
            .bind(to_unix(token.expires))
            .bind(&sealed_refresh_token)
            .bind(to_unix(token.refresh_token_expires))
            .bind(user_json(&token))
            .bind(self.cipher.key_id())
            .bind(now.unix_timestamp())
            .bind(unix_millis(now))
            .execute(pool)
            .await
            .map(|_| ()))?;
            Ok(())
        })
    }

    fn save_refreshed(
        &self,
        previous_refresh_token: &str,
        token: &AccessToken,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (previous, token) = (previous_refresh_token.to_owned(), token.clone());
        Box::pin(async move {
            let key = TokenKey::of(&token);
            let (sealed_token, sealed_refresh_token) = self.seal(&key, &token)?;
            for _ in 0..RESEALED_ATTEMPTS {
                let Some(stored) = self.fetch(&key).await? else {
                    return Ok(false);
                };
                if !stored.token.refresh_token.as_ref().is_some_and(|current| *current == *previous) {
                    return Ok(false);
                }
                let now = self.clock.now();
                // A compare-and-swap on the stored value (unique: random nonces): the swap happens
                // only if nobody wrote the token since it was read.
                let updated = on_pool!(&self.db, pool => sqlx::query(
                "UPDATE access_tokens SET token = $1, scope = $2, expires_at = $3, refresh_token = $4,
                   refresh_token_expires_at = $5, key_id = $6, updated_at = $7, obtained_at = $8
                 WHERE shop = $9 AND access_mode = $10 AND user_id = $11 AND refresh_token IS NOT DISTINCT FROM $12",
            )
            .bind(&sealed_token)
            .bind(&token.scope)
            .bind(to_unix(token.expires))
            .bind(&sealed_refresh_token)
            .bind(to_unix(token.refresh_token_expires))
            .bind(self.cipher.key_id())
            .bind(now.unix_timestamp())
            .bind(unix_millis(now))
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&stored.sealed_refresh_token)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
                if updated == 1 {
                    return Ok(true);
                }
                // Changed since the read: look again, in case only its ciphertext changed.
            }
            Ok(false)
        })
    }

    fn delete_if_token(&self, key: &TokenKey, token: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (key, token) = (key.clone(), token.to_owned());
        Box::pin(async move {
            let Some(stored) = self.fetch(&key).await? else {
                return Ok(false);
            };
            if stored.token.token != *token {
                return Ok(false);
            }
            // A compare-and-swap on the stored value: a token saved since is kept.
            let deleted = on_pool!(&self.db, pool => sqlx::query(
                "DELETE FROM access_tokens WHERE shop = $1 AND access_mode = $2 AND user_id = $3 AND token = $4",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&stored.sealed_token)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
            Ok(deleted == 1)
        })
    }

    fn update_scopes(&self, shop: &str, scopes: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let (shop, scopes) = (shop.to_owned(), scopes.to_owned());
        Box::pin(async move {
            let updated = on_pool!(&self.db, pool => sqlx::query("UPDATE access_tokens SET scope = $1, updated_at = $2 WHERE shop = $3")
                .bind(&scopes)
                .bind(self.clock.now().unix_timestamp())
                .bind(&shop)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()))?;
            Ok(updated)
        })
    }

    fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (key, holder) = (key.clone(), holder.to_owned());
        Box::pin(async move {
            // Insert, or take over a lease that has run out: one atomic statement.
            let taken = on_pool!(&self.db, pool => sqlx::query(
                "INSERT INTO refresh_leases (shop, access_mode, user_id, holder, expires_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (shop, access_mode, user_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE refresh_leases.expires_at <= $6 OR refresh_leases.holder = excluded.holder",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&holder)
            .bind(until.unix_timestamp())
            .bind(now.unix_timestamp())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
            Ok(taken == 1)
        })
    }

    fn release_lease(&self, key: &TokenKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let (key, holder) = (key.clone(), holder.to_owned());
        Box::pin(async move {
            on_pool!(&self.db, pool => sqlx::query(
                "DELETE FROM refresh_leases WHERE shop = $1 AND access_mode = $2 AND user_id = $3 AND holder = $4",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&holder)
            .execute(pool)
            .await
            .map(|_| ()))?;
            Ok(())
        })
    }

    fn reencrypt(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.cipher.reencrypt(&self.db, &TABLE, self.clock.now().unix_timestamp()))
    }
}
