// The operator's AR view: WebXR `immersive-ar` where the browser has it (Edge on HoloLens 2), else a
// 3D preview. Everything is drawn in the vehicle frame and moved by the PREDICTED pose (pose +
// velocity x (display time - capture time)), so overlays stay on the moving body. Following §8.2 of
// the paper: highlights on the surface, an arrow to the next open defect, a restrained colour scale.
//
// Frames: cell (z up, metres) -> `cellRoot`; vehicle -> `vehicle` (matrix = predicted T_cell_vehicle).
// In AR, cellRoot = T_xr_marker * inverse(T_cell_marker) once the operator has placed the marker.
import * as THREE from "three";
import { GLTFLoader } from "/static/vendor/three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "/static/vendor/three/addons/controls/OrbitControls.js";
import { applyDefects, blob, feedback, num, openSession, severity } from "/static/protocol.js";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const MAX_PREDICT_S = 1.0; // never extrapolate a stale pose further than this

/** T (row-major 4x4) moved by velocity v (m/s) over dt seconds: the pose at display time. */
export function predictPose(T, v, dtS) {
  const out = Array.from(T);
  out[3] += v[0] * dtS;
  out[7] += v[1] * dtS;
  out[11] += v[2] * dtS;
  return out;
}

/** Defects still needing the operator (open or confirmed), nearest to `viewer` (world position) first. */
export function nextOpenDefect(defects, toWorld, viewer) {
  let best = null, bestD = Infinity;
  for (const d of defects) {
    if (d.status !== "open" && d.status !== "confirmed") continue;
    const dist = toWorld(d.centroid_vehicle_m).distanceTo(viewer);
    if (dist < bestD) { best = d; bestD = dist; }
  }
  return best && { defect: best, distance_m: bestD };
}

const state = { connected: false, mode: "preview", scene: null, vehicle: null, defects: new Map(), pose: null,
  poses: 0, next: null, arrow: null, aligned: false };
window.xrAr = { state, predictPose, nextOpenDefect };

// ---------- three.js ----------
const canvas = $("scene");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, alpha: true, preserveDrawingBuffer: true });
const world = new THREE.Scene();
const camera = new THREE.PerspectiveCamera(45, 2, 0.02, 50);
camera.up.set(0, 0, 1);
const controls = new OrbitControls(camera, canvas); // placed below and beside the car at the first pose
world.add(new THREE.HemisphereLight(0xffffff, 0x445566, 2.0));
const cellRoot = new THREE.Group();
cellRoot.matrixAutoUpdate = false;
world.add(cellRoot);
const vehicle = new THREE.Group();
vehicle.matrixAutoUpdate = false;
vehicle.visible = false; // until the first pose
cellRoot.add(vehicle);
const highlights = new THREE.Group();
vehicle.add(highlights);
let body = null;
// Two arrows to the next open defect: a pin over it, pointing at the surface, and a heading arrow
// just below the centre of view that points sideways towards it when it is off to one side or behind.
const ARROW = 0x9fd8ff;
const pin = new THREE.ArrowHelper(new THREE.Vector3(0, 0, 1), new THREE.Vector3(), 0.18, ARROW, 0.06, 0.035);
const heading = new THREE.ArrowHelper(new THREE.Vector3(1, 0, 0), new THREE.Vector3(), 0.12, ARROW, 0.04, 0.025);
for (const a of [pin, heading]) {
  a.visible = false;
  a.traverse((o) => { if (o.material) { o.material.depthTest = false; o.renderOrder = 2; } });
  world.add(a);
}
const reticle = new THREE.Mesh(new THREE.RingGeometry(0.06, 0.08, 32).rotateX(-Math.PI / 2),
  new THREE.MeshBasicMaterial({ color: 0x9fd8ff }));
reticle.matrixAutoUpdate = false;
reticle.visible = false;
world.add(reticle);

function loadMesh(url) {
  fetch(url, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.arrayBuffer())
    .then((buf) => new GLTFLoader().parse(buf, "", (gltf) => {
      gltf.scene.traverse((o) => {
        if (!o.isMesh) return;
        o.geometry.computeVertexNormals();
        o.material = new THREE.MeshLambertMaterial({ color: 0x7d8794, side: THREE.DoubleSide });
      });
      body = gltf.scene;
      new THREE.Box3().setFromObject(body).getCenter(bodyCentre);
      vehicle.add(body);
      applyMode();
    }));
}

