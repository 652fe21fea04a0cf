import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** One static file the pages load. */
export interface Asset {
  readonly body: string;
  readonly type: string;
}

let cached: ReadonlyMap<string, Asset> | undefined;

/**
 * The client files, read once from the package (`dist/client/`, or `client/` beside `src/`) and from
 * uPlot's own distribution: no external asset, so the dashboard works offline.
 */
export function assets(): ReadonlyMap<string, Asset> {
  if (cached) return cached;
  // Built: dist/client/ beside dist/index.js (copied at build). From source: client/ beside src/.
  const built = new URL("./client/", import.meta.url);
  const dir = existsSync(fileURLToPath(built)) ? built : new URL("../client/", import.meta.url);
  const client = (name: string) => readFileSync(fileURLToPath(new URL(name, dir)), "utf8");
  const require = createRequire(import.meta.url);
  const uplot = (name: string) => readFileSync(require.resolve(`uplot/dist/${name}`), "utf8");
  const js = "text/javascript; charset=utf-8";
  const css = "text/css; charset=utf-8";
  cached = new Map([
    ["dashboard.js", { body: client("dashboard.js"), type: js }],
    ["dashboard.css", { body: client("dashboard.css"), type: css }],
    ["uplot.js", { body: uplot("uPlot.esm.js"), type: js }],
    ["uplot.css", { body: uplot("uPlot.min.css"), type: css }],
    ["favicon.svg", { body: client("favicon.svg"), type: "image/svg+xml" }],
  ]);
  return cached;
}
