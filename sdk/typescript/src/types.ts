// The API's types, taken from the generated document by route (path,
// method, status), which stays put when a schema is renamed; written out
// here only where the seeds' shapes are stricter than the document.

import type { paths } from "./generated/openapi.js";

type Operation<P extends keyof paths, M extends string> = M extends keyof paths[P] ? NonNullable<paths[P][M]> : never;
type Json<T> = T extends { content: { "application/json": infer J } } ? J : never;
/** The JSON answer of `M P` with status `S`. */
export type Answer<P extends keyof paths, M extends string, S extends number> =
  Operation<P, M> extends { responses: infer R } ? (S extends keyof R ? Json<R[S]> : never) : never;
/** The JSON body of `M P`. */
export type RequestBody<P extends keyof paths, M extends string> =
  Operation<P, M> extends { requestBody?: infer B } ? Json<NonNullable<B>> : never;

type Evaluate = "/v1/apps/{app}/machines/{id}/network_policy/evaluate";

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
export type BoxView = Omit<Answer<"/v1/boxes/{id}", "get", 200>, "networkPolicy"> & { networkPolicy: NetworkPolicy };
/** A create's answer: the box and its warnings. */
export type BoxCreated = BoxView & { warnings: Diagnostic[] };
/** A policy update's answer: the policy in force and its warnings. */
export type PolicyUpdated = { networkPolicy: NetworkPolicy; warnings: Diagnostic[] };
/** A box's size: each part defaults to the daemon's `[runtime]`. */
export type BoxGuest = NonNullable<RequestBody<"/v1/boxes", "post">["guest"]>;
/** What a command run in a box did. */
export type ExecResult = Answer<"/v1/boxes/{id}/exec", "post", 200>;
/** What a command run in a machine did (Machines API names). */
export type MachineExecResult = Answer<"/v1/apps/{app}/machines/{id}/exec", "post", 200>;
/** The body of an exec request. */
export type ExecRequest = RequestBody<"/v1/boxes/{id}/exec", "post">;
/** An app. */
export type App = Answer<"/v1/apps/{app}", "get", 200>;
type PolicyBody = RequestBody<"/v1/apps/{app}/network_policies", "post">;
/** A protocol and port (range) of a rule. */
export type PortRule = Omit<NonNullable<PolicyBody["rules"][number]["ports"]>[number], "protocol"> & {
  protocol: "tcp" | "udp" | "icmp";
};
/** An allow rule of an app policy. */
export type Rule = Omit<PolicyBody["rules"][number], "action" | "direction" | "ports"> & {
  action: "allow";
  direction: "ingress" | "egress";
  ports?: PortRule[];
};
/** An app policy to apply (Machines API shape). */
export type AppPolicy = Omit<PolicyBody, "rules"> & { rules: Rule[] };
/** An app policy as stored, with its id and times. */
export type StoredPolicy = Answer<"/v1/apps/{app}/network_policies/{id}", "get", 200>;
/** An apply's answer: the stored policy and its warnings. */
export type AppliedPolicy = Answer<"/v1/apps/{app}/network_policies", "post", 201>;
/** `POST /v1/apps/{app}/machines`. */
export type CreateMachine = Omit<RequestBody<"/v1/apps/{app}/machines", "post">, "network_policy"> & {
  network_policy?: NetworkPolicy;
};
/** A machine (Machines API view of a box). */
export type Machine = Answer<"/v1/apps/{app}/machines/{id}", "get", 200>;
/** A create's answer: the machine and its warnings. */
export type CreatedMachine = Answer<"/v1/apps/{app}/machines", "post", 201>;
/** A flow to judge with `machines.evaluate`. */
export type Flow = RequestBody<Evaluate, "post">;
/** The verdict on a flow, with each layer's finding. */
export type Verdict = Answer<Evaluate, "post", 200>;
/** The answer to a delete. */
export type Deleted = Answer<"/v1/boxes/{id}", "delete", 200>;
/** One problem or warning at a JSON path. */
export type Diagnostic = NonNullable<Answer<"/v1/boxes", "post", 400>["error"]["details"]>[number];

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
export function execBody(command: Command, options: ExecOptions = {}): ExecRequest {
  return {
    // The document says at least one word; an empty list is the server's to refuse.
    command: (typeof command === "string" ? ["sh", "-c", command] : command) as ExecRequest["command"],
    ...options,
  };
}