// One highlight per defect: a disc on the surface, sized by the defect, with an outline ring.
function drawHighlights() {
  highlights.clear();
  for (const d of state.defects.values()) {
    if (d.status === "rejected" || d.status === "fixed") continue;
    const r = Math.max(0.015, Math.max(...d.extent_mm.slice(0, 2)) / 2000);
    const colour = new THREE.Color(...severity(Math.max(0.5, d.peak_score)));
    const g = new THREE.Group();
    g.add(new THREE.Mesh(new THREE.CircleGeometry(r, 32),
      new THREE.MeshBasicMaterial({ color: colour, transparent: true, opacity: 0.45, side: THREE.DoubleSide, depthTest: false })));
    g.add(new THREE.Mesh(new THREE.RingGeometry(r, r * 1.18, 48),
      new THREE.MeshBasicMaterial({ color: colour, side: THREE.DoubleSide, depthTest: false })));
    const n = new THREE.Vector3(...d.normal_vehicle);
    g.quaternion.setFromUnitVectors(new THREE.Vector3(0, 0, 1), n.lengthSq() > 0 ? n.normalize() : new THREE.Vector3(0, 0, -1));
    g.position.set(...d.centroid_vehicle_m).addScaledVector(g.getWorldDirection(new THREE.Vector3()), 0.004);
    g.userData.defectId = d.defect_id;
    highlights.add(g);
  }
}

function applyMode() {
  const ar = state.mode === "ar";
  renderer.setClearAlpha(ar ? 0 : 1);
  world.background = ar ? null : new THREE.Color(0x1d232b);
  if (body) body.traverse((o) => { if (o.isMesh) o.material.colorWrite = !ar; }); // AR: an occluder only
  $("mode").textContent = ar ? (state.aligned ? "AR" : "AR: tap the marker") : "3D preview";
}

// ---------- each frame ----------
const viewer = new THREE.Vector3(), forward = new THREE.Vector3(), target = new THREE.Vector3();
const normal = new THREE.Vector3(), carAt = new THREE.Vector3(), carWas = new THREE.Vector3();
const bodyCentre = new THREE.Vector3();
let placed = false;
let hitSource = null;

function render(_t, xrFrame) {
  if (state.mode === "preview") {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== w || canvas.height !== h) { renderer.setSize(w, h, false); camera.aspect = w / h; camera.updateProjectionMatrix(); }
    controls.update();
  }
  if (xrFrame && hitSource) {
    const hits = xrFrame.getHitTestResults(hitSource);
    const ref = renderer.xr.getReferenceSpace();
    reticle.visible = !state.aligned && hits.length > 0;
    if (reticle.visible) reticle.matrix.fromArray(hits[0].getPose(ref).transform.matrix);
  }
  if (state.pose) {
    const p = state.pose;
    const nowNs = BigInt(Date.now()) * 1000000n + session.serverOffsetNs();
    const dt = Math.min(MAX_PREDICT_S, Math.max(0, Number(nowNs - BigInt(p.capture_ts_ns)) / 1e9));
    vehicle.matrix.set(...predictPose(blob(p.T_cell_vehicle, Float64Array), p.velocity_cell_mps.map(num), dt));
    vehicle.matrixWorldNeedsUpdate = true;
    vehicle.visible = state.mode === "preview" || state.aligned;
    if (state.mode === "preview") { // the preview camera rides along with the car
      carAt.copy(bodyCentre).applyMatrix4(vehicle.matrix);
      if (placed) { const step = carAt.clone().sub(carWas); camera.position.add(step); controls.target.add(step); }
      else if (body) { controls.target.copy(carAt); camera.position.copy(carAt).add(new THREE.Vector3(-2.4, -3.2, -2.0)); placed = true; }
      carWas.copy(carAt);
    }
  }
  world.updateMatrixWorld();
  const cam = renderer.xr.isPresenting ? renderer.xr.getCamera() : camera;
  cam.getWorldPosition(viewer);
  cam.getWorldDirection(forward);
  const toWorld = (c) => vehicle.localToWorld(new THREE.Vector3(...c));
  const next = vehicle.visible ? nextOpenDefect(state.defects.values(), toWorld, viewer) : null;
  updateNext(next);
  pin.visible = heading.visible = false;
  if (next) {
    const d = next.defect;
    target.copy(toWorld(d.centroid_vehicle_m));
    normal.set(...d.normal_vehicle).transformDirection(vehicle.matrixWorld);
    pin.position.copy(target).addScaledVector(normal, 0.2);
    pin.setDirection(normal.clone().negate());
    pin.visible = true;
    const origin = viewer.clone().addScaledVector(forward, 0.6).addScaledVector(cam.up, -0.12);
    const to = target.clone().sub(origin);
    const lateral = to.clone().addScaledVector(forward, -to.dot(forward));
    if (lateral.length() > 0.18 * to.length() || to.dot(forward) < 0) { // off to one side, or behind
      heading.position.copy(origin);
      heading.setDirection(lateral.normalize());
      heading.visible = true;
    }
  }
  state.arrow = pin.visible ? { to: state.next, heading: heading.visible } : null;
  const pulse = 1 + 0.15 * Math.sin(performance.now() / 180);
  for (const g of highlights.children) g.scale.setScalar(next && g.userData.defectId === next.defect.defect_id ? pulse : 1);
  renderer.render(world, camera);
}
renderer.setAnimationLoop(render);

