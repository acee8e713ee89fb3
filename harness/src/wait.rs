//! Waiting on conditions instead of sleeping: poll until a probe answers, or fail after a
//! deadline, naming what was awaited.
//!
//! The poll starts at 10 ms and backs off to 200 ms, so a fast condition costs little and a
//! slow one does not spin.

use std::time::{Duration, Instant};

/// A wait that ran out of time.
#[derive(Debug)]
pub struct TimedOut {
    /// What was awaited, as the caller put it ("the sealer to answer /healthz").
    pub what: String,
    pub patience: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waited {:?} for {}", self.patience, self.what)
    }
}

impl std::error::Error for TimedOut {}

/// Call `probe` until it returns `Some`, and return that; [`TimedOut`] after `patience`. The
/// probe runs at least once, and once more at the deadline.
pub fn until<T>(
    what: &str,
    patience: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what: what.to_owned(),
                patience,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// [`until`] for a condition with no value.
pub fn until_true(
    what: &str,
    patience: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    until(what, patience, || condition().then_some(()))
}

/// A property that stopped holding within its window.
#[derive(Debug)]
pub struct Broke {
    /// What was meant to hold ("no partial batch is delivered").
    pub what: String,
    /// How long it held before it broke.
    pub after: Duration,
}

impl std::fmt::Display for Broke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stopped holding after {:?}", self.what, self.after)
    }
}

impl std::error::Error for Broke {}

/// Check that `condition` holds for the whole of `window`, polling it, and fail as soon as it
/// does not: for "nothing happens before the timer", which only time can show. Returns after
/// `window` when it held throughout.
pub fn holds_for(
    what: &str,
    window: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), Broke> {
    let start = Instant::now();
    let broke = until(what, window, || (!condition()).then(|| start.elapsed()));
    match broke {
        Ok(after) => Err(Broke {
            what: what.to_owned(),
            after,
        }),
        Err(_) if condition() => Ok(()),
        Err(_) => Err(Broke {
            what: what.to_owned(),
            after: window,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_answer() {
        let mut calls = 0;
        let got = until("three calls", Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got.unwrap(), 3);
    }

    #[test]
    fn times_out_naming_what_it_waited_for() {
        let err = until_true(
            "a condition that never holds",
            Duration::from_millis(50),
            || false,
        )
        .unwrap_err();
        assert_eq!(err.what, "a condition that never holds");
        assert!(err.to_string().contains("a condition that never holds"));
    }

    #[test]
    fn holds_for_fails_as_soon_as_the_property_breaks() {
        let mut n = 0;
        let broke = holds_for("n stays below 3", Duration::from_secs(5), || {
            n += 1;
            n < 3
        })
        .unwrap_err();
        assert!(broke.after < Duration::from_secs(5));
        assert!(holds_for("true", Duration::from_millis(30), || true).is_ok());
    }
}
