import { defineConfig, type Options } from "tsup";

/**
 * The one build configuration every published package reuses: ESM plus a CommonJS build for
 * `require()` users, bundled `.d.ts` / `.d.cts`, sourcemaps, and a syntax target equal to the
 * `engines.node` floor (20.19). `shims` gives the CommonJS build an `import.meta.url`.
 */
export function packageConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm", "cjs"],
    target: "node20",
    platform: "node",
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    treeshake: true,
    shims: true,
    ...overrides,
  });
}
