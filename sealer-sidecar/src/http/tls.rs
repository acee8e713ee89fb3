//! The TLS side of the webhook listener: certificates from PEM files, reloaded when the
//! files change, optional client certificates checked against a CA, and the accept loop
//! that serves an axum router over it (HTTP/1.1, as kube-apiserver's webhook client speaks).
//!
//! Reloading: the files are checked every [`RELOAD_CHECK`]. When any changed (as when
//! cert-manager renews a certificate, or a Kubernetes Secret volume swaps its `..data`
//! link), the whole configuration is loaded again and used for new connections; if the new
//! files do not load, the old configuration stays and the error is logged.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// A client must finish the TLS handshake, and send its request headers, within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// In-flight requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the listener's certificate, key and (optionally) client CA come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: CA certificates that client certificates must chain to. Without it, no client
    /// certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

/// Whether the client presented a certificate that chains to the client CA; inserted into
/// every request of the connection. (rustls refuses the handshake for a certificate that
/// does not verify, so a present certificate is a verified one.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate(pub bool);

fn read_certs(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{flag} {}: not a readable PEM file", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{flag} {}: no CERTIFICATE block in the file",
            path.display()
        );
    }
    Ok(certs)
}

/// Build the rustls configuration from the files.
pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = read_certs(&files.cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "--tls-key {}: no readable private key (PEM PKCS#8, PKCS#1 or SEC1)",
            files.key.display()
        )
    })?;
    // The provider is named: a build with S3 has aws-lc-rs in rustls too, and with two
    // providers rustls would not choose.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no safe protocol version")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path, "--webhook-client-ca")? {
                roots.add(cert).with_context(|| {
                    format!(
                        "--webhook-client-ca {}: not a CA certificate",
                        path.display()
                    )
                })?;
            }
            // A client without a certificate may still use the bearer token.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("--webhook-client-ca {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "--tls-cert {} and --tls-key {} do not form a usable pair",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Modification time, size and inode of each file: what changes when a file is replaced.
fn stamp(files: &TlsFiles) -> Vec<Option<(SystemTime, u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        fs::metadata(p).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        })
    })
    .collect()
}

/// The current configuration, replaced when the files change.
pub struct ReloadingTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadingTls {
    pub fn new(files: TlsFiles) -> anyhow::Result<Arc<ReloadingTls>> {
        let config = load(&files)?;
        Ok(Arc::new(ReloadingTls {
            files,
            current: RwLock::new(config),
        }))
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("not poisoned").clone())
    }

    /// Check the files every [`RELOAD_CHECK`] until `stop`, reloading when they change.
    async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut seen = stamp(&self.files);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_CHECK) => {}
                _ = stopped(&mut stop) => return,
            }
            let now = stamp(&self.files);
            if now == seen {
                continue;
            }
            // A writer may be between the certificate and the key: look again next time
            // unless this pair loads.
            match load(&self.files) {
                Ok(config) => {
                    *self.current.write().expect("not poisoned") = config;
                    seen = now;
                    tracing::info!(cert = %self.files.cert.display(), "webhook TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "webhook TLS files changed but do not load; still serving the previous certificate"
                    );
                    seen = now;
                }
            }
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serve `router` over TLS on `listener` until `stop` turns true, then let in-flight
/// requests finish (up to 15 s).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let reloader = tokio::spawn(tls.clone().watch(stop.clone()));
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "webhook listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let acceptor = tls.acceptor();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "webhook: TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "webhook: TLS handshake timed out");
                    return;
                }
            };
            let has_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let service =
                TowerToHyperService::new(router.layer(Extension(ClientCertificate(has_cert))));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("webhook: requests still in flight after {DRAIN_TIMEOUT:?}; closing them");
    }
    let _ = reloader.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_named_with_their_flag() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("not-pem.txt");
        fs::write(&text, "hello\n").unwrap();
        let files = TlsFiles {
            cert: text.clone(),
            key: text.clone(),
            client_ca: None,
        };
        let err = format!("{:#}", load(&files).unwrap_err());
        assert!(
            err.contains("--tls-cert") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let missing = TlsFiles {
            cert: dir.path().join("absent.pem"),
            ..files
        };
        let err = format!("{:#}", load(&missing).unwrap_err());
        assert!(
            err.contains("--tls-cert") && err.contains("absent.pem"),
            "{err}"
        );
    }
}
