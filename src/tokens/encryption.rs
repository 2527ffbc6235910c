//! Tokens encrypted at rest: AES-256-GCM under the keys of `TOKEN_ENCRYPTION_KEYS`.
//!
//! A row's `key_id` column names the key its secret columns are encrypted under (NULL: the row
//! is plaintext, written before a key was configured). A stored secret is
//! `base64(nonce || ciphertext || tag)` with a random 96-bit nonce, and the table, the values
//! that identify the row and the column name are bound to it as associated data, so a
//! ciphertext copied to another row or column does not decrypt. The first key encrypts, every
//! key decrypts; [`TokenCipher::reencrypt`] moves the rows under an older key (or plaintext)
//! to the first one, which completes a rotation.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::Row;

use super::StoreError;
use crate::db::{Db, on_pool};

/// The length of a key, in bytes.
pub const KEY_LEN: usize = 32;

/// The AES-256-GCM keys of `TOKEN_ENCRYPTION_KEYS`, by id: the first encrypts, all decrypt.
/// Its `Debug` output shows the ids only.
#[derive(Clone)]
pub struct EncryptionKeys(Arc<[(String, LessSafeKey)]>);

impl EncryptionKeys {
    /// The keys, the one that encrypts first; `None` when `keys` is empty.
    pub fn new(keys: Vec<(String, [u8; KEY_LEN])>) -> Option<Self> {
        let keys = keys
            .into_iter()
            // AES-256-GCM takes any 32 bytes: `UnboundKey::new` cannot fail here.
            .map(|(id, bytes)| Some((id, LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).ok()?))))
            .collect::<Option<Vec<_>>>()?;
        (!keys.is_empty()).then(|| Self(keys.into()))
    }

    /// The id of the key that encrypts.
    pub fn current_id(&self) -> &str {
        self.0.first().map_or("", |(id, _)| id)
    }

    fn get(&self, id: &str) -> Option<&LessSafeKey> {
        self.0.iter().find(|(key_id, _)| key_id == id).map(|(_, key)| key)
    }
}

impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("EncryptionKeys").field("ids", &ids).finish_non_exhaustive()
    }
}

/// How many times a compare-and-swap on a sealed value (a refresh's save) reads and tries
/// again when the row changed under it: another process may have only re-encrypted it (same
/// token, new ciphertext), which must not make the refresh drop its rotated token.
pub const RESEALED_ATTEMPTS: usize = 3;

/// A table with encrypted columns, for [`TokenCipher`].
#[derive(Debug)]
pub struct SealedTable {
    /// The table's name.
    pub name: &'static str,
    /// The columns that identify a row: their values are bound to the row's ciphertexts.
    pub identity: &'static [&'static str],
    /// The encrypted text columns (nullable or not).
    pub secrets: &'static [&'static str],
    /// An SQL condition, true while a row is being refreshed (a live refresh lease; `{now}`
    /// stands for the current unix time): re-encryption leaves such a row to the refresh, whose
    /// compare-and-swap would otherwise find it changed and drop the rotated token.
    pub being_refreshed: Option<&'static str>,
}

impl SealedTable {
    /// The row whose identity columns hold `values` (in the order of [`SealedTable::identity`],
    /// as text; NULL as `None`).
    pub fn row(&self, values: &[Option<&str>]) -> SealedRow {
        // table \0 values, each length-prefixed (or a NULL marker): no two rows share a prefix.
        let mut aad = [self.name.as_bytes(), b"\0"].concat();
        for value in values {
            match value {
                None => aad.push(0),
                Some(value) => {
                    aad.push(1);
                    aad.extend_from_slice(&(value.len() as u64).to_be_bytes());
                    aad.extend_from_slice(value.as_bytes());
                }
            }
        }
        SealedRow { aad }
    }
}

/// One row of a [`SealedTable`]: what its ciphertexts are bound to.
#[derive(Debug, Clone)]
pub struct SealedRow {
    aad: Vec<u8>,
}

impl SealedRow {
    fn aad(&self, column: &str) -> Aad<Vec<u8>> {
        Aad::from([self.aad.as_slice(), column.as_bytes()].concat())
    }
}

/// Encryption failed (the system's random source failed): nothing was stored.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("token encryption failed")]
pub struct SealError;

impl From<SealError> for StoreError {
    fn from(error: SealError) -> Self {
        Self::Database(sqlx::Error::Encode(Box::new(error)))
    }
}

