//! A load run's result: one JSON line for scripts, one table for people.

use std::fmt;

/// What a load run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// `request` or `send`.
    pub mode: String,
    /// `tcp`, `ws` or `tls`.
    pub transport: String,
    /// Clients started.
    pub ccu: usize,
    /// Clients that authenticated.
    pub authenticated: u64,
    /// Seconds from the first connection until the last client authenticated.
    pub all_in_seconds: f64,
    /// In-flight window per client.
    pub inflight: usize,
    /// Payload bytes.
    pub size: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Messages completed while measuring.
    pub messages: u64,
    /// Completed messages per second.
    pub msgs_per_sec: f64,
    /// Median latency (µs).
    pub p50_us: u64,
    /// 95th percentile latency (µs).
    pub p95_us: u64,
    /// 99th percentile latency (µs).
    pub p99_us: u64,
    /// Worst latency (µs).
    pub max_us: u64,
    /// Error replies and dropped connections.
    pub errors: u64,
    /// Clients that could not connect or authenticate.
    pub connect_failures: u64,
    /// Peak server RSS while measuring (MiB; 0 when unknown).
    pub server_rss_mb: f64,
    /// Server CPU time (user + system) while measuring, in seconds (0 when unknown; the
    /// kernel counts it in 10 ms ticks).
    pub server_cpu_seconds: f64,
    /// Whether the clients asked for resumable sessions.
    pub resume: bool,
    /// Clients the server granted a resumable session.
    pub granted: u64,
    /// Bytes the clients read while measuring (frames, length prefixes, acks; TLS or
    /// WebSocket framing included when used).
    pub bytes_in: u64,
    /// Bytes the clients wrote while measuring.
    pub bytes_out: u64,
    /// `@Ack@` frames the clients received while measuring.
    pub acks_in: u64,
    /// `@Ack@` frames the clients sent while measuring.
    pub acks_out: u64,
}

impl Report {
    /// The report as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode, "transport": self.transport, "ccu": self.ccu,
            "authenticated": self.authenticated, "all_in_s": self.all_in_seconds,
            "inflight": self.inflight, "size": self.size,
            "seconds": self.seconds, "messages": self.messages,
            "msgs_per_sec": self.msgs_per_sec.round(),
            "p50_us": self.p50_us, "p95_us": self.p95_us, "p99_us": self.p99_us,
            "max_us": self.max_us, "errors": self.errors,
            "connect_failures": self.connect_failures,
            "server_rss_mb": (self.server_rss_mb * 10.0).round() / 10.0,
            "server_cpu_us_per_msg": round2(self.per_message_us(self.server_cpu_seconds)),
            "resume": self.resume, "granted": self.granted,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "bytes_in_per_msg": round2(self.per_message(self.bytes_in)),
            "bytes_out_per_msg": round2(self.per_message(self.bytes_out)),
            "acks_in": self.acks_in, "acks_out": self.acks_out,
        })
    }

    /// `seconds` per completed message, in µs (0 when none completed).
    pub fn per_message_us(&self, seconds: f64) -> f64 {
        if self.messages == 0 {
            0.0
        } else {
            seconds * 1e6 / self.messages as f64
        }
    }

    /// `total` per completed message (0 when none completed).
    pub fn per_message(&self, total: u64) -> f64 {
        if self.messages == 0 {
            return 0.0;
        }
        total as f64 / self.messages as f64
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mode {} over {}, {} clients ({} authenticated, the last after {:.1} s), in flight {}, {} B",
            self.mode,
            self.transport,
            self.ccu,
            self.authenticated,
            self.all_in_seconds,
            self.inflight,
            self.size
        )?;
        writeln!(
            f,
            "  throughput  {:>12.0} msg/s  ({} in {:.1} s)",
            self.msgs_per_sec, self.messages, self.seconds
        )?;
        writeln!(
            f,
            "  latency     p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.p50_us as f64 / 1e3,
            self.p95_us as f64 / 1e3,
            self.p99_us as f64 / 1e3,
            self.max_us as f64 / 1e3
        )?;
        writeln!(
            f,
            "  wire        {:.1} B in, {:.1} B out per message  (acks: {} in, {} out)",
            self.per_message(self.bytes_in),
            self.per_message(self.bytes_out),
            self.acks_in,
            self.acks_out
        )?;
        write!(
            f,
            "  errors      {}  connect failures {}  server RSS {:.1} MiB  resume {} ({} granted)",
            self.errors,
            self.connect_failures,
            self.server_rss_mb,
            if self.resume { "on" } else { "off" },
            self.granted
        )
    }
}
