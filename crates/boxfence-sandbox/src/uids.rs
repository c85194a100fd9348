//! Each box's own range of host uids and gids: its root is an
//! unprivileged host uid that no other box and no host user has. A box's
//! range is derived from its zone (the offset of its IPv4 address in the
//! pool, which the store keeps unique among living boxes), so it is the
//! same after a restart and needs no table of its own.

use crate::spec::IdMapping;

/// Ids per box: a whole 16-bit space, so images with users such as
/// `nobody` (65534) work.
pub const RANGE_SIZE: u32 = 65_536;

/// Why a box gets no uid range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidError {
    /// The range would pass the largest valid uid.
    #[error(
        "no uid range for zone {zone}: {base} + {zone} × {RANGE_SIZE} passes the largest uid; lower [runtime] uid_base or use a smaller pool"
    )]
    Exhausted {
        /// The configured first uid of zone 0.
        base: u32,
        /// The box's zone.
        zone: u16,
    },
    /// The base would map a box's root onto a host system user.
    #[error(
        "[runtime] uid_base must be at least {RANGE_SIZE} (the host's own users and groups live below), not {0}"
    )]
    BaseTooLow(u32),
}

/// The host ids `first .. first + RANGE_SIZE` of one box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    /// The host uid (and gid) of the box's root.
    pub first: u32,
}

impl UidRange {
    /// The range of the box in `zone`, zones counted from `base`.
    pub fn for_zone(base: u32, zone: u16) -> Result<Self, UidError> {
        if base < RANGE_SIZE {
            return Err(UidError::BaseTooLow(base));
        }
        let first = u64::from(base) + u64::from(zone) * u64::from(RANGE_SIZE);
        // The last id of the range must stay below (uid_t)-1.
        if first + u64::from(RANGE_SIZE) > u64::from(u32::MAX) {
            return Err(UidError::Exhausted { base, zone });
        }
        Ok(Self {
            first: u32::try_from(first).map_err(|_| UidError::Exhausted { base, zone })?,
        })
    }

    /// The mapping of container ids 0.. onto this range.
    pub fn mapping(self) -> IdMapping {
        IdMapping {
            container_id: 0,
            host_id: self.first,
            size: RANGE_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_get_disjoint_ranges_above_the_base() {
        let a = UidRange::for_zone(524_288, 2).expect("range");
        let b = UidRange::for_zone(524_288, 3).expect("range");
        assert_eq!(b.first - a.first, RANGE_SIZE);
        assert!(a.first >= 524_288 + 2 * RANGE_SIZE);
    }

    #[test]
    fn a_range_past_the_largest_uid_is_refused() {
        let error = UidRange::for_zone(1 << 31, u16::MAX).expect_err("too high");
        assert!(error.to_string().contains("uid_base"), "{error}");
        assert_eq!(
            UidRange::for_zone(100, 1),
            Err(UidError::BaseTooLow(100)),
            "a base among the host's users"
        );
    }
}
