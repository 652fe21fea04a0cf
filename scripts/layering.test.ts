// The transport contract's layering: the router and every transport depend on
// @switchyard/transport, and no transport depends on the router (the router routes; the contract
// holds the shared rules). Checked on the published sources and manifests.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
// The conformance suite too: it checks the contract, so it depends on the contract only.
const TRANSPORTS = ["transport", "cross-process-queue", "transport-nats", "transport-testkit"];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "test" ? [] : sources(path);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") ? [path] : [];
  });
}

describe("layering", () => {
  it.each(TRANSPORTS)("%s imports nothing from @switchyard/router", (pkg) => {
    const offenders = sources(join(root, "packages", pkg, "src")).filter((file) =>
      /from\s+["']@switchyard\/router["']|import\(["']@switchyard\/router["']\)/.test(
        readFileSync(file, "utf8"),
      ),
    );
    expect(offenders).toEqual([]);
    const manifest = JSON.parse(
      readFileSync(join(root, "packages", pkg, "package.json"), "utf8"),
    ) as Record<string, Record<string, string> | undefined>;
    expect(manifest.dependencies?.["@switchyard/router"]).toBeUndefined();
    expect(manifest.peerDependencies?.["@switchyard/router"]).toBeUndefined();
  });

  it("the contract depends on no router and no transport", () => {
    const manifest = JSON.parse(
      readFileSync(join(root, "packages", "transport", "package.json"), "utf8"),
    ) as Record<string, Record<string, string> | undefined>;
    const all = { ...manifest.dependencies, ...manifest.peerDependencies };
    expect(Object.keys(all).filter((name) => name.startsWith("@switchyard/"))).toEqual([
      "@switchyard/event-schema",
    ]);
  });
});
