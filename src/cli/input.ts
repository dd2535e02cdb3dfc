import { Effect } from "effect"
import { readFile } from "node:fs/promises"
import { UsageError } from "./Exit.js"

/** Reads a file, or standard input for "-", as raw bytes. */
export const readInput = (file: string) =>
  Effect.tryPromise({
    try: async () => {
      if (file !== "-") return new Uint8Array(await readFile(file))
      const chunks: Array<Buffer> = []
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
      return new Uint8Array(Buffer.concat(chunks))
    },
    catch: (e) =>
      new UsageError({
        message: `cannot read ${file === "-" ? "standard input" : file}: ${
          (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e)
        }`
      })
  })
