// The supervisor dashboard: one WebSocket (overlay protocol v1, msgpack; docs/protocol.md) keeps the
// state; REST gives the role, the mesh and the history. Feedback goes back as protocol `feedback`.
import * as THREE from "three";
import { GLTFLoader } from "/static/vendor/three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "/static/vendor/three/addons/controls/OrbitControls.js";
import { applyDefects, blob, css, feedback, floats, num, openSession, severity } from "/static/protocol.js";

const token = new URLSearchParams(location.search).get("token") || "";
const auth = { headers: { Authorization: `Bearer ${token}` } };
const $ = (id) => document.getElementById(id);
$("ar-link").href = `/static/ar.html?token=${encodeURIComponent(token)}`;
const state = { vehicle: null, defects: new Map(), alerts: new Map(), views: {}, scene: null, review: null };
window.xrState = state; // for tests and for a curious supervisor's console

// ---------- 3D view ----------
const canvas = $("scene");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
const scene3 = new THREE.Scene();
scene3.background = new THREE.Color(0x1d232b);
const camera = new THREE.PerspectiveCamera(40, 2, 0.05, 50);
camera.up.set(0, 0, 1);
camera.position.set(-2.6, -3.4, -1.4); // below the car, looking up at the underbody
const controls = new OrbitControls(camera, canvas);
controls.target.set(0, 0, 1);
scene3.add(new THREE.HemisphereLight(0xffffff, 0x445566, 2.0));
const vehicle = new THREE.Group(); // everything in the vehicle frame, moved by the pose
scene3.add(vehicle);
const markers = new THREE.Group();
vehicle.add(markers);
let meshGeometry = null;

function resize() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { renderer.setSize(w, h, false); camera.aspect = w / h; camera.updateProjectionMatrix(); }
}
(function loop() { resize(); controls.update(); renderer.render(scene3, camera); requestAnimationFrame(loop); })();

function loadMesh(url) {
  fetch(url, auth).then((r) => r.arrayBuffer()).then((buf) => new GLTFLoader().parse(buf, "", (gltf) => {
    gltf.scene.traverse((o) => {
      if (!o.isMesh) return;
      meshGeometry = o.geometry;
      meshGeometry.computeVertexNormals(); // the server's GLB carries positions and triangles only
      const n = meshGeometry.attributes.position.count;
      const colors = new Float32Array(3 * n);
      for (let i = 0; i < n; i++) colors.set(severity(0), 3 * i);
      meshGeometry.setAttribute("color", new THREE.BufferAttribute(colors, 3));
      o.material = new THREE.MeshLambertMaterial({ vertexColors: true, side: THREE.DoubleSide });
    });
    vehicle.add(gltf.scene);
  }));
}

function drawSeams(seams) {
  for (const s of seams) {
    const p = floats(s.points_vehicle_m);
    const g = new THREE.BufferGeometry().setAttribute("position", new THREE.BufferAttribute(p, 3));
    vehicle.add(new THREE.Line(g, new THREE.LineBasicMaterial({ color: 0x9fb3c8 })));
  }
}

function paintHeatmap(values) {
  if (!meshGeometry || values.length !== meshGeometry.attributes.position.count) return;
  const c = meshGeometry.attributes.color;
  const lut = Array.from({ length: 256 }, (_, k) => severity(k / 255));
  for (let i = 0; i < values.length; i++) c.array.set(lut[values[i]], 3 * i);
  c.needsUpdate = true;
}

function drawMarkers() {
  markers.clear();
  for (const d of state.defects.values()) {
    if (d.status === "rejected" || d.status === "fixed") continue;
    const m = new THREE.Mesh(new THREE.SphereGeometry(0.03, 16, 12),
      new THREE.MeshBasicMaterial({ color: new THREE.Color(...severity(d.peak_score)) }));
    m.position.set(...d.centroid_vehicle_m);
    markers.add(m);
  }
}

// ---------- panels ----------
const ACTIONS = [["confirm", "confirmed"], ["reject", "rejected"], ["fixed", "fixed"]]; // button/action, status

