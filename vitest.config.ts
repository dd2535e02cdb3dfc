import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // libxml2-wasm instantiates one WebAssembly module per worker; forks keep each test
    // file's wasm heap isolated so a leak test measures only its own file.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