/// Why a stored secret cannot be read. Such a row is treated as holding no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// The row's key is not in `TOKEN_ENCRYPTION_KEYS` (or no key is configured).
    #[error("the row's key is not configured")]
    UnknownKey,
    /// A plaintext row while keys are configured: the start-up re-encryption encrypted every
    /// row, so this one was written by someone without the key (a tampered file, a restored
    /// backup). It is refused, or anyone able to write the file could plant a token.
    #[error("a plaintext row where every row is encrypted")]
    Plaintext,
    /// The value does not decrypt: tampered with, or copied from another row or column.
    #[error("the stored value does not decrypt")]
    Corrupt,
}

/// Seals and opens the secret columns of the token tables: under the first of the
/// [`EncryptionKeys`], or as plaintext when none are configured.
#[derive(Debug, Clone, Default)]
pub struct TokenCipher {
    keys: Option<EncryptionKeys>,
}

impl TokenCipher {
    /// A cipher over `keys`; `None` stores plaintext.
    pub fn new(keys: Option<EncryptionKeys>) -> Self {
        Self { keys }
    }

    /// The id new rows are written under, for their `key_id` column (`None`: plaintext).
    pub fn key_id(&self) -> Option<&str> {
        self.keys.as_ref().map(EncryptionKeys::current_id)
    }

