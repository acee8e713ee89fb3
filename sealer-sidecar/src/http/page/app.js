// The live page: history from GET /v1/events, new entries from GET /v1/stream (SSE), status
// from GET /v1/status, proofs from GET /v1/proof/inclusion, checked here with WebCrypto.
// Everything is same-origin; nothing is fetched from anywhere else.
"use strict";

const MAX_ROWS = 500;
const BUCKET_SECONDS = 10;
const BUCKETS = 30;
const $ = (sel) => document.querySelector(sel);
const rows = new Map(); // seq -> entry
let stream = null;
let selected = null;
const buckets = []; // {t, c2, c3, c4, c5}

function filterParams() {
  const params = new URLSearchParams();
  for (const el of $("#filters").elements) {
    if (el.name && el.value.trim() !== "") params.set(el.name, el.value.trim());
  }
  return params;
}

function loadFiltersFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const el of $("#filters").elements) {
    if (el.name) el.value = params.get(el.name) || "";
  }
  return params.get("open");
}

async function getJSON(path) {
  const res = await fetch(path, { credentials: "same-origin" });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { message: text }; }
  if (!res.ok) throw new Error(`${path}: ${res.status} ${body.message || body.error || ""}`);
  return body;
}

function showError(message) {
  const el = $("#error");
  el.textContent = message;
  el.hidden = !message;
}

function statusClass(code) {
  return code ? `s${Math.floor(code / 100)}` : "";
}

function describe(entry) {
  const e = entry.event || {};
  switch (entry.kind) {
    case "http":
      return {
        time: e.start_time,
        who: e.enduser ? `${e.enduser.id} (${e.enduser.source})` : "",
        request: `${e.http?.request?.method || ""} ${e.server?.address || ""}${e.url?.path || ""}${e.url?.query ? "?" + e.url.query : ""}`,
        status: e.http?.response?.status_code,
        client: e.client?.address || "",
        gateway: (entry.source?.id || "").split("/")[0],
      };
    case "k8s_audit": {
      const o = e.objectRef || {};
      const name = [o.namespace, o.name].filter(Boolean).join("/");
      return {
        time: e.stageTimestamp || entry.sealed_at,
        who: (e.user?.username || "") + (e.impersonatedUser ? ` as ${e.impersonatedUser.username}` : ""),
        request: `${e.verb} ${o.resource || ""}${o.subresource ? "/" + o.subresource : ""} ${name}`,
        status: e.responseStatus?.code,
        client: (e.sourceIPs || [])[0] || "",
        gateway: "kubernetes",
      };
    }
    case "gap":
      return {
        time: entry.sealed_at,
        who: "",
        request: `GAP: ${e.count} event(s) lost (${e.first_seq}–${e.last_seq}, ${e.reason})`,
        status: "", client: "",
        gateway: (entry.source?.id || "").split("/")[0],
      };
    case "source_end":
      return {
        time: entry.sealed_at,
        who: "",
        request: e.clean
          ? `source closed after event ${e.last_seq}`
          : `SOURCE ENDED UNCLEANLY after event ${e.last_seq}: ${e.reason}`,
        status: "", client: "",
        gateway: (entry.source?.id || "").split("/")[0],
      };
    default:
      return { time: entry.sealed_at, who: "", request: `sealer started (${e.sealer_version || ""})`, status: "", client: "", gateway: "" };
  }
}

function rowFor(entry, fresh) {
  const d = describe(entry);
  const tr = document.createElement("tr");
  tr.dataset.seq = entry.seq;
  const loss = entry.kind === "gap" || (entry.kind === "source_end" && !entry.event.clean);
  tr.className = [loss ? "gap" : "", entry.kind === "k8s_audit" ? "k8s" : "", fresh ? "new" : ""].join(" ").trim();
  const cells = [entry.seq, (d.time || "").replace("T", " ").replace(/\.\d+Z$/, "Z"), entry.kind, d.who, d.request, d.status, d.client, d.gateway];
  cells.forEach((value, i) => {
    const td = document.createElement("td");
    td.textContent = value ?? "";
    if (i === 5) td.className = statusClass(d.status);
    if (i === 4) td.title = d.request;
    tr.appendChild(td);
  });
  tr.addEventListener("click", () => openDetail(entry.seq));
  return tr;
}

function addEntry(entry, fresh) {
  if (rows.has(entry.seq)) return;
  rows.set(entry.seq, entry);
  const body = $("#entries tbody");
  const tr = rowFor(entry, fresh);
  // Newest first, by position.
  let before = null;
  for (const other of body.children) {
    if (Number(other.dataset.seq) < entry.seq) { before = other; break; }
  }
  body.insertBefore(tr, before);
  while (body.children.length > MAX_ROWS) {
    const last = body.lastElementChild;
    rows.delete(Number(last.dataset.seq));
    last.remove();
  }
  if (entry.kind === "http") count(entry.event?.http?.response?.status_code, fresh ? Date.now() : Date.parse(entry.event?.start_time));
}

