//! The process's own metrics, under the names every Prometheus client
//! library uses (`process_*`), read from `/proc/self` at scrape time.
//! Linux only: on other systems the process reports none of them, rather
//! than numbers that mean something else there.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// The process's CPU time, memory, file descriptors and start time.
#[derive(Debug)]
pub(crate) struct Process;

impl Collector for Process {
    #[cfg(target_os = "linux")]
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
        linux::Sample::read().encode(encoder)
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _encoder: DescriptorEncoder<'_>) -> fmt::Result {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fmt;

    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    /// Clock ticks per second in `/proc/self/stat`. The kernel reports
    /// USER_HZ, which is 100 on every architecture Linux runs the vault
    /// on; reading it with `sysconf` would need `unsafe`, which the
    /// workspace forbids (Prometheus's own `procfs` assumes 100 too).
    const USER_HZ: f64 = 100.0;

    /// What `/proc/self` said at one scrape; a file that could not be
    /// read leaves its metrics out, and the others are still reported.
    #[derive(Debug, Default, PartialEq)]
    pub(super) struct Sample {
        pub(super) cpu_seconds: Option<f64>,
        pub(super) start_time_seconds: Option<f64>,
        pub(super) resident_bytes: Option<u64>,
        pub(super) open_fds: Option<u64>,
        pub(super) max_fds: Option<u64>,
    }

    impl Sample {
        pub(super) fn read() -> Sample {
            let read = |path: &str| std::fs::read_to_string(path).ok();
            let stat = read("/proc/self/stat").and_then(|s| Stat::parse(&s));
            let boot = read("/proc/stat").and_then(|s| boot_time(&s));
            Sample {
                cpu_seconds: stat.as_ref().map(|s| s.cpu_ticks as f64 / USER_HZ),
                start_time_seconds: stat
                    .zip(boot)
                    .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ),
                resident_bytes: read("/proc/self/status").and_then(|s| resident_bytes(&s)),
                open_fds: std::fs::read_dir("/proc/self/fd")
                    .ok()
                    .map(|entries| entries.count() as u64),
                max_fds: read("/proc/self/limits").and_then(|s| max_open_files(&s)),
            }
        }

        pub(super) fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
            if let Some(seconds) = self.cpu_seconds {
                let counter = ConstCounter::new(seconds);
                counter.encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds.",
                    None,
                    counter.metric_type(),
                )?)?;
            }
            let gauges = [
                (
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    self.start_time_seconds,
                ),
                (
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    self.resident_bytes.map(|b| b as f64),
                ),
                (
                    "process_open_fds",
                    "Number of open file descriptors.",
                    self.open_fds.map(|n| n as f64),
                ),
                (
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    self.max_fds.map(|n| n as f64),
                ),
            ];
            for (name, help, value) in gauges {
                if let Some(value) = value {
                    let gauge = ConstGauge::new(value);
                    gauge.encode(encoder.encode_descriptor(
                        name,
                        help,
                        None,
                        gauge.metric_type(),
                    )?)?;
                }
            }
            Ok(())
        }
    }

    /// What the vault reads of `/proc/self/stat`.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Stat {
        /// User and system time, in clock ticks.
        pub(super) cpu_ticks: u64,
        /// When the process started, in clock ticks after boot.
        pub(super) start_ticks: u64,
    }

    impl Stat {
        /// Fields 14 (utime), 15 (stime) and 22 (starttime) of
        /// proc_pid_stat(5). The command name (field 2) is in parentheses
        /// and may hold spaces and parentheses itself, so fields are
        /// counted from after its last `)`, where field 3 begins.
        pub(super) fn parse(stat: &str) -> Option<Stat> {
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
            Some(Stat {
                cpu_ticks: field(14)? + field(15)?,
                start_ticks: field(22)?,
            })
        }
    }

    /// The boot time, in seconds since the Unix epoch: `btime` of
    /// `/proc/stat`.
    pub(super) fn boot_time(stat: &str) -> Option<u64> {
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|t| t.trim().parse().ok())
    }

    /// `VmRSS` of `/proc/self/status`, which the kernel gives in kB.
    pub(super) fn resident_bytes(status: &str) -> Option<u64> {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    }

    /// The soft limit on open files, from `/proc/self/limits`; none when
    /// unlimited.
    pub(super) fn max_open_files(limits: &str) -> Option<u64> {
        let line = limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))?;
        line.split_whitespace().next()?.parse().ok()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::linux::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis of its own.
        let stat = "4242 (evault (up) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    250 50 0 0 20 0 9 0 12345 100000000 3000 18446744073709551615";
        assert_eq!(
            Stat::parse(stat),
            Some(Stat {
                cpu_ticks: 300,
                start_ticks: 12345,
            })
        );
        assert_eq!(Stat::parse("4242 (evault) S 1 2"), None);
        assert_eq!(Stat::parse("no parenthesis"), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_read_by_their_names() {
        assert_eq!(
            resident_bytes("Name:\tevault\nVmRSS:\t   20480 kB\nThreads:\t9\n"),
            Some(20480 * 1024)
        );
        assert_eq!(resident_bytes("Name:\tevault\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 1048576              files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    /// This test's own process, read as a scrape reads it.
    #[test]
    fn this_process_reports_plausible_numbers() {
        let sample = Sample::read();
        let started = sample.start_time_seconds.expect("start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        // Tick-rounded, and the boot time is whole seconds.
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        assert!(sample.cpu_seconds.expect("cpu") >= 0.0);
        assert!(sample.resident_bytes.expect("rss") > 1 << 20);
        assert!(sample.open_fds.expect("fds") >= 3);
    }
}
