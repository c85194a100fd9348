// The types taken from the document by route must each name a shape: a
// route renamed or a status changed would make one `never`, and this file
// would not compile. Values of each kind check the fields the SDK reads.

import assert from "node:assert/strict";
import { test } from "node:test";

import type * as T from "../src/index.js";

type Named<X> = [X] extends [never] ? false : true;
const named: [
  Named<T.BoxView>, Named<T.BoxGuest>, Named<T.ExecResult>, Named<T.MachineExecResult>, Named<T.App>,
  Named<T.AppPolicy>, Named<T.Rule>, Named<T.PortRule>, Named<T.StoredPolicy>, Named<T.AppliedPolicy>,
  Named<T.CreateMachine>, Named<T.Machine>, Named<T.CreatedMachine>, Named<T.Flow>, Named<T.Verdict>,
  Named<T.Deleted>, Named<T.Diagnostic>, Named<T.ExecRequest>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];

test("the document's types are there", () => {
  const guest: T.BoxGuest = { cpus: 2, memoryMb: 256 };
  const diagnostic: T.Diagnostic = { path: "rules[0]", message: "m" };
  const exec: T.ExecResult = { exitCode: 0, stdout: "", stderr: "" };
  const request: T.ExecRequest = { command: ["true"], timeout: 5 };
  assert.ok(named.every(Boolean) && guest && diagnostic && exec && request);
});
