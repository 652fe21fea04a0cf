import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { type AnyCatalog, createEnvelope } from "@switchyard/event-schema";
import { createRouter } from "@switchyard/router";
import { natsTransport } from "@switchyard/transport-nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The NATS suites' shared helpers: under CI=true an unreachable server fails instead of skipping.
import {
  NATS_URL,
  deleteStream,
  describeIf,
  natsAvailable,
  uniqueNames,
} from "../../transport-nats/src/test/nats";
import { loadCatalog } from "./catalog-option";
import { cli, eventually, root, runBinary, tempDir } from "./test/fixture";

const available = await natsAvailable();

// A second team's catalog, nothing to do with the training pipeline: two event types, one alert
// rule and a pipeline of two stages linked by `order_id`. Written as the module a user passes to
// --catalog; it imports event-schema and zod by absolute path because the temp dir is outside the
// workspace.
const shopCatalogSource = (eventSchema: string, zod: string) => `
import { defineCatalog, defineEvent } from ${JSON.stringify(eventSchema)};
import { z } from ${JSON.stringify(zod)};

const OrderPlaced = defineEvent({
  type: "ORDER_PLACED",
  description: "A customer placed an order",
  durable: true,
  alert: { kind: "rate", moreThan: 1, withinMs: 3_600_000 },
  data: z.looseObject({ order_id: z.string(), amount: z.number() }),
});
const OrderShipped = defineEvent({
  type: "ORDER_SHIPPED",
  description: "The order left the warehouse",
  durable: true,
  data: z.looseObject({ order_id: z.string(), carrier: z.string() }),
});

export const catalog = defineCatalog([OrderPlaced, OrderShipped], {
  pipelines: [{ name: "fulfilment", key: "order_id", stages: ["ORDER_PLACED", "ORDER_SHIPPED"] }],
});
`;

