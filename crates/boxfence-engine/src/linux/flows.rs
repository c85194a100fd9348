//! Cutting the flows a policy update denies, walking conntrack only when
//! a box may have flows the engine has not seen.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use boxfence_dataplane::conntrack::Entry;
use boxfence_dataplane::ruleset::{BoxLink, NEW_IN, NEW_OUT, box_counter};
use boxfence_policy::EffectivePolicy;

use super::{LinuxEngine, State, kernel};
use crate::EngineError;

/// Above this many flows a box's are not kept between updates (each one
/// is a few hundred bytes); its next update walks conntrack.
const MAX_KNOWN_FLOWS: usize = 4096;

impl LinuxEngine {
    /// Cuts the flows the boxes' new policies deny. Finding flows means a
    /// walk of the kernel's whole conntrack table (about 10 ms), so a box
    /// whose new-flow counters have not moved since the last look is
    /// checked against the flows that look found, which are all it can
    /// have (none, for a box created since).
    pub(super) fn cut_denied(
        &self,
        state: &mut State,
        boxes: &[(BoxLink, &EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let domain_of = |id: &str, ip: IpAddr| {
            let link = boxes
                .iter()
                .find(|(link, _)| link.id == id)
                .map(|(link, _)| link)?;
            self.authorised_by(link, ip)
        };
        // A few boxes: their own counters; many: one dump of all.
        let names: Vec<String> = boxes
            .iter()
            .flat_map(|(link, _)| [NEW_OUT, NEW_IN].map(|which| box_counter(&link.id, which)))
            .collect();
        let names = (boxes.len() <= 16).then_some(&names[..]);
        let counters = state.socket.counters(&self.config.table, names).ok();
        let flows_seen = |id: &str| {
            let count = |which| counters.as_ref()?.get(&box_counter(id, which)).copied();
            Some(count(NEW_OUT)? + count(NEW_IN)?)
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        let mut seen = HashMap::new();
        for (link, policy) in boxes {
            let count = flows_seen(&link.id);
            match (count, state.flows.remove(&link.id)) {
                (Some(count), Some((then, flows))) if count == then => {
                    known.push(((link.clone(), *policy), flows));
                }
                _ => unknown.push((link.clone(), *policy)),
            }
            if let Some(count) = count {
                seen.insert(link.id.clone(), count);
            }
        }
        let conntrack = &mut *self.conntrack();
        let mut cuts = vec![conntrack.cut_denied(&unknown, &domain_of).map_err(kernel)?];
        if !known.is_empty() {
            let (pairs, flows): (Vec<_>, Vec<Vec<Entry>>) = known.into_iter().unzip();
            let flows = flows.into_iter().flatten().collect();
            cuts.push(
                conntrack
                    .cut_among(&pairs, flows, &domain_of)
                    .map_err(kernel)?,
            );
        }
        let mut kept: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for cut in cuts {
            kept.extend(cut.kept);
        }
        for (id, count) in seen {
            let flows = kept.remove(&id).unwrap_or_default();
            if flows.len() <= MAX_KNOWN_FLOWS {
                state.flows.insert(id, (count, flows));
            }
        }
        Ok(())
    }
}
