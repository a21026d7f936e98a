// Aligns the cell frame to the world with the cell's printed QR marker, tracked by the headset
// through XR_MSFT_scene_marker (Mixed Reality OpenXR plugin's ARMarkerManager). The scene message
// gives T_cell_marker for the marker whose decoded text is its marker_id; then
//     T_world_cell = T_world_marker * inverse(T_cell_marker).
// The plugin reports the QR's pose with +z out of the code's plane; the protocol's marker frame has
// +z out of the printed plane too, so only the handedness changes (Frames.ToUnity).
using System.Linq;
using Microsoft.MixedReality.OpenXR;
using UnityEngine;
using XrInspection.Protocol;

namespace XrInspection.Runtime
{
    [RequireComponent(typeof(ARMarkerManager))]
    public sealed class CellAlignment : MonoBehaviour
    {
        [Tooltip("the object whose children are in the cell frame")] public Transform cellRoot;
        public OverlayClient client;
        public bool Aligned { get; private set; }

        ARMarkerManager markers;
        Scene scene;

        void Awake() { markers = GetComponent<ARMarkerManager>(); }
        void OnEnable() { markers.markersChanged += OnMarkersChanged; client.MessageReceived += OnMessage; }
        void OnDisable() { markers.markersChanged -= OnMarkersChanged; client.MessageReceived -= OnMessage; }

        void OnMessage(Message m) { if (m is Scene s) scene = s; }

        void OnMarkersChanged(ARMarkersChangedEventArgs args)
        {
            if (scene == null) return;
            foreach (var qr in args.added.Concat(args.updated))
            {
                var text = qr.GetDecodedString();
                var known = scene.Markers.FirstOrDefault(k => k.MarkerId == text);
                if (known == null || qr.trackingState != UnityEngine.XR.ARSubsystems.TrackingState.Tracking) continue;
                var worldMarker = Matrix4x4.TRS(qr.transform.position, qr.transform.rotation, Vector3.one);
                var cellMarker = Frames.ToUnity(known.TCellMarker.AsDoubles());
                var worldCell = worldMarker * cellMarker.inverse;
                cellRoot.SetPositionAndRotation(worldCell.GetColumn(3), worldCell.rotation);
                Aligned = true;
            }
        }
    }
}
