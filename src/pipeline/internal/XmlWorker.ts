/**
 * The ingress worker's entry (a `node:worker_threads` thread started by XmlWorkers.ts): its
 * own libxml2 instance, the envelope XSD and the payload XSDs of every version the pump
 * registered, compiled here. It answers each chunk with the front stages' plain results
 * (IngressFront.ts). Messages are handled one at a time, in the order they arrive.
 */
import { Effect, Exit, Scope } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import { ENVELOPE_XSD } from "../../domain/Envelope.js"
import type { IngressConfig } from "../../domain/IngressConfig.js"
import { type CompiledSchema, XmlEngine } from "../../services/XmlEngine.js"
import { type PayloadSchemas, runFront } from "./IngressFront.js"
import { packFronts, type ToWorker, type WorkerData } from "./XmlWorkerProtocol.js"

const port = parentPort!
const data = workerData as WorkerData

const main = async () => {
  const scope = Effect.runSync(Scope.make())
  const engine = await Effect.runPromise(Scope.extend(XmlEngine.make, scope))
  const compile = (name: string, xsd: string): CompiledSchema => Effect.runSync(Scope.extend(engine.compileSchema(name, xsd), scope))
  const envelopeSchema = compile("envelope", ENVELOPE_XSD)
  const schemas = new Map<number, CompiledSchema>()
  const versions = new Map<number, { readonly config: IngressConfig; readonly payloads: PayloadSchemas }>()

  port.on("message", (message: ToWorker) => {
    switch (message.kind) {
      case "version": {
        try {
          for (const [id, name, xsd] of message.schemas) if (!schemas.has(id)) schemas.set(id, compile(name, xsd))
          const byTag = new Map<string, { id: number; schema: CompiledSchema }>()
          for (const [tag, id] of message.tags) byTag.set(tag, { id, schema: schemas.get(id)! })
          versions.set(message.version, { config: message.config, payloads: { byTag } })
          for (const old of message.retire) versions.delete(old)
          port.postMessage({ kind: "ready", version: message.version, error: undefined })
        } catch (e) {
          port.postMessage({ kind: "ready", version: message.version, error: String(e) })
        }
        return
      }
      case "chunk": {
        const version = versions.get(message.version)!
        // Test hook: a worker that dies in the middle of a chunk.
        if (data.exitOn !== undefined && message.inputs.some((i) => typeof i === "string" && i.includes(data.exitOn!))) {
          const flag = data.exitOnce === undefined ? undefined : new Int32Array(data.exitOnce)
          if (flag === undefined || Atomics.compareExchange(flag, 0, 0, 1) === 0) process.exit(3)
        }
        const fronts = runFront(engine, envelopeSchema, version.config, version.payloads, message.inputs, message.known)
        port.postMessage({ kind: "done", seq: message.seq, fronts: packFronts(fronts) })
        return
      }
    }
  })
  // Closed with the thread: the instance's memory goes with it.
  process.on("exit", () => Effect.runSync(Scope.close(scope, Exit.void)))
}

void main()
