//! Provider tokens in the app's SQLite database: linked tokens (table `provider_tokens`), the
//! refresh leases that make refresh single-flight across processes (`provider_refresh_leases`)
//! and tokens waiting for the embedded app's confirmation (`provider_pending_connections`).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::{PendingConnection, ProviderToken};
use crate::tokens::StoreError;

/// One token per shop and provider, plus refresh leases and pending connections.
#[derive(Debug, Clone)]
pub struct ProviderTokenStore {
    pool: SqlitePool,
}

fn to_unix(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(OffsetDateTime::unix_timestamp)
}

/// A stored expiry; one out of range reads as none.
fn from_unix(seconds: Option<i64>) -> Option<OffsetDateTime> {
    seconds.and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
}

/// The token in a row with `access_token`, `refresh_token`, `scope` and `expires_column`.
fn token_from_row(
    row: &SqliteRow,
    shop: &str,
    provider: &str,
    expires_column: &str,
) -> Result<ProviderToken, sqlx::Error> {
    Ok(ProviderToken {
        shop: shop.to_owned(),
        provider: provider.to_owned(),
        access_token: row.try_get("access_token")?,
        refresh_token: row.try_get("refresh_token")?,
        scope: row.try_get("scope")?,
        expires: from_unix(row.try_get(expires_column)?),
    })
}

impl ProviderTokenStore {
    /// A store over a migrated pool.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The token `shop` holds for `provider`.
    pub async fn load(&self, shop: &str, provider: &str) -> Result<Option<ProviderToken>, StoreError> {
        let row = sqlx::query(
            "SELECT access_token, refresh_token, scope, expires_at FROM provider_tokens WHERE shop = ? AND provider = ?",
        )
        .bind(shop)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| token_from_row(&row, shop, provider, "expires_at")).transpose()?)
    }

    /// Stores `token`, replacing the shop's previous token for the provider.
    pub async fn save(&self, token: &ProviderToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provider_tokens (shop, provider, access_token, refresh_token, scope, expires_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (shop, provider) DO UPDATE SET
               access_token = excluded.access_token, refresh_token = excluded.refresh_token,
               scope = excluded.scope, expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        )
        .bind(&token.shop)
        .bind(&token.provider)
        .bind(&token.access_token)
        .bind(&token.refresh_token)
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(OffsetDateTime::now_utc().unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the token only if its refresh token is still `previous_refresh_token` (nobody
    /// refreshed in between). Returns whether it was replaced.
    pub async fn save_refreshed(
        &self,
        previous_refresh_token: &str,
        token: &ProviderToken,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE provider_tokens SET access_token = ?, refresh_token = ?, scope = ?, expires_at = ?, updated_at = ?
             WHERE shop = ? AND provider = ? AND refresh_token = ?",
        )
        .bind(&token.access_token)
        .bind(&token.refresh_token)
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(OffsetDateTime::now_utc().unix_timestamp())
        .bind(&token.shop)
        .bind(&token.provider)
        .bind(previous_refresh_token)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the token `shop` holds for `provider` only if its refresh token is still
    /// `refused` (the one the provider just refused). Returns whether it was deleted: `false`
    /// when someone replaced the token in between (a refresh elsewhere, a new connection).
    pub async fn delete_refused(&self, shop: &str, provider: &str, refused: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM provider_tokens WHERE shop = ? AND provider = ? AND refresh_token = ?")
            .bind(shop)
            .bind(provider)
            .bind(refused)
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

    /// Deletes every provider token of `shop`, with its pending connections and refresh
    /// leases. Returns how many tokens were deleted.
    pub async fn delete_shop(&self, shop: &str) -> Result<u64, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let deleted =
            sqlx::query("DELETE FROM provider_tokens WHERE shop = ?").bind(shop).execute(&mut *transaction).await?;
        sqlx::query("DELETE FROM provider_pending_connections WHERE shop = ?")
            .bind(shop)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM provider_refresh_leases WHERE shop = ?").bind(shop).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected())
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
        sqlx::query(
            "INSERT INTO provider_pending_connections
               (id, shop, provider, user_id, access_token, refresh_token, scope, token_expires_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&pending.id)
        .bind(&pending.shop)
        .bind(&pending.provider)
        .bind(&pending.user_id)
        .bind(&token.access_token)
        .bind(&token.refresh_token)
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(pending.expires.unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the pending connection `id` of `provider` and returns it with its token (once:
    /// a second call finds nothing), after deleting the pending connections that expired by
    /// `now`. An expired one is therefore never returned.
    pub async fn take_pending(
        &self,
        provider: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(PendingConnection, ProviderToken)>, StoreError> {
        self.delete_expired_pending(now).await?;
        let row = sqlx::query(
            "DELETE FROM provider_pending_connections WHERE id = ? AND provider = ? AND expires_at > ?
             RETURNING shop, user_id, access_token, refresh_token, scope, token_expires_at, expires_at",
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
        let token = token_from_row(&row, &shop, provider, "token_expires_at")?;
        let pending = PendingConnection {
            id: id.to_owned(),
            shop,
            provider: provider.to_owned(),
            user_id: row.try_get("user_id")?,
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
}
