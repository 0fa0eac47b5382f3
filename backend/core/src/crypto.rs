//! Key material and the primitives built on it: secrets at rest (XChaCha20-Poly1305 under the
//! master key), session JWTs (HS256 under a key derived from the master key), passwords
//! (argon2id) and API keys (random, stored as SHA-256).

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit},
};
use hmac::{Hmac, Mac};
use rand::{Rng, RngExt};
use sha2::{Digest, Sha256};

use crate::config::{Config, Secret};

type HmacSha256 = Hmac<Sha256>;

/// One 32-byte master key and its short id (the first 8 hex digits of its SHA-256), which every
/// ciphertext names so that a rotated key can still decrypt what it wrote.
#[derive(Clone)]
struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
    bytes: [u8; 32],
}

impl MasterKey {
    fn parse(encoded: &str) -> anyhow::Result<MasterKey> {
        let bytes = STANDARD.decode(encoded.trim()).context("the master key must be base64")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the master key must be 32 bytes (44 base64 characters)"))?;
        Ok(MasterKey {
            id: hex::encode(&Sha256::digest(bytes)[..4]),
            cipher: XChaCha20Poly1305::new(&bytes.into()),
            bytes,
        })
    }
}

pub struct Keys {
    current: MasterKey,
    previous: Vec<MasterKey>,
    session_key: [u8; 32],
    portal_key: [u8; 32],
    /// Keys of thin deliveries' `data_url` signatures: the current master key's first, then the
    /// previous master keys' (a URL minted before a master-key rotation stays valid until it
    /// expires).
    payload_url_keys: Vec<[u8; 32]>,
}

impl Keys {
    /// Uses the configured master key; without one, reads `<data dir>/master.key`, creating it
    /// (mode 0600) on first run with a warning.
    pub fn load_or_create(config: &Config) -> anyhow::Result<Keys> {
        let encoded = match &config.master_key {
            Some(key) => key.expose().to_owned(),
            None => read_or_create_key_file(&config.data_dir.join("master.key"))?,
        };
        let current = MasterKey::parse(&encoded).context("HOOKLINE_MASTER_KEY")?;
        let previous = config
            .previous_master_keys
            .iter()
            .map(|key| MasterKey::parse(key.expose()))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("HOOKLINE_PREVIOUS_MASTER_KEYS")?;
        Ok(Keys::new(current, previous))
    }

    fn new(current: MasterKey, previous: Vec<MasterKey>) -> Keys {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&current.bytes).expect("any key length");
        mac.update(b"hookline session jwt v1");
        let session_key = mac.finalize().into_bytes().into();
        // A separate key for portal tokens: a session token is never a valid portal token.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&current.bytes).expect("any key length");
        mac.update(b"hookline portal jwt v1");
        let portal_key = mac.finalize().into_bytes().into();
        let payload_url_keys = std::iter::once(&current)
            .chain(&previous)
            .map(|key| {
                let mut mac = <HmacSha256 as Mac>::new_from_slice(&key.bytes).expect("any key length");
                mac.update(b"hookline payload url v1");
                mac.finalize().into_bytes().into()
            })
            .collect();
        Keys { current, previous, session_key, portal_key, payload_url_keys }
    }

    /// Keys for tests: a fixed master key.
    pub fn for_tests() -> Keys {
        Keys::new(MasterKey::parse(&STANDARD.encode([7u8; 32])).expect("valid"), Vec::new())
    }

    /// `v1.<key id>.<base64(nonce ‖ ciphertext)>`.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .current
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("encryption with a valid key cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("v1.{}.{}", self.current.id, STANDARD.encode(sealed))
    }

    pub fn decrypt(&self, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("not a Hookline ciphertext");
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == key_id)
            .with_context(|| format!("no master key with id {key_id}: was a previous key dropped?"))?;
        let bytes = STANDARD.decode(body).context("ciphertext is not base64")?;
        if bytes.len() < 24 {
            bail!("ciphertext too short");
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| anyhow::anyhow!("ciphertext failed authentication"))
    }

    pub fn decrypt_string(&self, sealed: &str) -> anyhow::Result<String> {
        String::from_utf8(self.decrypt(sealed)?).context("decrypted secret is not UTF-8")
    }

    pub fn session_key(&self) -> &[u8] {
        &self.session_key
    }

    pub fn portal_key(&self) -> &[u8] {
        &self.portal_key
    }

    /// The `data_url` signing keys, the one that signs first ([`Keys::payload_url_keys`]).
    pub fn payload_url_keys(&self) -> &[[u8; 32]] {
        &self.payload_url_keys
    }
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<String> {
    if path.exists() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = STANDARD.encode(bytes);
    write_private(path, &encoded)?;
    tracing::warn!(
        path = %path.display(),
        "no HOOKLINE_MASTER_KEY configured: generated one and stored it beside the data; \
         back it up, or secrets at rest cannot be decrypted"
    );
    Ok(encoded)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}

/// A fresh random master key, base64, for `hookline` operators.
pub fn generate_master_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(STANDARD.encode(bytes))
}

// ----- passwords ------------------------------------------------------------------------------

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::{
        Argon2,
        password_hash::{PasswordHasher, SaltString},
    };
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("hashing password: {err}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::{
        Argon2,
        password_hash::{PasswordHash, PasswordVerifier},
    };
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A hash that takes as long to check as a real one, so a login for an unknown email costs the
/// same time as a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("hookline-dummy-password").expect("hashing works"))
}

// ----- API keys and tokens --------------------------------------------------------------------

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `hl_live_` / `hl_test_` followed by 32 base62 characters (190 bits).
pub fn generate_api_key(test_mode: bool) -> String {
    let mut rng = rand::rng();
    let body: String = (0..32).map(|_| BASE62[rng.random_range(0..BASE62.len())] as char).collect();
    format!("hl_{}_{body}", if test_mode { "test" } else { "live" })
}

/// API keys are long random strings, so a plain SHA-256 is enough to store them.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random URL-safe token (CSRF tokens, job nonces).
pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_tampering_is_detected() {
        let keys = Keys::for_tests();
        let sealed = keys.encrypt(b"whsec_abc");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(keys.decrypt(&sealed).unwrap(), b"whsec_abc");
        assert_ne!(keys.encrypt(b"whsec_abc"), sealed, "nonces are random");

        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.decrypt(&tampered).is_err());
        assert!(keys.decrypt("plain").is_err());
    }

    #[test]
    fn a_rotated_master_key_still_decrypts_old_ciphertexts() {
        let old = Keys::for_tests();
        let sealed = old.encrypt(b"secret");
        let new_key = MasterKey::parse(&STANDARD.encode([9u8; 32])).unwrap();
        let old_key = MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let rotated = Keys::new(new_key.clone(), vec![old_key]);
        assert_eq!(rotated.decrypt(&sealed).unwrap(), b"secret");
        let without_old = Keys::new(new_key, Vec::new());
        assert!(without_old.decrypt(&sealed).is_err());
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn api_keys_have_their_prefix_and_enough_randomness() {
        let live = generate_api_key(false);
        assert!(live.starts_with("hl_live_") && live.len() == 40, "{live}");
        assert!(generate_api_key(true).starts_with("hl_test_"));
        assert_ne!(generate_api_key(false), live);
        assert_eq!(hash_token("x").len(), 64);
    }

    #[test]
    fn master_keys_must_be_32_bytes_of_base64() {
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 16])).is_err());
        assert!(MasterKey::parse(generate_master_key().expose()).is_ok());
    }
}
