/**
 * `organism init [DIR]`: a new project from templates/init — package.json ("type": "module",
 * this exact version of xml-organism), organism.yaml, payloads, handlers, an LLM agent on the
 * mock model, and a test — whose `npm install && npm test` passes as it is.
 */
import { Args, Command } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import { Console, Effect } from "effect"
import { fileURLToPath } from "node:url"
import { UsageError } from "./Exit.js"
import { packageJson, packageRoot } from "./packageInfo.js"

const dir = Args.directory({ name: "DIR", exists: "either" }).pipe(
  Args.withDescription("where to create the project (created if missing; must not hold the files it writes)"),
  Args.withDefault(".")
)

/** npm publishes no file named .gitignore: the template's is called gitignore. */
const renamed: Record<string, string> = { gitignore: ".gitignore" }

/** A directory name as an npm package name: lower case, no spaces or odd characters. */
export const projectName = (base: string): string => {
  const name = base.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+|-+$/g, "")
  return name === "" ? "my-organism" : name
}

/**
 * `{{key}}` placeholders: the project's name, and for package.json the exact versions this
 * package itself was built and tested with (its own version, effect, tsx, TypeScript).
 */
export const fillTemplate = (text: string, name: string): string => {
  const deps = { ...packageJson.devDependencies, ...packageJson.dependencies }
  const values: Record<string, string | undefined> = {
    name,
    "xml-organism": packageJson.version,
    effect: deps["effect"],
    tsx: deps["tsx"],
    typescript: deps["typescript"],
    "@types/node": deps["@types/node"]
  }
  return text.replace(/\{\{([^}]+)\}\}/g, (whole, key: string) => values[key] ?? whole)
}

export const initCommand = Command.make("init", { dir }, ({ dir }) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const templates = fileURLToPath(new URL("templates/init", packageRoot))
    const sources = (yield* fs.readDirectory(templates, { recursive: true })).sort()
    const files: Array<{ readonly source: string; readonly target: string }> = []
    for (const relative of sources) {
      const source = path.join(templates, relative)
      if ((yield* fs.stat(source)).type !== "File") continue
      const target = path.join(path.dirname(relative), renamed[path.basename(relative)] ?? path.basename(relative))
      files.push({ source, target })
    }
    const target = path.resolve(dir)
    const clashes: Array<string> = []
    for (const f of files) if (yield* fs.exists(path.join(target, f.target))) clashes.push(f.target)
    if (clashes.length > 0) {
      return yield* new UsageError({ message: `${dir} already has ${clashes.join(", ")}; nothing was written` })
    }
    const name = projectName(path.basename(target))
    for (const f of files) {
      const out = path.join(target, f.target)
      yield* fs.makeDirectory(path.dirname(out), { recursive: true })
      yield* fs.writeFileString(out, fillTemplate(yield* fs.readFileString(f.source), name))
    }
    const relative = path.relative(process.cwd(), target)
    const cd = relative.startsWith("..") ? target : relative
    yield* Console.log(
      `created ${name} in ${cd === "" ? "." : cd}: ${files.map((f) => f.target).join(", ")}\n\n` +
        `next:\n` +
        (cd === "" ? "" : `  cd ${cd}\n`) +
        `  npm install\n` +
        `  npm test\n` +
        `  npx organism run organism.yaml --until-idle`
    )
  }).pipe(Effect.mapError((e) => (e instanceof UsageError ? e : new UsageError({ message: `init: ${e.message}` }))))
).pipe(Command.withDescription("Create a new organism project: package.json, organism.yaml, payloads, handlers, an agent, a test"))
