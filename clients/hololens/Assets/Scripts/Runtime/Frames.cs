// Frames of reference: the protocol's transforms are right-handed, z up, metres, row-major 4x4
// (docs/protocol.md). Unity is left-handed, y up. Swapping y and z converts one into the other.
using UnityEngine;

namespace XrInspection.Runtime
{
    public static class Frames
    {
        /// <summary>A protocol transform (row-major, right-handed z-up) as a Unity matrix (left-handed y-up).</summary>
        public static Matrix4x4 ToUnity(double[] rowMajor)
        {
            int[] swap = { 0, 2, 1, 3 }; // x, z, y, w
            var m = new Matrix4x4();
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++)
                    m[r, c] = (float)rowMajor[4 * swap[r] + swap[c]];
            return m;
        }

        /// <summary>A protocol point or direction (x, y, z) in Unity coordinates.</summary>
        public static Vector3 ToUnity(double[] v) => new Vector3((float)v[0], (float)v[2], (float)v[1]);
    }
}
