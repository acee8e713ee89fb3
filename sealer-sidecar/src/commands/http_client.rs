//! A minimal HTTP/1.1 client for the commands that talk to a running sealer (`prove`,
//! `tail`): plain HTTP, as the sealer's API listener speaks it.

use anyhow::{Context, bail};
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `host:port` of an `http://` URL, and its path prefix.
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("{url:?}: only http:// URLs (the sealer's listener has no TLS)");
    };
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        bail!("{url:?}: no host");
    }
    Ok((authority.to_owned(), base.to_owned()))
}

/// Open a connection and send `GET base+path`; the response, body unread.
pub async fn request(
    url: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    let (authority, base) = split_url(url)?;
    let tcp = TcpStream::connect(&authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::get(format!("{base}{path}")).header("host", &authority);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = sender
        .send_request(req.body(Body::empty())?)
        .await
        .with_context(|| format!("GET {url}{path} failed"))?;
    Ok(response)
}

/// `GET url+path`: the status and the body as text.
pub async fn get(url: &str, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let response = request(url, path, token).await?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the response failed")?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
