//! The engine's metrics in the Prometheus text format. Labels are bounded:
//! `machine` takes one value per box on this host, `direction` two.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use boxfence_dataplane::nft_netlink::NftSocket;
use boxfence_dataplane::ruleset::{DENIED, NEW_IN, NEW_OUT, box_counter};
use boxfence_resolver::histogram::Histogram;

use crate::linux::LinuxEngine;

/// What the engine measures itself.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Time to enforce a policy change (`apply`), kernel included.
    pub apply_latency: Histogram,
    /// Times the watchdog restored a flushed or altered ruleset.
    pub repairs: AtomicU64,
}

impl LinuxEngine {
    /// Every engine metric, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let ids = self.machine_ids();
        let _ = writeln!(
            out,
            "# HELP boxfence_machines Machines this host enforces.\n# TYPE boxfence_machines gauge"
        );
        let _ = writeln!(out, "boxfence_machines {}", ids.len());
        let counters = self.kernel_counters();
        let packets =
            |id: &str, which: &str| counters.get(&box_counter(id, which)).copied().unwrap_or(0);
        family(
            &mut out,
            "boxfence_box_new_flow_packets_total",
            "counter",
            "First packets of new flows, per box and direction (nft counters).",
        );
        for id in &ids {
            let _ = writeln!(
                out,
                "boxfence_box_new_flow_packets_total{{machine=\"{id}\",direction=\"egress\"}} {}",
                packets(id, NEW_OUT)
            );
            let _ = writeln!(
                out,
                "boxfence_box_new_flow_packets_total{{machine=\"{id}\",direction=\"ingress\"}} {}",
                packets(id, NEW_IN)
            );
        }
        family(
            &mut out,
            "boxfence_box_denied_packets_total",
            "counter",
            "New-flow packets denied, per box (nft counters).",
        );
        for id in &ids {
            let _ = writeln!(
                out,
                "boxfence_box_denied_packets_total{{machine=\"{id}\"}} {}",
                packets(id, DENIED)
            );
        }
        family(
            &mut out,
            "boxfence_box_allowed_packets_total",
            "counter",
            "New-flow packets allowed, per box (new minus denied).",
        );
        for id in &ids {
            let allowed =
                (packets(id, NEW_OUT) + packets(id, NEW_IN)).saturating_sub(packets(id, DENIED));
            let _ = writeln!(
                out,
                "boxfence_box_allowed_packets_total{{machine=\"{id}\"}} {allowed}"
            );
        }
        let log = self.flow_log();
        family(
            &mut out,
            "boxfence_box_denied_connections_total",
            "counter",
            "Denied connection attempts, per box (flow log, before its rate limit).",
        );
        family(
            &mut out,
            "boxfence_box_refused_queries_total",
            "counter",
            "DNS queries the resolver refused, per box.",
        );
        for id in &ids {
            let (connections, queries) = log.totals(id);
            let _ = writeln!(
                out,
                "boxfence_box_denied_connections_total{{machine=\"{id}\"}} {connections}"
            );
            let _ = writeln!(
                out,
                "boxfence_box_refused_queries_total{{machine=\"{id}\"}} {queries}"
            );
        }
        if let Some(resolver) = self.resolver() {
            let stats = &resolver.stats;
            for (name, help, value) in [
                (
                    "boxfence_resolver_queries_total",
                    "DNS queries received.",
                    &stats.queries,
                ),
                (
                    "boxfence_resolver_refused_total",
                    "DNS queries refused locally.",
                    &stats.refused,
                ),
                (
                    "boxfence_resolver_upstream_errors_total",
                    "DNS queries no upstream answered.",
                    &stats.upstream_errors,
                ),
                (
                    "boxfence_resolver_tcp_refused_total",
                    "TCP connections closed at once: their box or all boxes held as many as allowed, or the source is not a box.",
                    &stats.tcp_refused,
                ),
                (
                    "boxfence_resolver_socket_errors_total",
                    "Failed accepts and receives waited out (out of file descriptors, say).",
                    &stats.socket_errors,
                ),
                (
                    "boxfence_resolver_restarts_total",
                    "Times the resolver stopped serving and bound its sockets again.",
                    &stats.restarts,
                ),
            ] {
                family(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
            }
            family(
                &mut out,
                "boxfence_resolver_tcp_connections",
                "gauge",
                "TCP connections to the resolver open now.",
            );
            let _ = writeln!(
                out,
                "boxfence_resolver_tcp_connections {}",
                resolver.tcp_connections()
            );
            stats.latency.render(
                "boxfence_resolver_latency_seconds",
                "Time to answer a DNS query.",
                &mut out,
            );
        }
        let metrics = self.metrics();
        metrics.apply_latency.render(
            "boxfence_policy_apply_seconds",
            "Time to enforce a policy change in the kernel.",
            &mut out,
        );
        family(
            &mut out,
            "boxfence_reconcile_repairs_total",
            "counter",
            "Times a flushed or altered ruleset was restored.",
        );
        let _ = writeln!(
            out,
            "boxfence_reconcile_repairs_total {}",
            metrics.repairs.load(Ordering::Relaxed)
        );
        out
    }

    /// Named counters of the table: name → packets (one netlink dump;
    /// empty when the table cannot be read).
    fn kernel_counters(&self) -> BTreeMap<String, u64> {
        let table = self.table_name();
        let counters = self
            .host()
            .in_netns(NftSocket::open)
            .ok()
            .and_then(Result::ok)
            .and_then(|mut socket| socket.counters(&table, None).ok());
        counters.into_iter().flatten().collect()
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
