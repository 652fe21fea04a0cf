import { packageConfig } from "../../tsup.shared";

// ESM only: vitest, which the suite runs on, cannot be require()d.
export default packageConfig({ format: ["esm"] });
