//! Trying each feature in a throwaway network namespace: a scratch table
//! there, a chain on its loopback, a set with timeouts, a conntrack dump
//! and an NFLOG binding. Nothing touches the host's own table.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{Feature, KernelFeatures, Presence};
use crate::HostNetns;
use crate::conntrack::Conntrack;
use crate::netlink::socket::{Family, Socket};
use crate::netlink::{self, NFGENMSG_LEN, NLM_F_DUMP, NLM_F_REQUEST, Writer};
use crate::nflog::NflogReader;
use crate::nfnl::NfnlError;
use crate::nft::{
    BaseChain, ChainType, Command, Flowtable, Hook, Match, Peer, QueueBy, Rule, SetKind, Statement,
    Verdict,
};
use crate::nft_netlink::{ElementKey, NftSocket, RefreshMode, RemovalMode, SetElement};

/// The scratch table.
const TABLE: &str = "boxfence_probe";
/// Its set with timeouts.
const LEARNED: &str = "learned";
/// A device no namespace has (made fresh, nothing else is in it).
const ABSENT_DEVICE: &str = "bfprobe0";
/// An NFLOG group for the binding (the namespace is the probe's own).
const NFLOG_GROUP: u16 = 7;

/// `NFT_MSG_GETSETELEM` (`NFNL_SUBSYS_NFTABLES << 8`).
const NFT_MSG_GETSETELEM: u16 = (10 << 8) | 13;
/// `NFT_MSG_NEWSETELEM`, the dump's answers.
const NFT_MSG_NEWSETELEM: u16 = (10 << 8) | 12;
/// `NFPROTO_INET`.
const NFPROTO_INET: u8 = 1;

/// The probe could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No throwaway network namespace could be made (needs `CAP_SYS_ADMIN`).
    #[error("cannot make a network namespace to probe the kernel in: {0}")]
    Namespace(String),
}

