import { packageConfig } from "../../tsup.shared";

// The programmatic API in both formats; the `switchyard` executable (top-level await) as ESM only.
export default [
  packageConfig(),
  packageConfig({ entry: ["src/bin.ts"], format: ["esm"], dts: false, clean: false }),
];
