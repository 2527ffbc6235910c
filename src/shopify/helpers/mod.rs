//! App Home helpers: the patch-id-token page and the two redirects.

mod patch_id_token;
