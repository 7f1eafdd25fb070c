//! Shared pieces of the benchmark binaries: the deterministic value every
//! benchmark node (Rust and Go) computes, and duration parsing with Go's
//! spelling (`300ms`, `2s`, `0`), so one script drives both sides with the
//! same command line.

pub mod hitratio;

use std::time::Duration;

/// The value of `key`: `"v:" + key` repeated and cut to `size` bytes (the
/// Go benchmark node computes the same bytes).
pub fn value_for(key: &str, size: usize) -> Vec<u8> {
    let unit = format!("v:{key}");
    unit.bytes().cycle().take(size).collect()
}

/// Parses a duration as Go's `time.ParseDuration` spells the common ones:
/// a number with `ns`, `us`, `µs`, `ms`, `s`, `m` or `h`, or a bare `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} needs a unit: ns, us, ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a number"))?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "duration {text:?}: unknown unit {unit:?} (ns, us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_repeat_the_key_and_are_cut_to_size() {
        assert_eq!(value_for("ab", 10), b"v:abv:abv:");
        assert_eq!(value_for("key-1", 3), b"v:k");
        assert_eq!(value_for("k", 0), b"");
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