/** One defect row with its feedback buttons; onAction(d, action, status) sends the click. */
function defectRow(d, onAction) {
  const tr = document.createElement("tr");
  tr.className = d.status;
  tr.dataset.defectId = d.defect_id;
  const size = `${d.extent_mm[0].toFixed(0)} x ${d.extent_mm[1].toFixed(0)} mm`;
  const along = d.s_mm == null ? "-" : `${d.s_mm.toFixed(0)} mm`;
  tr.innerHTML = `<td>${d.defect_id.split("-").pop()}</td><td>${d.seam_id ?? "off seam"}</td><td>${d.robot_id ?? "-"}</td>`
    + `<td>${along}</td><td>${size}</td><td><span class="sev" style="background:${css(severity(d.peak_score))}"></span>`
    + `${d.peak_score.toFixed(2)}</td><td>${d.status}</td><td></td>`;
  for (const [action, status] of ACTIONS) {
    const b = document.createElement("button");
    b.textContent = action;
    b.className = `fb-${action}`;
    b.onclick = () => onAction(d, action, status);
    tr.lastChild.appendChild(b);
  }
  return tr;
}

/** The rows of a defect table (live or review), highest score first. */
function fillDefects(tbody, defects, onAction) {
  tbody.replaceChildren(...[...defects].sort((a, b) => b.peak_score - a.peak_score).map((d) => defectRow(d, onAction)));
}

function renderDefects() {
  fillDefects($("defects").querySelector("tbody"), state.defects.values(), (d, _, status) => sendFeedback(d, status));
  $("ndef").textContent = state.defects.size;
  drawMarkers();
}

// Camera tiles persist (their <video> keeps playing); each stats message updates the health.
function renderCameras() {
  const box = $("cameras");
  for (const [id, st] of Object.entries(state.views)) {
    let t = box.querySelector(`.tile[data-camera="${CSS.escape(id)}"]`);
    if (!t) {
      t = document.createElement("div");
      t.dataset.camera = id;
      t.innerHTML = '<video autoplay muted playsinline></video><div class="cap"><b></b><small></small></div>';
      t.querySelector("b").textContent = id;
      box.appendChild(t);
    }
    t.className = `tile ${st}`;
    t.querySelector("small").textContent = st;
  }
  if (!video && Object.keys(state.views).length) startVideo(Object.keys(state.views).length);
}

// ---------- camera video: one WebRTC peer, one receive-only track per camera (POST /rtc/offer) ----------
let video = null;

