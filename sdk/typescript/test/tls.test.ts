// An https URL: the lab daemon behind nginx terminating TLS with a
// certificate made for the run (trusted through NODE_EXTRA_CA_CERTS).

import assert from "node:assert/strict";
import { test } from "node:test";

import { Boxfence, ValidationError } from "../src/index.js";
import { reach, token } from "./helpers.js";

const tlsUrl = process.env.BOXFENCE_TLS_URL;

test("the SDK works over https: calls, errors with paths and the flow stream", async () => {
  assert.ok(tlsUrl?.startsWith("https://"), "BOXFENCE_TLS_URL names the lab's TLS proxy (run through sdk_e2e)");
  const { Box, apps } = new Boxfence({ url: tlsUrl, token });
  assert.ok(Array.isArray(await apps.list()));
  await assert.rejects(
    Box.create({ networkPolicy: { mode: "custom", allowedCidrs: ["10.0.0.0/33"] } }),
    (e: unknown) => e instanceof ValidationError && e.paths[0] === "networkPolicy.allowedCidrs[0]",
  );
  const box = await Box.create({ networkPolicy: { mode: "deny-all" } });
  try {
    assert.notEqual(await reach(box, "http://198.51.100.10/"), "200");
    const stream = box.flows({ verdict: "deny" });
    const { value } = await stream.next();
    await stream.return(undefined);
    assert.equal(value?.dst, "198.51.100.10");
  } finally {
    await box.delete();
  }
});
