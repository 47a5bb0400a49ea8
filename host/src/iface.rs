//! Facts about a network interface, read from sysfs.

/// Receive queues of `iface` (from sysfs; 1 if unknown).
pub fn rx_queues(iface: &str) -> u32 {
    queue_count(iface, "rx-")
}

/// Transmit queues of `iface` (from sysfs; 1 if unknown).
pub fn tx_queues(iface: &str) -> u32 {
    queue_count(iface, "tx-")
}

fn queue_count(iface: &str, prefix: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .map_or(1, |n| u32::try_from(n).unwrap_or(1).max(1))
}
