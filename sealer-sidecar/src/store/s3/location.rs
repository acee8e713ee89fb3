//! S3 locations (`s3://bucket/prefix`), log ids under a shared prefix, and the S3 settings:
//! plain values, compiled with or without the `s3` feature (so a location is named in errors
//! even by a sealer built without S3).

use super::super::check_key;

/// `s3://bucket/prefix`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix with a trailing `/`, or empty for the whole bucket.
    pub prefix: String,
}

impl S3Location {
    /// Parse `s3://bucket` or `s3://bucket/some/prefix`.
    pub fn parse(url: &str) -> anyhow::Result<S3Location> {
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!("{url:?} is not an S3 location: write s3://BUCKET/PREFIX");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        if !valid_bucket {
            anyhow::bail!(
                "{url:?}: {bucket:?} is not a valid bucket name (3 to 63 lowercase letters, \
                 digits, '-' or '.')"
            );
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|e| anyhow::anyhow!("{url:?}: prefix {e}"))?;
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    /// The location of one log below this one.
    pub fn child(&self, log_id: &str) -> S3Location {
        S3Location {
            bucket: self.bucket.clone(),
            prefix: format!("{}{log_id}/", self.prefix),
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{}",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

/// The directory name a log gets under a shared prefix: its origin with every character
/// other than ASCII letters, digits, `-` and `.` replaced by `_`
/// (`ingress-audit/gw-1` → `ingress-audit_gw-1`).
pub fn log_id(origin: &str) -> String {
    let id: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.starts_with('.') {
        format!("_{id}")
    } else {
        id
    }
}

/// How the sealer talks to S3.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Path-style requests (`http://host/bucket/key`), needed by most non-AWS servers.
    pub path_style: bool,
    /// COMPLIANCE retention given to every object, in days.
    pub retention_days: u32,
    /// Start against a bucket without versioning or Object Lock (development only).
    pub allow_unlocked: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            path_style: false,
            retention_days: 365,
            allow_unlocked: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_and_without_prefix() {
        let l = S3Location::parse("s3://audit-logs/prod/eu").unwrap();
        assert_eq!(l.bucket, "audit-logs");
        assert_eq!(l.prefix, "prod/eu/");
        assert_eq!(l.to_string(), "s3://audit-logs/prod/eu");
        assert_eq!(l.child("gw-1").prefix, "prod/eu/gw-1/");
        let l = S3Location::parse("s3://audit-logs/").unwrap();
        assert_eq!(l.prefix, "");
        assert_eq!(S3Location::parse("s3://audit-logs").unwrap().prefix, "");
        for bad in [
            "audit-logs/x",
            "s3://",
            "s3://AB",
            "s3://Audit/x",
            "s3://audit/../x",
            "s3://audit/a//b",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_ids_are_safe_key_components() {
        assert_eq!(log_id("ingress-audit/gw-1"), "ingress-audit_gw-1");
        assert_eq!(log_id("e2e.test/a b"), "e2e.test_a_b");
        assert_eq!(log_id(".hidden"), "_.hidden");
        for origin in ["ingress-audit/gw-1", "x/y/z", "ünï/code", ".a"] {
            check_key(&log_id(origin)).unwrap();
        }
    }
}
