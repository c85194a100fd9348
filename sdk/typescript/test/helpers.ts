// What the suites share: a client from BOXFENCE_URL/BOXFENCE_TOKEN (the
// lab daemon of crates/boxfence/tests/sdk_e2e.rs) and curl in a box.

import assert from "node:assert/strict";

import { Boxfence, type Box } from "../src/index.js";

export const url = process.env.BOXFENCE_URL;
export const token = process.env.BOXFENCE_TOKEN;
assert.ok(url && token, "BOXFENCE_URL and BOXFENCE_TOKEN name the lab daemon (run through sdk_e2e)");

export const client = new Boxfence({ url, token });

/** What curl in `box` gets from `target`: the HTTP status, or `err<curl exit code>` without an answer. */
export async function reach(box: Box, target: string): Promise<string> {
  const out = await box.exec(["curl", "-sk", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", target]);
  return out.exitCode === 0 ? out.stdout : `err${out.exitCode}`;
}
