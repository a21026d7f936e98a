// The overlay protocol v1 in the browser (docs/protocol.md): one WebSocket with msgpack frames, the
// wire helpers, and the severity colour scale shared by the dashboard and the AR view.
// msgpack comes from the vendored UMD build (window.MessagePack), loaded by the page.

export const MP = { useBigInt64: true };

/** A typed view of a wire array {dtype, shape, data} (copied, so the alignment is right). */
export function blob(b, Type) { const d = b.data; return new Type(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)); }
export const floats = (b) => (b.dtype === "<f8" ? Float32Array.from(blob(b, Float64Array)) : blob(b, Float32Array));
export const num = (v) => (typeof v === "bigint" ? Number(v) : v);

/** Grey below the threshold (0.5), amber to red above: calm, and severity is plain. */
export function severity(score) {
  const s = Math.max(0, Math.min(1, score));
  if (s < 0.5) { const g = 0.29 + 0.3 * s; return [g, g + 0.03, g + 0.07]; }
  const t = (s - 0.5) / 0.5;
  return [0.89 - 0.14 * t, 0.70 - 0.48 * t, 0.25 - 0.07 * t];
}
export const css = (rgb) => `rgb(${rgb.map((c) => Math.round(255 * c)).join(",")})`;

/**
 * Connect with `token`: ask /api/session for the role, open /ws, say hello, and hand every decoded
 * message to onMessage. Reconnects after 2 s, also when the server cannot be reached. onStatus(text,
 * ok) reports the connection. send(msg) never drops a message while the session is down: it waits
 * in order for the next welcome (at most MAX_PENDING; the oldest goes first, with a console warning).
 * Returns { send(msg), role(), serverOffsetNs() } -- the offset of the server clock from Date.now().
 */
export const MAX_PENDING = 256;
export function openSession(token, clientName, { onMessage, onStatus }) {
  let ws = null, live = false, role = "operator", offsetNs = 0n;
  const pending = [];
  const flush = () => { while (live && pending.length) ws.send(MessagePack.encode(pending.shift(), MP)); };
  const retry = (text) => { live = false; onStatus(`${text}; retrying`, false); setTimeout(connect, 2000); };
  async function connect() {
    let who;
    try {
      who = await fetch("/api/session", { headers: { Authorization: `Bearer ${token}` } });
    } catch (e) {
      retry(`server unreachable (${e.message})`);
      return;
    }
    if (!who.ok) { onStatus(`token refused (${who.status})`, false); return; }
    role = (await who.json()).role;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(MessagePack.encode({ v: 1, type: "hello", seq: 0, client_name: clientName, role, versions: [1] }, MP));
    ws.onmessage = (ev) => {
      const m = MessagePack.decode(new Uint8Array(ev.data), MP);
      if (m.type === "welcome") {
        offsetNs = BigInt(m.server_ts_ns) - BigInt(Date.now()) * 1000000n;
        live = true;
        onStatus(`live as ${role}`, true);
        flush();
      }
      onMessage(m);
    };
    ws.onclose = (ev) => retry(`disconnected (${ev.code}${ev.reason ? ": " + ev.reason : ""})`);
  }
  connect();
  return {
    send: (msg) => {
      pending.push(msg);
      if (pending.length > MAX_PENDING) console.warn("xr session: offline too long; dropped", pending.shift());
      flush();
    },
    role: () => role,
    serverOffsetNs: () => offsetNs,
  };
}

/** Apply a `defects` message to `state` ({vehicle, defects: Map}): a new vehicle or a full set
 *  replaces the set; a delta adds/replaces by id and drops `removed`. */
export function applyDefects(state, m) {
  if (m.vehicle_id !== state.vehicle) { state.vehicle = m.vehicle_id; state.defects.clear(); }
  if (m.mode === "full") state.defects.clear();
  for (const d of m.defects) state.defects.set(d.defect_id, d);
  for (const k of m.removed) state.defects.delete(k);
}

/** A feedback message for a defect (the server answers every client with a defects delta). */
export function feedback(defect, status, vehicleId, operatorId) {
  return { v: 1, type: "feedback", seq: 0, defect_id: defect.defect_id, vehicle_id: defect.vehicle_id ?? vehicleId,
    status, operator_id: operatorId, ts_ns: BigInt(Date.now()) * 1000000n, comment: "" };
}
