// A browser camera as a test source: getUserMedia -> one send-only video track -> POST /rtc/publish/{camera}.
// URL: /static/publish.html?token=CAMERA_TOKEN&camera=CAMERA_ID[&width=640&height=480]
const q = new URLSearchParams(location.search);
const token = q.get("token") || "";
const cameraId = q.get("camera") || "browser0";
const $ = (id) => document.getElementById(id);
const status = (text, ok) => { $("conn").textContent = text; $("conn").className = `chip ${ok ? "ok" : "bad"}`; };
window.xrPublish = { state: "starting" }; // for tests

async function publish() {
  $("camera").textContent = cameraId;
  const stream = await navigator.mediaDevices.getUserMedia({ video: {
    width: { ideal: Number(q.get("width") || 640) }, height: { ideal: Number(q.get("height") || 480) } }, audio: false });
  $("preview").srcObject = stream;
  const pc = new RTCPeerConnection();
  for (const track of stream.getVideoTracks()) pc.addTransceiver(track, { direction: "sendonly" });
  pc.onconnectionstatechange = () => {
    window.xrPublish.state = pc.connectionState;
    if (pc.connectionState === "connected") status(`publishing ${cameraId}`, true);
    if (["failed", "closed", "disconnected"].includes(pc.connectionState)) status(`connection ${pc.connectionState}`, false);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => { // the server answers once; gather every candidate first
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
    setTimeout(done, 3000);
  });
  const r = await fetch(`/rtc/publish/${encodeURIComponent(cameraId)}`, { method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }) });
  const doc = await r.json();
  if (!r.ok) { window.xrPublish.state = "refused"; status(`refused (${r.status}): ${doc.error}`, false); return; }
  await pc.setRemoteDescription({ type: "answer", sdp: doc.sdp });
}

publish().catch((e) => { window.xrPublish.state = "error"; status(String(e), false); });
