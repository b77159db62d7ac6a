//! Encryption at rest for secrets (connector credentials, later SMTP
//! passwords and session keys): ChaCha20-Poly1305 with a key from
//! `HRSYNC_SECRET_KEY` or a key file in the data directory.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Environment variable holding a base64 32-byte key; overrides the key file.
pub const KEY_ENV: &str = "HRSYNC_SECRET_KEY";
const KEY_FILE: &str = "secret.key";
const PREFIX: &str = "enc:v1:";

/// Encrypts and decrypts secret values.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        SecretBox { cipher: ChaCha20Poly1305::new(Key::from_slice(key)) }
    }

    /// The key from `HRSYNC_SECRET_KEY`, else from `DATA_DIR/secret.key`,
    /// created (mode 0600) on first use.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return Ok(Self::from_key(&decode_key(&text).with_context(|| format!("{KEY_ENV} is not usable"))?));
        }
        let path = data_dir.join(KEY_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            return Ok(Self::from_key(
                &decode_key(&text).with_context(|| format!("{} is not usable", path.display()))?,
            ));
        }
        let key: [u8; 32] = rand::random();
        crate::data_dir::create(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        write_private(&path, B64.encode(key).as_bytes()).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self::from_key(&key))
    }

    /// `enc:v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce_bytes: [u8; 12] = rand::random();
        let ciphertext =
            self.cipher.encrypt(Nonce::from_slice(&nonce_bytes), plaintext.as_bytes()).expect("encryption cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend(ciphertext);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open_sealed(&self, sealed: &str) -> anyhow::Result<String> {
        let Some(body) = sealed.strip_prefix(PREFIX) else { bail!("not an encrypted value") };
        let bytes = B64.decode(body).context("encrypted value is not base64")?;
        if bytes.len() < 12 {
            bail!("encrypted value is truncated");
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| {
            anyhow::anyhow!(
                "a stored secret cannot be decrypted with this key; was {KEY_ENV} or the data directory's {KEY_FILE} changed? Restore the key or enter the secret again"
            )
        })?;
        String::from_utf8(plain).context("decrypted secret is not UTF-8")
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = B64.decode(text.trim()).context("the key must be base64")?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("the key must be 32 bytes (base64 of 32 random bytes)"))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_round_trip_and_do_not_contain_the_plaintext() {
        let b = SecretBox::from_key(&[7; 32]);
        let sealed = b.seal("papi-very-secret");
        assert!(SecretBox::is_sealed(&sealed) && !sealed.contains("very-secret"));
        assert_ne!(sealed, b.seal("papi-very-secret"), "a fresh nonce each time");
        assert_eq!(b.open_sealed(&sealed).unwrap(), "papi-very-secret");
    }

    #[test]
    fn another_key_cannot_open_and_says_what_to_do() {
        let sealed = SecretBox::from_key(&[1; 32]).seal("s");
        let err = SecretBox::from_key(&[2; 32]).open_sealed(&sealed).unwrap_err().to_string();
        assert!(err.contains("enter the secret again"), "{err}");
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = std::env::temp_dir().join(format!("hrsync-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sealed = SecretBox::open(&dir).unwrap().seal("x");
        assert_eq!(SecretBox::open(&dir).unwrap().open_sealed(&sealed).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
