// Decodes one msgpack document of the overlay protocol v1 into the records of Messages.cs, and
// encodes the two client messages (hello, feedback). Keys are spelled exactly as in
// docs/protocol.md; tests/clients/test_hololens_protocol.py checks that they stay so.
// Uses MessagePack-CSharp's untyped reader (maps -> Dictionary<object, object>, bin -> byte[]).
using System;
using System.Collections.Generic;
using System.Linq;
using MessagePack;

namespace XrInspection.Protocol
{
    public static class WireDecoder
    {
        public const int Version = 1;

        public static Message Decode(byte[] bytes)
        {
            object doc;
            try { doc = MessagePackSerializer.Deserialize<object>(bytes, MessagePackSerializerOptions.Standard); }
            catch (MessagePackSerializationException e) { throw new ProtocolException($"not msgpack: {e.Message}"); }
            var m = doc as IDictionary<object, object> ?? throw new ProtocolException("a message must be a map");
            var type = Str(m, "type");
            if (Int(m, "v") != Version) throw new ProtocolException($"unsupported protocol version {m["v"]}");
            Message msg = type switch
            {
                "hello" => new Hello { ClientName = Str(m, "client_name"), Role = Str(m, "role"), Versions = List(m, "versions").Select(x => (int)ToLong(x, "versions")).ToArray() },
                "welcome" => new Welcome { SessionId = Str(m, "session_id"), Version = Int(m, "version"), ServerName = Str(m, "server_name"), ServerTsNs = Long(m, "server_ts_ns") },
                "scene" => DecodeScene(m),
                "pass_start" => new PassStart { VehicleId = Str(m, "vehicle_id"), SceneId = Str(m, "scene_id"), StartTsNs = Long(m, "start_ts_ns") },
                "pass_end" => new PassEnd { VehicleId = Str(m, "vehicle_id"), EndTsNs = Long(m, "end_ts_ns"), NDefects = Int(m, "n_defects"), Coverage = Dbl(m, "coverage"), SeamCoverage = Numbers(m, "seam_coverage") },
                "pose" => new Pose { VehicleId = Str(m, "vehicle_id"), CaptureTsNs = Long(m, "capture_ts_ns"), TCellVehicle = Arr(m, "T_cell_vehicle"), VelocityCellMps = Vec(m, "velocity_cell_mps"), SM = Dbl(m, "s_m") },
                "heatmap" => new Heatmap { VehicleId = Str(m, "vehicle_id"), CaptureTsNs = Long(m, "capture_ts_ns"), NVertices = Int(m, "n_vertices"), Mode = Str(m, "mode"), Values = Arr(m, "values"), Indices = m.TryGetValue("indices", out var ix) && ix != null ? ToArr(ix, "indices") : null },
                "defects" => new Defects { VehicleId = Str(m, "vehicle_id"), CaptureTsNs = Long(m, "capture_ts_ns"), Mode = Str(m, "mode"), Items = List(m, "defects").Select(d => DecodeDefect(AsMap(d, "defects[]"))).ToList(), Removed = List(m, "removed").Select(x => (string)x).ToList() },
                "alert" => new Alert { AlertId = Str(m, "alert_id"), Kind = Str(m, "kind"), Scope = Str(m, "scope"), Key = Str(m, "key"), Rate = Dbl(m, "rate"), Threshold = Dbl(m, "threshold"), NDefective = Int(m, "n_defective"), NVehicles = Int(m, "n_vehicles"), VehicleId = Str(m, "vehicle_id"), TsNs = Long(m, "ts_ns") },
                "stats" => new Stats { TsNs = Long(m, "ts_ns"), LatencyMs = Numbers(m, "latency_ms"), RobotRate = Numbers(m, "robot_rate"), SeamRate = Numbers(m, "seam_rate"), NVehicles = Int(m, "n_vehicles"), Fps = Dbl(m, "fps"), Views = AsMap(Get(m, "views"), "views").ToDictionary(kv => (string)kv.Key, kv => (string)kv.Value) },
                "feedback" => new Feedback { DefectId = Str(m, "defect_id"), VehicleId = Str(m, "vehicle_id"), Status = Str(m, "status"), OperatorId = Str(m, "operator_id"), TsNs = Long(m, "ts_ns"), Comment = Str(m, "comment") },
                _ => throw new ProtocolException($"unknown message type '{type}'"),
            };
            msg.V = Version; msg.Type = type; msg.Seq = Long(m, "seq");
            return msg;
        }

