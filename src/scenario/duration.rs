//! Durations as authors write them: `5s`, `500ms`, `1.5s`, `2m`.
//!
//! A bare number is rejected on purpose: `timeout: 5` could mean seconds or milliseconds
//! depending on which IVR the author used before.

use std::time::Duration;

/// The longest duration accepted anywhere in a scenario (one hour); longer values are
/// almost certainly typos and would overflow `Instant` arithmetic on some platforms.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Parses `<number><unit>` where the number may have a fraction and the unit is one of
/// `ms`, `s`, `m`/`min`, `h`. Whitespace between number and unit is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration"));
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("duration `{text}` has no unit")),
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (number, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(format!("`{text}` is not a duration"));
    }
    // Exact decimal arithmetic in microseconds: "1.5s" is 1_500_000 µs, no float rounding.
    let micros_per_unit = millis_per_unit * 1_000;
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| format!("`{text}` is too large"))?
    };
    let mut micros = int
        .checked_mul(micros_per_unit)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    let mut scale = micros_per_unit;
    for digit in frac.chars().take(12) {
        scale /= 10;
        micros += u64::from(digit.to_digit(10).unwrap_or(0)) * scale;
    }
    let duration = Duration::from_micros(micros);
    if duration > MAX_DURATION {
        return Err(format!("`{text}` is longer than the maximum of 1h"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_forms() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2 m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5ms"), Ok(Duration::from_micros(500)));
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "5",
            "s",
            "",
            "1.2.3s",
            "5 parsecs",
            "-1s",
            "2h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