async function startVideo(n) {
  const pc = new RTCPeerConnection(); // a plant LAN needs no STUN/TURN; see docs/operations.md
  video = pc;
  for (let i = 0; i < n; i++) pc.addTransceiver("video", { direction: "recvonly" });
  let order = [];
  pc.ontrack = (ev) => {
    const i = pc.getTransceivers().indexOf(ev.transceiver);
    const el = $("cameras").querySelector(`.tile[data-camera="${CSS.escape(order[i] ?? "")}"] video`);
    if (el) el.srcObject = new MediaStream([ev.track]);
  };
  pc.onconnectionstatechange = () => {
    if (["failed", "closed"].includes(pc.connectionState) && video === pc) {
      video = null; // the next stats message starts a new peer
      pc.close();
    }
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((done) => { // the server does not trickle; neither do we
      if (pc.iceGatheringState === "complete") return done();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
      setTimeout(done, 3000);
    });
    const r = await fetch("/rtc/offer", { method: "POST", headers: { ...auth.headers, "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }) });
    if (!r.ok) throw new Error(`offer refused (${r.status})`);
    const answer = await r.json();
    order = answer.tracks;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  } catch (e) {
    console.warn("camera video unavailable:", e);
    pc.close();
    setTimeout(() => { if (video === pc) video = null; }, 10000); // retry later
  }
}

function renderAlerts() {
  const ul = $("alerts");
  ul.replaceChildren();
  for (const a of state.alerts.values()) {
    const li = document.createElement("li");
    li.textContent = `${a.scope} ${a.key}: ${(100 * a.rate).toFixed(0)} % of the last ${a.n_vehicles} vehicles`;
    ul.appendChild(li);
  }
  if (!state.alerts.size) ul.innerHTML = '<li class="quiet">none</li>';
}

async function renderHistory() {
  const r = await fetch("/api/inspections?limit=10", auth);
  if (!r.ok) return; // operators have no history permission
  const body = $("history").querySelector("tbody");
  body.replaceChildren();
  for (const p of (await r.json()).inspections) {
    const tr = document.createElement("tr");
    tr.dataset.passId = p.pass_id;
    const ended = p.ended_ts_ns ? new Date(Number(BigInt(p.ended_ts_ns) / 1000000n)).toLocaleTimeString() : "in progress";
    const cov = p.coverage == null ? "-" : `${(100 * p.coverage).toFixed(0)} %`;
    tr.innerHTML = `<td>${p.vehicle_id}</td><td>${ended}</td><td>${p.n_defects ?? "-"}</td><td>${cov}</td><td>${p.model_name}</td>`
      + '<td><button class="review">review</button></td>';
    tr.querySelector("button").onclick = () => renderReview(p.pass_id);
    body.appendChild(tr);
  }
  if (state.review) renderReview(state.review);
}

// ---------- review of one recorded inspection (a vehicle that has left the cell, or the current one) ----------
async function renderReview(passId) {
  state.review = passId;
  const r = await fetch(`/api/inspections/${encodeURIComponent(passId)}`, auth);
  if (state.review !== passId) return; // another review was opened meanwhile
  const box = $("review");
  if (!r.ok) { $("review-title").textContent = `inspection ${passId} unavailable (${r.status})`; box.hidden = false; return; }
  const p = await r.json();
  $("review-title").textContent = `vehicle ${p.vehicle_id}`;
  fillDefects(box.querySelector("tbody"), p.defects, (d, action) => postFeedback(passId, d.defect_id, action));
  box.hidden = false;
}

async function postFeedback(passId, defectId, action) {
  const r = await fetch(`/api/inspections/${encodeURIComponent(passId)}/feedback`, {
    method: "POST", headers: { ...auth.headers, "Content-Type": "application/json" },
    body: JSON.stringify({ defect_id: defectId, action }) });
  await renderReview(passId); // the recorded status, whatever happened
  if (!r.ok && state.review === passId) $("review-title").textContent += ` - feedback on ${defectId} refused (${r.status})`;
}

$("review-close").onclick = () => { state.review = null; $("review").hidden = true; };

// ---------- the protocol ----------
function sendFeedback(d, status) {
  session.send(feedback(d, status, state.vehicle, `dashboard-${session.role()}`));
}

function apply(m) {
  switch (m.type) {
    case "scene":
      state.scene = m;
      loadMesh(m.mesh_url);
      drawSeams(m.seams);
      break;
    case "pass_start":
      if (m.vehicle_id !== state.vehicle) { state.defects.clear(); renderDefects(); }
      state.vehicle = m.vehicle_id;
      $("vehicle").textContent = `vehicle ${m.vehicle_id}`;
      break;
    case "pass_end":
      renderHistory();
      break;
    case "defects":
      applyDefects(state, m);
      renderDefects();
      break;
    case "alert":
      if (m.kind === "raised") state.alerts.set(`${m.scope}:${m.key}`, m);
      else state.alerts.delete(`${m.scope}:${m.key}`);
      renderAlerts();
      break;
    case "pose": {
      const T = blob(m.T_cell_vehicle, Float64Array); // row-major 4x4
      vehicle.matrixAutoUpdate = false;
      vehicle.matrix.set(...T);
      break;
    }
    case "heatmap":
      if (m.mode === "full") paintHeatmap(blob(m.values, Uint8Array));
      break;
    case "stats":
      state.views = m.views;
      renderCameras();
      $("latency").textContent = Object.entries(m.latency_ms).map(([k, v]) => `${k} ${num(v).toFixed(0)} ms`).join("  ·  ")
        + `  ·  ${num(m.fps).toFixed(1)} sets/s`;
      break;
  }
}

const session = openSession(token, "dashboard", {
  onMessage: apply,
  onStatus: (text, ok) => {
    $("conn").textContent = text;
    $("conn").className = `chip ${ok ? "ok" : "bad"}`;
    if (ok) renderHistory();
  },
});
