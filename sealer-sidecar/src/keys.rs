//! Key files: the Ed25519 checkpoint signing key, its public key, and the HMAC key.
//!
//! | file          | content                                               | mode |
//! |---------------|-------------------------------------------------------|------|
//! | `signing.key` | C2SP note signer key `PRIVATE+KEY+<origin>+<id>+<b64>` | 0600 |
//! | `signing.pub` | C2SP note verifier key `<origin>+<id>+<b64>`           | 0644 |
//! | `hmac.key`    | 64 lowercase hex digits (32 bytes)                     | 0600 |
//!
//! The key name is the log's origin, so the public key alone tells a verifier which log it
//! verifies. Secret key files readable by group or others are refused.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use auditlog::chain::{MAC_KEY_LEN, MacKey};
use auditlog::cosignature::{CosignatureVerifier, Cosigner};
use auditlog::note::{NoteSigner, NoteVerifier};

pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const PUBLIC_KEY_FILE: &str = "signing.pub";
pub const HMAC_KEY_FILE: &str = "hmac.key";
/// A witness's secret cosigning key (`sealer keygen --witness`).
pub const WITNESS_KEY_FILE: &str = "witness.key";
/// A witness's public key, for the logs and verifiers that trust it.
pub const WITNESS_PUBLIC_KEY_FILE: &str = "witness.pub";

/// The secrets a sealer needs.
pub struct SealerKeys {
    pub signer: NoteSigner,
    pub mac_key: MacKey,
}

/// A fresh signing seed and HMAC key from the OS random source.
fn random_secrets() -> anyhow::Result<([u8; 32], [u8; MAC_KEY_LEN])> {
    let mut seed = [0u8; 32];
    let mut mac = [0u8; MAC_KEY_LEN];
    getrandom::fill(&mut seed).context("failed to read the OS random source")?;
    getrandom::fill(&mut mac).context("failed to read the OS random source")?;
    Ok((seed, mac))
}

/// Check that `origin` can be a log origin and note key name.
pub fn check_origin(origin: &str) -> anyhow::Result<()> {
    if origin.is_empty()
        || origin.len() > 256
        || origin
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        bail!(
            "invalid origin {origin:?}: use 1 to 256 characters without spaces or '+', \
             e.g. \"audit.example.com/gateway-eu1\""
        );
    }
    Ok(())
}

/// Write a new key set into `dir`. Never overwrites an existing key file.
pub fn generate(dir: &Path, origin: &str) -> anyhow::Result<Vec<PathBuf>> {
    check_origin(origin)?;
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create key directory {}", dir.display()))?;
    let paths: Vec<PathBuf> = [SIGNING_KEY_FILE, PUBLIC_KEY_FILE, HMAC_KEY_FILE]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    for p in &paths {
        if p.exists() {
            bail!(
                "{} already exists; keys are never overwritten (remove it yourself, or use another --out)",
                p.display()
            );
        }
    }
    let (seed, mac) = random_secrets()?;
    let signer = NoteSigner::from_seed(origin, seed).context("failed to create signing key")?;
    write_new(&paths[0], &(signer.to_skey_string() + "\n"), 0o600)?;
    write_new(
        &paths[1],
        &(signer.verifier().to_vkey_string() + "\n"),
        0o644,
    )?;
    write_new(&paths[2], &(hex::encode(mac) + "\n"), 0o600)?;
    Ok(paths)
}

/// Create `witness.key` and `witness.pub` (a C2SP cosignature/v1 key named `name`) in `dir`.
/// Existing keys are never replaced.
pub fn generate_witness(dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    check_origin(name)?;
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create key directory {}", dir.display()))?;
    let paths: Vec<PathBuf> = [WITNESS_KEY_FILE, WITNESS_PUBLIC_KEY_FILE]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        bail!(
            "{} already exists; keys are never overwritten (remove it yourself, or use another --out)",
            p.display()
        );
    }
    let (seed, _) = random_secrets()?;
    let cosigner = Cosigner::from_seed(name, seed).context("failed to create the witness key")?;
    write_new(&paths[0], &(cosigner.to_skey_string() + "\n"), 0o600)?;
    write_new(
        &paths[1],
        &(cosigner.verifier().to_vkey_string() + "\n"),
        0o644,
    )?;
    Ok(paths)
}

/// The witness's secret key.
pub fn load_witness(path: &Path) -> anyhow::Result<Cosigner> {
    let text = read_secret(path, Secret::Key)?;
    Cosigner::parse(&text).with_context(|| {
        format!(
            "{} is not a witness key (expected PRIVATE+KEY+<name>+<id>+<base64>, as `sealer keygen --witness` writes)",
            path.display()
        )
    })
}

/// Ephemeral keys for development (`serve --dev-keys`).
pub fn ephemeral(origin: &str) -> anyhow::Result<SealerKeys> {
    check_origin(origin)?;
    let (seed, mac) = random_secrets()?;
    Ok(SealerKeys {
        signer: NoteSigner::from_seed(origin, seed).context("failed to create signing key")?,
        mac_key: MacKey::new(&mac),
    })
}

fn write_new(path: &Path, content: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("failed to write {}", path.display()))
}

