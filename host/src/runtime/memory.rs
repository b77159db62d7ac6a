//! The host process's resident memory, as Linux reports it: how `hrsync
//! connector check` and the containment tests measure what running a
//! connector costs the host, guest memory and host-side resources together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory now, if the platform says.
pub fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// Measures the peak of resident memory above where it was at the start.
///
/// Linux keeps the process's high-water mark (`VmHWM`), and lets a process
/// reset it; a sampler thread also notes the highest `VmRSS` it sees every
/// few milliseconds, where the reset is not allowed. Both are the kernel's
/// counters, which lag the truth by a little (well under a megabyte).
pub struct PeakMeter {
    baseline: u64,
    hwm_reset: bool,
    sampled: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakMeter {
    /// Starts measuring; `None` where the process's memory cannot be read.
    pub fn start() -> Option<PeakMeter> {
        let baseline = rss_bytes()?;
        // "5" resets the peak resident set size (proc(5), clear_refs).
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let sampled = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, flag) = (sampled.clone(), stop.clone());
        let sampler = std::thread::Builder::new()
            .name("hrsync-rss".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if let Some(now) = rss_bytes() {
                        s.fetch_max(now, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .ok();
        Some(PeakMeter { baseline, hwm_reset, sampled, stop, sampler })
    }

    /// The highest resident memory since [`start`](Self::start), above the
    /// baseline, in bytes.
    pub fn growth(&self) -> u64 {
        let mut peak = self.sampled.load(Ordering::Relaxed).max(rss_bytes().unwrap_or(0));
        if self.hwm_reset
            && let Some(hwm) = status_bytes("VmHWM:")
        {
            peak = peak.max(hwm);
        }
        peak.saturating_sub(self.baseline)
    }
}

impl Drop for PeakMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_peak_outlives_the_memory_that_made_it() {
        let meter = PeakMeter::start().expect("Linux reports the process's memory");
        let block = vec![7u8; 64 << 20];
        std::hint::black_box(&block);
        // Other tests of this binary move the process's memory too: compare
        // with what was resident at the moment, not with a fixed figure.
        let during = rss_bytes().unwrap().saturating_sub(meter.baseline);
        drop(block);
        // The kernel's counters lag by a little; a megabyte covers it.
        let growth = meter.growth();
        assert!(growth + (1 << 20) >= during, "peak {growth} below the {during} bytes seen while held");
    }
}
