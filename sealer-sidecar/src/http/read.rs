//! The read side of the HTTP API: query, proofs, and the live stream. All need the read
//! token when one is configured ([`crate::http::auth`]).
//!
//! | method and path                 | what                                                   |
//! |---------------------------------|--------------------------------------------------------|
//! | `GET /v1/events`                | filtered, paginated entries from the index ([`crate::read::index`]) |
//! | `GET /v1/proof/inclusion`       | one entry, its inclusion proof and the signed checkpoint, from the store's tiles ([`crate::read::proofs`]) |
//! | `GET /v1/proof/consistency`     | a consistency proof between two signed checkpoints, from the tiles |
//! | `GET /v1/stream`                | Server-Sent Events: entries as they are sealed         |
//! | `GET /v1/status`                | readiness, sizes, newest checkpoint, last verification |
//!
//! Proofs need no index: gateway sealers, which run without one, answer them too. The index
//! answers only for entries covered by a stored checkpoint; the stream shows
//! entries the moment they are durable in the write-ahead log.

// Helpers return the HTTP answer to send as their error, as the handlers do.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auditlog::merkle::{self, Hash};
use auditlog::query::{FILTER_PARAMS, Fields, Filter};
use auditlog::record::parse_record;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::broadcast::error::RecvError;

use crate::http::auth::Role;
use crate::http::{AppState, HttpError};
use crate::read::index::{Cursor, Order};
use crate::read::proofs::{self, ProofsError};
use crate::read::{StoredLog, cosigned};
use crate::store::Store;

/// Most entries in one page.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// A query parameter that is wrong.
fn bad_request(param: &str, message: String) -> HttpError {
    HttpError::bad_request("invalid_query", format!("{param}: {message}")).field(param)
}

fn unavailable(message: String) -> HttpError {
    HttpError::unavailable("index_unavailable", message)
}

/// The index, or the 503 to answer when it is turned off.
fn index_of<S>(state: &AppState<S>) -> Result<Arc<crate::read::index::IndexReader>, HttpError> {
    state.index.clone().ok_or_else(|| {
        HttpError::unavailable(
            "index_disabled",
            "this sealer runs with --index false: query a store with `sealer export` or \
             `sealer tail`; proofs (/v1/proof/*, `sealer prove --store`) need no index",
        )
    })
}

/// The filter of the query parameters, or the 400 naming the one that is wrong.
fn filter_of(pairs: &[(String, String)]) -> Result<Filter, HttpError> {
    Filter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| bad_request(e.param, e.message))
}

/// The stored checkpoint of `size` entries, or the 404 naming it (with `hint` appended).
async fn required_checkpoint<S: Store + Clone>(
    state: &AppState<S>,
    size: u64,
    hint: &str,
) -> Result<String, HttpError> {
    checkpoint_of_size(state, size).await?.ok_or_else(|| {
        HttpError::not_found(
            "no_checkpoint",
            format!("no stored checkpoint of {size} entries{hint}"),
        )
    })
}

fn hashes(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(|h| B64.encode(h)).collect()
}

/// Refuse parameters outside `known` (a typo would otherwise widen the query silently).
fn check_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), HttpError> {
    let mut unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    unknown.sort();
    match unknown.first() {
        None => Ok(()),
        Some(first) => Err(HttpError::bad_request(
            "invalid_query",
            format!(
                "unknown parameter(s) {}; known: {}",
                unknown.join(", "),
                known.join(", ")
            ),
        )
        .field(*first)),
    }
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, HttpError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| bad_request(name, format!("{v:?} is not a non-negative integer")))
        })
        .transpose()
}

#[derive(Serialize)]
struct EventsPage<'a> {
    entries: Vec<&'a RawValue>,
    next_cursor: Option<String>,
    /// Entries the index holds (those covered by the newest stored checkpoint).
    indexed_size: u64,
}

/// `GET /v1/events`: filters of [`Filter::from_pairs`], plus `order` (`newest`, `oldest`),
/// `limit` (1..=1000), `cursor` and `format` (`json`, `ndjson`).
pub async fn get_events<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, HttpError> {
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    state.tokens.check(Role::Read, &headers)?;
    let mut known: Vec<&str> = FILTER_PARAMS.to_vec();
    known.extend(["order", "limit", "cursor", "format"]);
    check_params(&params, &known)?;
    let filter = filter_of(&pairs)?;
    let order = match params.get("order").map(String::as_str) {
        None | Some("newest") => Order::NewestFirst,
        Some("oldest") => Order::OldestFirst,
        Some(o) => {
            return Err(bad_request(
                "order",
                format!("{o:?} is not newest or oldest"),
            ));
        }
    };
    let limit = number(&params, "limit")?.map_or(DEFAULT_LIMIT, |l| l as usize);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad_request("limit", format!("must be 1 to {MAX_LIMIT}")));
    }
    let cursor = match params.get("cursor") {
        None => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
            bad_request("cursor", format!("{c:?} is not a cursor from next_cursor"))
        })?),
    };
    let ndjson = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("ndjson") => true,
        Some(f) => {
            return Err(bad_request(
                "format",
                format!("{f:?} is not json or ndjson"),
            ));
        }
    };
    let index = index_of(&state)?;
    let indexed_size = index.size();
    let page = crate::read::index::query(&index, &state.store, &filter, order, cursor, limit)
        .await
        .map_err(|e| unavailable(format!("{e:#}")))?;
    let next = page.next.map(Cursor::encode);
    if ndjson {
        let mut body = String::with_capacity(page.entries.iter().map(|e| e.len() + 1).sum());
        for e in &page.entries {
            body.push_str(e);
            body.push('\n');
        }
        let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
        if let Some(n) = next.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            response.headers_mut().insert("x-next-cursor", n);
        }
        return Ok(response);
    }
    let entries: Vec<&RawValue> = page
        .entries
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    Ok(axum::Json(EventsPage {
        entries,
        next_cursor: next,
        indexed_size,
    })
    .into_response())
}

