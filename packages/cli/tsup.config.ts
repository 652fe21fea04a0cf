import { packageConfig } from "../../tsup.shared";

// Two entries: the programmatic API and the `switchyard` executable.
export default packageConfig({ entry: ["src/index.ts", "src/bin.ts"] });
