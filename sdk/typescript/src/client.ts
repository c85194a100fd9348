// The client: one daemon, its resources, and Box classes bound to it.

import { Box, EphemeralBox, bindBox } from "./box.js";
import { Transport, type ClientOptions } from "./http.js";
import { Apps, Machines, NetworkPolicies } from "./resources.js";

/** A client of one boxfence daemon. `const { Box, EphemeralBox } = new Boxfence({ url, token })`. */
export class Boxfence {
  readonly transport: Transport;
  /** `Box` with this client as its default. */
  readonly Box: typeof Box;
  /** `EphemeralBox` with this client as its default. */
  readonly EphemeralBox: typeof EphemeralBox;
  readonly apps: Apps;
  readonly networkPolicies: NetworkPolicies;
  readonly machines: Machines;

  constructor(options: ClientOptions = {}) {
    this.transport = new Transport(options);
    this.Box = bindBox(Box, this.transport);
    this.EphemeralBox = bindBox(EphemeralBox, this.transport);
    this.apps = new Apps(this.transport);
    this.networkPolicies = new NetworkPolicies(this.transport);
    this.machines = new Machines(this.transport);
  }
}