impl KernelFeatures {
    /// Probes the running kernel. Features in `avoid` that the kernel has
    /// are reported [`Presence::Avoided`] and not used.
    pub fn probe(avoid: &[Feature]) -> Result<Self, ProbeError> {
        let mut found = HostNetns::throwaway(|_| try_each())
            .map_err(|error| ProbeError::Namespace(error.to_string()))?;
        for feature in avoid {
            if let Some(presence @ Presence::Found) = found.get_mut(feature) {
                *presence = Presence::Avoided;
            }
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(Self::new(release, found))
    }
}

fn presence<T, E: std::fmt::Display>(outcome: Result<T, E>) -> Presence {
    match outcome {
        Ok(_) => Presence::Found,
        Err(error) => Presence::Missing(error.to_string()),
    }
}

/// Tries everything in the calling thread's (fresh) namespace.
fn try_each() -> BTreeMap<Feature, Presence> {
    let mut found = BTreeMap::new();
    found.insert(
        Feature::Ctnetlink,
        presence(Conntrack::open().and_then(|mut conntrack| conntrack.entries())),
    );
    found.insert(Feature::Nflog, presence(NflogReader::open(NFLOG_GROUP)));
    found.insert(
        Feature::Nfqueue,
        presence(crate::nfqueue::Nfqueue::bind(QUEUE)),
    );
    let nft_features = [
        Feature::InetIngress,
        Feature::HookBeforeDevice,
        Feature::DestroyElement,
        Feature::ElementTimeoutUpdate,
        Feature::Flowtable,
        Feature::QueueExpression,
        Feature::QueueTarget,
    ];
    let socket = NftSocket::open().and_then(|mut socket| {
        let base = [
            Command::AddTable,
            Command::AddSet {
                name: LEARNED.into(),
                kind: SetKind::Ipv4Learned,
            },
        ];
        socket.apply(TABLE, &base).map(|()| socket)
    });
    let mut socket = match socket {
        Ok(socket) => socket,
        Err(error) => {
            let missing = Presence::Missing(format!("nf_tables: {error}"));
            found.extend(nft_features.map(|f| (f, missing.clone())));
            return found;
        }
    };
    found.insert(
        Feature::InetIngress,
        presence(box_chain_on_loopback(&mut socket)),
    );
    found.insert(
        Feature::HookBeforeDevice,
        presence(socket.apply(
            TABLE,
            &[Command::AddBaseChain {
                name: "later".into(),
                base: BaseChain::ingress(ABSENT_DEVICE.into()),
            }],
        )),
    );
    socket.set_removal_mode(RemovalMode::Destroy);
    found.insert(
        Feature::DestroyElement,
        presence(socket.remove_elements(TABLE, &[learned(1, 60)])),
    );
    found.insert(
        Feature::ElementTimeoutUpdate,
        timeout_update(&mut socket).unwrap_or_else(Presence::Missing),
    );
    found.insert(
        Feature::Flowtable,
        presence(flowtable_on_loopback(&mut socket)),
    );
    for (feature, by) in [
        (Feature::QueueExpression, QueueBy::Expression),
        (Feature::QueueTarget, QueueBy::XtTarget),
    ] {
        found.insert(feature, presence(queue_rule(&mut socket, by)));
    }
    found
}

/// The queue name checks bind.
const QUEUE: u16 = 7;

/// A rule that queues, as name checks write it `by` one way: the kernel
/// loads `nft_queue`, or `nft_compat` and `xt_NFQUEUE`, or refuses.
fn queue_rule(socket: &mut NftSocket, by: QueueBy) -> Result<(), String> {
    let chain = format!("queue_{by:?}");
    socket
        .apply(
            TABLE,
            &[
                Command::AddChain(chain.clone()),
                Command::AddRule {
                    chain,
                    rule: Rule::then(Vec::new(), vec![Statement::Queue { num: QUEUE, by }]),
                },
            ],
        )
        .map_err(|error| error.to_string())
}

/// A flowtable on loopback fed from a forward chain, as the fast path
/// makes it, then its device removed and added again in place, as boxes
/// going and coming do. Each step's refusal names the step.
fn flowtable_on_loopback(socket: &mut NftSocket) -> Result<(), String> {
    const FLOWTABLE: &str = "ft";
    let on_loopback = || Command::AddFlowtable {
        name: FLOWTABLE.into(),
        flowtable: Flowtable {
            priority: 0,
            devices: vec!["lo".into()],
        },
    };
    let forward = BaseChain {
        chain_type: ChainType::Filter,
        hook: Hook::Forward,
        priority: 0,
    };
    let steps = [
        (
            "a flowtable fed by `flow add`",
            vec![
                on_loopback(),
                Command::AddBaseChain {
                    name: "forward".into(),
                    base: forward,
                },
                Command::AddRule {
                    chain: "forward".into(),
                    rule: Rule::then(
                        vec![Match::CtState(crate::nft::CT_ESTABLISHED)],
                        vec![Statement::FlowOffload(FLOWTABLE.into())],
                    ),
                },
            ],
        ),
        (
            "removing a device in place",
            vec![Command::DeleteFlowtableDevices {
                name: FLOWTABLE.into(),
                devices: vec!["lo".into()],
            }],
        ),
        ("adding a device in place", vec![on_loopback()]),
    ];
    for (step, commands) in steps {
        socket
            .apply(TABLE, &commands)
            .map_err(|error| format!("{step}: {error}"))?;
    }
    Ok(())
}

/// A chain like a box's device chain: source check, zone, mark.
fn box_chain_on_loopback(socket: &mut NftSocket) -> Result<(), crate::nft_netlink::NetlinkError> {
    let rule = Rule {
        matches: vec![Match::AddrIs {
            peer: Peer::Source,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        }],
        statements: vec![Statement::OriginalZone(1), Statement::Mark(1)],
        counter: None,
        verdict: Some(Verdict::Accept),
    };
    socket.apply(
        TABLE,
        &[
            Command::AddBaseChain {
                name: "lo_ingress".into(),
                base: BaseChain::ingress("lo".into()),
            },
            Command::AddRule {
                chain: "lo_ingress".into(),
                rule,
            },
        ],
    )
}

fn learned(host: u8, timeout_secs: u64) -> SetElement {
    SetElement::new(
        LEARNED,
        ElementKey::Ipv4(Ipv4Addr::new(192, 0, 2, host)),
        Some(Duration::from_secs(timeout_secs)),
    )
}

/// Adds an element with a short timeout, re-adds it with a long one in
/// place, and reads back which one it has.
fn timeout_update(socket: &mut NftSocket) -> Result<Presence, String> {
    socket.set_refresh_mode(RefreshMode::InPlace);
    let (short, long) = (60, 3600);
    socket
        .add_elements(TABLE, &[learned(2, short)])
        .map_err(|e| e.to_string())?;
    socket
        .add_elements(TABLE, &[learned(2, long)])
        .map_err(|e| e.to_string())?;
    let timeouts = element_timeouts().map_err(|e| e.to_string())?;
    Ok(match timeouts.as_slice() {
        [ms] if *ms == long * 1000 => Presence::Found,
        _ => Presence::Missing(format!(
            "a re-added element kept its timeout ({timeouts:?} ms, {} ms asked)",
            long * 1000
        )),
    })
}

/// The timeouts (ms) of the learned set's elements, by a dump.
fn element_timeouts() -> Result<Vec<u64>, NfnlError> {
    const REQUEST: &str = "set element dump";
    let mut socket = Socket::open(Family::Netfilter).map_err(NfnlError::Open)?;
    let mut timeouts = Vec::new();
    socket
        .request(
            |seq| {
                let mut request = Writer::with_capacity(64);
                let start = request.begin_message(
                    NFT_MSG_GETSETELEM,
                    NLM_F_REQUEST | NLM_F_DUMP,
                    seq,
                    NFPROTO_INET,
                    0,
                );
                request.put_strz(1, TABLE); // NFTA_SET_ELEM_LIST_TABLE
                request.put_strz(2, LEARNED); // NFTA_SET_ELEM_LIST_SET
                request.end_message(start);
                request.into_bytes()
            },
            |reply| {
                if reply.kind == NFT_MSG_NEWSETELEM {
                    timeouts.extend(timeouts_of(reply.payload));
                }
                Ok(())
            },
        )
        .map_err(NfnlError::of(REQUEST))?;
    Ok(timeouts)
}

/// `NFTA_SET_ELEM_TIMEOUT` of each element of a `NEWSETELEM` payload.
fn timeouts_of(payload: &[u8]) -> Vec<u64> {
    const ELEMENTS: u16 = 3; // NFTA_SET_ELEM_LIST_ELEMENTS
    const TIMEOUT: u16 = 4; // NFTA_SET_ELEM_TIMEOUT
    let attributes = payload.get(NFGENMSG_LEN..).unwrap_or_default();
    netlink::attributes(attributes)
        .filter(|(kind, _)| *kind == ELEMENTS)
        .flat_map(|(_, list)| netlink::attributes(list))
        .filter_map(|(_, element)| {
            netlink::attributes(element)
                .find(|(kind, _)| *kind == TIMEOUT)
                .and_then(|(_, value)| value.try_into().ok())
                .map(u64::from_be_bytes)
        })
        .collect()
}
