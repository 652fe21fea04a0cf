import { defineConfig, type Options } from "tsup";

/**
 * The one build configuration every published package reuses: ESM only, bundled `.d.ts`,
 * sourcemaps, and a syntax target equal to the `engines.node` floor (20.19).
 */
export function packageConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm"],
    target: "node20",
    platform: "node",
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    treeshake: true,
    ...overrides,
  });
}
