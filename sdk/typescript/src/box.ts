// Boxes in the Box API's shape: `Box.create({ networkPolicy })`,
// `box.updateNetworkPolicy(...)`, `EphemeralBox` for `await using`.

import { NotFoundError } from "./errors.js";
import { Transport } from "./http.js";
import {
  execBody,
  type BoxCreated,
  type BoxGuest,
  type BoxView,
  type Command,
  type Deleted,
  type Diagnostic,
  type ExecOptions,
  type ExecResult,
  type FlowEvent,
  type FlowOptions,
  type NetworkPolicy,
  type PolicyUpdated,
} from "./types.js";

/** Something that holds a transport: a `Boxfence` client. */
export interface HasTransport {
  readonly transport: Transport;
}

/** `Box.create`'s options. */
export interface BoxCreateOptions {
  /** The box policy; default `{ mode: "allow-all" }`. */
  networkPolicy?: NetworkPolicy;
  /** An image of the host's store (`boxfence image import`); default: the host's system directories. */
  image?: string;
  /** Its size. */
  guest?: BoxGuest;
  /** A label kept and shown, e.g. `node`. */
  runtime?: string;
  /** Metadata that app-policy selectors match. */
  metadata?: Record<string, string>;
  /** The app; default `default`, or the app of an app token. */
  app?: string;
  /** The client to use; default the class's (a `Boxfence`'s `Box`), else `BOXFENCE_URL` and `BOXFENCE_TOKEN`. */
  client?: HasTransport;
}

// Node 18.18+ and 20.4+ define Symbol.asyncDispose; TypeScript's `await using`
// looks the method up under the registered symbol where they do not.
const asyncDispose: typeof Symbol.asyncDispose =
  Symbol.asyncDispose ?? (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

/** A box: a sandboxed machine whose outbound traffic its network policy governs. */
export class Box {
  readonly id: string;
  readonly #transport: Transport;
  #view: BoxView;
  /** Warnings of the last create or policy update, each with its JSON path. */
  warnings: Diagnostic[] = [];

  /** Use `Box.create` or `Box.get`; this wraps an answer already had. */
  constructor(transport: Transport, view: BoxView) {
    this.#transport = transport;
    this.#view = view;
    this.id = view.id;
  }

  /** The transport of `options.client`, else the class's default. Bound classes override it. */
  static transportFor(options?: { client?: HasTransport }): Transport {
    return options?.client?.transport ?? new Transport();
  }

  /** Creates a box; its policy is enforced before this resolves. */
  static async create<T extends typeof Box>(this: T, options: BoxCreateOptions = {}): Promise<InstanceType<T>> {
    const { client, ...body } = options;
    const transport = this.transportFor({ client });
    const answer = await transport.json<BoxCreated>("POST", "/v1/boxes", body);
    const { warnings, ...view } = answer;
    const box = new this(transport, view) as InstanceType<T>;
    box.warnings = warnings;
    return box;
  }

  /** The box with this id. */
  static async get<T extends typeof Box>(this: T, id: string, options?: { client?: HasTransport }): Promise<InstanceType<T>> {
    const transport = this.transportFor(options);
    const view = await transport.json<BoxView>("GET", `/v1/boxes/${encodeURIComponent(id)}`);
    return new this(transport, view) as InstanceType<T>;
  }

  /** The policy as last read or set (`getNetworkPolicy()` asks the daemon). */
  get networkPolicy(): NetworkPolicy {
    return this.#view.networkPolicy;
  }

  /** The box as last read: app, addresses, metadata, image, times. */
  get view(): BoxView {
    return this.#view;
  }

  /** Reads the box again and answers its policy. */
  async getNetworkPolicy(): Promise<NetworkPolicy> {
    this.#view = await this.#transport.json<BoxView>("GET", this.#path(""));
    return this.#view.networkPolicy;
  }

  /** Replaces the policy; in force (flows it denies cut) before this resolves. */
  async updateNetworkPolicy(policy: NetworkPolicy): Promise<NetworkPolicy> {
    const answer = await this.#transport.json<PolicyUpdated>("PUT", this.#path("/network-policy"), policy);
    this.#view = { ...this.#view, networkPolicy: answer.networkPolicy };
    this.warnings = answer.warnings;
    return answer.networkPolicy;
  }

  /** Runs a command in the box: `["curl", "-sI", url]`, or a string for `sh -c`. */
  async exec(command: Command, options?: ExecOptions): Promise<ExecResult> {
    return this.#transport.json<ExecResult>("POST", this.#path("/exec"), execBody(command, options));
  }

  /** Logs allowed new connections too (off by default; until the daemon restarts). */
  async setFlowLog(options: { logAllowed: boolean }): Promise<void> {
    await this.#transport.json("PUT", this.#path("/flow-log"), options);
  }

  /** Past flow events, oldest first. */
  async flowHistory(options: Omit<FlowOptions, "signal"> = {}): Promise<FlowEvent[]> {
    return this.#transport.json<FlowEvent[]>("GET", this.#path("/flows"), undefined, { ...options });
  }

  /** The live flow event stream, recent history first; leave the loop (or abort) to stop it. */
  flows(options: FlowOptions = {}): AsyncGenerator<FlowEvent> {
    const { signal, ...query } = options;
    return this.#transport.events<FlowEvent>(this.#path("/flows"), { ...query, follow: true }, signal);
  }

  /** Deletes the box: its processes, namespace and rules. */
  async delete(): Promise<Deleted> {
    return this.#transport.json<Deleted>("DELETE", this.#path(""));
  }

  #path(rest: string): string {
    return `/v1/boxes/${encodeURIComponent(this.id)}${rest}`;
  }
}

/** A box deleted when disposed: `await using box = await EphemeralBox.create({ ... })`. */
export class EphemeralBox extends Box {
  /** Deletes the box; one already gone is fine. */
  async [asyncDispose](): Promise<void> {
    try {
      await this.delete();
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }
}

/** `base` with `transport` as its default: what `client.Box` and `client.EphemeralBox` are. */
export function bindBox<T extends typeof Box>(base: T, transport: Transport): T {
  return class extends (base as typeof Box) {
    static override transportFor(options?: { client?: HasTransport }): Transport {
      return options?.client?.transport ?? transport;
    }
  } as T;
}