function count(status, when) {
  const cls = Math.floor((status || 0) / 100);
  if (cls < 2 || cls > 5 || !Number.isFinite(when)) return;
  const t = Math.floor(when / 1000 / BUCKET_SECONDS) * BUCKET_SECONDS;
  let b = buckets.find((x) => x.t === t);
  if (!b) { b = { t, 2: 0, 3: 0, 4: 0, 5: 0 }; buckets.push(b); }
  b[cls] += 1;
  drawChart();
}

function drawChart() {
  const svg = $("#chart");
  const now = Math.floor(Date.now() / 1000 / BUCKET_SECONDS) * BUCKET_SECONDS;
  const series = [];
  for (let i = BUCKETS - 1; i >= 0; i--) {
    const t = now - i * BUCKET_SECONDS;
    series.push(buckets.find((x) => x.t === t) || { t, 2: 0, 3: 0, 4: 0, 5: 0 });
  }
  const max = Math.max(1, ...series.map((b) => b[2] + b[3] + b[4] + b[5]));
  const w = 300 / BUCKETS;
  let parts = "";
  series.forEach((b, i) => {
    let y = 60;
    for (const cls of [2, 3, 4, 5]) {
      const h = (b[cls] / max) * 58;
      if (h > 0) {
        y -= h;
        parts += `<rect x="${i * w + 0.5}" y="${y}" width="${w - 1}" height="${h}" fill="var(--c${cls})"><title>${b[cls]} × ${cls}xx</title></rect>`;
      }
    }
  });
  svg.innerHTML = parts;
}

async function loadHistory() {
  const params = filterParams();
  params.set("limit", "100");
  try {
    const page = await getJSON(`/v1/events?${params}`);
    for (const entry of page.entries.slice().reverse()) addEntry(entry, false);
    showError("");
  } catch (e) {
    showError(e.message);
  }
}

function connect() {
  if (stream) stream.close();
  const live = $("#live");
  stream = new EventSource(`/v1/stream?${filterParams()}`);
  stream.addEventListener("open", () => { live.textContent = "live"; live.className = "pill ok"; });
  stream.addEventListener("entry", (ev) => { addEntry(JSON.parse(ev.data), true); soonRefreshStatus(); });
  stream.addEventListener("lagged", () => {
    live.textContent = "too slow: entries skipped"; live.className = "pill bad";
  });
  stream.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "pill muted"; });
}

function apply() {
  const params = filterParams();
  const open = new URLSearchParams(location.hash.slice(1)).get("open");
  if (open) params.set("open", open);
  history.replaceState(null, "", `#${params}`);
  rows.clear();
  $("#entries tbody").innerHTML = "";
  buckets.length = 0;
  drawChart();
  loadHistory();
  connect();
}

function parseCheckpoint(text) {
  const [body, sigs] = text.split("\n\n");
  const lines = body.split("\n");
  return { origin: lines[0], size: Number(lines[1]), root: lines[2], body: body + "\n", signatures: (sigs || "").split("\n").filter(Boolean) };
}

async function refreshStatus() {
  try {
    const s = await getJSON("/v1/status");
    $("#origin").textContent = s.origin;
    const ready = $("#ready");
    ready.textContent = s.ready ? "ready" : "NOT READY";
    ready.className = s.ready ? "pill ok" : "pill bad";
    const alarms = $("#alarms");
    alarms.textContent = `${s.integrity_alarms} integrity alarm(s)`;
    alarms.className = s.integrity_alarms > 0 ? "pill bad" : "pill ok";
    const indexed = s.indexed_size === null ? "no index (history off)" : `${s.indexed_size} indexed`;
    $("#lag").textContent = `${s.log_size} sealed · ${s.checkpoint_size} checkpointed · ${indexed}`;
    if (lastIndexed !== null && s.indexed_size !== lastIndexed) loadHistory();
    lastIndexed = s.indexed_size;
    const banner = $("#banner");
    const problems = [];
    if (s.integrity_alarms > 0) problems.push(`INTEGRITY ALARM: the store holds objects with unexpected content (${s.integrity_alarms}). See the sealer's log.`);
    if (s.last_verification && !s.last_verification.ok) problems.push(`VERIFICATION FAILED at ${s.last_verification.at}: ${s.last_verification.problems} problem(s).`);
    banner.textContent = problems.join(" ");
    banner.hidden = problems.length === 0;
    if (s.checkpoint) {
      const c = parseCheckpoint(s.checkpoint);
      $("#checkpoint").textContent = `${c.size} entries · root ${c.root}\n${c.signatures.join("\n")}`;
    }
    showWitnesses(s.witnesses || [], s.checkpoint_size);
    const v = s.last_verification;
    $("#verification").textContent = v
      ? `${v.ok ? "passed" : "FAILED"} at ${v.at}: ${v.size} entries, ${v.problems} problem(s)`
      : "not run since the sealer started";
    $("#verification").className = v ? (v.ok ? "" : "bad") : "muted";
  } catch (e) {
    showError(e.message);
  }
}

