//! App Home helpers: the patch-id-token page and the two redirects.

mod parent_redirect;
mod patch_id_token;
mod redirect;
