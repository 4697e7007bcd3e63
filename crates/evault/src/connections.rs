//! The flags that bound what a connection to a server may hold, the same
//! for `evault up` and every `evault serve` role.

use std::time::Duration;

use clap::Args;
use evault_proto::guard::{ConnectionLimits, GuardedIncoming};
use tokio::net::TcpListener;

/// Connection limits on the listener (see docs/limits.md).
#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectionArgs {
    /// Connections open at once; a new one beyond is closed at once. Keep
    /// it below the process's file descriptor limit (`ulimit -n`).
    #[arg(
        long,
        env = "EVAULT_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = ConnectionLimits::default().max_connections as u64,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    max_connections: u64,
    /// Seconds a new connection has to send its first request head (the
    /// HTTP/2 preface, or HTTP/1 headers) before it is closed.
    #[arg(
        long,
        env = "EVAULT_HANDSHAKE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = ConnectionLimits::default().handshake_timeout.as_secs_f64(),
        value_parser = seconds
    )]
    handshake_timeout: f64,
    /// Seconds a connection may send nothing before it is closed. Live
    /// HTTP/2 clients answer the server's pings every 10 seconds.
    #[arg(
        long,
        env = "EVAULT_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = ConnectionLimits::default().idle_timeout.as_secs_f64(),
        value_parser = seconds
    )]
    idle_timeout: f64,
    /// Request bytes all connections may hold at once (messages being
    /// received, and unary requests until answered); a request beyond is
    /// refused RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "EVAULT_MAX_REQUEST_BYTES_IN_FLIGHT",
        value_name = "BYTES",
        default_value_t = ConnectionLimits::default().max_request_bytes as u64,
        value_parser = clap::value_parser!(u64).range(1 << 20..)
    )]
    max_request_bytes_in_flight: u64,
}

impl ConnectionArgs {
    /// The connections accepted on `listener`, within the limits.
    pub(crate) fn incoming(&self, listener: TcpListener) -> GuardedIncoming {
        evault_proto::transport::incoming(listener, self.limits())
    }

    /// The limits the flags say.
    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            handshake_timeout: Duration::from_secs_f64(self.handshake_timeout),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            max_request_bytes: usize::try_from(self.max_request_bytes_in_flight)
                .unwrap_or(usize::MAX),
        }
    }
}

/// A positive number of seconds, at most a day.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 86_400.0 => Ok(n),
        _ => Err(format!(
            "{s:?}: a number of seconds above 0 and at most 86400"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        connections: ConnectionArgs,
    }

    #[test]
    fn defaults_are_the_servers_defaults_and_flags_override_them() {
        let defaults = Flags::try_parse_from(["x"]).expect("parse");
        assert_eq!(defaults.connections.limits(), ConnectionLimits::default());
        let set = Flags::try_parse_from([
            "x",
            "--max-connections",
            "200",
            "--handshake-timeout",
            "0.5",
            "--idle-timeout",
            "3",
            "--max-request-bytes-in-flight",
            "33554432",
        ])
        .expect("parse");
        assert_eq!(
            set.connections.limits(),
            ConnectionLimits {
                max_connections: 200,
                handshake_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(3),
                max_request_bytes: 32 << 20,
            }
        );
        for bad in [
            &["x", "--max-connections", "0"][..],
            &["x", "--handshake-timeout", "0"],
            &["x", "--idle-timeout", "-1"],
            &["x", "--idle-timeout", "NaN"],
            &["x", "--idle-timeout", "1e9"],
            &["x", "--max-request-bytes-in-flight", "1000"],
        ] {
            assert!(Flags::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
