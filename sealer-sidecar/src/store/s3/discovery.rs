//! The logs under a shared prefix, for a verifier given `s3://bucket/prefix`.

use aws_sdk_s3::Client;

use super::client::sdk_error;
use super::{S3Location, S3Store};

impl S3Store {
    /// The names of the logs directly below `location` (`prefix/<log-id>/checkpoints/...`),
    /// or, if `location` is itself a log, that one (as `""`).
    pub async fn discover_logs(
        client: &Client,
        location: &S3Location,
    ) -> anyhow::Result<Vec<String>> {
        let own = format!("{}checkpoints/", location.prefix);
        let mut logs = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| anyhow::anyhow!("listing {location}: {}", sdk_error(&e)))?;
            for p in page.common_prefixes() {
                let Some(p) = p.prefix() else { continue };
                if p == own || p == format!("{}segments/", location.prefix) {
                    return Ok(vec![String::new()]);
                }
                if let Some(id) = p
                    .strip_prefix(&location.prefix)
                    .and_then(|r| r.strip_suffix('/'))
                {
                    logs.push(id.to_owned());
                }
            }
        }
        Ok(logs)
    }
}