    /// `secret` as stored in `column` of `row`.
    pub fn seal(&self, row: &SealedRow, column: &str, secret: &str) -> Result<String, SealError> {
        let Some(keys) = &self.keys else {
            return Ok(secret.to_owned());
        };
        let key = keys.get(keys.current_id()).ok_or(SealError)?;
        let mut nonce = [0; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealError)?;
        let mut sealed = secret.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), row.aad(column), &mut sealed)
            .map_err(|_| SealError)?;
        Ok(STANDARD.encode([nonce.as_slice(), &sealed].concat()))
    }

    /// [`TokenCipher::seal`] of an optional secret (NULL stays NULL).
    pub fn seal_optional(
        &self,
        row: &SealedRow,
        column: &str,
        secret: Option<&str>,
    ) -> Result<Option<String>, SealError> {
        secret.map(|secret| self.seal(row, column, secret)).transpose()
    }

    /// The secret stored in `column` of `row`, whose `key_id` column holds `key_id`. A
    /// plaintext row (no `key_id`) reads only when no key is configured.
    pub fn open(
        &self,
        row: &SealedRow,
        column: &str,
        key_id: Option<&str>,
        stored: &str,
    ) -> Result<String, Unreadable> {
        if key_id.is_none() && self.keys.is_some() {
            return Err(Unreadable::Plaintext);
        }
        self.open_any(row, column, key_id, stored)
    }

    /// [`TokenCipher::open`], plaintext rows included: for the start-up re-encryption only.
    fn open_any(
        &self,
        row: &SealedRow,
        column: &str,
        key_id: Option<&str>,
        stored: &str,
    ) -> Result<String, Unreadable> {
        let Some(key_id) = key_id else {
            return Ok(stored.to_owned());
        };
        let key = self.keys.as_ref().and_then(|keys| keys.get(key_id)).ok_or(Unreadable::UnknownKey)?;
        let bytes = STANDARD.decode(stored).map_err(|_| Unreadable::Corrupt)?;
        let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN).ok_or(Unreadable::Corrupt)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unreadable::Corrupt)?;
        let mut sealed = sealed.to_vec();
        let plain = key.open_in_place(nonce, row.aad(column), &mut sealed).map_err(|_| Unreadable::Corrupt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| Unreadable::Corrupt)
    }

    /// [`TokenCipher::open`] of an optional column (NULL stays NULL).
    pub fn open_optional(
        &self,
        row: &SealedRow,
        column: &str,
        key_id: Option<&str>,
        stored: Option<&str>,
    ) -> Result<Option<String>, Unreadable> {
        stored.map(|stored| self.open(row, column, key_id, stored)).transpose()
    }

    /// Rewrites every row of `table` that is not under the current key (plaintext, or an
    /// older key) under it, and returns how many were rewritten. Each rewrite is a
    /// compare-and-swap on the stored values: a row changed meanwhile (by a save, or by
    /// another process doing the same) is left to that writer, and so is a row being
    /// refreshed at `now` (see [`SealedTable::being_refreshed`]). Rows that cannot be read are
    /// left as they are, with a warning.
    pub async fn reencrypt(&self, db: &Db, table: &SealedTable, now: i64) -> Result<u64, StoreError> {
        let identity: Vec<String> = table.identity.iter().map(|column| format!("CAST({column} AS TEXT)")).collect();
        let select = format!(
            "SELECT key_id, {}, {} FROM {} WHERE key_id IS DISTINCT FROM $1",
            identity.join(", "),
            table.secrets.join(", "),
            table.name
        );
        // The update binds the new secrets and key id, then every value read (unchanged since),
        // the leading identity value again, then `now`: `$1`, `$2`... in that order.
        let mut next = 0;
        let mut parameter = || {
            next += 1;
            format!("${next}")
        };
        let set: Vec<String> =
            table.secrets.iter().chain(&["key_id"]).map(|column| format!("{column} = {}", parameter())).collect();
        let mut unchanged: Vec<String> = (identity.iter().map(String::as_str))
            .chain(table.secrets.iter().copied())
            .chain(["key_id"])
            .map(|column| format!("{column} IS NOT DISTINCT FROM {}", parameter()))
            .collect();
        // The first identity column leads the primary key and is text: compared as it is
        // stored, it lets the update find its row by the index instead of scanning the table.
        let Some(leading) = table.identity.first() else {
            return Ok(0);
        };
        unchanged.push(format!("{leading} = {}", parameter()));
        // Without a refresh condition, one that is never true (it still takes `now`).
        let being_refreshed = table.being_refreshed.unwrap_or("({now} IS NULL)").replace("{now}", &parameter());
        let update = format!(
            "UPDATE {} SET {} WHERE {} AND NOT {being_refreshed}",
            table.name,
            set.join(", "),
            unchanged.join(" AND "),
        );
        let width = 1 + table.identity.len() + table.secrets.len();
        let rows: Vec<Vec<Option<String>>> = on_pool!(db, pool => {
            let rows = sqlx::query(&select).bind(self.key_id()).fetch_all(pool).await?;
            rows.iter().map(|row| (0..width).map(|i| row.try_get(i)).collect()).collect::<Result<_, sqlx::Error>>()?
        });
        let (mut rewritten, mut unreadable) = (0, 0);
        for row in rows {
            let (key_id, columns) = row.split_first().ok_or(sqlx::Error::ColumnNotFound("key_id".to_owned()))?;
            let (values, stored) = columns.split_at(table.identity.len());
            let place = table.row(&values.iter().map(Option::as_deref).collect::<Vec<_>>());
            let opened = table
                .secrets
                .iter()
                .zip(stored)
                .map(|(column, stored)| {
                    stored.as_deref().map(|stored| self.open_any(&place, column, key_id.as_deref(), stored)).transpose()
                })
                .collect::<Result<Vec<_>, _>>();
            let Ok(opened) = opened else {
                unreadable += 1;
                continue;
            };
            let mut binds = Vec::with_capacity(2 * width);
            for (column, secret) in table.secrets.iter().zip(&opened) {
                binds.push(self.seal_optional(&place, column, secret.as_deref())?);
            }
            binds.push(self.key_id().map(str::to_owned));
            binds.extend(values.iter().chain(stored).cloned());
            binds.push(key_id.clone());
            binds.push(values.first().cloned().flatten());
            rewritten += on_pool!(db, pool => {
                let mut query = sqlx::query(&update);
                for value in &binds {
                    query = query.bind(value.as_deref());
                }
                query.bind(now).execute(pool).await?.rows_affected()
            });
        }
        if unreadable > 0 {
            tracing::warn!(
                table = table.name,
                rows = unreadable,
                "stored tokens under a key TOKEN_ENCRYPTION_KEYS does not list, or that do not decrypt: they read as absent"
            );
        }
        Ok(rewritten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: SealedTable =
        SealedTable { name: "t", identity: &["shop", "user"], secrets: &["a", "b"], being_refreshed: None };

    fn cipher(ids: &[(&str, u8)]) -> TokenCipher {
        TokenCipher::new(EncryptionKeys::new(ids.iter().map(|(id, byte)| (id.to_string(), [*byte; KEY_LEN])).collect()))
    }

    #[test]
    fn a_sealed_secret_opens_only_in_its_own_row_and_column() {
        let cipher = cipher(&[("k1", 1)]);
        let row = TABLE.row(&[Some("s1"), Some("7")]);
        let sealed = cipher.seal(&row, "a", "shpat_secret").unwrap();
        assert_ne!(sealed, cipher.seal(&row, "a", "shpat_secret").unwrap(), "a fresh nonce each time");
        assert!(!sealed.contains("shpat_secret"));
        assert_eq!(cipher.open(&row, "a", Some("k1"), &sealed), Ok("shpat_secret".to_owned()));

        let elsewhere = [
            (TABLE.row(&[Some("s2"), Some("7")]), "a"),
            (TABLE.row(&[Some("s1"), None]), "a"),
            (TABLE.row(&[Some("s1"), Some("")]), "a"),
            (TABLE.row(&[Some("s17"), None]), "a"),
            (row.clone(), "b"),
        ];
        for (other, column) in &elsewhere {
            assert_eq!(cipher.open(other, column, Some("k1"), &sealed), Err(Unreadable::Corrupt));
        }
        let mut tampered = STANDARD.decode(&sealed).unwrap();
        tampered[NONCE_LEN] ^= 1;
        assert_eq!(cipher.open(&row, "a", Some("k1"), &STANDARD.encode(tampered)), Err(Unreadable::Corrupt));
        assert_eq!(cipher.open(&row, "a", Some("k1"), "not base64"), Err(Unreadable::Corrupt));
        assert_eq!(cipher.open(&row, "a", Some("k1"), "AAAA"), Err(Unreadable::Corrupt));
        assert_eq!(cipher.open(&row, "a", Some("k0"), &sealed), Err(Unreadable::UnknownKey));
        assert_eq!(TokenCipher::default().open(&row, "a", Some("k1"), &sealed), Err(Unreadable::UnknownKey));
    }

    /// The stored format, pinned: a value sealed outside this code (Python's `cryptography`,
    /// `AESGCM(bytes([7] * 32)).encrypt(bytes(range(12)), b"shpat_secret", aad)` with the
    /// associated data of row `("s1", "7")` of table `t`, column `a`) opens, so rows written by
    /// any earlier build (or another AES-256-GCM library) still read.
    #[test]
    fn a_value_sealed_elsewhere_with_the_same_format_opens() {
        let stored = "AAECAwQFBgcICQoLa+mZEWlWqiwUwIDoL5ofxptFQVUOknlnQl/i3Q==";
        let row = TABLE.row(&[Some("s1"), Some("7")]);
        assert_eq!(cipher(&[("k1", 7)]).open(&row, "a", Some("k1"), stored), Ok("shpat_secret".to_owned()));
        assert_eq!(cipher(&[("k1", 7)]).open(&row, "b", Some("k1"), stored), Err(Unreadable::Corrupt));
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let row = TABLE.row(&[Some("s1"), None]);
        let old = cipher(&[("old", 1)]);
        let sealed_old = old.seal(&row, "a", "token").unwrap();
        let rotated = cipher(&[("new", 2), ("old", 1)]);
        assert_eq!(rotated.key_id(), Some("new"));
        assert_eq!(rotated.open(&row, "a", Some("old"), &sealed_old), Ok("token".to_owned()));
        let sealed_new = rotated.seal(&row, "a", "token").unwrap();
        assert_eq!(cipher(&[("new", 2)]).open(&row, "a", Some("new"), &sealed_new), Ok("token".to_owned()));
        assert_eq!(old.open(&row, "a", Some("new"), &sealed_new), Err(Unreadable::UnknownKey));
        // Same id, other bytes: the tag does not verify.
        assert_eq!(cipher(&[("new", 3)]).open(&row, "a", Some("new"), &sealed_new), Err(Unreadable::Corrupt));
    }

    #[test]
    fn without_keys_secrets_are_stored_as_they_are() {
        let row = TABLE.row(&[Some("s1"), None]);
        let plain = TokenCipher::default();
        assert_eq!(plain.key_id(), None);
        assert_eq!(plain.seal(&row, "a", "token").unwrap(), "token");
        assert_eq!(plain.seal_optional(&row, "b", None).unwrap(), None);
        // A plaintext row (no key id) reads as it is without keys; with keys it was planted.
        assert_eq!(plain.open(&row, "a", None, "token"), Ok("token".to_owned()));
        assert_eq!(cipher(&[("k1", 1)]).open(&row, "a", None, "token"), Err(Unreadable::Plaintext));
        assert!(EncryptionKeys::new(Vec::new()).is_none());
        let keys = EncryptionKeys::new(vec![("k1".into(), [9; KEY_LEN])]).unwrap();
        assert_eq!(format!("{keys:?}"), r#"EncryptionKeys { ids: ["k1"], .. }"#);
    }
}
