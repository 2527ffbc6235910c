//! Provider tokens in the app's SQLite database (table `provider_tokens`).

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::ProviderToken;
use crate::tokens::StoreError;

/// One token per shop and provider.
#[derive(Debug, Clone)]
pub struct ProviderTokenStore {
    pool: SqlitePool,
}

fn to_unix(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(OffsetDateTime::unix_timestamp)
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
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(ProviderToken {
            shop: shop.to_owned(),
            provider: provider.to_owned(),
            access_token: row.try_get("access_token")?,
            refresh_token: row.try_get("refresh_token")?,
            scope: row.try_get("scope")?,
            expires: row
                .try_get::<Option<i64>, _>("expires_at")?
                .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok()),
        }))
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

    /// Deletes the token `shop` holds for `provider`.
    pub async fn delete(&self, shop: &str, provider: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM provider_tokens WHERE shop = ? AND provider = ?")
            .bind(shop)
            .bind(provider)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes every provider token of `shop`. Returns how many were deleted.
    pub async fn delete_shop(&self, shop: &str) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM provider_tokens WHERE shop = ?").bind(shop).execute(&self.pool).await?;
        Ok(deleted.rows_affected())
    }
}
