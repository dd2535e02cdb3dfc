#!/usr/bin/env node
// The `organism` command. Installed from the package it runs the compiled dist/; in a checkout
// of the repository (src/ is there; the package does not ship it) it runs the TypeScript
// sources, so there is no build step between editing the framework and running it — and the
// examples, which import ../../src/index.js, share the CLI's module instances.
//
// The user's own modules (payloads, handlers) are TypeScript either way: tsx's loader hooks,
// registered below, compile them on the fly.
import { existsSync } from "node:fs"
import { register } from "tsx/esm/api"

const fromSource = existsSync(new URL("../src/main.ts", import.meta.url))
if (fromSource) {
  // The large dependencies load first, before tsx's loader hooks exist: through the hooks
  // every one of their few hundred modules costs a round trip to the loader thread, which
  // made start-up about 40 % slower and used 160 MB more. Later imports find them cached.
  await Promise.all([
    import("effect"),
    import("@effect/ai"),
    import("@effect/cli"),
    import("@effect/platform-node/NodeContext"),
    import("@effect/platform-node/NodeRuntime"),
    import("libxml2-wasm/lib/libxml2raw.mjs"),
    import("yaml")
  ])
  register()
  const { main } = await import("../src/main.ts")
  main(process.argv)
} else {
  // Compiled: the whole CLI (and so the library the user's modules import) loads without
  // the hooks; only the user's modules go through them.
  const { main } = await import("../dist/main.js")
  register()
  main(process.argv)
}
