//! The kernel side of name checks (issue 19). The policy core decides
//! which flows are checked (those a domain authorised) and which names
//! pass; this only routes packets.
//!
//! - The first packet of a flow that a domain authorised carries a packet
//!   mark bit: [`NameCheck::by_box`] from the box layer's learned sets,
//!   [`NameCheck::by_app`] from an app rule's. Every accept of the egress
//!   path goes through [`GATE`] (or [`PENDING`] when an app rule matched
//!   only by domain), which marks a TCP flow's conntrack entry
//!   [`NameCheck::ct_pending`] and refuses HTTP/3.
//! - While a flow is pending, each packet the box sends on it after the
//!   handshake goes to NFQUEUE [`NameCheck::queue`], without `bypass`:
//!   with no checker bound, the kernel drops it (fail closed). The
//!   checker answers with `NF_REPEAT` and a packet mark bit, and the
//!   packet meets [`CHECK`] again: [`NameCheck::verdict_ok`] clears the
//!   pending bit (every later packet stays in the kernel, and the flow may
//!   be offloaded), [`NameCheck::verdict_deny`] marks the flow
//!   [`NameCheck::ct_denied`], and every packet of it, either way, is
//!   answered with a TCP reset. Segments that certainly carry no data
//!   (bare ACKs) go on in the kernel like replies, and the flow stays
//!   pending.

use super::objects::Object;
use super::{Batch, base};
use crate::nft::{CT_ESTABLISHED, Family, Match, QueueBy, Reject, Rule, Statement, Verdict};

/// The chain a pending flow's packets meet first.
pub(super) const CHECK: &str = "name_check";
/// The chain that marks a flow pending (TCP) or refuses it (HTTP/3).
pub(super) const PENDING: &str = "name_pending";
/// The chain every egress accept goes through: pending when the box
/// layer authorised the flow by a domain, else accepted.
pub(super) const GATE: &str = "name_gate";
/// Where a flow whose name was refused ends: a TCP reset each packet.
const DENY_NAME: &str = "deny_name";
/// Where HTTP/3 to a domain-authorised address ends.
const DENY_QUIC: &str = "deny_quic";

/// IANA protocol numbers.
const TCP: u8 = 6;
const UDP: u8 = 17;
/// HTTP/3.
const QUIC: u16 = boxfence_policy::QUIC_PORT;

/// The queue and the mark bits of name checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameCheck {
    /// The NFQUEUE the checker binds.
    pub queue: u16,
    /// How rules send packets there.
    by: QueueBy,
    /// The table's own packet mark bit; the others are the next ones up.
    mark: u32,
}

impl NameCheck {
    /// Name checks on `queue`, reached `by` the kernel's way, with packet
    /// mark bits above the table's `mark` bit and conntrack mark bits at
    /// and above it. `mark` must be a single bit below bit 27.
    pub fn new(queue: u16, by: QueueBy, mark: u32) -> Self {
        Self { queue, by, mark }
    }

    /// Packet mark: the box layer authorised this packet's flow by a domain.
    pub fn by_box(&self) -> u32 {
        self.mark << 1
    }

    /// Packet mark: an app rule matched this packet's flow only by a domain.
    pub fn by_app(&self) -> u32 {
        self.mark << 2
    }

    /// Packet mark set by the checker: the name passed.
    pub fn verdict_ok(&self) -> u32 {
        self.mark << 3
    }

    /// Packet mark set by the checker: the name was refused.
    pub fn verdict_deny(&self) -> u32 {
        self.mark << 4
    }

    /// Conntrack mark: the flow's name is not judged yet.
    pub fn ct_pending(&self) -> u32 {
        self.mark
    }

    /// Conntrack mark: the flow's name was refused.
    pub fn ct_denied(&self) -> u32 {
        self.mark << 1
    }

    /// The rule that sends a pending or refused flow's packets to
    /// [`CHECK`]; first in the prerouting chain. A jump: what that chain
    /// leaves alone (replies, the handshake) goes on to the next rule,
    /// which marks and accepts established flows.
    pub(crate) fn dispatch(&self) -> Rule {
        Rule::when(
            vec![Match::CtMarkAny(self.ct_pending() | self.ct_denied())],
            Verdict::Jump(CHECK.into()),
        )
    }