/// The stored checkpoint of exactly `size` entries, or the newest one when `size` is its size.
async fn checkpoint_of_size<S: Store + Clone>(
    state: &AppState<S>,
    size: u64,
) -> Result<Option<String>, HttpError> {
    let newest = state.head.borrow().clone();
    if newest.size == size
        && let Some(text) = newest.checkpoint
    {
        return Ok(Some(text.to_string()));
    }
    let log = StoredLog::new(&state.store);
    let Some(found) = log.checkpoint_at_size(size).await.map_err(|e| {
        HttpError::unavailable("proof_unavailable", format!("cannot list checkpoints: {e}"))
    })?
    else {
        return Ok(None);
    };
    let text = log.read_checkpoint(&found).await.map_err(|e| {
        HttpError::unavailable(
            "proof_unavailable",
            format!("cannot read {}: {e}", found.key),
        )
    })?;
    Ok(Some(text))
}

/// The newest stored checkpoint's size, once this sealer has stored one.
fn newest_size<S>(state: &AppState<S>) -> Option<u64> {
    let head = state.head.borrow();
    head.checkpoint.as_ref().map(|_| head.size)
}

/// What every proof request checks first: the read token and the parameters (only `known`
/// ones). Proofs come from the store's tiles, so they need no index.
fn proof_request<S>(
    state: &AppState<S>,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    known: &[&str],
) -> Result<(), HttpError> {
    state.tokens.check(Role::Read, headers)?;
    check_params(params, known)
}

/// The answer for a proof the store could not give.
fn proof_failed(e: ProofsError) -> HttpError {
    match e {
        ProofsError::NoEntry { .. } => HttpError::not_found("no_entry", e.to_string()),
        e => HttpError::unavailable(
            "proof_unavailable",
            format!("cannot compute the proof from the store: {e}"),
        ),
    }
}

/// `GET /v1/proof/inclusion?seq=N[&size=S][&cosigned=true]`: entry `N` with its inclusion
/// proof in the tree of the checkpoint of `S` entries (the newest checkpoint by default).
/// With `cosigned=true`, against the newest checkpoint that covers the entry and carries valid
/// cosignatures by `min_witnesses` (default 1) of the witnesses this sealer asks (`--witness`;
/// without any, any stored cosignature), carrying every stored cosignature. The answer is a self-contained
/// bundle for `sealer prove --bundle`.
pub async fn get_inclusion<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let state = &state;
    let params = &params;
    proof_request(
        state,
        &headers,
        params,
        &["seq", "size", "cosigned", "min_witnesses"],
    )?;
    let seq = number(params, "seq")?
        .ok_or_else(|| bad_request("seq", "required (the entry's position)".into()))?;
    let cosigned = match params.get("cosigned").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_request("cosigned", format!("{other:?}: true or false")));
        }
    };
    let (size, checkpoint) = if cosigned {
        // Counted with the witnesses this sealer asks; without any, any stored cosignature.
        let required = number(params, "min_witnesses")?.unwrap_or(1) as usize;
        let found = cosigned::newest_covering(
            &state.store,
            &state.verifier,
            &state.witness_keys,
            required,
            seq,
            number(params, "size")?,
        )
        .await
        .map_err(|e| {
            HttpError::unavailable(
                "proof_unavailable",
                format!("cannot read the cosigned checkpoints: {e}"),
            )
        })?;
        let c = found.ok_or_else(|| {
            HttpError::not_found(
                "not_cosigned",
                format!(
                    "no checkpoint covering entry {seq} carries {required} valid cosignature(s) \
                     of this sealer's witnesses yet (they cosign the checkpoints after it is \
                     sealed; see /v1/status)"
                ),
            )
        })?;
        (c.head.size, c.note.to_string())
    } else {
        let size = match number(params, "size")? {
            Some(s) => s,
            None => newest_size(state).ok_or_else(|| {
                HttpError::unavailable("no_checkpoint", "no checkpoint stored yet").retry_after(1)
            })?,
        };
        if seq >= size {
            return Err(HttpError::not_found(
                "not_in_checkpoint",
                format!("entry {seq} is not covered by the checkpoint of {size} entries"),
            ));
        }
        let checkpoint =
            required_checkpoint(state, size, "; leave size out for the newest").await?;
        (size, checkpoint)
    };
    let inclusion = proofs::inclusion(&state.store, seq, size)
        .await
        .map_err(proof_failed)?;
    Ok(axum::Json(json!({
        "seq": seq,
        "tree_size": size,
        "entry": inclusion.entry,
        "leaf_hash": B64.encode(merkle::leaf_hash(inclusion.entry.as_bytes())),
        "proof": hashes(&inclusion.proof),
        "checkpoint": checkpoint,
    }))
    .into_response())
}

