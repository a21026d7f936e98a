// Edit-mode tests (Unity Test Framework, NUnit): the decoder reads every golden vector of the
// protocol, tests/overlays/golden/*.msgpack, the same files the Python codec is tested against.
using System.IO;
using System.Linq;
using NUnit.Framework;
using UnityEngine;
using XrInspection.Protocol;

namespace XrInspection.Tests
{
    public class WireDecoderTests
    {
        static string Golden => Path.GetFullPath(Path.Combine(Application.dataPath, "..", "..", "..", "tests", "overlays", "golden"));

        static Message Load(string name) => WireDecoder.Decode(File.ReadAllBytes(Path.Combine(Golden, name + ".msgpack")));

        [Test]
        public void EveryGoldenVectorDecodesToItsType()
        {
            var files = Directory.GetFiles(Golden, "*.msgpack");
            Assert.That(files.Length, Is.GreaterThanOrEqualTo(13));
            foreach (var f in files)
            {
                var m = WireDecoder.Decode(File.ReadAllBytes(f));
                var expected = Path.GetFileNameWithoutExtension(f).Replace("_full", "").Replace("_delta", "");
                Assert.AreEqual(expected, m.Type, f);
                Assert.AreEqual(1, m.V);
            }
        }

        [Test]
        public void PoseDecodesAndPredicts()
        {
            var p = (Pose)Load("pose");
            Assert.AreEqual("V000-01000", p.VehicleId);
            Assert.AreEqual(1767225600100000000L, p.CaptureTsNs);
            var t = p.TCellVehicle.AsDoubles();
            Assert.AreEqual(16, t.Length);
            Assert.AreEqual(0.25, t[3], 1e-12);
            var ahead = p.Predict(2.0);
            Assert.AreEqual(0.25 + 0.1 * 2.0, ahead[3], 1e-12);
            Assert.AreEqual(t[7], ahead[7], 1e-12);
        }

        [Test]
        public void DefectsAndSceneCarryTheirFields()
        {
            var d = (Defects)Load("defects_full");
            Assert.AreEqual("full", d.Mode);
            Assert.That(d.Items.Count, Is.GreaterThan(0));
            Assert.AreEqual(3, d.Items[0].CentroidVehicleM.Length);
            var s = (Scene)Load("scene");
            Assert.That(s.Seams.Count, Is.GreaterThan(0));
            Assert.AreEqual(16, s.Markers[0].TCellMarker.AsDoubles().Length);
            var h = (Heatmap)Load("heatmap_delta");
            Assert.AreEqual(h.Values.Data.Length, h.Indices.AsUInt32().Length);
        }

        [Test]
        public void ClientMessagesRoundTrip()
        {
            var hello = (Hello)WireDecoder.Decode(WireDecoder.EncodeHello("hololens2", "operator"));
            Assert.AreEqual("operator", hello.Role);
            Assert.AreEqual(new[] { 1 }, hello.Versions);
            var d = ((Defects)Load("defects_full")).Items.First();
            var fb = (Feedback)WireDecoder.Decode(WireDecoder.EncodeFeedback(d, "fixed", "op-7", 42));
            Assert.AreEqual(d.DefectId, fb.DefectId);
            Assert.AreEqual("fixed", fb.Status);
        }

        [Test]
        public void BadInputIsAProtocolError()
        {
            Assert.Throws<ProtocolException>(() => WireDecoder.Decode(new byte[] { 0xc1 }));
            Assert.Throws<ProtocolException>(() => WireDecoder.Decode(MessagePack.MessagePackSerializer.Serialize<object>(new object[] { 1 })));
        }
    }
}
