// Typed errors with paths, the live flow stream, ephemeral boxes, and the
// Machines API's resources, against the lab daemon.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Boxfence, EphemeralBox, NotFoundError, ValidationError, type NetworkPolicy } from "../src/index.js";
import { client, reach, url } from "./helpers.js";

test("bad input comes back as a ValidationError naming each path", async () => {
  const error = await client.Box.create({
    networkPolicy: { mode: "custom", allowedCidrs: ["not-a-cidr"], allowedDomains: ["*bad*"] },
  }).then(
    () => assert.fail("the daemon accepted a bad policy"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ValidationError, String(error));
  assert.equal(error.status, 400);
  assert.equal(error.code, "invalid_request");
  assert.deepEqual(error.paths.sort(), ["networkPolicy.allowedCidrs[0]", "networkPolicy.allowedDomains[0]"]);

  // A mode the seed's type does not have, as untyped JavaScript might send it.
  const box = await client.Box.create({ networkPolicy: { mode: "deny-all" } });
  try {
    await assert.rejects(box.updateNetworkPolicy({ mode: "block" } as unknown as NetworkPolicy), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.deepEqual(e.paths, ["mode"]);
      return true;
    });
    // Refused updates change nothing.
    assert.deepEqual(await box.getNetworkPolicy(), { mode: "deny-all" });
  } finally {
    await box.delete();
  }

  await assert.rejects(client.Box.get("nosuchbox000"), NotFoundError);
  await assert.rejects(
    client.networkPolicies.apply("no-such-app", { name: "p", selector: { all: true }, rules: [] }),
    (e: unknown) => e instanceof NotFoundError && e.code === "not_found",
  );
});

test("a wrong token is an AuthError; no daemon is a connection_failed error", async () => {
  const stranger = new Boxfence({ url, token: "not-the-token" });
  await assert.rejects(stranger.apps.list(), (e: unknown) => e instanceof Error && (e as { code?: string }).code === "unauthorized");
  const nowhere = new Boxfence({ url: "http://127.0.0.1:9", token: "x" });
  await assert.rejects(nowhere.apps.list(), (e: unknown) => (e as { status?: number; code?: string }).status === 0 && (e as { code?: string }).code === "connection_failed");
});

test("the live flow stream delivers a denial with its layer and reason", async () => {
  const box = await client.Box.create({ networkPolicy: { mode: "custom", allowedCidrs: ["198.51.100.0/24"] } });
  try {
    const stream = box.flows({ verdict: "deny" });
    // The stream is open before the denied attempt (history comes first, and there is none).
    const first = stream.next();
    assert.notEqual(await reach(box, "http://203.0.113.10/"), "200");
    const { value: event, done } = await first;
    assert.equal(done, false);
    assert.equal(event.verdict, "deny");
    assert.equal(event.machine_id, box.id);
    assert.equal(event.dst, "203.0.113.10");
    assert.equal(event.dport, 80);
    assert.equal(event.layer, "box_policy");
    assert.ok(event.reason.length > 0);
    await stream.return(undefined);
  } finally {
    await box.delete();
  }
});

test("an ephemeral box is gone after its scope, also when the scope throws", async () => {
  let id = "";
  {
    await using box = await client.EphemeralBox.create({ networkPolicy: { mode: "deny-all" } });
    assert.ok(box instanceof EphemeralBox);
    id = box.id;
    assert.equal((await client.Box.get(id)).id, id);
  }
  await assert.rejects(client.Box.get(id), NotFoundError);

  await assert.rejects(async () => {
    await using box = await client.EphemeralBox.create({});
    id = box.id;
    throw new Error("the user's code failed");
  }, /the user's code failed/);
  await assert.rejects(client.Box.get(id), NotFoundError);
});

test("apps, network policies and machines", async () => {
  const app = `sdk-ts-${process.pid}`;
  assert.equal((await client.apps.create(app)).app_name, app);
  try {
    const { id: machine } = await client.machines.create(app, { config: { metadata: { role: "web" } } });
    assert.deepEqual((await client.machines.list(app)).map((m) => m.id), [machine]);
    assert.equal((await client.machines.get(app, machine)).config.metadata?.role, "web");
    const http = async () => (await client.machines.exec(app, machine, "curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.51.100.10:8080/")).stdout;
    assert.equal(await http(), "200");

    const applied = await client.networkPolicies.apply(app, {
      name: "specific-egress",
      selector: { all: true },
      rules: [{ action: "allow", direction: "egress", ports: [{ protocol: "tcp", port: 80 }, { protocol: "tcp", port: 443 }] }],
    });
    assert.equal(applied.name, "specific-egress");
    assert.ok(applied.id);
    assert.deepEqual((await client.networkPolicies.list(app)).map((p) => p.id), [applied.id]);
    assert.equal((await client.networkPolicies.get(app, applied.id!)).name, "specific-egress");
    assert.notEqual(await http(), "200");
    const denials = client.machines.flows(app, machine, { verdict: "deny" });
    const { value: denial } = await denials.next();
    await denials.return(undefined);
    assert.equal(denial?.dport, 8080);
    assert.equal(denial?.layer, "app_policy");

    const verdict = await client.machines.evaluate(app, machine, { direction: "egress", protocol: "tcp", ip: "198.51.100.10", port: 8080 });
    assert.equal(verdict.verdict, "deny");
    assert.equal(verdict.layer, "app_policy");

    await client.networkPolicies.delete(app, applied.id!);
    assert.deepEqual(await client.networkPolicies.list(app), []);
    assert.equal(await http(), "200");

    await assert.rejects(
      client.networkPolicies.apply(app, { name: "bad", selector: { all: true }, rules: [{ action: "allow", direction: "egress", ports: [{ protocol: "tcp", port: 70000 }] }] }),
      (e: unknown) => e instanceof ValidationError && e.paths.includes("rules[0].ports[0].port"),
    );
    await client.machines.delete(app, machine);
    assert.deepEqual(await client.machines.list(app), []);
  } finally {
    await client.apps.delete(app, { force: true });
  }
});
