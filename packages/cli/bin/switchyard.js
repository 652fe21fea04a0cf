#!/usr/bin/env node
// The `switchyard` executable. It lives in the source tree, not only in dist/, so that package
// managers can link it on a fresh install before anything is built; it runs the built CLI.
import { existsSync } from "node:fs";

const entry = new URL("../dist/bin.js", import.meta.url);
if (!existsSync(entry)) {
  console.error(
    "switchyard: the CLI is not built (dist/bin.js is missing). Run `pnpm build` first, or " +
      "`pnpm switchyard …` from the repository root to run it from source.",
  );
  process.exit(2);
}
await import(entry.href);
