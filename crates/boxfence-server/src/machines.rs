//! What both API shapes do to machines (a box is a machine): create with
//! addresses, change policies and metadata, delete, exec, evaluate. Every
//! change is stored first and then enforced before the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxfence_engine::{EngineError, ExecOutput, ExecRequest, MachineAddresses, MachineSpec};
use boxfence_policy::{
    BoxPolicy, CompiledAppPolicy, Diagnostics, EffectivePolicy, Flow, GuestRequest, JsonPath,
    Machine, read_metadata,
};
use boxfence_store::{NewMachine, StoreError, StoredMachine};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::ids::{is_id, new_id};
use crate::state::AppState;

/// How often an allocation is retried when a concurrent create took the
/// same address first.
const ALLOCATION_ATTEMPTS: usize = 16;

/// What a new machine is made of.
#[derive(Debug)]
pub(crate) struct MachineRequest {
    pub(crate) app: String,
    pub(crate) name: Option<String>,
    pub(crate) runtime: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) network_policy: BoxPolicy,
    pub(crate) guest: GuestRequest,
    pub(crate) image: Option<String>,
}

pub(crate) fn addresses(machine: &StoredMachine) -> MachineAddresses {
    MachineAddresses {
        ipv4: machine.machine.ipv4,
        ipv6: machine.machine.ipv6,
    }
}

impl AppState {
    /// The app's policies, compiled once for all its machines.
    pub(crate) async fn compiled_policies(
        &self,
        app: &str,
    ) -> Result<Vec<Arc<CompiledAppPolicy>>, StoreError> {
        Ok(self
            .store
            .policies(app)
            .await?
            .iter()
            .map(|stored| Arc::new(CompiledAppPolicy::compile(&stored.policy)))
            .collect())
    }

    /// The machine's layers combined (DESIGN.md 1.5).
    pub(crate) fn effective(
        &self,
        stored: &StoredMachine,
        compiled: &[Arc<CompiledAppPolicy>],
    ) -> EffectivePolicy {
        let machine = Machine {
            id: stored.machine.id.clone(),
            metadata: stored.machine.metadata.clone(),
            network_policy: stored.machine.network_policy.clone(),
            addresses: vec![stored.machine.ipv4.into(), stored.machine.ipv6.into()],
        };
        EffectivePolicy::combine(&machine, compiled, Arc::clone(&self.blocked))
            .with_name_check(self.name_check)
    }

    /// Recomputes and enforces the effective policy of every machine of
    /// `app`. The caller holds the app's lock.
    pub(crate) async fn enforce_app(&self, app: &str) -> Result<(), ApiError> {
        let compiled = self.compiled_policies(app).await?;
        let machines = self.store.machines(Some(app)).await?;
        let policies: Vec<_> = machines
            .iter()
            .map(|machine| self.effective(machine, &compiled))
            .collect();
        self.engine.apply(&policies).await?;
        Ok(())
    }

    /// Recomputes and enforces one machine's effective policy. The caller
    /// holds the app's lock.
    async fn enforce_machine(&self, machine: &StoredMachine) -> Result<(), ApiError> {
        let compiled = self.compiled_policies(&machine.machine.app).await?;
        let policy = self.effective(machine, &compiled);
        self.engine.apply(&[policy]).await?;
        Ok(())
    }

    /// The machine `id`, if it exists in `app` (when given). A malformed
    /// id is a 400; an unknown one a 404.
    pub(crate) async fn find_machine(
        &self,
        app: Option<&str>,
        id: &str,
    ) -> Result<StoredMachine, ApiError> {
        if !is_id(id) {
            return Err(ApiError::invalid_at(
                "id",
                format!("`{id}` is not a machine id (12 characters of a-z and 0-9)"),
            ));
        }
        let found = self.store.machine(id).await?;
        found
            .filter(|machine| app.is_none_or(|app| machine.machine.app == app))
            .ok_or_else(|| ApiError::NotFound(format!("machine {id} not found")))
    }

    /// Allocates addresses, stores the machine, then has the data plane
    /// create it (so the kernel only ever holds committed machines); if the
    /// data plane fails, the record is removed again.
    pub(crate) async fn create_machine(
        &self,
        request: MachineRequest,
    ) -> Result<StoredMachine, ApiError> {
        // Counted before the app's lock, so a flood is refused rather
        // than queued ahead of the app's other changes.
        let _slot = self.admission.create(&request.app)?;
        let _app = self.lock_app(&request.app).await;
        let id = new_id();
        let name = request.name.unwrap_or_else(|| id.clone());
        let mut attempts = 0;
        let stored = loop {
            let used = self.store.used_addresses().await?;
            let addresses = self.pool.allocate(&used)?;
            let machine = NewMachine {
                id: id.clone(),
                app: request.app.clone(),
                name: name.clone(),
                runtime: request.runtime.clone(),
                metadata: request.metadata.clone(),
                network_policy: request.network_policy.clone(),
                ipv4: addresses.ipv4,
                ipv6: addresses.ipv6,
                guest: Some(request.guest.or(self.default_guest)),
                image: request.image.clone(),
            };
            match self.store.insert_machine(&machine).await {
                Err(StoreError::AddressInUse) if attempts < ALLOCATION_ATTEMPTS => attempts += 1,
                other => break other?,
            }
        };
        let compiled = self.compiled_policies(&request.app).await?;
        let spec = MachineSpec {
            id: id.clone(),
            addresses: addresses(&stored),
            guest: stored.machine.guest,
            image: stored.machine.image.clone(),
        };
        if let Err(error) = self
            .engine
            .create_machine(&spec, &self.effective(&stored, &compiled))
            .await
        {
            if let Err(store_error) = self.store.delete_machine(&id).await {
                // Both failed: the record stays without a network until a
                // delete of it or the next start's reconcile.
                tracing::error!(machine = %id, %store_error,
                    "removing the record of a machine the data plane could not create failed");
            }
            return Err(error.into());
        }
        Ok(stored)
    }

