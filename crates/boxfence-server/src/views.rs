//! What the API answers, built from stored objects: the same machine in
//! the Machines API's snake_case and the Box API's camelCase. The types
//! are the wire types of `boxfence-api`.

use boxfence_api::{
    Addresses, AppInfo, Attached, BoxGuest, BoxInfo, MachineConfig, MachineGuest, MachineInfo,
    PolicyInfo,
};
use boxfence_store::{App, AttachKind, Attachment, StoredMachine, StoredPolicy};

pub(crate) fn app_info(app: App) -> AppInfo {
    AppInfo {
        app_name: app.name,
        created_at: app.created_at,
    }
}

fn addresses(ipv4: impl ToString, ipv6: impl ToString) -> Addresses {
    Addresses {
        ipv4: ipv4.to_string(),
        ipv6: ipv6.to_string(),
    }
}

fn attached(attached: Attachment, ipv4: std::net::Ipv4Addr) -> Attached {
    let mac = boxfence_engine::box_mac(ipv4)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    Attached {
        kind: match attached.kind {
            AttachKind::Cni => "cni",
            AttachKind::Netns => "netns",
        }
        .to_owned(),
        container_id: attached.container_id,
        netns: attached.netns,
        ifname: attached.ifname,
        mac,
        gateways: addresses(attached.gateways.0, attached.gateways.1),
    }
}

pub(crate) fn machine_info(stored: StoredMachine) -> MachineInfo {
    let machine = stored.machine;
    MachineInfo {
        id: machine.id,
        name: machine.name,
        app_name: machine.app,
        runtime: machine.runtime,
        config: MachineConfig {
            metadata: machine.metadata,
            guest: machine.guest.map(|guest| MachineGuest {
                cpus: Some(guest.cpus),
                memory_mb: Some(guest.memory_mb),
            }),
            image: machine.image,
        },
        network_policy: machine.network_policy,
        addresses: addresses(machine.ipv4, machine.ipv6),
        attached: machine
            .attached
            .map(|attachment| attached(attachment, machine.ipv4)),
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

pub(crate) fn box_info(stored: StoredMachine) -> BoxInfo {
    let machine = stored.machine;
    BoxInfo {
        id: machine.id,
        app: machine.app,
        name: machine.name,
        runtime: machine.runtime,
        network_policy: machine.network_policy,
        metadata: machine.metadata,
        guest: machine.guest.map(|guest| BoxGuest {
            cpus: Some(guest.cpus),
            memory_mb: Some(guest.memory_mb),
        }),
        image: machine.image,
        addresses: addresses(machine.ipv4, machine.ipv6),
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

pub(crate) fn policy_info(stored: StoredPolicy) -> PolicyInfo {
    PolicyInfo {
        id: stored.id().to_owned(),
        name: stored.policy.name,
        selector: stored.policy.selector,
        rules: stored.policy.rules,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}
