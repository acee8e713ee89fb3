//! The S3 client, from the standard AWS configuration chain, and how its errors read.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::S3Options;
use crate::store::StoreError;

/// An S3 client from the standard AWS configuration chain. Without a configured region,
/// `us-east-1` (S3-compatible servers accept any).
pub async fn client(options: &S3Options) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(options.path_style)
        // The sealer sets its own SHA-256 checksum on every PUT; no extra CRC trailers.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if shared.region().is_none() {
        config = config.region(aws_sdk_s3::config::Region::new("us-east-1"));
    }
    Client::from_conf(config.build())
}

/// HTTPS for the S3 client and the credential providers: hyper over rustls with ring, and the
/// system's trust roots.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A short account of a failed request: the S3 error code, its message and the HTTP status
/// for an answer; the cause (connection refused, timeout, ...) for no answer.
pub(super) fn sdk_error<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let err = service.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("HTTP {status}"),
            }
        }
        other => format!("{}", DisplayErrorContext(other)),
    }
}

pub(super) fn remote(key: &str, message: String) -> StoreError {
    StoreError::Remote {
        key: key.to_owned(),
        message,
    }
}