describe("--catalog: the CLI over a second team's catalog", () => {
  const tmp = tempDir();
  const catalogFile = join(tmp.dir, "shop-catalog.ts");
  const db = join(tmp.dir, "shop.db");

  beforeAll(async () => {
    writeFileSync(
      catalogFile,
      shopCatalogSource(
        pathToFileURL(join(root, "packages/event-schema/src/index.ts")).href,
        pathToFileURL(join(root, "packages/cli/node_modules/zod/index.js")).href,
      ),
    );
    writeFileSync(join(tmp.dir, "no-catalog.mjs"), "export const answer = 42;\n");
    const { catalog } = (await import(pathToFileURL(catalogFile).href)) as {
      catalog: AnyCatalog;
    };
    // A router over that catalog publishes into a real SQLite file; a shipper daemon turns each
    // placed order into a shipment, except ord-2, which stays unshipped.
    const router = createRouter({
      catalog,
      transport: sqliteTransport({ path: db, pruneIntervalMs: 0 }),
    });
    let shipped = 0;
    await router.subscribe(
      "ORDER_PLACED",
      async (event) => {
        const orderId = String(event.data.order_id);
        if (orderId !== "ord-2")
          await router.publish("ORDER_SHIPPED", { order_id: orderId, carrier: "post" });
        shipped++;
      },
      { name: "shipper" },
    ).ready;
    await router.publish("ORDER_PLACED", { order_id: "ord-1", amount: 12.5 });
    await router.publish("ORDER_PLACED", { order_id: "ord-2", amount: 3 });
    await eventually(() => shipped === 2, "the shipper handling both orders");
    await router.shutdown({ timeoutMs: 2_000 });
  });
  afterAll(() => tmp.cleanup());

  it("pipeline verify checks the catalog's own pipeline, linked by its key", async () => {
    const run = await cli(["pipeline", "verify", "ord-1", "--db", db, "--catalog", catalogFile]);
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Pipeline fulfilment of order_id ord-1");
    expect(run.stdout).toMatch(/✓\s+1\. ORDER_PLACED\s+1/);
    expect(run.stdout).toMatch(/✓\s+2\. ORDER_SHIPPED\s+1/);
    expect(run.stdout).toContain("Every stage flowed (2/2).");
  });

  it("pipeline verify exits 1 naming the stage an unshipped order never reached", async () => {
    const run = await cli([
      "pipeline",
      "verify",
      "ord-2",
      "--db",
      db,
      "--catalog",
      catalogFile,
      "--json",
    ]);
    expect(run.code).toBe(1);
    expect(run.json()).toMatchObject({
      configKey: "ord-2",
      ok: false,
      missing: ["ORDER_SHIPPED"],
      stages: [
        { type: "ORDER_PLACED", count: 1, ok: true },
        { type: "ORDER_SHIPPED", count: 0, ok: false },
      ],
    });
  });

  it("pipeline verify without --catalog checks the training pipeline, and says so on stderr", async () => {
    const run = await cli(["pipeline", "verify", "ord-1", "--db", db, "--json"]);
    expect(run.code).toBe(1);
    expect(run.stderr.match(/built-in pipeline catalog/g)).toHaveLength(1);
    expect(run.stderr).toContain(
      "note: no --catalog given and $SWITCHYARD_CATALOG is not set: using the built-in pipeline catalog",
    );
    expect(run.stderr).toContain("Pass --catalog <module> or set SWITCHYARD_CATALOG");
    expect(run.json().stages.map((s: { type: string }) => s.type)).toEqual([
      "NEW_GAMES_AVAILABLE",
      "DATA_SYNC_COMPLETED",
      "NPZ_EXPORT_COMPLETE",
      "TRAINING_COMPLETED",
      "EVALUATION_COMPLETED",
      "MODEL_PROMOTED",
      "MODEL_DISTRIBUTION_COMPLETE",
    ]);
  });

  it("reads the catalog from $SWITCHYARD_CATALOG when --catalog is not given", async () => {
    const run = await cli(["pipeline", "verify", "ord-1", "--db", db, "--json"], {
      env: { SWITCHYARD_CATALOG: catalogFile },
    });
    expect(run.code).toBe(0);
    expect(run.json().stages).toHaveLength(2);
    expect(run.stderr).not.toContain("built-in pipeline catalog");
  });

  it("notes the built-in catalog once on each command that reads it, and only there", async () => {
    const note = /using the built-in pipeline catalog/g;
    const notes = async (args: string[]) => {
      const run = await cli(args[0] === "catalog" ? args : [...args, "--db", db]);
      expect(run.stderr, args.join(" ")).not.toMatch(/^error/m);
      return (run.stderr.match(note) ?? []).length;
    };
    // Commands that read the catalog: once each.
    expect(await notes(["catalog"])).toBe(1);
    expect(await notes(["health"])).toBe(1);
    expect(await notes(["events", "list", "--type", "TRAINING_COMPLETED"])).toBe(1);
    expect(await notes(["dlq", "list", "--type", "TRAINING_COMPLETED"])).toBe(1);
    // The same commands without a type to check do not depend on a catalog; nor does stats.
    expect(await notes(["events", "list"])).toBe(0);
    expect(await notes(["dlq", "list"])).toBe(0);
    expect(await notes(["subscribers"])).toBe(0);
    expect(await notes(["stats"])).toBe(0);
    expect(await notes(["catalog", "--catalog", catalogFile])).toBe(0);
  });

  it("catalog lists the module's event types, alert rules and pipeline", async () => {
    const run = await cli(["catalog", "--catalog", catalogFile, "--json"]);
    expect(run.code).toBe(0);
    expect(run.json()).toEqual({
      types: [
        {
          type: "ORDER_PLACED",
          description: "A customer placed an order",
          version: 1,
          durable: true,
          severity: "informational",
          alert: "more than 1 in 1 hour",
          stage: 1,
        },
        {
          type: "ORDER_SHIPPED",
          description: "The order left the warehouse",
          version: 1,
          durable: true,
          severity: "informational",
          stage: 2,
        },
      ],
      pipelines: [
        { name: "fulfilment", key: "order_id", stages: ["ORDER_PLACED", "ORDER_SHIPPED"] },
      ],
    });
  });

  it("health evaluates the catalog's alert rules, not the pipeline catalog's", async () => {
    const run = await cli(["health", "--db", db, "--catalog", catalogFile, "--json"]);
    const alerts = (run.json().checks as { check: string; status: string }[]).filter((c) =>
      c.check.startsWith("alert:"),
    );
    expect(alerts).toEqual([
      expect.objectContaining({ check: "alert:ORDER_PLACED", status: "unhealthy", value: 2 }),
    ]);
  });

  it("checks event type names against the catalog in use, suggesting the closest", async () => {
    const typo = await cli([
      "events",
      "list",
      "--db",
      db,
      "--catalog",
      catalogFile,
      "--type",
      "ORDER_SHIPED",
    ]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('Did you mean "ORDER_SHIPPED"?');
    const lower = await cli([
      "events",
      "list",
      "--db",
      db,
      "--catalog",
      catalogFile,
      "--type",
      "order_placed",
      "--json",
    ]);
    expect(lower.code).toBe(0);
    expect(lower.json().events).toHaveLength(2);
  });

  it("refuses a module that exports no catalog, listing what it exports", async () => {
    const run = await cli(["catalog", "--catalog", join(tmp.dir, "no-catalog.mjs")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("the module exports no catalog (exports: answer)");
  });

  it("loads a catalog from a package installed where the CLI runs, or the export named after #", async () => {
    const pkg = join(tmp.dir, "node_modules", "shop-events");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({ name: "shop-events", type: "module", exports: "./index.mjs" }),
    );
    writeFileSync(
      join(pkg, "index.mjs"),
      // Plain JS, as a published package is (node_modules is not transformed): a catalog is
      // recognised by its shape, whichever copy of event-schema built it.
      [
        "const types = ['ORDER_PLACED', 'ORDER_SHIPPED'];",
        "export const shopCatalog = {",
        "  types, definitions: {},",
        "  pipelines: [{ name: 'fulfilment', key: 'order_id', stages: types }],",
        "  pipeline: () => shopCatalog.pipelines[0],",
        "  has: (t) => types.includes(t), get: () => undefined, parse: (t, d) => d,",
        "};",
        "export const version = 1;",
      ].join("\n"),
    );
    const shop = await loadCatalog("shop-events", { cwd: tmp.dir });
    expect(shop.types).toEqual(["ORDER_PLACED", "ORDER_SHIPPED"]);
    const named = await loadCatalog("shop-events#shopCatalog", { cwd: tmp.dir });
    expect(named.pipeline()?.name).toBe("fulfilment");
    await expect(loadCatalog("shop-events#version", { cwd: tmp.dir })).rejects.toThrow(
      'export "version" is not a catalog made by defineCatalog()',
    );
  });

  it("refuses a package that is not installed", async () => {
    const run = await cli(["catalog", "--catalog", "@acme/no-such-catalog"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--catalog @acme/no-such-catalog: no such file or package here");
  });

  it("refuses a catalog file that does not exist, naming the path", async () => {
    const run = await cli(["catalog", "--catalog", "./nowhere/catalog.mjs"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--catalog ./nowhere/catalog.mjs: no such file");
  });

  it("refuses pipeline verify on a catalog that declares no pipeline", async () => {
    const bare = join(tmp.dir, "bare-catalog.ts");
    writeFileSync(
      bare,
      shopCatalogSource(
        pathToFileURL(join(root, "packages/event-schema/src/index.ts")).href,
        pathToFileURL(join(root, "packages/cli/node_modules/zod/index.js")).href,
      ).replace(/, \{\n {2}pipelines:[^\n]*\n\}/, ""),
    );
    const run = await cli(["pipeline", "verify", "ord-1", "--db", db, "--catalog", bare]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("declares no pipeline");
  });

  it("explains how to load a .ts catalog when the runtime cannot import TypeScript", async () => {
    // The error plain Node gives for a .ts module, taken from a real plain-Node child process.
    // Node 22.18+ and 24 strip types by default; plain Node here means with that turned off.
    const strips = (process.features as { typescript?: unknown }).typescript !== undefined;
    const probe = spawnSync(
      process.execPath,
      [
        ...(strips ? ["--no-experimental-strip-types"] : []),
        "--input-type=module",
        "-e",
        `import(${JSON.stringify(pathToFileURL(catalogFile).href)}).catch((e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`,
      ],
      { encoding: "utf8" },
    );
    const real = JSON.parse(probe.stdout) as { code: string; message: string };
    expect(real.code).toMatch(/^ERR_(UNKNOWN_FILE_EXTENSION|UNSUPPORTED_TYPESCRIPT_SYNTAX)$/);
    const load = loadCatalog(catalogFile, {
      importModule: () =>
        Promise.reject(Object.assign(new TypeError(real.message), { code: real.code })),
    });
    await expect(load).rejects.toMatchObject({
      code: "CATALOG_TYPESCRIPT",
      message: expect.stringContaining(
        "cannot import TypeScript. Compile the catalog to .js/.mjs, or run the CLI through tsx",
      ),
    });
  });
});

describe("--catalog in the real binary", { tags: ["slow"] }, () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it("switchyard pipeline verify loads a .ts catalog given by a relative path under tsx", async () => {
    const catalogFile = join(tmp.dir, "my-catalog.ts");
    writeFileSync(
      catalogFile,
      shopCatalogSource(
        pathToFileURL(join(root, "packages/event-schema/src/index.ts")).href,
        pathToFileURL(join(root, "packages/cli/node_modules/zod/index.js")).href,
      ),
    );
    const db = join(tmp.dir, "shop.db");
    const { catalog } = (await import(pathToFileURL(catalogFile).href)) as {
      catalog: AnyCatalog;
    };
    const router = createRouter({
      catalog,
      transport: sqliteTransport({ path: db, pruneIntervalMs: 0 }),
    });
    await router.publish("ORDER_PLACED", { order_id: "ord-9", amount: 1 });
    await router.publish("ORDER_SHIPPED", { order_id: "ord-9", carrier: "post" });
    await router.shutdown({ timeoutMs: 2_000 });

    const run = await runBinary([
      "pipeline",
      "verify",
      "ord-9",
      "--db",
      db,
      "--catalog",
      `./${relative(root, catalogFile)}`,
    ]);
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Every stage flowed (2/2).");
  });
});

describeIf(available, "--catalog with pipeline verify on NATS", { tags: ["slow"] }, () => {
  const tmp = tempDir();
  const names = uniqueNames("clicatalog");
  const catalogFile = join(tmp.dir, "shop-catalog.ts");

  beforeAll(async () => {
    writeFileSync(
      catalogFile,
      shopCatalogSource(
        pathToFileURL(join(root, "packages/event-schema/src/index.ts")).href,
        pathToFileURL(join(root, "packages/cli/node_modules/zod/index.js")).href,
      ),
    );
    const transport = natsTransport({ servers: NATS_URL, ...names, retention: "limits" });
    await transport.publish([
      createEnvelope({
        type: "ORDER_PLACED",
        source: "shop",
        data: { order_id: "ord-7", amount: 1 },
      }),
      createEnvelope({
        type: "ORDER_SHIPPED",
        source: "warehouse",
        data: { order_id: "ord-7", carrier: "post" },
      }),
      createEnvelope({
        type: "ORDER_PLACED",
        source: "shop",
        data: { order_id: "ord-8", amount: 2 },
      }),
    ]);
    await transport.close();
  }, 30_000);
  afterAll(async () => {
    tmp.cleanup();
    await deleteStream(NATS_URL, names.stream);
  });

  it("counts each stage by the pipeline's key in the stream", async () => {
    const target = `${NATS_URL}/${names.stream}?prefix=${names.prefix}`;
    const args = ["--transport", target, "--catalog", catalogFile, "--json"];
    const shipped = await cli(["pipeline", "verify", "ord-7", ...args]);
    expect(shipped.code).toBe(0);
    expect(shipped.json()).toMatchObject({ ok: true, stages: [{ count: 1 }, { count: 1 }] });
    const unshipped = await cli(["pipeline", "verify", "ord-8", ...args]);
    expect(unshipped.code).toBe(1);
    expect(unshipped.json()).toMatchObject({ ok: false, missing: ["ORDER_SHIPPED"] });
  });
});
