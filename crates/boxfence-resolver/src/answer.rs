//! What the resolver does to messages: reads the question, refuses with an
//! Extended DNS Error, and screens an upstream answer before delivery.

use std::net::IpAddr;
use std::time::Duration;

use boxfence_policy::AlwaysBlocked;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, Record};

/// Bytes of the DNS header.
const HEADER_LEN: usize = 12;

/// EDNS option code of an Extended DNS Error (RFC 8914).
const EDE_OPTION: u16 = 15;
/// Extended DNS Error info-code "Prohibited".
const EDE_PROHIBITED: u16 = 18;

/// The TTLs of DESIGN.md 1.6: the box is told `min(ttl, ceiling)`; the
/// kernel keeps an address for `max(told, floor) + grace`, so the box's own
/// cache never outlives the authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlLimits {
    /// Longest TTL a box is told (default 300 s).
    pub ceiling: Duration,
    /// Shortest time the kernel keeps a learned address (default 30 s).
    pub floor: Duration,
    /// Added to the kernel's time after the box's TTL (default 30 s).
    pub grace: Duration,
}

impl Default for TtlLimits {
    fn default() -> Self {
        Self {
            ceiling: Duration::from_secs(300),
            floor: Duration::from_secs(30),
            grace: Duration::from_secs(30),
        }
    }
}

/// A query the resolver will consider.
#[derive(Debug, Clone)]
pub struct Question {
    /// The whole message as parsed.
    pub message: Message,
    /// The name asked about.
    pub name: Name,
    /// The question section as the box sent it, byte for byte: answers
    /// carry it back unchanged, so 0x20 case randomisation checks pass.
    wire: Vec<u8>,
}

impl Question {
    /// Parses a query; `None` for anything that is not a standard query
    /// with exactly one question (dropped without an answer).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let message = Message::from_vec(bytes).ok()?;
        let valid = message.message_type() == MessageType::Query
            && message.op_code() == OpCode::Query
            && message.queries().len() == 1;
        let name = message.queries().first()?.name().clone();
        let wire = bytes
            .get(HEADER_LEN..HEADER_LEN + question_len(bytes)?)?
            .to_vec();
        valid.then_some(Self {
            message,
            name,
            wire,
        })
    }

    /// Encodes an answer to this question, with the question section
    /// exactly as asked.
    pub fn encode(&self, answer: &Message) -> Option<Vec<u8>> {
        let mut bytes = answer.to_vec().ok()?;
        let end = HEADER_LEN + self.wire.len();
        // Same name modulo case, so the same length: safe to overwrite.
        if question_len(&bytes) == Some(self.wire.len()) {
            bytes.get_mut(HEADER_LEN..end)?.copy_from_slice(&self.wire);
        }
        Some(bytes)
    }

    /// The name in canonical text (lowercase, no trailing dot).
    pub fn canonical_name(&self) -> String {
        let text = self.name.to_ascii().to_ascii_lowercase();
        text.strip_suffix('.').unwrap_or(&text).to_owned()
    }

    /// An answer with `code` and no records, echoing the question.
    pub fn error(&self, code: ResponseCode) -> Message {
        let mut answer = Message::error_msg(self.message.id(), OpCode::Query, code);
        answer
            .set_recursion_desired(self.message.recursion_desired())
            .set_recursion_available(true)
            .add_queries(self.message.queries().iter().cloned());
        answer
    }

    /// REFUSED with an Extended DNS Error "Prohibited" whose text says why.
    pub fn refusal(&self, reason: &str) -> Message {
        let mut answer = self.error(ResponseCode::Refused);
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        let mut data = EDE_PROHIBITED.to_be_bytes().to_vec();
        data.extend_from_slice(reason.as_bytes());
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDE_OPTION, data));
        answer.set_edns(edns);
        answer
    }
}

/// An upstream answer made fit for a box.
#[derive(Debug, Clone)]
pub struct Screened {
    /// The answer to deliver.
    pub message: Message,
    /// Addresses to authorise for the box, each for how long.
    pub learned: Vec<(IpAddr, Duration)>,
    /// Addresses removed because they point into always-blocked ranges.
    pub removed: Vec<IpAddr>,
}

/// Screens `answer` to `question`: records whose address is always
/// blocked are removed (rebinding protection); TTLs are capped at the
/// ceiling; the addresses left on the CNAME chain of the name asked are
/// returned with how long the kernel keeps them. Records off the chain are
/// delivered but never learned.
pub fn screen(
    question: &Question,
    mut answer: Message,
    blocked: &AlwaysBlocked,
    ttl: TtlLimits,
) -> Screened {
    let ceiling = u32::try_from(ttl.ceiling.as_secs()).unwrap_or(u32::MAX);
    let chain = cname_chain(&question.name, answer.answers());
    let mut learned = Vec::new();
    let mut removed = Vec::new();
    let records: Vec<Record> = answer
        .take_answers()
        .into_iter()
        .filter_map(|mut record| {
            let on_chain = chain.iter().any(|name| name == record.name());
            let address = address(&record);
            if let Some(ip) = address
                && blocked.lookup(ip).is_some()
            {
                removed.push(ip);
                return None;
            }
            let told = record.ttl().min(ceiling);
            record.set_ttl(told);
            if let (Some(ip), true) = (address, on_chain) {
                let keep = Duration::from_secs(u64::from(told)).max(ttl.floor) + ttl.grace;
                learned.push((ip, keep));
            }
            Some(record)
        })
        .collect();
    answer.insert_answers(records);
    screen_section(answer.name_servers_mut(), blocked, ceiling);
    screen_section(answer.additionals_mut(), blocked, ceiling);
    Screened {
        message: answer,
        learned,
        removed,
    }
}

/// The address an A or AAAA record carries.
fn address(record: &Record) -> Option<IpAddr> {
    match record.data() {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// Authority and additional records: blocked addresses removed, TTLs
/// capped; nothing here is learned.
fn screen_section(section: &mut Vec<Record>, blocked: &AlwaysBlocked, ceiling: u32) {
    section.retain(|record| address(record).is_none_or(|ip| blocked.lookup(ip).is_none()));
    for record in section.iter_mut() {
        let told = record.ttl().min(ceiling);
        record.set_ttl(told);
    }
}

/// Length of the first question (uncompressed name, type, class) of a
/// message, if it has one.
pub(crate) fn question_len(message: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    loop {
        let label = usize::from(*message.get(at)?);
        match label {
            0 => break,
            1..=63 => at += 1 + label,
            _ => return None,
        }
    }
    let len = at + 1 + 4 - HEADER_LEN;
    (message.len() >= HEADER_LEN + len).then_some(len)
}

/// The names on the CNAME chain from `name` (`name` first), following
/// only records of `answers`; bounded so a loop cannot spin.
fn cname_chain(name: &Name, answers: &[Record]) -> Vec<Name> {
    let mut chain = vec![name.clone()];
    while chain.len() < 16 {
        let last = chain.last().cloned().unwrap_or_default();
        let next = answers.iter().find_map(|record| match record.data() {
            RData::CNAME(target) if record.name() == &last => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) if !chain.contains(&target) => chain.push(target),
            _ => break,
        }
    }
    chain
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