// Each configured witness: whether it cosigned the newest checkpoint, or how far behind it is.
function showWitnesses(witnesses, newest) {
  const list = $("#witnesses");
  list.replaceChildren();
  list.className = witnesses.length ? "plain" : "plain muted";
  if (!witnesses.length) {
    const li = document.createElement("li");
    li.textContent = "none configured (sealer serve --witness URL=VKEY)";
    list.append(li);
  }
  for (const w of witnesses) {
    const li = document.createElement("li");
    const when = w.cosigned_at ? new Date(w.cosigned_at * 1000).toISOString().replace(/\.\d+Z$/, "Z") : "";
    let text, cls;
    if (w.cosigned_size !== null && w.cosigned_size === newest) {
      text = `\u2713 ${w.name} cosigned the newest checkpoint (${w.cosigned_size} entries) at ${when}`;
      cls = "ok";
    } else if (w.cosigned_size !== null) {
      text = `${w.name} cosigned ${w.cosigned_size} entries at ${when}; not the newest checkpoint yet`;
      cls = w.last_error ? "bad" : "muted";
    } else {
      text = `${w.name} has cosigned nothing yet`;
      cls = w.last_error ? "bad" : "muted";
    }
    if (w.last_error) text += ` \u00b7 FAILING: ${w.last_error}`;
    li.textContent = text;
    li.className = cls;
    list.append(li);
  }
}

// The index trails the stream by the time it takes to store and checkpoint a segment.
// Entries sealed between the index's end and the stream's start would be missing: load the
// newest page again whenever the index grows (rows are merged by position).
let lastIndexed = null;

let statusTimer = null;
function soonRefreshStatus() {
  if (statusTimer === null) statusTimer = setTimeout(() => { statusTimer = null; refreshStatus(); }, 1000);
}

async function verifyNow() {
  const button = $("#verify-now");
  button.disabled = true;
  button.textContent = "verifying…";
  try { await getJSON("/verify"); } catch (e) { showError(e.message); }
  button.disabled = false;
  button.textContent = "Verify now";
  refreshStatus();
}

function openDetail(seq) {
  const entry = rows.get(seq);
  if (!entry) return;
  selected = seq;
  $("#detail").hidden = false;
  $("#detail-seq").textContent = seq;
  const pos = $("#position");
  pos.innerHTML = "";
  const add = (k, v) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; pos.append(dt, dd); };
  add("position", `entry ${entry.seq} of the log (leaf ${entry.seq} of its Merkle tree)`);
  add("kind", entry.kind);
  add("sealed at", entry.sealed_at);
  if (entry.source) add("source", `${entry.source.id}${entry.source.seq !== undefined ? " #" + entry.source.seq : ""}`);
  $("#detail-json").textContent = JSON.stringify(entry, null, 2);
  const inc = $("#inclusion");
  inc.textContent = ""; inc.className = "muted";
  const params = new URLSearchParams(location.hash.slice(1));
  params.set("open", seq);
  history.replaceState(null, "", `#${params}`);
}

