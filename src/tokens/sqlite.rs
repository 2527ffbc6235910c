//! The SQLite token repository.

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::{StoreError, TokenKey, TokenRepository};
use crate::shopify::http::BoxFuture;
use crate::shopify::model::{AccessMode, AccessToken, User};

/// Tokens in the app's SQLite database (table `access_tokens`).
#[derive(Debug, Clone)]
pub struct SqliteTokenRepository {
    pool: SqlitePool,
}

impl SqliteTokenRepository {
    /// A repository over a migrated pool.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

const COLUMNS: &str =
    "shop, access_mode, user_id, token, scope, expires_at, refresh_token, refresh_token_expires_at, user_json";

fn to_unix(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(OffsetDateTime::unix_timestamp)
}

fn from_unix(seconds: Option<i64>) -> Option<OffsetDateTime> {
    seconds.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

fn row_to_token(row: &sqlx::sqlite::SqliteRow) -> Result<AccessToken, sqlx::Error> {
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
        token: row.try_get("token")?,
        expires: from_unix(row.try_get("expires_at")?),
        scope: row.try_get("scope")?,
        access_mode,
        refresh_token: row.try_get("refresh_token")?,
        refresh_token_expires: from_unix(row.try_get("refresh_token_expires_at")?),
        user,
    })
}

fn bind_token<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    token: &'q AccessToken,
    key: &'q TokenKey,
    user_json: Option<String>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&key.shop)
        .bind(key.access_mode.as_str())
        .bind(key.user_id)
        .bind(&token.token)
        .bind(&token.scope)
        .bind(to_unix(token.expires))
        .bind(&token.refresh_token)
        .bind(to_unix(token.refresh_token_expires))
        .bind(user_json)
        .bind(OffsetDateTime::now_utc().unix_timestamp())
}

fn user_json(token: &AccessToken) -> Option<String> {
    token.user.as_ref().and_then(|user| serde_json::to_string(user).ok())
}

impl TokenRepository for SqliteTokenRepository {
    fn load(&self, key: &TokenKey) -> BoxFuture<'_, Result<Option<AccessToken>, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM access_tokens WHERE shop = ? AND access_mode = ? AND user_id = ?"
            ))
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.as_ref().map(row_to_token).transpose()?)
        })
    }

    fn save(&self, token: &AccessToken) -> BoxFuture<'_, Result<(), StoreError>> {
        let token = token.clone();
        Box::pin(async move {
            let key = TokenKey::of(&token);
            let sql = format!(
                "INSERT INTO access_tokens ({COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (shop, access_mode, user_id) DO UPDATE SET
                   token = excluded.token, scope = excluded.scope, expires_at = excluded.expires_at,
                   refresh_token = excluded.refresh_token,
                   refresh_token_expires_at = excluded.refresh_token_expires_at,
                   user_json = excluded.user_json, updated_at = excluded.updated_at"
            );
            bind_token(sqlx::query(&sql), &token, &key, user_json(&token)).execute(&self.pool).await?;
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
            // One statement: the swap happens only if nobody refreshed in between.
            let result = sqlx::query(
                "UPDATE access_tokens SET token = ?, scope = ?, expires_at = ?, refresh_token = ?,
                   refresh_token_expires_at = ?, updated_at = ?
                 WHERE shop = ? AND access_mode = ? AND user_id = ? AND refresh_token = ?",
            )
            .bind(&token.token)
            .bind(&token.scope)
            .bind(to_unix(token.expires))
            .bind(&token.refresh_token)
            .bind(to_unix(token.refresh_token_expires))
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&previous)
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn delete_if_token(&self, key: &TokenKey, token: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (key, token) = (key.clone(), token.to_owned());
        Box::pin(async move {
            let deleted = sqlx::query(
                "DELETE FROM access_tokens WHERE shop = ? AND access_mode = ? AND user_id = ? AND token = ?",
            )
            .bind(&key.shop)
            .bind(key.access_mode.as_str())
            .bind(key.user_id)
            .bind(&token)
            .execute(&self.pool)
            .await?;
            Ok(deleted.rows_affected() == 1)
        })
    }

    fn delete_shop(&self, shop: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let shop = shop.to_owned();
        Box::pin(async move {
            let mut transaction = self.pool.begin().await?;
            let deleted =
                sqlx::query("DELETE FROM access_tokens WHERE shop = ?").bind(&shop).execute(&mut *transaction).await?;
            sqlx::query("DELETE FROM refresh_leases WHERE shop = ?").bind(&shop).execute(&mut *transaction).await?;
            transaction.commit().await?;
            Ok(deleted.rows_affected())
        })
    }

    fn update_scopes(&self, shop: &str, scopes: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let (shop, scopes) = (shop.to_owned(), scopes.to_owned());
        Box::pin(async move {
            let updated = sqlx::query("UPDATE access_tokens SET scope = ?, updated_at = ? WHERE shop = ?")
                .bind(&scopes)
                .bind(OffsetDateTime::now_utc().unix_timestamp())
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
}
