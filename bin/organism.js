#!/usr/bin/env node
// The CLI and the user modules it loads (payloads, handlers) are TypeScript: tsx compiles
// them on the fly, so there is no build step between editing a handler and running it.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
