//! Human-readable numbers: rates, latencies and counts.

/// A rate with an SI prefix: `52.3 M/s`, `812.0 k/s`, `950 /s`.
pub fn rate(per_second: f64) -> String {
    if per_second >= 1e9 {
        format!("{:.2} G/s", per_second / 1e9)
    } else if per_second >= 1e6 {
        format!("{:.1} M/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1} k/s", per_second / 1e3)
    } else {
        format!("{per_second:.0} /s")
    }
}

/// A byte rate with a decimal prefix: `3.21 GB/s`, `812.0 MB/s`, `4.0 kB/s`.
pub fn bytes_rate(per_second: f64) -> String {
    if per_second >= 1e9 {
        format!("{:.2} GB/s", per_second / 1e9)
    } else if per_second >= 1e6 {
        format!("{:.1} MB/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1} kB/s", per_second / 1e3)
    } else {
        format!("{per_second:.0} B/s")
    }
}

/// A latency in the most readable unit: `850 ns`, `4.21 µs`, `1.50 ms`, `2.00 s`.
pub fn latency(nanos: u64) -> String {
    let value = nanos as f64;
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 1_000_000 {
        format!("{:.2} µs", value / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.2} ms", value / 1e6)
    } else {
        format!("{:.2} s", value / 1e9)
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_pick_a_prefix() {
        assert_eq!(rate(52_345_678.0), "52.3 M/s");
        assert_eq!(rate(812_000.0), "812.0 k/s");
        assert_eq!(rate(950.0), "950 /s");
        assert_eq!(rate(1.5e9), "1.50 G/s");
    }

    #[test]
    fn byte_rates_pick_a_prefix() {
        assert_eq!(bytes_rate(3.21e9), "3.21 GB/s");
        assert_eq!(bytes_rate(812e6), "812.0 MB/s");
        assert_eq!(bytes_rate(4e3), "4.0 kB/s");
        assert_eq!(bytes_rate(12.0), "12 B/s");
    }

    #[test]
    fn latencies_pick_a_unit() {
        assert_eq!(latency(850), "850 ns");
        assert_eq!(latency(4_210), "4.21 µs");
        assert_eq!(latency(1_500_000), "1.50 ms");
        assert_eq!(latency(2_000_000_000), "2.00 s");
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