/// What a secret file holds, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Secret {
    Key,
    Token,
}

/// Why a secret file with `mode`, owned by `owner`, is too open for a process running as
/// `euid`; `None` if it is fine.
///
/// The rule is PostgreSQL's for its key file: a file of one's own must be 0600 or stricter;
/// a file owned by root may also be readable by its group (0640, 0440). The second case is
/// what Kubernetes makes of a Secret volume for a non-root container: root owns the files
/// and the pod's `fsGroup` may read them.
fn loose_permissions(mode: u32, owner: u32, euid: u32) -> Option<&'static str> {
    if mode & 0o007 != 0 {
        return Some("open to others");
    }
    let root_owned_for_another_user = owner == 0 && euid != 0;
    if root_owned_for_another_user {
        (mode & 0o030 != 0).then_some("writable or executable by its group")
    } else {
        (mode & 0o070 != 0).then_some("open to its group")
    }
}

/// Read a secret file (a key or a token), refusing loose permissions.
pub(crate) fn read_secret(path: &Path, what: Secret) -> anyhow::Result<String> {
    let (name, create) = match what {
        Secret::Key => ("key file", "create keys with `sealer keygen --out DIR`"),
        Secret::Token => (
            "token file",
            "create one with `(umask 077; head -c 32 /dev/urandom | base64 > FILE)`",
        ),
    };
    let meta = fs::metadata(path)
        .with_context(|| format!("failed to read {name} {} ({create})", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if let Some(loose) = loose_permissions(mode, meta.uid(), euid) {
        bail!(
            "{name} {} has mode {mode:04o}, {loose}; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    fs::read_to_string(path).with_context(|| format!("failed to read {name} {}", path.display()))
}

pub fn load_signer(path: &Path) -> anyhow::Result<NoteSigner> {
    let text = read_secret(path, Secret::Key)?;
    NoteSigner::parse(&text).with_context(|| {
        format!(
            "{} is not a signing key (expected PRIVATE+KEY+<origin>+<id>+<base64>)",
            path.display()
        )
    })
}

/// Witness public keys given as `--witness` arguments: each the key string
/// (`name+id+base64`) or the path of a `witness.pub` holding it.
pub fn load_witness_keys(args: &[String]) -> anyhow::Result<Vec<CosignatureVerifier>> {
    args.iter()
        .map(|w| {
            let text = fs::read_to_string(w).unwrap_or_else(|_| w.clone());
            CosignatureVerifier::parse(&text).with_context(|| {
                format!(
                    "--witness {w}: neither a witness public key nor a file holding one \
                     (witness.pub, as `sealer keygen --witness` writes it)"
                )
            })
        })
        .collect()
}

pub fn load_mac_key(path: &Path) -> anyhow::Result<MacKey> {
    let text = read_secret(path, Secret::Key)?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; MAC_KEY_LEN]>::try_from(b).ok())
        .with_context(|| {
            format!(
                "{} is not an HMAC key (expected {} hex digits)",
                path.display(),
                MAC_KEY_LEN * 2
            )
        })?;
    Ok(MacKey::new(&bytes))
}

pub fn load_public(path: &Path) -> anyhow::Result<NoteVerifier> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("failed to read public key {}", path.display()))?;
    NoteVerifier::parse(&text).with_context(|| {
        format!(
            "{} is not a public key (expected <origin>+<id>+<base64>)",
            path.display()
        )
    })
}

/// Load `signing.key` and `hmac.key` from a key directory.
pub fn load_dir(dir: &Path) -> anyhow::Result<SealerKeys> {
    Ok(SealerKeys {
        signer: load_signer(&dir.join(SIGNING_KEY_FILE))?,
        mac_key: load_mac_key(&dir.join(HMAC_KEY_FILE))?,
    })
}

/// This machine's host name, for default origins.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_load() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "test.example/log").unwrap();
        let keys = load_dir(dir.path()).unwrap();
        let public = load_public(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(keys.signer.verifier(), public);
        assert_eq!(public.name(), "test.example/log");
        let err = generate(dir.path(), "test.example/log").unwrap_err();
        assert!(err.to_string().contains("never overwritten"), "{err}");
    }

    #[test]
    fn refuses_loose_permissions_and_bad_origins() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "o").unwrap();
        let key = dir.path().join(HMAC_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_mac_key(&key).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(check_origin("has space").is_err());
        // Own files: 0600 or stricter. Root's files, read by another user: group-read too.
        assert_eq!(loose_permissions(0o600, 1000, 1000), None);
        assert_eq!(loose_permissions(0o400, 0, 0), None);
        assert!(loose_permissions(0o640, 1000, 1000).is_some());
        assert!(loose_permissions(0o640, 0, 0).is_some());
        assert_eq!(loose_permissions(0o440, 0, 65532), None);
        assert_eq!(loose_permissions(0o640, 0, 65532), None);
        assert!(loose_permissions(0o660, 0, 65532).is_some());
        assert!(loose_permissions(0o444, 0, 65532).is_some());
        assert!(loose_permissions(0o644, 1000, 1000).is_some());
        assert!(check_origin("a+b").is_err());
        assert!(check_origin("").is_err());
    }
}
