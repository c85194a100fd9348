// The API's types: taken from the generated document where it is exact,
// written out here where the seeds' shapes are stricter than a pattern.

import type { components } from "./generated/openapi.js";

type Schemas = components["schemas"];

/** A box policy, as the Box API's seed types it. */
export type NetworkPolicy =
  | { mode: "allow-all" | "deny-all" }
  | {
      mode: "custom";
      allowedDomains?: string[];
      allowedCidrs?: string[];
      deniedCidrs?: string[];
    };

/** A box as the API shows it. */
export type BoxView = Omit<Schemas["BoxView"], "networkPolicy"> & { networkPolicy: NetworkPolicy };
/** A box's size: each part defaults to the daemon's `[runtime]`. */
export type BoxGuest = Schemas["BoxGuestBody"];
/** What a command run in a box did. */
export type ExecResult = Schemas["BoxExecView"];
/** What a command run in a machine did (Machines API names). */
export type MachineExecResult = Schemas["ExecView"];
/** An app. */
export type App = Schemas["AppView"];
/** An app policy to apply (Machines API shape). */
export type AppPolicy = Omit<Schemas["AppPolicy"], "rules"> & { rules: Rule[] };
/** An allow rule of an app policy. */
export type Rule = Omit<Schemas["Rule"], "action" | "direction" | "ports"> & {
  action: "allow";
  direction: "ingress" | "egress";
  ports?: PortRule[];
};
/** A protocol and port (range) of a rule. */
export type PortRule = Omit<Schemas["PortRule"], "protocol"> & { protocol: "tcp" | "udp" | "icmp" };
/** An app policy as stored, with its id and times. */
export type StoredPolicy = Schemas["PolicyView"];
/** An apply's answer: the stored policy and its warnings. */
export type AppliedPolicy = Schemas["WithWarnings_PolicyView"];
/** `POST /v1/apps/{app}/machines`. */
export type CreateMachine = Omit<Schemas["CreateMachineBody"], "network_policy"> & { network_policy?: NetworkPolicy };
/** A machine (Machines API view of a box). */
export type Machine = Schemas["MachineView"];
/** A create's answer: the machine and its warnings. */
export type CreatedMachine = Schemas["WithWarnings_MachineView"];
/** A flow to judge with `machines.evaluate`. */
export type Flow = Schemas["Flow"];
/** The verdict on a flow, with each layer's finding. */
export type Verdict = Schemas["Verdict"];
/** The answer to a delete. */
export type Deleted = Schemas["Deleted"];
/** One problem or warning at a JSON path. */
export type Diagnostic = Schemas["Diagnostic"];

/** One flow log event: a denied (or, when asked, allowed) connection, a refused DNS query, or a count of suppressed events. */
export interface FlowEvent {
  /** Milliseconds since the Unix epoch. */
  time_ms: number;
  app?: string;
  machine_id: string;
  kind: "connection" | "dns_query" | "suppressed";
  verdict: "allow" | "deny";
  direction?: "ingress" | "egress";
  protocol?: string;
  src?: string;
  sport?: number;
  dst?: string;
  dport?: number;
  /** The name asked, or the name the destination was learned from. */
  domain?: string;
  /** The name the flow claimed (TLS SNI, HTTP Host) when a name check refused it. */
  claimed?: string;
  /** The layer that decided, e.g. `box_policy`, `app_policy`, `always_blocked`. */
  layer?: string;
  /** Why, in words. */
  reason: string;
  policy_id?: string;
  policy_name?: string;
  rule_index?: number;
  suppressed?: number;
}

/** Which flow events to read. */
export interface FlowOptions {
  /** Only `allow` or only `deny` events. */
  verdict?: "allow" | "deny";
  /** Only events at or after this time (milliseconds since the epoch). */
  since?: number;
  /** At most this many of the latest past events (1-1000, default 100). */
  limit?: number;
  /** Stops the stream (as does leaving the `for await` loop). */
  signal?: AbortSignal;
}

/** Options of an exec. */
export interface ExecOptions {
  /** Written to the command's standard input. */
  stdin?: string;
  /** Seconds before the command's process tree is killed (default 60). */
  timeout?: number;
}

/** A command: a program and its arguments, or one string run by `sh -c`. */
export type Command = string | string[];

/** The body of an exec request. */
export function execBody(command: Command, options: ExecOptions = {}): Schemas["ExecBody"] {
  return {
    command: typeof command === "string" ? ["sh", "-c", command] : command,
    ...options,
  };
}