/// `GET /v1/proof/consistency?from=A&to=B`: the proof that the checkpoint of `B` entries
/// extends that of `A`, with both checkpoints.
pub async fn get_consistency<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let state = &state;
    let params = &params;
    proof_request(state, &headers, params, &["from", "to"])?;
    let both = || bad_request("from", "from and to are both required (tree sizes)".into());
    let from = number(params, "from")?.ok_or_else(both)?;
    let to = number(params, "to")?.ok_or_else(both)?;
    if from == 0 || from > to {
        return Err(bad_request(
            "from",
            format!("need 0 < from <= to, got from={from} to={to}"),
        ));
    }
    let from_checkpoint = required_checkpoint(state, from, "").await?;
    let to_checkpoint = required_checkpoint(state, to, "").await?;
    let proof = proofs::consistency(&state.store, from, to)
        .await
        .map_err(proof_failed)?;
    Ok(axum::Json(json!({
        "from": from,
        "to": to,
        "proof": hashes(&proof),
        "from_checkpoint": from_checkpoint,
        "to_checkpoint": to_checkpoint,
    }))
    .into_response())
}

/// `GET /v1/stream`: every entry sealed from now on that matches the filters (those of
/// `GET /v1/events`), as an SSE `entry` event whose data is the entry. A reader too slow
/// for the rate gets a `lagged` event with the number of group commits it missed
/// (`missed_batches`). The stream ends when the sealer shuts down.
pub async fn get_stream<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, HttpError> {
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    state.tokens.check(Role::Read, &headers)?;
    check_params(&params, &FILTER_PARAMS)?;
    let filter = filter_of(&pairs)?;
    let rx = state.live.subscribe();
    let reader = StreamReader::count(&state.metrics.stream_readers);
    let stopping = state.stopping.clone();
    let stream = futures_util::stream::unfold(
        (
            rx,
            filter,
            std::collections::VecDeque::<Event>::new(),
            stopping,
            reader,
        ),
        |(mut rx, filter, mut queue, mut stopping, reader)| async move {
            loop {
                if let Some(ev) = queue.pop_front() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(ev),
                        (rx, filter, queue, stopping, reader),
                    ));
                }
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = stopping.wait_for(|s| *s) => return None,
                };
                match received {
                    Ok(batch) => {
                        for line in batch
                            .records
                            .split(|&b| b == b'\n')
                            .filter(|l| !l.is_empty())
                        {
                            let Ok(record) = parse_record(line) else {
                                continue;
                            };
                            let Ok(text) = std::str::from_utf8(record.entry) else {
                                continue;
                            };
                            let Ok(value) = serde_json::from_str(text) else {
                                continue;
                            };
                            if filter.matches(&Fields::of(&value), text) {
                                queue.push_back(Event::default().event("entry").data(text));
                            }
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        queue.push_back(
                            Event::default()
                                .event("lagged")
                                .data(json!({"missed_batches": n}).to_string()),
                        );
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// One connected reader of the stream, counted in `sealer_stream_readers` for as long as the
/// stream lives.
struct StreamReader(crate::metrics::Level);

impl StreamReader {
    fn count(readers: &crate::metrics::Level) -> StreamReader {
        readers.inc();
        StreamReader(readers.clone())
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /v1/status`: what the page shows above the entries.
pub async fn get_status<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    state.tokens.check(Role::Read, &headers)?;
    let m = &state.metrics;
    let head = state.head.borrow().clone();
    Ok(axum::Json(json!({
        "origin": state.verifier.name(),
        "ready": m.is_ready(),
        "integrity_alarms": m.integrity_alarms.get(),
        "log_size": m.log_size.get(),
        "checkpoint_size": head.size,
        "indexed_size": state.index.as_ref().map(|i| i.size()),
        "upload_lag_entries": m.log_size.get().saturating_sub(head.size),
        "checkpoint": head.checkpoint.as_deref(),
        "witnesses": state.witnesses.lock().expect("not poisoned").clone(),
        "last_verification": state.last_verification.read().await.clone(),
    }))
    .into_response())
}
