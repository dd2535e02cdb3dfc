/**
 * Installing this package's tarball into a fresh project without the npm registry: the
 * project gets a lockfile made from the repository's own (every dependency with its
 * integrity), so `npm install --offline` takes each one from the local npm cache, which
 * `npm ci` in this repository filled. No package metadata is needed, only tarballs.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

interface LockEntry {
  readonly [key: string]: unknown
}

/**
 * Points the project's `xml-organism` dependency at `tarball` and writes its lockfile. The
 * project's other dependencies must be among the repository's (the scaffold's are: effect,
 * tsx, typescript, @types/node, at the repository's versions).
 */
export const writeOfflineLockfile = (root: string, project: string, tarball: string): void => {
  const own = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
  const repoLock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as {
    packages: Record<string, LockEntry>
  }
  const pkgPath = join(project, "package.json")
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8"))
  pkg.dependencies = { ...pkg.dependencies, "xml-organism": `file:${tarball}` }
  writeFileSync(pkgPath, JSON.stringify(pkg, null, 2))
  const packages: Record<string, LockEntry> = {
    "": {
      name: pkg.name,
      version: pkg.version,
      dependencies: pkg.dependencies,
      devDependencies: pkg.devDependencies ?? {}
    },
    "node_modules/xml-organism": {
      version: own.version,
      resolved: `file:${tarball}`,
      dependencies: own.dependencies,
      bin: own.bin,
      engines: own.engines
    }
  }
  for (const [key, entry] of Object.entries(repoLock.packages)) {
    if (key === "") continue
    // The repository's dev-only packages (typescript, @types/node…) are the project's own
    // dependencies here: npm re-derives these flags, and prunes what nothing needs.
    const { dev: _d, devOptional: _o, peer: _p, ...rest } = entry
    packages[key] = rest
  }
  writeFileSync(
    join(project, "package-lock.json"),
    JSON.stringify({ name: pkg.name, version: pkg.version, lockfileVersion: 3, requires: true, packages }, null, 2)
  )
}

/** The environment for npm in the project: offline, quiet, none of the outer npm run's settings. */
export const offlineEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith("npm_")) env[k] = v
  return {
    ...env,
    npm_config_offline: "true",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    NO_COLOR: "1"
  }
}
