import { readFileSync } from "node:fs"

interface PackageJson {
  readonly name: string
  readonly version: string
  readonly dependencies: Record<string, string>
  readonly devDependencies?: Record<string, string>
}

/**
 * This package's own package.json. src/cli/ and dist/cli/ both sit two levels below it, so
 * the same relative URL works from the sources and from the compiled package.
 */
export const packageRoot = new URL("../../", import.meta.url)

export const packageJson: PackageJson = JSON.parse(readFileSync(new URL("package.json", packageRoot), "utf8"))