    /// Replaces the box policy and enforces it.
    pub(crate) async fn set_box_policy(
        &self,
        machine: &StoredMachine,
        policy: &BoxPolicy,
    ) -> Result<StoredMachine, ApiError> {
        let _app = self.lock_app(&machine.machine.app).await;
        let id = &machine.machine.id;
        let updated = self
            .store
            .set_network_policy(id, policy)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("machine {id} not found")))?;
        self.enforce_machine(&updated).await?;
        Ok(updated)
    }

    /// Applies a JSON merge patch (a string sets a key, null removes it) to
    /// the metadata, and enforces the selector matches that change with it.
    pub(crate) async fn patch_metadata(
        &self,
        machine: &StoredMachine,
        patch: &Map<String, Value>,
    ) -> Result<StoredMachine, ApiError> {
        let _app = self.lock_app(&machine.machine.app).await;
        let id = machine.machine.id.clone();
        loop {
            let current = self.find_machine(None, &id).await?;
            let mut merged: Map<String, Value> = current
                .machine
                .metadata
                .iter()
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect();
            for (key, value) in patch {
                match value {
                    Value::Null => merged.remove(key),
                    value => merged.insert(key.clone(), value.clone()),
                };
            }
            let mut out = Diagnostics::default();
            let metadata = read_metadata(&Value::Object(merged), &JsonPath::root(), &mut out);
            let metadata = out.finish(metadata)?;
            if self
                .store
                .set_metadata(&id, current.version, &metadata)
                .await?
            {
                let updated = self.find_machine(None, &id).await?;
                self.enforce_machine(&updated).await?;
                return Ok(updated);
            }
        }
    }

    /// Has the data plane remove the machine, then forgets it.
    pub(crate) async fn delete_machine(&self, machine: &StoredMachine) -> Result<(), ApiError> {
        let _app = self.lock_app(&machine.machine.app).await;
        self.remove_machine(&machine.machine.id).await
    }

    /// [`delete_machine`](Self::delete_machine) for a caller holding the
    /// app's lock. The data plane goes first, so no machine runs unstored;
    /// if the store then cannot commit the delete, the machine is put back
    /// into the data plane as the store still holds it.
    pub(crate) async fn remove_machine(&self, id: &str) -> Result<(), ApiError> {
        match self.engine.delete_machine(id).await {
            // Already gone from the data plane: only the record is left.
            Ok(()) | Err(EngineError::NoSuchMachine(_)) => {}
            Err(error) => return Err(error.into()),
        }
        if let Err(error) = self.store.delete_machine(id).await {
            if let Err(restore_error) = self.restore_machine(id).await {
                // A retried delete, or the next start, settles it.
                tracing::error!(machine = %id, %restore_error,
                    "restoring a machine whose delete was not stored failed");
            }
            return Err(error.into());
        }
        Ok(())
    }

    /// Recreates machine `id` in the data plane as the store holds it.
    async fn restore_machine(&self, id: &str) -> Result<(), ApiError> {
        let Some(stored) = self.store.machine(id).await? else {
            return Ok(());
        };
        let compiled = self.compiled_policies(&stored.machine.app).await?;
        let spec = MachineSpec {
            id: id.to_owned(),
            addresses: addresses(&stored),
            guest: stored.machine.guest,
            image: stored.machine.image.clone(),
        };
        self.engine
            .create_machine(&spec, &self.effective(&stored, &compiled))
            .await?;
        Ok(())
    }

    /// Runs a command in the machine, if the exec caps leave room.
    pub(crate) async fn exec(
        &self,
        machine: &StoredMachine,
        request: &ExecRequest,
    ) -> Result<ExecOutput, ApiError> {
        let _slot = self
            .admission
            .exec(&machine.machine.app, &machine.machine.id)?;
        Ok(self.engine.exec(&machine.machine.id, request).await?)
    }

    /// The verdict on a hypothetical flow, serialized.
    pub(crate) async fn evaluate(
        &self,
        machine: &StoredMachine,
        flow: &Flow,
    ) -> Result<Value, ApiError> {
        let compiled = self.compiled_policies(&machine.machine.app).await?;
        let effective = self.effective(machine, &compiled);
        let verdict = boxfence_policy::evaluate(&effective, flow);
        serde_json::to_value(verdict).map_err(|error| ApiError::Internal(error.to_string()))
    }
}
