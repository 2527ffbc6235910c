//! The SQLite token repository.

use std::sync::Arc;

use rusqlite::params;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::encryption::{SealedRow, SealedTable, TokenCipher};
use super::{StoreError, TokenKey, TokenRepository};
use crate::shopify::clock::Clock;
use crate::shopify::http::BoxFuture;
use crate::shopify::model::{AccessMode, AccessToken, User};
use crate::shopify::secret::Secret;

/// Tokens in the app's SQLite database (table `access_tokens`), encrypted by a
/// [`TokenCipher`] and dated by the app's clock.
#[derive(Clone)]
pub struct SqliteTokenRepository {
    pool: SqlitePool,
    cipher: TokenCipher,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteTokenRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTokenRepository").field("cipher", &self.cipher).finish_non_exhaustive()
    }
}

impl SqliteTokenRepository {
    /// A repository over a migrated pool.
    pub fn new(pool: SqlitePool, cipher: TokenCipher, clock: Arc<dyn Clock>) -> Self {
        Self { pool, cipher, clock }
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
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, key_id FROM access_tokens WHERE shop = ? AND access_mode = ? AND user_id = ?"
        ))
        .bind(&key.shop)
        .bind(key.access_mode.as_str())
        .bind(key.user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key_id: Option<String> = row.try_get("key_id")?;
        let sealed_token: String = row.try_get("token")?;
        let sealed_refresh_token: Option<String> = row.try_get("refresh_token")?;
        let place = sealed_row(key);
        let opened = self.cipher.open(&place, "token", key_id.as_deref(), &sealed_token).and_then(|token| {
            let refresh_token = self.cipher.open_optional(
                &place,
                "refresh_token",
                key_id.as_deref(),
                sealed_refresh_token.as_deref(),
            )?;
            Ok((token, refresh_token))
        });
        match opened {
            Ok((token, refresh_token)) => {
                let token = row_to_token(&row, token, refresh_token)?;
                Ok(Some(Stored { token, sealed_token, sealed_refresh_token }))
            }
            Err(error) => {
                tracing::warn!(shop = %key.shop, mode = key.access_mode.as_str(), key_id, %error, "a stored access token cannot be read; treated as absent");
                Ok(None)
            }
        }
    }
}

/// Deletes `shop`'s tokens and refresh leases on the writer's connection, unless a token was
/// obtained at or after `installed_since` (`None`: delete in any case): the shop installed the
/// app again since, and nothing is deleted (`None`). Returns how many tokens were deleted.
pub fn delete_shop_in(
    db: &rusqlite::Connection,
    shop: &str,
    installed_since: Option<OffsetDateTime>,
) -> rusqlite::Result<Option<u64>> {
    // In milliseconds, rounded down: a token obtained in the same millisecond is kept.
    let obtained_since = installed_since.map(unix_millis);
    let deleted = db
        .prepare_cached(
            "DELETE FROM access_tokens WHERE shop = ?1
             AND NOT EXISTS (SELECT 1 FROM access_tokens WHERE shop = ?1 AND obtained_at >= ?2)",
        )?
        .execute(params![shop, obtained_since])?;
    let newer: bool = db
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM access_tokens WHERE shop = ? AND obtained_at >= ?)")?
        .query_row(params![shop, obtained_since], |row| row.get(0))?;
    if newer {
        return Ok(None);
    }
    db.prepare_cached("DELETE FROM refresh_leases WHERE shop = ?")?.execute([shop])?;
    Ok(Some(deleted as u64))
}

