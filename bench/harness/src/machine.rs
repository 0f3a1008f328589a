//! How busy the whole machine was during a run (`/proc/stat`): the load generator, the server
//! and the database share its cores, so a run whose cores were all busy was limited by CPU, not
//! by waits, and a ratio measured there says how much CPU each side spends per spend.

/// The machine's CPU time so far, in clock ticks: busy (user, nice, system, interrupts, steal)
/// and all. Zero where `/proc/stat` cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    pub fn now() -> CpuTimes {
        std::fs::read_to_string("/proc/stat").map(|text| CpuTimes::parse(&text)).unwrap_or_default()
    }

    /// The first line, `cpu  user nice system idle iowait irq softirq steal guest guest_nice`
    /// (guest time is already in user and nice).
    fn parse(text: &str) -> CpuTimes {
        let Some(line) = text.lines().find(|line| line.starts_with("cpu ")) else {
            return CpuTimes::default();
        };
        let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
        if fields.len() < 8 {
            return CpuTimes::default();
        }
        let idle = fields[3] + fields[4];
        let total: u64 = fields.iter().sum();
        CpuTimes { busy: total - idle, total }
    }

    /// The share of the machine's CPU that was busy between `earlier` and `self` (0 to 1).
    pub fn busy_since(self, earlier: CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 { 0.0 } else { self.busy.saturating_sub(earlier.busy) as f64 / total as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::CpuTimes;

    #[test]
    fn busy_is_everything_but_idle_and_iowait() {
        let before = CpuTimes::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n");
        let after = CpuTimes::parse("cpu  250 0 100 850 50 10 10 30 0 0\n");
        // user 150 + system 50 + irq 10 + softirq 10 + steal 30 = 250 busy ticks of 300 (idle 50).
        assert!((after.busy_since(before) - 250.0 / 300.0).abs() < 1e-9);
        assert_eq!(CpuTimes::parse("nothing").busy_since(CpuTimes::default()), 0.0);
    }
}
