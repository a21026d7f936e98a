// The overlay protocol v1 (docs/protocol.md) as C# records. Field names follow the wire keys; the
// decoder (WireDecoder.cs) maps each key explicitly, so a renamed key fails loudly, never silently.
using System;
using System.Collections.Generic;

namespace XrInspection.Protocol
{
    public sealed class ProtocolException : Exception
    {
        public ProtocolException(string message) : base(message) { }
    }

    /// <summary>A wire array {dtype, shape, data}: C-order little-endian bytes.</summary>
    public sealed class WireArray
    {
        public string Dtype;
        public int[] Shape;
        public byte[] Data;

        public double[] AsDoubles()
        {
            if (Dtype == "<f8") { var o = new double[Data.Length / 8]; Buffer.BlockCopy(Data, 0, o, 0, Data.Length); return o; }
            if (Dtype == "<f4") { var f = new float[Data.Length / 4]; Buffer.BlockCopy(Data, 0, f, 0, Data.Length); return Array.ConvertAll(f, x => (double)x); }
            throw new ProtocolException($"expected a float array, got {Dtype}");
        }

        public uint[] AsUInt32()
        {
            if (Dtype != "<u4") throw new ProtocolException($"expected <u4, got {Dtype}");
            var o = new uint[Data.Length / 4]; Buffer.BlockCopy(Data, 0, o, 0, Data.Length); return o;
        }
    }

    public abstract class Message
    {
        public int V;
        public string Type;
        public long Seq;
    }

    public sealed class Hello : Message { public string ClientName; public string Role; public int[] Versions; }
    public sealed class Welcome : Message { public string SessionId; public int Version; public string ServerName; public long ServerTsNs; }

    public sealed class Seam { public string SeamId; public string Region; public string RobotId; public WireArray PointsVehicleM; }
    public sealed class Marker { public string MarkerId; public string Kind; public double SizeM; public WireArray TCellMarker; }
    public sealed class RigCamera { public string CameraId; public int WidthPx; public int HeightPx; public bool Rgbd; public WireArray TCellCam; }
    public sealed class RigInfo { public string Name; public List<RigCamera> Cameras; public double[] ConveyorAxisCell; public double SpeedMps; }

    public sealed class Scene : Message
    {
        public string SceneId; public string MeshUrl; public string MeshSha256; public int NVertices;
        public List<Seam> Seams; public List<Marker> Markers; public RigInfo Rig;
    }

    public sealed class PassStart : Message { public string VehicleId; public string SceneId; public long StartTsNs; }
    public sealed class PassEnd : Message
    {
        public string VehicleId; public long EndTsNs; public int NDefects; public double Coverage;
        public Dictionary<string, double> SeamCoverage;
    }

    public sealed class Pose : Message
    {
        public string VehicleId; public long CaptureTsNs; public WireArray TCellVehicle; public double[] VelocityCellMps; public double SM;

        /// <summary>Row-major T_cell_vehicle moved by the velocity over dtS seconds: the pose at display time.</summary>
        public double[] Predict(double dtS)
        {
            var t = TCellVehicle.AsDoubles();
            t[3] += VelocityCellMps[0] * dtS; t[7] += VelocityCellMps[1] * dtS; t[11] += VelocityCellMps[2] * dtS;
            return t;
        }
    }

    public sealed class Heatmap : Message
    {
        public string VehicleId; public long CaptureTsNs; public int NVertices; public string Mode;
        public WireArray Values; public WireArray Indices; // Indices null when Mode == "full"
    }

    public sealed class Defect
    {
        public string DefectId; public string VehicleId; public string Status;
        public double[] CentroidVehicleM; public double[] NormalVehicle; public double[] ExtentMm;
        public double AreaMm2; public double PeakScore; public double MeanScore; public double Uncertainty;
        public string SeamId; public double? SMm; public string RobotId; public List<string> Views;
        public long FirstSeenTsNs; public long LastSeenTsNs; public int NUpdates;
    }

    public sealed class Defects : Message
    {
        public string VehicleId; public long CaptureTsNs; public string Mode; public List<Defect> Items; public List<string> Removed;
    }

    public sealed class Alert : Message
    {
        public string AlertId; public string Kind; public string Scope; public string Key; public double Rate;
        public double Threshold; public int NDefective; public int NVehicles; public string VehicleId; public long TsNs;
    }

    public sealed class Stats : Message
    {
        public long TsNs; public Dictionary<string, double> LatencyMs; public Dictionary<string, double> RobotRate;
        public Dictionary<string, double> SeamRate; public int NVehicles; public double Fps; public Dictionary<string, string> Views;
    }

    public sealed class Feedback : Message
    {
        public string DefectId; public string VehicleId; public string Status; public string OperatorId; public long TsNs; public string Comment;
    }
}