/// The encrypted columns of `access_tokens`, bound to the shop, the mode and the staff member.
static TABLE: SealedTable = SealedTable {
    name: "access_tokens",
    identity: &["shop", "access_mode", "user_id"],
    secrets: &["token", "refresh_token"],
    being_refreshed: Some(
        "EXISTS (SELECT 1 FROM refresh_leases AS lease WHERE lease.shop = access_tokens.shop
           AND lease.access_mode = access_tokens.access_mode AND lease.user_id = access_tokens.user_id
           AND lease.expires_at > ?)",
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

const COLUMNS: &str =
    "shop, access_mode, user_id, token, scope, expires_at, refresh_token, refresh_token_expires_at, user_json";

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

/// The token in `row`, with its decrypted secrets.
fn row_to_token(
    row: &sqlx::sqlite::SqliteRow,
    token: String,
    refresh_token: Option<String>,
) -> Result<AccessToken, sqlx::Error> {
    let access_mode = match row.try_get::<String, _>("access_mode")?.as_str() {
        "online" => AccessMode::Online,
        _ => AccessMode::Offline,
    };
    let user = row
        .try_get::<Option<String>, _>("user_json")?
        .map(|json| serde_json::from_str::<User>(&json))
        .transpose()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    Ok(AccessToken {
        shop: row.try_get("shop")?,
        token: token.into(),
        expires: from_unix(row.try_get("expires_at")?),
        scope: row.try_get("scope")?,
        access_mode,
        refresh_token: refresh_token.map(Secret::new),
        refresh_token_expires: from_unix(row.try_get("refresh_token_expires_at")?),
        user,
    })
}

fn user_json(token: &AccessToken) -> Option<String> {
    token.user.as_ref().and_then(|user| serde_json::to_string(user).ok())
}

impl TokenRepository for SqliteTokenRepository {
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
            sqlx::query(&format!(
                "INSERT INTO access_tokens ({COLUMNS}, key_id, updated_at, obtained_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (shop, access_mode, user_id) DO UPDATE SET
                   token = excluded.token, scope = excluded.scope, expires_at = excluded.expires_at,
                   refresh_token = excluded.refresh_token,
                   refresh_token_expires_at = excluded.refresh_token_expires_at,
                   user_json = excluded.user_json, key_id = excluded.key_id,
                   updated_at = excluded.updated_at, obtained_at = excluded.obtained_at"
            ))
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(sealed_token)
            .bind(&token.scope)
            .bind(to_unix(token.expires))
            .bind(sealed_refresh_token)
            .bind(to_unix(token.refresh_token_expires))
            .bind(user_json(&token))
            .bind(self.cipher.key_id())
            .bind(now.unix_timestamp())
            .bind(unix_millis(now))
            .execute(&self.pool)
            .await?;
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
            let Some(stored) = self.fetch(&key).await? else {
                return Ok(false);
            };
            if !stored.token.refresh_token.as_ref().is_some_and(|current| *current == *previous) {
                return Ok(false);
            }
            let (sealed_token, sealed_refresh_token) = self.seal(&key, &token)?;
            let now = self.clock.now();
            // A compare-and-swap on the stored value (unique: random nonces): the swap happens
            // only if nobody wrote the token since it was read.
            let result = sqlx::query(
                "UPDATE access_tokens SET token = ?, scope = ?, expires_at = ?, refresh_token = ?,
                   refresh_token_expires_at = ?, key_id = ?, updated_at = ?, obtained_at = ?
                 WHERE shop = ? AND access_mode = ? AND user_id = ? AND refresh_token IS ?",
            )
            .bind(sealed_token)
            .bind(&token.scope)
            .bind(to_unix(token.expires))
            .bind(sealed_refresh_token)
            .bind(to_unix(token.refresh_token_expires))
            .bind(self.cipher.key_id())
            .bind(now.unix_timestamp())
            .bind(unix_millis(now))
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&stored.sealed_refresh_token)
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
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
            let deleted = sqlx::query(
                "DELETE FROM access_tokens WHERE shop = ? AND access_mode = ? AND user_id = ? AND token IS ?",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&stored.sealed_token)
            .execute(&self.pool)
            .await?;
            Ok(deleted.rows_affected() == 1)
        })
    }

    fn update_scopes(&self, shop: &str, scopes: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let (shop, scopes) = (shop.to_owned(), scopes.to_owned());
        Box::pin(async move {
            let updated = sqlx::query("UPDATE access_tokens SET scope = ?, updated_at = ? WHERE shop = ?")
                .bind(&scopes)
                .bind(self.clock.now().unix_timestamp())
                .bind(&shop)
                .execute(&self.pool)
                .await?;
            Ok(updated.rows_affected())
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
            let result = sqlx::query(
                "INSERT INTO refresh_leases (shop, access_mode, user_id, holder, expires_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (shop, access_mode, user_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE refresh_leases.expires_at <= ? OR refresh_leases.holder = excluded.holder",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&holder)
            .bind(until.unix_timestamp())
            .bind(now.unix_timestamp())
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn release_lease(&self, key: &TokenKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let (key, holder) = (key.clone(), holder.to_owned());
        Box::pin(async move {
            sqlx::query("DELETE FROM refresh_leases WHERE shop = ? AND access_mode = ? AND user_id = ? AND holder = ?")
                .bind(&key.shop)
                .bind(key.access_mode.as_str())
                .bind(key.user_id)
                .bind(&holder)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn reencrypt(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.cipher.reencrypt(&self.pool, &TABLE, self.clock.now().unix_timestamp()))
    }
}
