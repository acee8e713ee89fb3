//! Who may call what: bearer tokens by role.
//!
//! Three roles, each with its own token, so that a leaked ingest token cannot read the log
//! and a read token cannot write to it:
//!
//! | role     | endpoints                 | token file            |
//! |----------|---------------------------|-----------------------|
//! | `ingest` | `POST /v1/events`         | `--ingest-token-file` |
//! | `read`   | `GET /verify`, `/metrics`, `/v1/events`, `/v1/proof/*`, `/v1/stream`, `/v1/status`, the page `/` | `--read-token-file` (also as the password of HTTP Basic credentials, for browsers) |
//! | `webhook`| `POST /v1/k8s/audit`      | `--webhook-token-file` (or a client certificate, see [`crate::http::webhook`]) |
//!
//! `/healthz`, `/readyz`, `/v1/checkpoint` (a signed, public statement) and the page's static
//! assets stay open. A role
//! without a token file is open too, which only loopback listeners allow (see
//! [`crate::config`]). Nothing in the API can delete or modify the log, whatever the token.
//!
//! Token files are secrets like keys: mode 0600 or stricter, at least 32 bytes, one line.
//! Tokens are compared in constant time.

use std::path::Path;

use anyhow::bail;
use axum::http::{HeaderMap, StatusCode, header};

use crate::http::error::HttpError;

use crate::keys::{Secret, read_secret};

/// Shortest accepted token, in bytes.
pub const MIN_TOKEN_BYTES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Read,
    Webhook,
}

const ROLES: [Role; 3] = [Role::Ingest, Role::Read, Role::Webhook];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Webhook => "webhook",
        }
    }
}

/// The configured tokens; `None` leaves a role open.
#[derive(Clone, Default)]
pub struct Tokens {
    ingest: Option<Vec<u8>>,
    read: Option<Vec<u8>>,
    webhook: Option<Vec<u8>>,
}

impl std::fmt::Debug for Tokens {
    /// Never prints a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ingest", &self.ingest.as_ref().map(|_| "<set>"))
            .field("read", &self.read.as_ref().map(|_| "<set>"))
            .field("webhook", &self.webhook.as_ref().map(|_| "<set>"))
            .finish()
    }
}

fn load(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    let text = read_secret(path, Secret::Token)?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.len() < MIN_TOKEN_BYTES || token.contains(char::is_whitespace) {
        bail!(
            "{flag} {}: a token is one line of at least {MIN_TOKEN_BYTES} bytes without spaces \
             (make one with `(umask 077; head -c 32 /dev/urandom | base64 > FILE)`)",
            path.display()
        );
    }
    Ok(token.as_bytes().to_vec())
}

impl Tokens {
    /// Read the token files given; the roles' tokens must all differ.
    pub fn load(
        ingest: Option<&Path>,
        read: Option<&Path>,
        webhook: Option<&Path>,
    ) -> anyhow::Result<Tokens> {
        let tokens = Tokens {
            ingest: ingest.map(|p| load(p, "--ingest-token-file")).transpose()?,
            read: read.map(|p| load(p, "--read-token-file")).transpose()?,
            webhook: webhook
                .map(|p| load(p, "--webhook-token-file"))
                .transpose()?,
        };
        for (i, a) in ROLES.iter().enumerate() {
            for b in &ROLES[i + 1..] {
                if tokens.token(*a).is_some() && tokens.token(*a) == tokens.token(*b) {
                    bail!(
                        "--{}-token-file and --{}-token-file hold the same token; each role \
                         needs its own, so that one cannot act as the other",
                        a.name(),
                        b.name()
                    );
                }
            }
        }
        Ok(tokens)
    }

    /// Whether `role` has a token.
    pub fn has(&self, role: Role) -> bool {
        self.token(role).is_some()
    }

    /// Both roles have a token.
    pub fn complete(&self) -> bool {
        self.ingest.is_some() && self.read.is_some()
    }

    fn token(&self, role: Role) -> Option<&[u8]> {
        match role {
            Role::Ingest => self.ingest.as_deref(),
            Role::Read => self.read.as_deref(),
            Role::Webhook => self.webhook.as_deref(),
        }
    }

