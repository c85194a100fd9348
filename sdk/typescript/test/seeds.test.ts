// The TypeScript examples of the box seed (box-network-policy.txt), as
// written there apart from the import and constructor lines, each checked
// by traffic from the box to the lab's internet.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Boxfence } from "../src/index.js";
import { reach, token, url } from "./helpers.js";

// The seed's import line, in this SDK's words.
const { Box } = new Boxfence({ url, token });

test("create a box with a policy: only the allowed domains are reached", async () => {
  const box = await Box.create({
    runtime: "node",
    networkPolicy: {
      mode: "custom",
      allowedDomains: ["api.github.com", "registry.npmjs.org"],
    },
  });
  try {
    assert.equal(await reach(box, "https://api.github.com/"), "200");
    assert.equal(await reach(box, "http://registry.npmjs.org/"), "200");
    // Refused by the resolver: the name never resolves.
    assert.equal(await reach(box, "https://evil.example/"), "err6");
    assert.notEqual(await reach(box, "http://203.0.113.10/"), "200");
  } finally {
    await box.delete();
  }
});

test("combine domain and CIDR rules", async () => {
  const box = await Box.create({
    runtime: "node",
    networkPolicy: {
      mode: "custom",
      allowedDomains: ["api.github.com", "*.githubusercontent.com"],
      allowedCidrs: ["104.16.0.0/12"],
    },
  });
  try {
    assert.equal(await reach(box, "https://raw.githubusercontent.com/"), "200");
    assert.equal(await reach(box, "http://104.16.120.5/"), "200");
    assert.equal(await reach(box, "https://github.com/"), "err6");
  } finally {
    await box.delete();
  }
});

test("read the current policy, update a running box and switch back", async () => {
  const box = await Box.create({ runtime: "node" });
  try {
    console.log(box.networkPolicy); // { mode: "allow-all" }
    assert.deepEqual(box.networkPolicy, { mode: "allow-all" });
    assert.equal(await reach(box, "http://203.0.113.10/"), "200");

    await box.updateNetworkPolicy({ mode: "deny-all" });
    assert.deepEqual(box.networkPolicy, { mode: "deny-all" });
    assert.deepEqual(await box.getNetworkPolicy(), { mode: "deny-all" });
    assert.notEqual(await reach(box, "http://203.0.113.10/"), "200");

    await box.updateNetworkPolicy({ mode: "allow-all" });
    assert.equal(await reach(box, "http://203.0.113.10/"), "200");
    assert.deepEqual((await Box.get(box.id)).networkPolicy, { mode: "allow-all" });
  } finally {
    await box.delete();
  }
});

test("example patterns: GitHub and npm only, a public CIDR, a blocked CIDR", async () => {
  const box = await Box.create({ runtime: "node" });
  try {
    await box.updateNetworkPolicy({
      mode: "custom",
      allowedDomains: ["github.com", "*.github.com", "registry.npmjs.org"],
    });
    assert.equal(await reach(box, "https://api.github.com/"), "200");
    assert.equal(await reach(box, "https://github.com/"), "200");
    assert.equal(await reach(box, "https://raw.githubusercontent.com/"), "err6");

    await box.updateNetworkPolicy({ mode: "deny-all" });
    assert.notEqual(await reach(box, "https://api.github.com/"), "200");

    await box.updateNetworkPolicy({
      mode: "custom",
      allowedCidrs: ["104.16.0.0/12"],
    });
    assert.equal(await reach(box, "http://104.16.120.5/"), "200");
    assert.notEqual(await reach(box, "http://198.51.100.10/"), "200");

    await box.updateNetworkPolicy({
      mode: "custom",
      deniedCidrs: ["104.16.120.0/24"],
    });
    assert.notEqual(await reach(box, "http://104.16.120.5/"), "200");
    assert.equal(await reach(box, "http://104.17.0.5/"), "200");
  } finally {
    await box.delete();
  }
});

test("the package's own Box takes the daemon from BOXFENCE_URL and BOXFENCE_TOKEN", async () => {
  const { Box: FromEnvironment } = await import("../src/index.js");
  const box = await FromEnvironment.create({ runtime: "node", networkPolicy: { mode: "deny-all" } });
  try {
    assert.deepEqual((await FromEnvironment.get(box.id)).networkPolicy, { mode: "deny-all" });
    assert.notEqual(await reach(box, "http://203.0.113.10/"), "200");
  } finally {
    await box.delete();
  }
});