        static Scene DecodeScene(IDictionary<object, object> m)
        {
            var rig = AsMap(Get(m, "rig"), "rig");
            return new Scene
            {
                SceneId = Str(m, "scene_id"), MeshUrl = Str(m, "mesh_url"), MeshSha256 = Str(m, "mesh_sha256"), NVertices = Int(m, "n_vertices"),
                Seams = List(m, "seams").Select(o => AsMap(o, "seams[]")).Select(s => new Seam { SeamId = Str(s, "seam_id"), Region = Str(s, "region"), RobotId = Str(s, "robot_id"), PointsVehicleM = Arr(s, "points_vehicle_m") }).ToList(),
                Markers = List(m, "markers").Select(o => AsMap(o, "markers[]")).Select(k => new Marker { MarkerId = Str(k, "marker_id"), Kind = Str(k, "kind"), SizeM = Dbl(k, "size_m"), TCellMarker = Arr(k, "T_cell_marker") }).ToList(),
                Rig = new RigInfo
                {
                    Name = Str(rig, "name"), ConveyorAxisCell = Vec(rig, "conveyor_axis_cell"), SpeedMps = Dbl(rig, "speed_mps"),
                    Cameras = List(rig, "cameras").Select(o => AsMap(o, "cameras[]")).Select(c => new RigCamera { CameraId = Str(c, "camera_id"), WidthPx = Int(c, "width_px"), HeightPx = Int(c, "height_px"), Rgbd = (bool)Get(c, "rgbd"), TCellCam = Arr(c, "T_cell_cam") }).ToList(),
                },
            };
        }

        static Defect DecodeDefect(IDictionary<object, object> d) => new Defect
        {
            DefectId = Str(d, "defect_id"), VehicleId = Get(d, "vehicle_id") as string, Status = Str(d, "status"),
            CentroidVehicleM = Vec(d, "centroid_vehicle_m"), NormalVehicle = Vec(d, "normal_vehicle"), ExtentMm = Vec(d, "extent_mm"),
            AreaMm2 = Dbl(d, "area_mm2"), PeakScore = Dbl(d, "peak_score"), MeanScore = Dbl(d, "mean_score"), Uncertainty = Dbl(d, "uncertainty"),
            SeamId = Get(d, "seam_id") as string, SMm = Get(d, "s_mm") == null ? (double?)null : Dbl(d, "s_mm"), RobotId = Get(d, "robot_id") as string,
            Views = List(d, "views").Select(x => (string)x).ToList(),
            FirstSeenTsNs = Long(d, "first_seen_ts_ns"), LastSeenTsNs = Long(d, "last_seen_ts_ns"), NUpdates = Int(d, "n_updates"),
        };

        // ---- encoding: the client's two messages ----
        public static byte[] EncodeHello(string clientName, string role, long seq = 0) =>
            MessagePackSerializer.Serialize<object>(new Dictionary<string, object>
            {
                ["v"] = Version, ["type"] = "hello", ["seq"] = seq, ["client_name"] = clientName, ["role"] = role, ["versions"] = new[] { Version },
            });

        public static byte[] EncodeFeedback(Defect d, string status, string operatorId, long tsNs, string comment = "", long seq = 0) =>
            MessagePackSerializer.Serialize<object>(new Dictionary<string, object>
            {
                ["v"] = Version, ["type"] = "feedback", ["seq"] = seq, ["defect_id"] = d.DefectId, ["vehicle_id"] = d.VehicleId,
                ["status"] = status, ["operator_id"] = operatorId, ["ts_ns"] = tsNs, ["comment"] = comment,
            });

        // ---- typed access; every failure names the key ----
        static object Get(IDictionary<object, object> m, string key) =>
            m.TryGetValue(key, out var v) ? v : throw new ProtocolException($"missing field '{key}'");
        static string Str(IDictionary<object, object> m, string key) => Get(m, key) as string ?? throw new ProtocolException($"'{key}' must be a string");
        static long Long(IDictionary<object, object> m, string key) => ToLong(Get(m, key), key);
        static int Int(IDictionary<object, object> m, string key) => checked((int)Long(m, key));
        static double Dbl(IDictionary<object, object> m, string key) => ToDouble(Get(m, key), key);
        static object[] List(IDictionary<object, object> m, string key) => Get(m, key) as object[] ?? throw new ProtocolException($"'{key}' must be a list");
        static double[] Vec(IDictionary<object, object> m, string key) => List(m, key).Select(x => ToDouble(x, key)).ToArray();
        static WireArray Arr(IDictionary<object, object> m, string key) => ToArr(Get(m, key), key);
        static Dictionary<string, double> Numbers(IDictionary<object, object> m, string key) =>
            AsMap(Get(m, key), key).ToDictionary(kv => (string)kv.Key, kv => ToDouble(kv.Value, key));
        static IDictionary<object, object> AsMap(object o, string key) => o as IDictionary<object, object> ?? throw new ProtocolException($"'{key}' must be a map");

        static WireArray ToArr(object o, string key)
        {
            var a = AsMap(o, key);
            return new WireArray
            {
                Dtype = Str(a, "dtype"), Shape = List(a, "shape").Select(x => (int)ToLong(x, key)).ToArray(),
                Data = Get(a, "data") as byte[] ?? throw new ProtocolException($"'{key}.data' must be bin"),
            };
        }

        static long ToLong(object o, string key) => o switch
        {
            byte b => b, sbyte sb => sb, short s => s, ushort us => us, int i => i, uint ui => ui, long l => l,
            ulong ul => ul <= long.MaxValue ? (long)ul : throw new ProtocolException($"'{key}' is out of range"),
            _ => throw new ProtocolException($"'{key}' must be an integer"),
        };

        static double ToDouble(object o, string key) => o switch
        {
            double d => d, float f => f, null => throw new ProtocolException($"'{key}' must be a number"),
            _ => ToLong(o, key),
        };
    }
}
