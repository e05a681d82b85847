//! Loads the server's secrets: the master key (configured, or generated once
//! and kept in `server_secrets`) and the signing key S (generated once, sealed).
//! Creation is race-free across instances: insert unless present, then read back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_protocol::crypto::{SigningKey, random_array};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::keys::MasterKey;
use crate::store::{self, Db};
use crate::util::now;

/// Reads a named secret, creating it with `make` if absent (first writer wins).
async fn get_or_create(
    db: &Db,
    name: &str,
    make: impl FnOnce() -> ApiResult<String>,
) -> ApiResult<String> {
    if let Some(v) = store::secrets::read(db, name).await? {
        return Ok(v);
    }
    let value = make()?;
    store::secrets::insert_if_absent(db, name, &value, now()).await?;
    store::secrets::read(db, name)
        .await?
        .ok_or_else(|| ApiError::internal("server secret vanished"))
}

/// Loads (or creates) the master key and S.
pub async fn load(db: &Db, configured: Option<&str>) -> ApiResult<(MasterKey, SigningKey)> {
    let master = match configured {
        Some(text) => MasterKey::parse(text).map_err(ApiError::internal)?,
        None => {
            let text = Zeroizing::new(
                get_or_create(db, "master_key", || {
                    let k: Zeroizing<[u8; 32]> =
                        Zeroizing::new(random_array().map_err(ApiError::internal)?);
                    Ok(URL_SAFE_NO_PAD.encode(&k[..]))
                })
                .await?,
            );
            MasterKey::parse(&text).map_err(ApiError::internal)?
        }
    };
    let sealed = get_or_create(db, "signing_key", || {
        let key = SigningKey::generate().map_err(ApiError::internal)?;
        master.seal("server_secrets:signing_key", &key.to_bytes()[..])
    })
    .await?;
    let scalar = master.open("server_secrets:signing_key", &sealed)?;
    let key = SigningKey::from_bytes(&scalar).map_err(ApiError::internal)?;
    Ok((master, key))
}