    /// Admit a request for `role`, or the 401/403 answer to send instead.
    pub fn check(&self, role: Role, headers: &HeaderMap) -> Result<(), HttpError> {
        let Some(expected) = self.token(role) else {
            return Ok(());
        };
        // The scheme is case-insensitive (RFC 9110 §11.1). Basic, with the token as password,
        // is what a browser sends for the live page.
        let basic_password;
        let given = match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
        {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Some(token.trim_start().as_bytes())
            }
            Some((scheme, credentials))
                if role == Role::Read && scheme.eq_ignore_ascii_case("basic") =>
            {
                use base64::Engine;
                basic_password = base64::engine::general_purpose::STANDARD
                    .decode(credentials.trim())
                    .ok()
                    .and_then(|raw| {
                        let at = raw.iter().position(|&b| b == b':')?;
                        Some(raw[at + 1..].to_vec())
                    });
                basic_password.as_deref()
            }
            _ => None,
        };
        let Some(given) = given else {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "this endpoint needs the {} token: send `Authorization: Bearer <token>`",
                    role.name()
                ),
            ));
        };
        if constant_time_eq(given, expected) {
            return Ok(());
        }
        let other = ROLES.into_iter().find(|&other| {
            other != role
                && self
                    .token(other)
                    .is_some_and(|t| constant_time_eq(given, t))
        });
        if let Some(other) = other {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the {} token cannot be used here; this endpoint needs the {} token",
                    other.name(),
                    role.name()
                ),
            ));
        }
        Err(refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("wrong token: this endpoint needs the {} token", role.name()),
        ))
    }
}

/// A 401 or 403, with the bearer challenge.
pub(crate) fn refusal(status: StatusCode, error: &'static str, message: String) -> HttpError {
    HttpError::new(status, error, message).challenge("Bearer realm=\"ingress-audit-sealer\"")
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token_file(dir: &Path, name: &str, content: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn each_role_needs_its_own_token() {
        let dir = tempfile::tempdir().unwrap();
        let ingest = "i".repeat(40);
        let read = "r".repeat(40);
        let tokens = Tokens::load(
            Some(&token_file(
                dir.path(),
                "ingest",
                &format!("{ingest}\n"),
                0o600,
            )),
            Some(&token_file(dir.path(), "read", &read, 0o400)),
            None,
        )
        .unwrap();
        assert!(tokens.complete());
        assert!(tokens.check(Role::Ingest, &bearer(&ingest)).is_ok());
        assert!(tokens.check(Role::Read, &bearer(&read)).is_ok());
        let mut lower = HeaderMap::new();
        lower.insert(
            header::AUTHORIZATION,
            format!("bearer {read}").parse().unwrap(),
        );
        assert!(
            tokens.check(Role::Read, &lower).is_ok(),
            "the scheme is case-insensitive"
        );
        let status = |r: Result<(), HttpError>| r.unwrap_err().status;
        assert_eq!(status(tokens.check(Role::Ingest, &bearer(&read))), 403);
        assert_eq!(status(tokens.check(Role::Read, &bearer(&ingest))), 403);
        assert_eq!(status(tokens.check(Role::Read, &HeaderMap::new())), 401);
        assert_eq!(
            status(tokens.check(Role::Read, &bearer(&"x".repeat(40)))),
            401
        );
        assert_eq!(status(tokens.check(Role::Read, &bearer(&read[..39]))), 401);
        // A browser's Basic credentials: any user name, the token as password.
        let basic = |user_password: &str| {
            use base64::Engine;
            let mut h = HeaderMap::new();
            let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
            h.insert(
                header::AUTHORIZATION,
                format!("Basic {encoded}").parse().unwrap(),
            );
            h
        };
        assert!(
            tokens
                .check(Role::Read, &basic(&format!("me:{read}")))
                .is_ok()
        );
        assert_eq!(
            status(tokens.check(Role::Read, &basic(&format!("me:{ingest}")))),
            403
        );
        assert_eq!(status(tokens.check(Role::Read, &basic("me:nope"))), 401);
        assert!(!format!("{tokens:?}").contains(&ingest));
    }

    #[test]
    fn open_roles_and_bad_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let open = Tokens::load(None, None, None).unwrap();
        assert!(!open.complete());
        assert!(open.check(Role::Ingest, &HeaderMap::new()).is_ok());
        let loose = token_file(dir.path(), "loose", &"a".repeat(40), 0o644);
        let err = Tokens::load(Some(&loose), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        let short = token_file(dir.path(), "short", "abc", 0o600);
        let err = Tokens::load(Some(&short), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
        let same = token_file(dir.path(), "same", &"s".repeat(40), 0o600);
        let err = Tokens::load(Some(&same), Some(&same), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("same token"), "{err}");
        let other = token_file(dir.path(), "other", &"o".repeat(40), 0o600);
        let err = Tokens::load(Some(&other), None, Some(&other))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--ingest-token-file and --webhook-token-file"),
            "{err}"
        );
    }
}