function updateNext(next) {
  const id = next ? next.defect.defect_id : null;
  state.next = id;
  if (id === updateNext.shown && next && Math.abs(next.distance_m - updateNext.dist) < 0.05) return;
  updateNext.shown = id;
  updateNext.dist = next ? next.distance_m : 0;
  if (!next) { $("next").textContent = "no open defect"; return; }
  const d = next.defect;
  const where = d.seam_id ? `seam ${d.seam_id}${d.robot_id ? ` (${d.robot_id})` : ""}` +
    (d.s_mm == null ? "" : `, ${d.s_mm.toFixed(0)} mm along`) : "off seam";
  $("next").textContent = `next: ${id.split("-").pop()} on ${where}, ${next.distance_m.toFixed(1)} m away`;
}

// ---------- WebXR ----------
// Alignment: the operator looks at the cell's marker and taps; the hit-test pose there is taken as the
// marker's pose (its z axis, out of the printed plane, along the hit's surface normal, the hit's y).
const MARKER_FROM_HIT = new THREE.Matrix4().makeRotationX(-Math.PI / 2);

function alignToMarker(T_xr_hit) {
  const marker = state.scene?.markers?.[0];
  const T_cell_marker = marker ? new THREE.Matrix4().set(...blob(marker.T_cell_marker, Float64Array)) : new THREE.Matrix4();
  cellRoot.matrix.copy(T_xr_hit).multiply(MARKER_FROM_HIT).multiply(T_cell_marker.invert());
  cellRoot.matrixWorldNeedsUpdate = true;
  state.aligned = true;
  applyMode();
}

async function enterAr() {
  const xrSession = await navigator.xr.requestSession("immersive-ar",
    { optionalFeatures: ["hit-test", "dom-overlay", "local-floor"], domOverlay: { root: $("hud") } });
  renderer.xr.enabled = true;
  renderer.xr.setReferenceSpaceType("local");
  await renderer.xr.setSession(xrSession);
  state.mode = "ar";
  state.aligned = false;
  cellRoot.matrix.identity();
  applyMode();
  $("hint").textContent = "look at the cell marker and tap to align";
  try {
    hitSource = await xrSession.requestHitTestSource({ space: await xrSession.requestReferenceSpace("viewer") });
  } catch { $("hint").textContent = "no hit test here: aligned at the session origin"; alignToMarker(new THREE.Matrix4()); }
  xrSession.addEventListener("select", () => { if (reticle.visible) { alignToMarker(reticle.matrix); $("hint").textContent = ""; } });
  xrSession.addEventListener("end", () => {
    hitSource = null; reticle.visible = false; renderer.xr.enabled = false;
    state.mode = "preview"; cellRoot.matrix.identity(); applyMode();
  });
}

if (navigator.xr?.isSessionSupported) {
  navigator.xr.isSessionSupported("immersive-ar").then((ok) => {
    if (!ok) { $("hint").textContent = "WebXR AR is not available in this browser: 3D preview"; return; }
    $("enter").hidden = false;
    $("enter").onclick = () => enterAr().catch((e) => { $("hint").textContent = `AR refused: ${e.message}`; });
  });
} else {
  $("hint").textContent = "WebXR AR is not available in this browser: 3D preview";
}

// ---------- the protocol ----------
function apply(m) {
  switch (m.type) {
    case "scene":
      state.scene = m;
      loadMesh(m.mesh_url);
      break;
    case "pass_start":
      if (m.vehicle_id !== state.vehicle) state.defects.clear();
      state.vehicle = m.vehicle_id;
      drawHighlights();
      break;
    case "defects":
      applyDefects(state, m);
      drawHighlights();
      break;
    case "pose":
      state.pose = m;
      state.poses += 1;
      break;
  }
}

const session = openSession(token, "ar-view", {
  onMessage: apply,
  onStatus: (text, ok) => { state.connected = ok; $("conn").textContent = text; $("conn").className = `chip ${ok ? "ok" : "bad"}`; },
});

// The operator's one action here: mark the next defect fixed (confirm / reject stay with the supervisor).
const fixedButton = document.createElement("button");
fixedButton.textContent = "mark fixed";
fixedButton.onclick = () => {
  const d = state.defects.get(state.next);
  if (!d) return;
  session.send(feedback(d, "fixed", state.vehicle, "ar-operator"));
  state.defects.set(d.defect_id, { ...d, status: "fixed" }); // at once; the server's delta confirms it
  drawHighlights();
};
$("hud").querySelector(".row").appendChild(fixedButton);
