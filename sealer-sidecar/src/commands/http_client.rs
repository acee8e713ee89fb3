//! A minimal HTTP/1.1 client for the commands that talk to a running sealer (`prove`,
//! `tail`) and for the sealer's submissions to witnesses: plain HTTP, as the sealer's API
//! listener and `sealer witness` speak it.

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
    send(url, path, token, None).await
}

/// `POST url+path` with a text body: the status, the content type and the body.
pub async fn post(url: &str, path: &str, body: String) -> anyhow::Result<(u16, String, String)> {
    let response = send(url, path, None, Some(body)).await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, read_body(response).await?))
}

/// A response's body, as text.
async fn read_body(response: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<String> {
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the response failed")?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Send `GET` (no body) or `POST` (a body) to `base+path`; the response, body unread.
async fn send(
    url: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
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
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("host", &authority);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => Body::from(b),
        None => Body::empty(),
    };
    let response = sender
        .send_request(req.body(body)?)
        .await
        .with_context(|| format!("{method} {url}{path} failed"))?;
    Ok(response)
}

/// `GET url+path`: the status and the body as text.
pub async fn get(url: &str, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let response = request(url, path, token).await?;
    let status = response.status().as_u16();
    Ok((status, read_body(response).await?))
}
