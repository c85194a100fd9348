#!/usr/bin/env bash
# Builds the SDKs' packages as a user would (`npm pack`, `pip wheel`),
# installs each into a scratch directory and imports it from there: the
# package, not the source tree, carries what a user needs (ESM and its
# type declarations; the module and py.typed). No network: sdk_e2e runs it
# after scripts/test's `npm ci`.
set -euo pipefail
cd "$(dirname "$0")"
sdk=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd typescript && npm pack --silent --pack-destination "$tmp" >/dev/null)
mkdir "$tmp/node-app"
cd "$tmp/node-app"
echo '{"name": "app", "version": "1.0.0", "private": true, "type": "module"}' >package.json
npm install --offline --no-audit --no-fund --loglevel=error "$tmp"/boxfence-sdk-*.tgz
test -f node_modules/@boxfence/sdk/dist/index.d.ts
node --input-type=module -e '
  import { Boxfence, Box, EphemeralBox, ValidationError } from "@boxfence/sdk";
  const client = new Boxfence({ url: "https://boxfence.invalid", token: "t" });
  if (typeof client.Box.create !== "function" || !(Symbol.asyncDispose in EphemeralBox.prototype)) process.exit(1);
  if (!(new ValidationError(400, "invalid_request", "m", [{ path: "a", message: "b" }]).paths[0] === "a")) process.exit(1);
'

# Setuptools writes build/ beside the sources: build from a copy.
cp -r "$sdk/python" "$tmp/python"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
/usr/bin/python3 -m pip wheel --no-deps --no-build-isolation -q -w "$tmp/wheels" "$tmp/python"
/usr/bin/python3 -m pip install --no-deps --no-index -q --target "$tmp/site" "$tmp"/wheels/boxfence-*.whl
cd "$tmp"
PYTHONPATH="$tmp/site" /usr/bin/python3 -c '
import pathlib, boxfence
assert pathlib.Path(boxfence.__file__).parent.joinpath("py.typed").exists()
assert boxfence.Boxfence("https://boxfence.invalid", "t").Box.create
'
echo "sdk packages: npm pack and pip wheel install and import"
