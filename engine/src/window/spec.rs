//! What a window is: its length and slide, by count or by time, and where time comes from.

use std::fmt;
use std::time::Duration;

/// A length or a slide: a number of tuples, or a span of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// This many tuples.
    Count(usize),
    /// This much time (millisecond resolution).
    Time(Duration),
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extent::Count(count) => write!(f, "{count} tuples"),
            Extent::Time(span) => write!(f, "{} ms", span.as_millis()),
        }
    }
}

/// Where a time window takes each tuple's time from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// The time the bolt received the tuple (wall clock, milliseconds since the Unix epoch).
    Processing,
    /// A field of the tuple holding milliseconds since the Unix epoch (an unsigned or
    /// non-negative signed integer), with watermarks that trail the largest time seen by
    /// `lag`: a tuple up to `lag` older than the newest is still on time.
    Event {
        /// The field's name.
        field: String,
        /// How far behind the newest time seen the watermark stays.
        lag: Duration,
    },
}

/// A window's shape: its length, how far it slides, and its clock.
///
/// Count windows slide by count; time windows slide by time. A time window covers
/// `[end - length, end)`, with ends on multiples of the slide, and is evaluated once the
/// watermark (processing time: the clock) reaches its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub(crate) length: Extent,
    pub(crate) slide: Extent,
    pub(crate) time: TimeSource,
    pub(crate) late_stream: Option<(String, Vec<String>)>,
}

/// Why a [`WindowSpec`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowSpecError {
    /// A length or slide of zero.
    #[error("a window's {what} must not be zero")]
    Zero {
        /// "length" or "slide".
        what: &'static str,
    },
    /// A count length with a time slide, or the other way round.
    #[error(
        "a window of {length} cannot slide by {slide}: count windows slide by count and time windows by time"
    )]
    Mixed {
        /// The length asked for.
        length: Extent,
        /// The slide asked for.
        slide: Extent,
    },
    /// A slide longer than the window would skip tuples between windows.
    #[error("a window of {length} cannot slide by {slide}, which is longer than the window")]
    SlideLongerThanWindow {
        /// The length asked for.
        length: Extent,
        /// The slide asked for.
        slide: Extent,
    },
    /// A time setting on a count window.
    #[error("{what} applies to time windows only")]
    NotTimed {
        /// The setting.
        what: &'static str,
    },
}

impl WindowSpec {
    /// Windows of `length` that follow each other without overlap.
    ///
    /// # Errors
    /// A zero length.
    pub fn tumbling(length: Extent) -> Result<Self, WindowSpecError> {
        Self::sliding(length, length)
    }

    /// Windows of `length`, one every `slide`.
    ///
    /// # Errors
    /// A zero length or slide, a count length with a time slide (or the reverse), or a
    /// slide longer than the window.
    pub fn sliding(length: Extent, slide: Extent) -> Result<Self, WindowSpecError> {
        let (length_units, slide_units) = match (length, slide) {
            (Extent::Count(length), Extent::Count(slide)) => (length as u128, slide as u128),
            (Extent::Time(length), Extent::Time(slide)) => (length.as_millis(), slide.as_millis()),
            _ => return Err(WindowSpecError::Mixed { length, slide }),
        };
        if length_units == 0 {
            return Err(WindowSpecError::Zero { what: "length" });
        }
        if slide_units == 0 {
            return Err(WindowSpecError::Zero { what: "slide" });
        }
        if slide_units > length_units {
            return Err(WindowSpecError::SlideLongerThanWindow { length, slide });
        }
        Ok(Self {
            length,
            slide,
            time: TimeSource::Processing,
            late_stream: None,
        })
    }

    /// Takes time from the tuples' field `field`, with watermarks `lag` behind the newest.
    ///
    /// # Errors
    /// On a count window.
    pub fn with_event_time(mut self, field: &str, lag: Duration) -> Result<Self, WindowSpecError> {
        self.timed("event time")?;
        self.time = TimeSource::Event {
            field: field.to_owned(),
            lag,
        };
        Ok(self)
    }

    /// Emits tuples that arrive after every window they belong to was evaluated on the
    /// stream `stream`, declared with `fields` (the input's fields), anchored to the input,
    /// instead of acking and dropping them.
    ///
    /// # Errors
    /// On a count window.
    pub fn with_late_stream(
        mut self,
        stream: &str,
        fields: &[&str],
    ) -> Result<Self, WindowSpecError> {
        self.timed("a late stream")?;
        let fields = fields.iter().map(|field| (*field).to_owned()).collect();
        self.late_stream = Some((stream.to_owned(), fields));
        Ok(self)
    }

    fn timed(&self, what: &'static str) -> Result<(), WindowSpecError> {
        match self.length {
            Extent::Time(_) => Ok(()),
            Extent::Count(_) => Err(WindowSpecError::NotTimed { what }),
        }
    }

    /// The window's length.
    pub fn length(&self) -> Extent {
        self.length
    }

    /// How far it slides.
    pub fn slide(&self) -> Extent {
        self.slide
    }

    /// Where its time comes from.
    pub fn time_source(&self) -> &TimeSource {
        &self.time
    }

    /// The stream late tuples go to, if any.
    pub fn late_stream(&self) -> Option<&str> {
        self.late_stream.as_ref().map(|(stream, _)| stream.as_str())
    }

    /// How often a processing-time window looks at the clock: a quarter of its slide, at
    /// least 10 ms (never more than the slide), so a window is evaluated within that long
    /// after its end. `None` for count windows and event time, which move only with their
    /// input.
    pub fn clock_period(&self) -> Option<Duration> {
        match (&self.slide, &self.time) {
            (Extent::Time(slide), TimeSource::Processing) => {
                Some((*slide / 4).max(Duration::from_millis(10)).min(*slide))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn shapes_that_make_sense_are_accepted() {
        let spec = WindowSpec::sliding(Extent::Count(10), Extent::Count(2)).unwrap();
        assert_eq!(spec.length(), Extent::Count(10));
        assert_eq!(spec.clock_period(), None);
        let spec = WindowSpec::tumbling(Extent::Time(SECOND)).unwrap();
        assert_eq!(spec.slide(), Extent::Time(SECOND));
        assert_eq!(spec.clock_period(), Some(SECOND / 4));
        let spec = spec.with_event_time("ts", SECOND).unwrap();
        assert_eq!(spec.clock_period(), None);
    }

    #[test]
    fn nonsense_shapes_are_refused_with_the_reason() {
        let error = WindowSpec::sliding(Extent::Count(10), Extent::Time(SECOND)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a window of 10 tuples cannot slide by 1000 ms: count windows slide by count and time windows by time"
        );
        assert_eq!(
            WindowSpec::tumbling(Extent::Count(0)).unwrap_err(),
            WindowSpecError::Zero { what: "length" }
        );
        assert_eq!(
            WindowSpec::sliding(Extent::Count(2), Extent::Count(3))
                .unwrap_err()
                .to_string(),
            "a window of 2 tuples cannot slide by 3 tuples, which is longer than the window"
        );
        let count = WindowSpec::tumbling(Extent::Count(3)).unwrap();
        assert_eq!(
            count
                .with_late_stream("late", &["n"])
                .unwrap_err()
                .to_string(),
            "a late stream applies to time windows only"
        );
    }
}