function b64(s) { return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); }
function concat(...parts) { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let i = 0; for (const p of parts) { out.set(p, i); i += p.length; } return out; }
async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }
function equal(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

// RFC 9162 2.1.3.2.
async function rootFromPath(leaf, index, size, proof) {
  let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      if ((fn & 1n) === 0n) { while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; } }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

// A C2SP signed-note Ed25519 signature by the key `vkey` (name+hash+base64).
async function checkSignature(checkpoint, vkey) {
  // name+hash+base64: the base64 may itself hold '+', so split at the first two only.
  const v = vkey.trim();
  const first = v.indexOf("+");
  const second = v.indexOf("+", first + 1);
  const name = v.slice(0, first);
  const key64 = v.slice(second + 1);
  const key = b64(key64);
  if (key[0] !== 1 || key.length !== 33) throw new Error("not an Ed25519 note key");
  const line = checkpoint.signatures.find((l) => l.startsWith(`\u2014 ${name} `));
  if (!line) throw new Error(`the checkpoint has no signature by ${name}`);
  const sig = b64(line.split(" ")[2]).slice(4);
  const publicKey = await crypto.subtle.importKey("raw", key.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, publicKey, sig, new TextEncoder().encode(checkpoint.body));
}

// A C2SP tlog-cosignature (cosignature/v1) by the witness key `vkey` (name+id+base64 of
// 0x04 || Ed25519 key): the time it cosigned, in POSIX seconds.
async function checkCosignature(checkpoint, vkey) {
  const v = vkey.trim();
  const first = v.indexOf("+");
  const second = v.indexOf("+", first + 1);
  const name = v.slice(0, first);
  const id = v.slice(first + 1, second);
  const key = b64(v.slice(second + 1));
  if (key[0] !== 4 || key.length !== 33) throw new Error(`${name}: not a witness (cosignature/v1) key`);
  const line = checkpoint.signatures.find((l) => {
    if (!l.startsWith(`\u2014 ${name} `)) return false;
    const raw = b64(l.split(" ")[2]);
    return [...raw.slice(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("") === id;
  });
  if (!line) throw new Error(`no cosignature by ${name}`);
  const raw = b64(line.split(" ")[2]);
  if (raw.length !== 4 + 8 + 64) throw new Error(`the cosignature by ${name} is malformed`);
  const time = new DataView(raw.buffer, 4, 8).getBigUint64(0);
  const message = new TextEncoder().encode(`cosignature/v1\ntime ${time}\n${checkpoint.body}`);
  const publicKey = await crypto.subtle.importKey("raw", key.slice(1), { name: "Ed25519" }, false, ["verify"]);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, publicKey, raw.slice(12), message))) {
    throw new Error(`THE COSIGNATURE BY ${name} DOES NOT VERIFY`);
  }
  return { name, time: new Date(Number(time) * 1000).toISOString().replace(/\.\d+Z$/, "Z") };
}

async function verifyInclusion() {
  const inc = $("#inclusion");
  inc.className = "muted";
  inc.textContent = "fetching the proof…";
  try {
    const witnessKeys = $("#witness-keys").value.split(/\s+/).filter(Boolean);
    const cosigned = witnessKeys.length ? "&cosigned=true" : "";
    const bundle = await getJSON(`/v1/proof/inclusion?seq=${selected}${cosigned}`);
    // The proof must be about the entry shown, at the position shown.
    const proven = JSON.parse(bundle.entry);
    if (proven.seq !== selected || JSON.stringify(proven) !== JSON.stringify(rows.get(selected))) {
      throw new Error("NOT INCLUDED: the proof is about another entry than the one shown");
    }
    const checkpoint = parseCheckpoint(bundle.checkpoint);
    const leaf = await sha256(concat(Uint8Array.of(0), new TextEncoder().encode(bundle.entry)));
    const root = await rootFromPath(leaf, bundle.seq, bundle.tree_size, bundle.proof.map(b64));
    const ok = root !== null && checkpoint.size === bundle.tree_size && equal(root, b64(checkpoint.root));
    let text = ok
      ? `included: the audit path from this entry leads to the root of the checkpoint of ${checkpoint.size} entries.`
      : "NOT INCLUDED: the proof does not lead to the checkpoint's root.";
    const vkey = $("#pubkey").value;
    if (ok && vkey) {
      const signed = await checkSignature(checkpoint, vkey).catch((e) => { text += ` Signature not checked: ${e.message}.`; return null; });
      if (signed === true) text += " The checkpoint's signature verifies with the key given.";
      if (signed === false) { text += " BUT THE CHECKPOINT'S SIGNATURE DOES NOT VERIFY with the key given."; }
    } else if (ok) {
      text += " Paste the log's public key to check the checkpoint's signature too, or use `sealer prove`.";
    }
    if (ok && witnessKeys.length) {
      for (const w of witnessKeys) {
        try {
          const c = await checkCosignature(checkpoint, w);
          text += ` Cosigned by witness ${c.name} at ${c.time}.`;
        } catch (e) {
          text += ` ${e.message.includes("DOES NOT") ? e.message : "NOT COSIGNED: " + e.message}.`;
        }
      }
    }
    inc.textContent = text;
    inc.className = ok && !text.includes("DOES NOT") && !text.includes("NOT COSIGNED") ? "ok" : "bad";
  } catch (e) {
    inc.textContent = e.message;
    inc.className = "bad";
  }
}

$("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
$("#clear").addEventListener("click", () => { $("#filters").reset(); apply(); });
$("#verify-now").addEventListener("click", verifyNow);
$("#verify-inclusion").addEventListener("click", verifyInclusion);
$("#close-detail").addEventListener("click", () => {
  $("#detail").hidden = true;
  selected = null;
  const params = new URLSearchParams(location.hash.slice(1));
  params.delete("open");
  history.replaceState(null, "", `#${params}`);
});

const openSeq = loadFiltersFromHash();
loadHistory().then(() => { if (openSeq !== null && rows.has(Number(openSeq))) openDetail(Number(openSeq)); });
connect();
refreshStatus();
setInterval(refreshStatus, 3000);
setInterval(drawChart, 5000);
