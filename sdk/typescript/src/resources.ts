// The Machines API's resources: apps, their network policies and machines.

import type { Transport } from "./http.js";
import {
  execBody,
  type App,
  type AppliedPolicy,
  type AppPolicy,
  type Command,
  type CreatedMachine,
  type CreateMachine,
  type Deleted,
  type ExecOptions,
  type Flow,
  type FlowEvent,
  type FlowOptions,
  type Machine,
  type MachineExecResult,
  type StoredPolicy,
  type Verdict,
} from "./types.js";

const segment = encodeURIComponent;

/** `/v1/apps`. */
export class Apps {
  constructor(private readonly transport: Transport) {}

  /** Creates an app (1-63 of lowercase letters, digits and `-`). */
  create(name: string): Promise<App> {
    return this.transport.json("POST", "/v1/apps", { app_name: name });
  }
  list(): Promise<App[]> {
    return this.transport.json("GET", "/v1/apps");
  }
  get(name: string): Promise<App> {
    return this.transport.json("GET", `/v1/apps/${segment(name)}`);
  }
  /** Deletes an app; `force` deletes its machines too (else a 409 while it has some). */
  delete(name: string, options: { force?: boolean } = {}): Promise<Deleted> {
    return this.transport.json("DELETE", `/v1/apps/${segment(name)}`, undefined, options);
  }
}

/** `/v1/apps/{app}/network_policies`. */
export class NetworkPolicies {
  constructor(private readonly transport: Transport) {}

  /** Creates or updates (by `id`, else by `name`) an app policy; enforced before this resolves. */
  apply(app: string, policy: AppPolicy): Promise<AppliedPolicy> {
    return this.transport.json("POST", `/v1/apps/${segment(app)}/network_policies`, policy);
  }
  list(app: string): Promise<StoredPolicy[]> {
    return this.transport.json("GET", `/v1/apps/${segment(app)}/network_policies`);
  }
  get(app: string, id: string): Promise<StoredPolicy> {
    return this.transport.json("GET", `/v1/apps/${segment(app)}/network_policies/${segment(id)}`);
  }
  delete(app: string, id: string): Promise<Deleted> {
    return this.transport.json("DELETE", `/v1/apps/${segment(app)}/network_policies/${segment(id)}`);
  }
}

/** `/v1/apps/{app}/machines`. */
export class Machines {
  constructor(private readonly transport: Transport) {}

  create(app: string, request: CreateMachine = {}): Promise<CreatedMachine> {
    return this.transport.json("POST", `/v1/apps/${segment(app)}/machines`, request);
  }
  list(app: string): Promise<Machine[]> {
    return this.transport.json("GET", `/v1/apps/${segment(app)}/machines`);
  }
  get(app: string, id: string): Promise<Machine> {
    return this.transport.json("GET", this.path(app, id, ""));
  }
  delete(app: string, id: string): Promise<Deleted> {
    return this.transport.json("DELETE", this.path(app, id, ""));
  }
  /** Runs a command in the machine: an argv, or a string for `sh -c`. */
  exec(app: string, id: string, command: Command, options?: ExecOptions): Promise<MachineExecResult> {
    return this.transport.json("POST", this.path(app, id, "/exec"), execBody(command, options));
  }
  /** Would this flow be allowed, and why? Nothing is sent. */
  evaluate(app: string, id: string, flow: Flow): Promise<Verdict> {
    return this.transport.json("POST", this.path(app, id, "/network_policy/evaluate"), flow);
  }
  /** The machine's live flow event stream, recent history first. */
  flows(app: string, id: string, options: FlowOptions = {}): AsyncGenerator<FlowEvent> {
    const { signal, ...query } = options;
    return this.transport.events(this.path(app, id, "/flows"), { ...query, follow: true }, signal);
  }

  private path(app: string, id: string, rest: string): string {
    return `/v1/apps/${segment(app)}/machines/${segment(id)}${rest}`;
  }
}
