/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The dashboard in a real browser: Debian's Chromium driven by playwright-core. Tagged slow.
// Without /usr/bin/chromium the suite is skipped with the reason printed, except under CI=true,
// where a missing browser fails (.ci/run installs it).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createEnvelope, pipelineCatalog, typeContract } from "@switchyard/event-schema";
import type { Driver } from "@switchyard/transport";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServedDashboard, serveDashboard } from "./index";
import { type Seeded, daemonBeat, memory, seed } from "./test/fixture";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
const CI = process.env.CI === "true";
if (!hasChromium && !CI)
  console.warn(
    `dashboard browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`,
  );
const SHOTS = join(import.meta.dirname, "..", "..", "..", ".ci", "out", "dashboard");
const TOKEN = "browser-test-token-42";

describe.skipIf(!hasChromium && !CI)("the dashboard in Chromium", { tags: ["slow"] }, () => {
  let driver: Driver;
  let seeded: Seeded;
  let served: ServedDashboard;
  let readOnly: ServedDashboard;
  let browser: Browser;
  const problems: string[] = [];

  beforeAll(async () => {
    driver = await memory();
    seeded = await seed(driver);
    served = await serveDashboard({
      driver,
      port: 0,
      actions: { token: TOKEN },
      tailIntervalMs: 100,
      title: "Switchyard test",
      catalog: {
        pipelines: [
          { name: "training", key: "config_key", stages: ["TRAINING_COMPLETED", "MODEL_PROMOTED"] },
        ],
      },
    });
    readOnly = await serveDashboard({ driver, port: 0, basePath: "/ro" });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox"],
    });
    if (CI) mkdirSync(SHOTS, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await served?.close();
    await readOnly?.close();
    await driver?.close();
  });

  /** A new page that records console errors, CSP violations and uncaught exceptions. */
  const open = async (url: string): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`${url}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`${url}: ${e.message}`));
    const response = await page.goto(url);
    expect(response?.status(), url).toBe(200);
    await page.waitForSelector("body[data-ready=true]");
    return page;
  };
  const shot = async (page: Page, name: string) => {
    if (CI) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  };

  /** axe-core's serious and critical violations on a page. */
  const seriousViolations = async (page: Page): Promise<string[]> => {
    const axe = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
    // Through the DevTools protocol: the page's CSP (no inline script) does not apply.
    await page.evaluate(axe);
    const violations = await page.evaluate(async () => {
      const result = await (
        window as unknown as {
          axe: {
            run: (
              c: Document,
              o: object,
            ) => Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }>;
          };
        }
      ).axe.run(document, { resultTypes: ["violations"] });
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
    });
    return violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}, ${v.nodes} nodes)`);
  };

  it("renders every page with the data, without a console error or CSP violation", async () => {
    const pages: [string, string, string][] = [
      ["overview", "", "#checks"],
      ["pipeline", "pipeline", "#pipeline-graph"],
      ["subscribers", "subscribers", "#subscribers-table"],
      ["events", "events", "#events-table"],
      ["event", `events/${seeded.childId}`, "#causation"],
      ["dead-letters", "dead-letters", "#groups"],
      ["daemons", "daemons", "#daemons"],
      // The seeded daemons announce nothing: listed as silent.
      ["contracts", "contracts", "#silent"],
    ];
    for (const [name, path, selector] of pages) {
      const page = await open(`${served.url}${path}`);
      await page.waitForSelector(selector);
      if (name === "overview") {
        await page.waitForSelector("#throughput-chart[data-rendered=true] canvas");
        expect(await page.textContent("#dead-letter-depth")).toBe("4");
      }
      if (name === "subscribers") {
        await page.click("th a:text('Dead')");
        await page.waitForURL(/sort=dead/);
        expect(
          await page.textContent("#subscribers-table tbody tr:first-child td:first-child"),
        ).toContain("selfplay_watch");
      }
      if (name === "pipeline")
        expect(await page.textContent("#keys-0 tr[data-key=hex8_2p]")).toContain("complete");
      if (name === "event")
        expect(await page.textContent("#causation")).toContain("TRAINING_COMPLETED");
      if (name === "daemons") expect(await page.textContent("#daemons")).toContain("crashy_daemon");
      if (name === "contracts")
        expect(await page.textContent("#silent")).toContain("trainer_daemon");
      await shot(page, name);
      await page.close();
    }
    expect(problems).toEqual([]);
  });

  it("shows an event published during the test in the live tail, without a reload", async () => {
    const page = await open(`${served.url}events`);
    await page.click("#tail-toggle");
    await page.waitForSelector("body[data-tail=ready]");
    const event = createEnvelope({
      type: "LIVE_TAIL_EVENT",
      source: "browser-test",
      data: { config_key: "<i>live</i>" },
    });
    await driver.transport().publish([event]);
    const row = page.locator("#events-body tr.new", { hasText: event.id });
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toContain("LIVE_TAIL_EVENT");
    expect(await page.locator("#events-body i").count()).toBe(0);
    await shot(page, "events-live-tail");
    await page.close();
    expect(problems).toEqual([]);
  });

  it("replays a dead letter with the token after a dry-run count, and refuses without it", async () => {
    const page = await open(`${served.url}dead-letters?subscriber=pill_eater`);
    const button = page.locator("#groups button[data-action=replay]").first();
    // No token: the server refuses (403) and the page says so.
    await button.click();
    await page.waitForFunction(() =>
      document.getElementById("action-result")?.textContent?.startsWith("Refused"),
    );
    expect(await page.textContent("#action-result")).toContain("403");
    expect(
      (await driver.inspector().deadLetters({ subscriber: "pill_eater" })).deadLetters[0]!.replays,
    ).toBe(0);
    // With the token: a dry run counts, the operator confirms, the replay happens.
    await page.fill("#token", TOKEN);
    await page.dispatchEvent("#token", "change");
    await button.click();
    await page.waitForSelector("#confirm:not([hidden])");
    expect(await page.textContent("#confirm-text")).toBe("Replay 1 dead letter?");
    expect(
      (await driver.inspector().deadLetters({ subscriber: "pill_eater" })).deadLetters[0]!.replays,
    ).toBe(0);
    await shot(page, "dead-letters-confirm");
    await page.click("#confirm-yes");
    await page.waitForFunction(() =>
      document.getElementById("action-result")?.textContent?.startsWith("Replayed"),
    );
    expect(await page.textContent("#action-result")).toContain("Replayed 1 dead letter");
    expect(
      (await driver.inspector().deadLetters({ subscriber: "pill_eater" })).deadLetters[0]!.replays,
    ).toBe(1);
    await page.close();

    // A read-only dashboard shows no action and refuses a write made from its own page.
    const ro = await open(`${readOnly.url}dead-letters`);
    expect(await ro.locator("button.act").count()).toBe(0);
    await ro.waitForSelector("#read-only");
    const status = await ro.evaluate(async (token) => {
      const r = await fetch("/ro/api/dead-letters/purge", {
        method: "POST",
        headers: { "content-type": "application/json", "x-switchyard-token": token },
        body: JSON.stringify({ filter: { subscriber: "selfplay_watch" } }),
      });
      return r.status;
    }, TOKEN);
    expect(status).toBe(403);
    await ro.close();
    expect((await driver.inspector().deadLetterCounts()).depth).toBe(4);
  });

  it("shows the delivery timeline of an event that retried", async () => {
    expect(driver.inspector().capabilities.history).toBe(true);
    const seen = problems.length;
    const failing = (await driver.inspector().events({ types: ["SELFPLAY_FAILED"], limit: 1 }))
      .events[0]!;
    const page = await open(`${served.url}events/${failing.id}`);
    const table = page.locator('table.timeline[data-subscriber="selfplay_watch"]');
    await table.waitFor();
    const kinds = await table
      .locator("tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-kind")));
    expect(kinds).toContain("retry_scheduled");
    expect(kinds.at(-1)).toBe("dead_lettered");
    expect(await table.locator("tr[data-kind=retry_scheduled]").textContent()).toContain(
      "disk full",
    );
    expect(await page.locator("#no-history").count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
    await shot(page, "event-timeline");
    await page.close();
    expect(problems.slice(seen)).toEqual([]);
  });

  it("renders a hostile payload inert and keeps the page usable", async () => {
    const page = await open(`${served.url}events/${seeded.hostileId}`);
    expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(await page.locator("#payload").textContent()).toContain(
      "<script>window.__pwned=1</script>",
    );
    expect(await page.locator("main img, main script").count()).toBe(0);
    await shot(page, "event-hostile");
    await page.click("nav a:text('Daemons')");
    await page.waitForURL(/daemons$/);
    await page.close();
  });

  it("has no serious or critical accessibility violation on any page (axe-core)", async () => {
    // One daemon announcing its contracts, so the Contracts page has its table to check.
    await driver.heartbeatSink().write(
      daemonBeat("announcing_daemon", "running", Date.now(), {
        contracts: {
          publishes: [typeContract(pipelineCatalog, "TRAINING_COMPLETED")],
          subscribes: [typeContract(pipelineCatalog, "NPZ_EXPORT_COMPLETE")],
        },
      }),
    );
    const found: string[] = [];
    for (const path of [
      "",
      "pipeline",
      "subscribers",
      "events",
      `events/${seeded.rootId}`,
      "dead-letters",
      "daemons",
      "contracts",
    ]) {
      const page = await open(`${served.url}${path}`);
      for (const v of await seriousViolations(page)) found.push(`/${path}: ${v}`);
      await page.close();
    }
    expect(found).toEqual([]);
  });

  it("reaches every control of a page with the keyboard", async () => {
    const page = await open(`${served.url}dead-letters`);
    const controls = await page.evaluate(
      () =>
        [
          ...document.querySelectorAll<HTMLElement>(
            "a[href], button:not([hidden]), input, select, [tabindex='0']",
          ),
        ].filter((el) => el.offsetParent !== null).length,
    );
    const reached = new Set<string>();
    for (let i = 0; i < controls + 5; i++) {
      await page.keyboard.press("Tab");
      const id = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        if (!el || el === document.body) return "";
        const all = [...document.querySelectorAll("*")];
        return `${el.tagName}#${all.indexOf(el)}`;
      });
      if (id) reached.add(id);
    }
    expect(reached.size).toBeGreaterThanOrEqual(controls);
    await page.close();
  });
});
