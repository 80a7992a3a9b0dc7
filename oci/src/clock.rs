//! The one reading of the wall clock as unix seconds. A clock set before 1970 is an error, never
//! 0: at 0 every key's `notAfter` would hold and no image would ever be too old (fail open).
//! Here, in the lowest crate, so the verifier, the gate and the CLI all read time the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// Seconds since the Unix epoch now, or [`Error::Clock`] when the clock reads before 1970.
pub fn unix_now() -> Result<i64, Error> {
    unix_seconds(SystemTime::now())
}

/// `time` as whole seconds since the Unix epoch (rounded down), or [`Error::Clock`] when it lies
/// before 1970. Times past `i64::MAX` seconds saturate.
pub fn unix_seconds(time: SystemTime) -> Result<i64, Error> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => Ok(i64::try_from(since.as_secs()).unwrap_or(i64::MAX)),
        Err(before) => Err(Error::Clock {
            // A clock a fraction of a second before the epoch is still before it.
            seconds_before_epoch: before.duration().as_secs().max(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn a_clock_before_1970_is_an_error_not_zero() {
        let err = unix_seconds(UNIX_EPOCH - Duration::from_secs(3600)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Clock {
                    seconds_before_epoch: 3600
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "could not check: the system clock reads 3600 s before 1970"
        );
        let err = unix_seconds(UNIX_EPOCH - Duration::from_millis(1)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Clock {
                    seconds_before_epoch: 1
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn seconds_since_the_epoch_round_down() {
        assert_eq!(unix_seconds(UNIX_EPOCH).unwrap(), 0);
        assert_eq!(
            unix_seconds(UNIX_EPOCH + Duration::from_millis(1_767_323_045_999)).unwrap(),
            1_767_323_045
        );
        assert!(unix_now().unwrap() > 1_700_000_000);
    }
}
