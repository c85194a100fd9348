//! The kernel fallbacks, forced on this kernel: tests of the other modules
//! that go through each fallback path, run again on a rig whose engine
//! avoids every optional kernel feature (`Rig::with_fallbacks`), as it
//! would on the oldest kernel supported. The kernel matrix
//! (`scripts/test-kernels`) runs them on kernels that really lack them.

use super::rig::Test;

/// The tests run again, and the path each one goes through.
const PICKED: &[&str] = &[
    // Link first, then its device chain: the source check and zone.
    "spoofed_source_is_dropped",
    "seed_egress_policy_allows_http_and_https_only",
    "live_update_cuts_an_open_connection",
    "deleting_a_box_flushes_its_flows",
    // Links made before the whole table (restart, repair).
    "restart_adopts_boxes_and_removes_stale_ones",
    "altered_rules_are_repaired",
    // Learned addresses removed one message each, gone ones skipped.
    "removing_a_domain_cuts_its_flows",
    "an_unrelated_update_keeps_a_flow_whose_address_expired",
    // Learned timeouts refreshed by delete and re-add.
    "resolver_seed_domains_and_no_leak",
    "resolver_expiry_keeps_open_connections",
];

/// The picked tests of `shared`, named `fallbacks::<name>`.
pub(crate) fn pick(shared: &[(&str, Test)]) -> Vec<(String, Test)> {
    PICKED
        .iter()
        .map(|picked| {
            let (_, test) = shared
                .iter()
                .find(|(name, _)| name == picked)
                .unwrap_or_else(|| panic!("no shared test {picked}"));
            (format!("fallbacks::{picked}"), *test)
        })
        .collect()
}
