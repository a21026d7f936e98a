// Draws the overlays in the vehicle frame, moved every frame by the PREDICTED pose (pose + velocity x
// (display time - capture time), at most 1 s ahead), so they stay on the moving body: a highlight
// disc on the surface per defect, an arrow to the nearest open defect, a restrained colour scale
// (amber to red above the threshold). Confirm/reject stay with the supervisor; the operator marks
// a defect fixed (MarkNextFixed, e.g. from an MRTK button or a voice command).
using System.Collections.Generic;
using System.Linq;
using UnityEngine;
using XrInspection.Protocol;

namespace XrInspection.Runtime
{
    public sealed class OverlayView : MonoBehaviour
    {
        public OverlayClient client;
        [Tooltip("child of the aligned cell root")] public Transform vehicleRoot;
        public GameObject highlightPrefab;  // a flat disc (local +z = its normal) with an outline
        public Transform arrow;             // an arrow mesh pointing along local +z
        public float maxPredictS = 1f;

        readonly Dictionary<string, Defect> defects = new Dictionary<string, Defect>();
        readonly Dictionary<string, GameObject> highlights = new Dictionary<string, GameObject>();
        Pose pose;
        string vehicle;
        public Defect Next { get; private set; }

        void OnEnable() => client.MessageReceived += OnMessage;
        void OnDisable() => client.MessageReceived -= OnMessage;

        public static Color Severity(double score)
        {
            var t = Mathf.Clamp01(((float)score - 0.5f) / 0.5f);
            return Color.Lerp(new Color(0.89f, 0.70f, 0.25f), new Color(0.75f, 0.22f, 0.18f), t);
        }

        void OnMessage(Message m)
        {
            switch (m)
            {
                case PassStart p:
                    if (p.VehicleId != vehicle) Clear();
                    vehicle = p.VehicleId;
                    break;
                case Defects d:
                    if (d.VehicleId != vehicle) { Clear(); vehicle = d.VehicleId; }
                    if (d.Mode == "full") Clear();
                    foreach (var x in d.Items) defects[x.DefectId] = x;
                    foreach (var id in d.Removed) defects.Remove(id);
                    Redraw();
                    break;
                case Pose p:
                    pose = p;
                    break;
            }
        }

        void Clear() { defects.Clear(); Redraw(); }

        void Redraw()
        {
            foreach (var go in highlights.Values) Destroy(go);
            highlights.Clear();
            foreach (var d in defects.Values.Where(IsOpen))
            {
                var go = Instantiate(highlightPrefab, vehicleRoot);
                go.transform.localPosition = Frames.ToUnity(d.CentroidVehicleM);
                go.transform.localRotation = Quaternion.LookRotation(Frames.ToUnity(d.NormalVehicle));
                var r = Mathf.Max(0.015f, (float)System.Math.Max(d.ExtentMm[0], d.ExtentMm[1]) / 2000f);
                go.transform.localScale = new Vector3(2 * r, 2 * r, 1);
                foreach (var rend in go.GetComponentsInChildren<Renderer>()) rend.material.color = Severity(System.Math.Max(0.5, d.PeakScore));
                highlights[d.DefectId] = go;
            }
        }

        static bool IsOpen(Defect d) => d.Status == "open" || d.Status == "confirmed";

        void LateUpdate()
        {
            if (pose != null)
            {
                var dt = Mathf.Clamp((OverlayClient.NowNs() + client.ServerOffsetNs - pose.CaptureTsNs) / 1e9f, 0, maxPredictS);
                var t = Frames.ToUnity(pose.Predict(dt));
                vehicleRoot.localPosition = t.GetColumn(3);
                vehicleRoot.localRotation = t.rotation;
            }
            var eye = Camera.main.transform;
            Next = defects.Values.Where(IsOpen)
                .OrderBy(d => Vector3.Distance(vehicleRoot.TransformPoint(Frames.ToUnity(d.CentroidVehicleM)), eye.position))
                .FirstOrDefault();
            arrow.gameObject.SetActive(Next != null);
            if (Next == null) return;
            var target = vehicleRoot.TransformPoint(Frames.ToUnity(Next.CentroidVehicleM));
            arrow.position = eye.position + eye.forward * 0.6f - eye.up * 0.12f;
            arrow.rotation = Quaternion.LookRotation(target - arrow.position, eye.up);
        }

        public void MarkNextFixed()
        {
            if (Next == null) return;
            client.Send(WireDecoder.EncodeFeedback(Next, "fixed", "hololens-operator", OverlayClient.NowNs() + client.ServerOffsetNs));
            Next.Status = "fixed"; // at once; the server's defects delta confirms it
            Redraw();
        }
    }
}