    /// Never offload a flow before its name passed.
    pub(crate) fn offload_condition(&self) -> Match {
        Match::CtMarkClear(self.ct_pending() | self.ct_denied())
    }

    /// The chains, into a batch that starts from an empty table; refused
    /// HTTP/3 is logged to NFLOG `log_group`.
    pub(crate) fn render(&self, batch: &mut Batch, log_group: u16) {
        let chain = |batch: &mut Batch, name: &str, rules: Vec<Rule>| {
            batch.upsert(&Object::chain(name.into(), rules));
        };
        chain(
            batch,
            DENY_NAME,
            vec![Rule::then(
                Vec::new(),
                vec![Statement::Counter, Statement::Reject(Reject::TcpReset)],
            )],
        );
        chain(
            batch,
            DENY_QUIC,
            base::deny_rules("sni", log_group, Verdict::Goto("reject_flow".into())),
        );
        chain(
            batch,
            CHECK,
            [
                // A connection reopened on the tuple of a refused one (a
                // source port used again within seconds) finds its
                // conntrack entry: it starts pending, not refused, and
                // its own first bytes are judged.
                Rule::then(
                    vec![Match::CtMarkAny(self.ct_denied()), Match::TcpSyn],
                    vec![
                        Statement::CtMarkClear(self.ct_denied()),
                        Statement::CtMarkOr(self.ct_pending()),
                    ],
                ),
                Rule::when(
                    vec![Match::CtMarkAny(self.ct_denied())],
                    Verdict::Goto(DENY_NAME.into()),
                ),
                Rule {
                    statements: vec![Statement::CtMarkOr(self.ct_denied())],
                    ..Rule::when(
                        vec![Match::MarkAny(self.verdict_deny())],
                        Verdict::Goto(DENY_NAME.into()),
                    )
                },
                Rule {
                    statements: vec![Statement::CtMarkClear(self.ct_pending())],
                    ..Rule::when(vec![Match::MarkAny(self.verdict_ok())], Verdict::Accept)
                },
            ]
            .into_iter()
            .chain(header_only_returns())
            .chain([Rule::then(
                vec![Match::CtOriginal, Match::CtState(CT_ESTABLISHED)],
                vec![Statement::Queue {
                    num: self.queue,
                    by: self.by,
                }],
            )])
            .collect(),
        );
        chain(
            batch,
            PENDING,
            vec![
                Rule {
                    statements: vec![Statement::CtMarkOr(self.ct_pending())],
                    ..Rule::when(vec![Match::L4proto(TCP)], Verdict::Accept)
                },
                Rule::when(
                    vec![
                        Match::L4proto(UDP),
                        Match::Dport {
                            port: QUIC,
                            equal: true,
                        },
                    ],
                    Verdict::Goto(DENY_QUIC.into()),
                ),
                Rule::verdict(Verdict::Accept),
            ],
        );
        chain(
            batch,
            GATE,
            vec![
                Rule::when(vec![Match::MarkClear(self.by_box())], Verdict::Accept),
                Rule::verdict(Verdict::Goto(PENDING.into())),
            ],
        );
    }
}

/// The bare ACKs of a pending flow (the handshake's last one, above all)
/// stay in the kernel: they return to the rule after [`NameCheck::dispatch`],
/// which marks and accepts established packets as it does replies, and
/// the flow stays pending. Not an accept here: a reply to a box without
/// that mark meets the fail-closed route (a server's bare FIN was lost so).
/// These are the TCP header sizes clients send (without options, and
/// with timestamps); rarer ones go to the checker.
fn header_only_returns() -> impl Iterator<Item = Rule> {
    [8, 5].into_iter().flat_map(|doff| {
        [Family::Ipv4, Family::Ipv6]
            .map(|family| Rule::when(vec![Match::TcpHeaderOnly { family, doff }], Verdict::Return))
    })
}
