// The WebSocket connection: token in the query (as browsers send it), hello, then every message
// decoded and handed to the Unity main thread. Reconnects with backoff; never blocks a frame.
using System;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;
using XrInspection.Protocol;

namespace XrInspection.Runtime
{
    public sealed class OverlayClient : MonoBehaviour
    {
        [Tooltip("ws(s)://host:port/ws — the server's one port")] public string serverUrl = "wss://xr-server.cell3.local:8765/ws";
        [Tooltip("an operator token (never logged)")] public string token = "";
        public string clientName = "hololens2";

        public event Action<Message> MessageReceived;
        public string Status { get; private set; } = "connecting";
        /// <summary>server clock - local clock, ns, from the welcome (for pose prediction).</summary>
        public long ServerOffsetNs { get; private set; }

        readonly ConcurrentQueue<Message> inbox = new ConcurrentQueue<Message>();
        readonly ConcurrentQueue<byte[]> outbox = new ConcurrentQueue<byte[]>();
        CancellationTokenSource stop;

        void OnEnable() { stop = new CancellationTokenSource(); _ = RunAsync(stop.Token); }
        void OnDisable() => stop?.Cancel();

        void Update()
        {
            while (inbox.TryDequeue(out var m))
            {
                if (m is Welcome w) { ServerOffsetNs = w.ServerTsNs - NowNs(); Status = $"live ({w.ServerName})"; }
                MessageReceived?.Invoke(m);
            }
        }

        public static long NowNs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000L;

        public void Send(byte[] message) => outbox.Enqueue(message);

        async Task RunAsync(CancellationToken ct)
        {
            var backoff = TimeSpan.FromSeconds(0.5);
            while (!ct.IsCancellationRequested)
            {
                using var ws = new ClientWebSocket();
                try
                {
                    await ws.ConnectAsync(new Uri($"{serverUrl}?token={Uri.EscapeDataString(token)}"), ct);
                    await ws.SendAsync(new ArraySegment<byte>(WireDecoder.EncodeHello(clientName, "operator")), WebSocketMessageType.Binary, true, ct);
                    backoff = TimeSpan.FromSeconds(0.5);
                    var sender = SendLoop(ws, ct);
                    await ReceiveLoop(ws, ct);
                    await sender;
                }
                catch (Exception e) when (!(e is OperationCanceledException))
                {
                    Status = $"disconnected: {e.Message}";
                }
                await Task.Delay(backoff, ct).ContinueWith(_ => { });
                backoff = TimeSpan.FromSeconds(Math.Min(10, backoff.TotalSeconds * 2));
            }
        }

        async Task ReceiveLoop(ClientWebSocket ws, CancellationToken ct)
        {
            var buffer = new byte[1 << 16];
            var frame = new System.IO.MemoryStream();
            while (ws.State == WebSocketState.Open && !ct.IsCancellationRequested)
            {
                var r = await ws.ReceiveAsync(new ArraySegment<byte>(buffer), ct);
                if (r.MessageType == WebSocketMessageType.Close) { Status = $"closed by server: {ws.CloseStatus} {ws.CloseStatusDescription}"; return; }
                frame.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage) continue;
                try { inbox.Enqueue(WireDecoder.Decode(frame.ToArray())); }
                catch (ProtocolException e) { Debug.LogWarning($"overlay message skipped: {e.Message}"); }
                frame.SetLength(0);
            }
        }

        async Task SendLoop(ClientWebSocket ws, CancellationToken ct)
        {
            while (ws.State == WebSocketState.Open && !ct.IsCancellationRequested)
            {
                while (outbox.TryDequeue(out var m))
                    await ws.SendAsync(new ArraySegment<byte>(m), WebSocketMessageType.Binary, true, ct);
                await Task.Delay(20, ct);
            }
        }
    }
}
