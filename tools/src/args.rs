//! Command-line value types shared by `squall` and `squall-bench`: durations and rates.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written as a number and a unit: `500ms`, `10s`, `1.5s`, `2m`, `1h`.
///
/// A bare number means seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis.is_multiple_of(1_000) {
            write!(f, "{}s", millis / 1_000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

/// Why a command-line value was rejected; the message names the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// Splits `text` into its leading number and the unit after it.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    text.split_at(end)
}

fn parse_number(number: &str, whole: &str, what: &str) -> Result<f64, ArgError> {
    let cleaned = number.replace('_', "");
    match cleaned.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(ArgError(format!(
            "{what} {whole:?} does not start with a number"
        ))),
    }
}

impl FromStr for HumanDuration {
    type Err = ArgError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (number, unit) = split_number(text);
        let value = parse_number(number, text, "duration")?;
        let seconds_per_unit = match unit {
            "" | "s" | "sec" | "secs" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "m" | "min" => 60.0,
            "h" => 3_600.0,
            _ => {
                return Err(ArgError(format!(
                    "duration {text:?} has unknown unit {unit:?}; use ms, s, m or h (e.g. 10s)"
                )));
            }
        };
        Duration::try_from_secs_f64(value * seconds_per_unit)
            .map(HumanDuration)
            .map_err(|_| ArgError(format!("duration {text:?} is too long")))
    }
}

/// A target rate for constant-rate load: an absolute number of tuples per second (`250000`,
/// `500k`, `25M`), or a percentage (`50%`) of the rate the same scenario reaches unthrottled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSpec {
    /// Exactly this many tuples per second.
    PerSecond(u64),
    /// This fraction (0 < f <= 1) of the unthrottled rate, measured just before.
    FractionOfMax(f64),
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::PerSecond(rate) => write!(f, "{rate}/s"),
            RateSpec::FractionOfMax(fraction) => write!(f, "{}% of max", fraction * 100.0),
        }
    }
}

impl FromStr for RateSpec {
    type Err = ArgError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (number, unit) = split_number(text);
        let value = parse_number(number, text, "rate")?;
        let scale = match unit {
            "%" => {
                if value <= 0.0 || value > 100.0 {
                    return Err(ArgError(format!(
                        "rate {text:?} must be a percentage above 0% and at most 100%"
                    )));
                }
                return Ok(RateSpec::FractionOfMax(value / 100.0));
            }
            "" => 1.0,
            "k" | "K" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            _ => {
                return Err(ArgError(format!(
                    "rate {text:?} has unknown suffix {unit:?}; write tuples per second as \
                     250000, 500k or 25M, or a share of the maximum as 50%"
                )));
            }
        };
        let rate = (value * scale).round();
        if !(1.0..=1e12).contains(&rate) {
            return Err(ArgError(format!(
                "rate {text:?} must be between 1 and 1e12 tuples per second"
            )));
        }
        Ok(RateSpec::PerSecond(rate as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(text: &str) -> Result<Duration, ArgError> {
        text.parse::<HumanDuration>().map(HumanDuration::get)
    }

    #[test]
    fn durations_take_common_units() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3_600)));
    }

    #[test]
    fn bad_durations_are_named() {
        let error = duration("10 parsecs").expect_err("unknown unit");
        assert!(
            error.to_string().contains("unknown unit \" parsecs\""),
            "{error}"
        );
        let error = duration("fast").expect_err("no number");
        assert_eq!(
            error.to_string(),
            "duration \"fast\" does not start with a number"
        );
        assert!(duration("-1s").is_err());
    }

    #[test]
    fn durations_print_back() {
        assert_eq!(HumanDuration(Duration::from_secs(10)).to_string(), "10s");
        assert_eq!(
            HumanDuration(Duration::from_millis(1_500)).to_string(),
            "1500ms"
        );
    }

    #[test]
    fn rates_take_suffixes_and_percentages() {
        assert_eq!("250000".parse(), Ok(RateSpec::PerSecond(250_000)));
        assert_eq!("500k".parse(), Ok(RateSpec::PerSecond(500_000)));
        assert_eq!("2.5M".parse(), Ok(RateSpec::PerSecond(2_500_000)));
        assert_eq!("1_000".parse(), Ok(RateSpec::PerSecond(1_000)));
        assert_eq!("50%".parse(), Ok(RateSpec::FractionOfMax(0.5)));
    }

    #[test]
    fn bad_rates_are_named() {
        assert!("0".parse::<RateSpec>().is_err());
        assert!("150%".parse::<RateSpec>().is_err());
        let error = "10x".parse::<RateSpec>().expect_err("unknown suffix");
        assert!(
            error.to_string().contains("unknown suffix \"x\""),
            "{error}"
        );
    }
}
